//! Reading a manifest: a CSV or Parquet file with one row per image (its path, its label and
//! optionally its split). CSV goes through the `csv` crate, which knows the line of every
//! record, so each problem is reported at its line and cell; Parquet through polars' eager
//! reader, by row number.

use std::ops::Range;
use std::path::{Path, PathBuf};

use polars::prelude::*;

/// Which columns hold what.
#[derive(Debug, Clone)]
pub struct Columns {
    pub path: String,
    pub label: String,
    pub split: String,
    /// The split column was named on purpose, so a file without it is wrong (at its default
    /// name, a file without it gets a split made for it).
    pub split_required: bool,
}

/// Hugging Face's imagefolder `metadata.csv` calls the path column this.
const HF_PATH_COLUMN: &str = "file_name";

/// A manifest as read: its rows, and its text for pointing at them (CSV only).
#[derive(Debug, Clone)]
pub struct ManifestFile {
    pub file: PathBuf,
    /// The CSV text the rows' spans index; `None` for Parquet.
    pub text: Option<String>,
    pub rows: Vec<Row>,
    /// The name of the column paths were read from (`path` or `file_name`).
    pub path_column: String,
    /// The file has the split column.
    pub has_split: bool,
    /// Records that could not be read (a wrong number of fields, text that is not UTF-8): each
    /// an issue at its line, its row left out, so the rows' own problems are found too.
    pub bad_records: Vec<Issue>,
}

/// One row of a manifest: the cells as written, trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The line of a CSV record (the header is line 1), the 1-based row of a Parquet file.
    pub line: usize,
    pub path: String,
    pub label: String,
    pub split: Option<String>,
    /// Where each cell is in the CSV text.
    pub spans: Cells,
}

/// Byte ranges of a CSV row's cells in the file's text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Cells {
    pub path: Option<Range<usize>>,
    pub label: Option<Range<usize>>,
    pub split: Option<Range<usize>>,
}

/// Where a problem is.
#[derive(Debug, Clone, PartialEq)]
pub enum Where {
    /// The file as a whole.
    File,
    /// A row (its line; for CSV the span of the cell at fault, else of the whole line).
    Row {
        line: usize,
        span: Option<Range<usize>>,
    },
    /// A spec key, e.g. `dataset.split.val` for a fraction that leaves a class no image.
    Key(&'static str),
}

/// One problem with a manifest (or with a split made from fractions), for `setup` to render
/// at its place.
#[derive(Debug, Clone, PartialEq)]
pub struct Issue {
    pub at: Where,
    pub message: String,
    pub label: String,
    pub notes: Vec<String>,
}

impl Issue {
    pub fn new(at: Where, message: impl Into<String>, label: impl Into<String>) -> Issue {
        Issue {
            at,
            message: message.into(),
            label: label.into(),
            notes: Vec::new(),
        }
    }

    pub(crate) fn note(mut self, note: impl Into<String>) -> Issue {
        self.notes.push(note.into());
        self
    }
}

/// True for a Parquet manifest (by extension), else it is read as CSV.
pub fn is_parquet(file: &Path) -> bool {
    file.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("parquet"))
}

/// Reads a manifest's rows; every problem of its header or records is an [`Issue`].
pub fn read(file: &Path, columns: &Columns) -> Result<ManifestFile, Vec<Issue>> {
    if is_parquet(file) {
        read_parquet(file, columns)
    } else {
        read_csv(file, columns)
    }
}

/// The index of each wanted column among `names`, or the issue of a missing one.
fn find_columns(
    names: &[&str],
    columns: &Columns,
    at: Where,
) -> Result<(usize, String, usize, Option<usize>), Vec<Issue>> {
    let index = |name: &str| names.iter().position(|n| *n == name);
    let found = format!("the columns are: {}", names.join(", "));
    let mut issues = Vec::new();
    let path = index(&columns.path)
        .map(|i| (i, columns.path.clone()))
        .or_else(|| {
            (columns.path == "path")
                .then(|| index(HF_PATH_COLUMN).map(|i| (i, HF_PATH_COLUMN.to_owned())))
                .flatten()
        });
    if path.is_none() {
        let also = if columns.path == "path" {
            format!(" (or `{HF_PATH_COLUMN}`)")
        } else {
            String::new()
        };
        issues.push(
            Issue::new(
                at.clone(),
                format!("manifest has no column `{}`", columns.path),
                format!("expected a column `{}`{also} of image paths", columns.path),
            )
            .note(found.clone())
            .note("`dataset.path_column` names it"),
        );
    }
    let label = index(&columns.label);
    if label.is_none() {
        issues.push(
            Issue::new(
                at.clone(),
                format!("manifest has no column `{}`", columns.label),
                format!("expected a column `{}` of labels", columns.label),
            )
            .note(found.clone())
            .note("`dataset.label_column` names it"),
        );
    }
    let split = index(&columns.split);
    if split.is_none() && columns.split_required {
        issues.push(
            Issue::new(
                at,
                format!("manifest has no column `{}`", columns.split),
                format!("expected a column `{}` of splits", columns.split),
            )
            .note(found)
            .note("`dataset.split_column` names it"),
        );
    }
    match (path, label) {
        (Some((p, name)), Some(l)) if issues.is_empty() => Ok((p, name, l, split)),
        _ => Err(issues),
    }
}

fn read_csv(file: &Path, columns: &Columns) -> Result<ManifestFile, Vec<Issue>> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        vec![Issue::new(
            Where::File,
            "cannot read the manifest",
            format!("{e}"),
        )]
    })?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(text.as_bytes());
    let header_at = Where::Row {
        line: 1,
        span: Some(0..text.find('\n').unwrap_or(text.len())),
    };
    let headers = reader.headers().map_err(|e| {
        vec![Issue::new(
            header_at.clone(),
            "cannot read the manifest's header",
            e.to_string(),
        )]
    })?;
    // spreadsheet programs start their CSV exports with a byte-order mark
    let names: Vec<String> = headers
        .iter()
        .map(|h| h.trim_start_matches('\u{feff}').trim().to_owned())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (path_i, path_column, label_i, split_i) = find_columns(&names, columns, header_at)?;
    let at = ColumnsAt {
        path: path_i,
        label: label_i,
        split: split_i,
    };
    let (mut rows, mut issues) = (Vec::new(), Vec::new());
    for record in reader.records() {
        match row_of(&text, record, names.len(), &at) {
            Ok(row) => rows.push(row),
            Err(issue) => issues.push(issue),
        }
    }
    Ok(ManifestFile {
        file: file.to_path_buf(),
        text: Some(text),
        rows,
        path_column,
        has_split: split_i.is_some(),
        bad_records: issues,
    })
}

/// Where a manifest's path, label and split columns are, by field index.
struct ColumnsAt {
    path: usize,
    label: usize,
    split: Option<usize>,
}

/// One CSV record as a row, with the byte spans of its cells in `text`; or why it cannot be
/// read (`fields`: how many the header has).
fn row_of(
    text: &str,
    record: csv::Result<csv::StringRecord>,
    fields: usize,
    at: &ColumnsAt,
) -> Result<Row, Issue> {
    let record = record.map_err(|e| {
        let line = e.position().map_or(0, |p| p.line() as usize);
        Issue::new(
            Where::Row { line, span: None },
            "cannot read this manifest row",
            csv_reason(&e),
        )
    })?;
    let pos = record.position().expect("the csv reader records positions");
    let spans = field_spans(text, pos.byte() as usize);
    if record.len() != fields {
        return Err(Issue::new(
            Where::Row {
                line: pos.line() as usize,
                span: None,
            },
            "cannot read this manifest row",
            format!(
                "expected {fields} fields like the header, found {}",
                record.len()
            ),
        ));
    }
    let cell = |i: usize| record.get(i).unwrap_or("").trim().to_owned();
    Ok(Row {
        line: pos.line() as usize,
        path: cell(at.path),
        label: cell(at.label),
        split: at.split.map(cell),
        spans: Cells {
            path: spans.get(at.path).cloned(),
            label: spans.get(at.label).cloned(),
            split: at.split.and_then(|i| spans.get(i).cloned()),
        },
    })
}

/// A CSV error without the position the location line already gives.
fn csv_reason(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!("expected {expected_len} fields like the header, found {len}"),
        csv::ErrorKind::Utf8 { .. } => "expected UTF-8 text".to_owned(),
        _ => e.to_string(),
    }
}

/// The byte ranges of the fields of the CSV record starting at `start` (quotes respected).
fn field_spans(text: &str, start: usize) -> Vec<Range<usize>> {
    let bytes = text.as_bytes();
    // after a `\r\n` line end the reader's record may start at its `\n`
    let start = start
        + bytes[start.min(bytes.len())..]
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count();
    let (mut spans, mut field_start, mut quoted, mut i) = (Vec::new(), start, false, start);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => quoted = !quoted,
            b',' if !quoted => {
                spans.push(field_start..i);
                field_start = i + 1;
            }
            b'\n' | b'\r' if !quoted => break,
            _ => {}
        }
        i += 1;
    }
    spans.push(field_start..i);
    spans
}

fn read_parquet(file: &Path, columns: &Columns) -> Result<ManifestFile, Vec<Issue>> {
    let unreadable = |e: &dyn std::fmt::Display| {
        vec![Issue::new(
            Where::File,
            "cannot read the manifest",
            e.to_string(),
        )]
    };
    let handle = std::fs::File::open(file).map_err(|e| unreadable(&e))?;
    let df = ParquetReader::new(handle)
        .read_parallel(ParallelStrategy::None)
        .finish()
        .map_err(|e| unreadable(&e))?;
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|n| n.to_string())
        .collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let (path_i, path_column, label_i, split_i) = find_columns(&names, columns, Where::File)?;
    let text_of = |i: usize| -> Result<Vec<String>, Vec<Issue>> {
        let column = df
            .column(names[i])
            .and_then(|c| c.cast(&DataType::String))
            .map_err(|e| unreadable(&e))?;
        let strings = column.str().map_err(|e| unreadable(&e))?;
        Ok(strings
            .iter()
            .map(|v| v.unwrap_or("").trim().to_owned())
            .collect())
    };
    let paths = text_of(path_i)?;
    let labels = text_of(label_i)?;
    let splits = split_i.map(text_of).transpose()?;
    let rows = paths
        .into_iter()
        .zip(labels)
        .enumerate()
        .map(|(i, (path, label))| Row {
            line: i + 1,
            path,
            label,
            split: splits.as_ref().map(|s| s[i].clone()),
            spans: Cells::default(),
        })
        .collect();
    Ok(ManifestFile {
        file: file.to_path_buf(),
        text: None,
        rows,
        path_column,
        has_split: split_i.is_some(),
        bad_records: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> Columns {
        Columns {
            path: "path".into(),
            label: "label".into(),
            split: "split".into(),
            split_required: false,
        }
    }

    #[test]
    fn csv_rows_keep_their_lines_and_cells() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("labels.csv");
        std::fs::write(&file, "path,label\na.png,cat\n\"b,c.png\",dog\n").unwrap();
        let m = read(&file, &columns()).unwrap();
        assert!(!m.has_split);
        assert_eq!(m.rows.len(), 2);
        assert_eq!((m.rows[1].line, m.rows[1].path.as_str()), (3, "b,c.png"));
        let text = m.text.unwrap();
        assert_eq!(&text[m.rows[1].spans.label.clone().unwrap()], "dog");
        assert_eq!(&text[m.rows[1].spans.path.clone().unwrap()], "\"b,c.png\"");
    }

    #[test]
    fn a_byte_order_mark_and_crlf_line_ends_are_read_through() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("export.csv");
        std::fs::write(&file, "\u{feff}path,label\r\na.png,cat\r\n").unwrap();
        let m = read(&file, &columns()).unwrap();
        assert_eq!(
            (m.rows[0].path.as_str(), m.rows[0].label.as_str()),
            ("a.png", "cat")
        );
        let text = m.text.unwrap();
        assert_eq!(&text[m.rows[0].spans.label.clone().unwrap()], "cat");
    }

    #[test]
    fn hugging_face_file_name_is_the_path_column_by_default() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("metadata.csv");
        std::fs::write(&file, "file_name,label\na.png,cat\n").unwrap();
        let m = read(&file, &columns()).unwrap();
        assert_eq!(m.path_column, "file_name");
        let named = Columns {
            path: "image".into(),
            ..columns()
        };
        let issues = read(&file, &named).unwrap_err();
        assert_eq!(issues[0].message, "manifest has no column `image`");
    }

    #[test]
    fn a_short_record_is_named_by_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("labels.csv");
        std::fs::write(&file, "path,label,split\na.png,cat,train\nb.png,dog\n").unwrap();
        let issues = read(&file, &columns()).unwrap().bad_records;
        assert_eq!(issues.len(), 1);
        assert_eq!(
            issues[0].at,
            Where::Row {
                line: 3,
                span: None
            }
        );
        assert_eq!(
            issues[0].label,
            "expected 3 fields like the header, found 2"
        );
    }

    #[test]
    fn parquet_rows_are_numbered_and_labels_may_be_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("labels.parquet");
        let mut df = df!(
            "path" => ["a.png", "b.png"],
            "label" => [0i64, 1],
            "split" => ["train", "val"],
        )
        .unwrap();
        ParquetWriter::new(std::fs::File::create(&file).unwrap())
            .finish(&mut df)
            .unwrap();
        let m = read(&file, &columns()).unwrap();
        assert!(m.has_split && m.text.is_none());
        assert_eq!(
            (
                m.rows[1].line,
                m.rows[1].label.as_str(),
                m.rows[1].split.as_deref()
            ),
            (2, "1", Some("val"))
        );
    }
}
