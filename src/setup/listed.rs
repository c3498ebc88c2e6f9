//! Datasets from a list: a manifest the spec names, or a folder's images split by
//! `[dataset.split]`'s fractions. The problems `crate::data` finds in a manifest are rendered
//! at their file and line (the CSV line under a caret, as for the spec's own errors), with a
//! note on where the spec named the manifest.

use std::path::Path;
use std::sync::Arc;

use crate::data::{
    is_parquet, open_listed, read_manifest, rows_of_classes, split_of_rows, ClassFiles, Columns,
    Cut, Fractions, Issue, Listed, Part, Split, Where,
};
use crate::spec::{display_path, Diagnostic, Locator, Snippet, Source};

/// At most this many problems of one manifest are shown; the rest are counted.
const MAX_SHOWN: usize = 20;

/// The key a problem of the fractions is reported at.
const FRACTIONS_KEY: &str = "dataset.split.val";

/// The spec's `[dataset.split]` as the data stage takes it.
pub(super) fn fractions(d: &crate::spec::Dataset) -> Fractions {
    Fractions {
        val: d.split.val,
        test: d.split.test,
        seed: d.split.seed,
        stratify: d.split.stratify,
    }
}

/// Reads and checks the manifest `file`: its dataset, or its problems.
pub(super) fn check_manifest(
    d: &crate::spec::Dataset,
    file: &Path,
    at: &Locator,
) -> Result<Listed, Vec<Diagnostic>> {
    if !file.is_file() {
        let what = if file.exists() {
            "something that is not a file"
        } else {
            "nothing"
        };
        return Err(vec![at
            .invalid(
                "dataset.manifest",
                format!(
                    "expected a CSV or Parquet file, found {what} at {}",
                    display_path(file)
                ),
            )
            .help(
                "relative paths resolve against the folder of the file that sets them",
            )]);
    }
    let columns = Columns {
        path: d.path_column.clone(),
        label: d.label_column.clone(),
        split: d.split_column.clone(),
        split_required: !at.is_default("dataset.split_column"),
    };
    let manifest = read_manifest(file, &columns)
        .map_err(|issues| render(issues, &unread_source(file), Some(at)))?;
    let source = Source::file(
        file.to_path_buf(),
        manifest.text.clone().unwrap_or_default(),
    );
    let fractions = fractions(d);
    let cut = Cut {
        fractions: (!manifest.has_split).then_some(&fractions),
        fractions_key: FRACTIONS_KEY,
        train_per_class: d.train_per_class,
        val_per_class: d.val_per_class,
    };
    let base = file.parent().unwrap_or(Path::new(""));
    let mut issues = manifest.bad_records;
    match open_listed(base, &manifest.rows, &cut) {
        Ok(listed) if issues.is_empty() => return Ok(listed),
        Ok(_) => {}
        Err(more) => issues.extend(more),
    }
    issues.sort_by_key(|i| match i.at {
        Where::Row { line, .. } => line,
        _ => usize::MAX,
    });
    Err(render(issues, &source, Some(at)))
}

/// The rows of the manifest `file` that `runner evaluate` scores, read with the column names
/// of the run's `[dataset]`: those of split `part`, by default `test` where the file has test
/// rows, else every row; each label one of the run's `classes`. Returns the images and which
/// rows they are (`split test`, `every row`); a problem comes back rendered at its line.
pub fn evaluation_rows(
    file: &Path,
    d: &crate::spec::Dataset,
    classes: &[String],
    part: Option<Part>,
) -> Result<(Split, String), String> {
    let columns = Columns {
        path: d.path_column.clone(),
        label: d.label_column.clone(),
        split: d.split_column.clone(),
        split_required: part.is_some(),
    };
    let rendered = |issues: Vec<Issue>, source: &Arc<Source>| {
        render(issues, source, None)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    };
    let manifest =
        read_manifest(file, &columns).map_err(|issues| rendered(issues, &unread_source(file)))?;
    let source = Source::file(
        file.to_path_buf(),
        manifest.text.clone().unwrap_or_default(),
    );
    let has_test = manifest
        .rows
        .iter()
        .any(|r| r.split.as_deref() == Some(Part::Test.name()));
    let part = part.or((manifest.has_split && has_test).then_some(Part::Test));
    let base = file.parent().unwrap_or(Path::new(""));
    if !manifest.bad_records.is_empty() {
        return Err(rendered(manifest.bad_records, &source));
    }
    let split = split_of_rows(base, &manifest.rows, classes, part)
        .map_err(|issues| rendered(issues, &source))?;
    if split.is_empty() {
        let which = part.map_or("", Part::name);
        return Err(Diagnostic::error(format!("no `{which}` rows to score"))
            .in_file(source)
            .label(format!(
                "expected rows whose `{}` is `{which}`",
                d.split_column
            ))
            .to_string());
    }
    let rows = part.map_or("every row".to_owned(), |p| format!("split {}", p.name()));
    Ok((split, rows))
}

/// A folder without a validation folder: its training images split by the fractions (the
/// test folder, when the spec names one, stays the test split).
pub(super) fn split_folder(
    d: &crate::spec::Dataset,
    train: Vec<ClassFiles>,
    test: Option<Vec<ClassFiles>>,
    at: &Locator,
) -> Result<Listed, Vec<Diagnostic>> {
    if test.is_some() && d.split.test > 0.0 {
        return Err(vec![at
            .invalid(
                "dataset.split.test",
                "expected 0: `dataset.test_dir` holds the test images".to_owned(),
            )
            .note(at.where_set("dataset.test_dir"))]);
    }
    let rows = rows_of_classes(&d.root, &train);
    let fractions = fractions(d);
    let cut = Cut {
        fractions: Some(&fractions),
        fractions_key: FRACTIONS_KEY,
        train_per_class: d.train_per_class,
        val_per_class: d.val_per_class,
    };
    let no_file = Source::file(d.root.clone(), String::new());
    let mut listed =
        open_listed(&d.root, &rows, &cut).map_err(|issues| render(issues, &no_file, Some(at)))?;
    tracing::info!(
        "{} has no {}/: its {} images split by [dataset.split] (val {}, test {}, seed {})",
        display_path(&d.root),
        d.val_dir,
        rows.len(),
        d.split.val,
        d.split.test,
        d.split.seed
    );
    if let Some(test) = test {
        listed.folder = listed
            .folder
            .with_test(test)
            .map_err(|e| vec![at.invalid("dataset.test_dir", e.to_string())])?;
        listed.layout.test_dir = d.test_dir.clone();
    }
    Ok(listed)
}

/// The source of a manifest that could not be read into rows: its text when it is CSV text
/// (a missing column is shown at the header line), else none.
fn unread_source(file: &Path) -> Arc<Source> {
    let text = if is_parquet(file) {
        String::new()
    } else {
        std::fs::read_to_string(file).unwrap_or_default()
    };
    Source::file(file.to_path_buf(), text)
}

/// Each issue as a diagnostic at its place, at most [`MAX_SHOWN`] of them.
fn render(issues: Vec<Issue>, source: &Arc<Source>, at: Option<&Locator>) -> Vec<Diagnostic> {
    let total = issues.len();
    let mut out: Vec<Diagnostic> = issues
        .into_iter()
        .take(MAX_SHOWN)
        .map(|issue| diagnostic(issue, source, at))
        .collect();
    if total > MAX_SHOWN {
        out.push(
            Diagnostic::error(format!(
                "{} more problems in {}",
                total - MAX_SHOWN,
                source.name()
            ))
            .in_file(source.clone())
            .label("the first problems are shown above"),
        );
    }
    out
}

fn diagnostic(issue: Issue, source: &Arc<Source>, at: Option<&Locator>) -> Diagnostic {
    let Issue {
        at: place,
        message,
        label,
        notes,
    } = issue;
    // a problem at a key says where the key was set; one in the manifest, where it was named
    let in_manifest = !matches!(place, Where::Key(_));
    let mut diag = match place {
        Where::Key(key) => {
            let mut d = match at {
                Some(at) => at.invalid(key, label),
                None => Diagnostic::error("").label(label),
            };
            d.message = message;
            d
        }
        Where::File => Diagnostic::error(message)
            .in_file(source.clone())
            .label(label),
        Where::Row { line, span } if !source.text.is_empty() => {
            let span = span.unwrap_or_else(|| line_span(&source.text, line));
            Diagnostic::error(message)
                .at(Some(Snippet {
                    source: source.clone(),
                    span,
                }))
                .label(label)
        }
        Where::Row { line, .. } => {
            let row = if is_parquet(source.path.as_deref().unwrap_or(Path::new(""))) {
                "row"
            } else {
                "line"
            };
            Diagnostic::error(message)
                .in_file(source.clone())
                .label(format!("{row} {line}: {label}"))
        }
    };
    for note in notes {
        diag = diag.note(note);
    }
    if let Some(at) = at.filter(|_| in_manifest) {
        diag = diag.note(at.where_set("dataset.manifest"));
    }
    diag
}

/// The byte range of 1-based `line` in `text` (its end when past the last line).
fn line_span(text: &str, line: usize) -> std::ops::Range<usize> {
    let start = text
        .split_inclusive('\n')
        .take(line.saturating_sub(1))
        .map(str::len)
        .sum::<usize>()
        .min(text.len());
    let end = text[start..].find('\n').map_or(text.len(), |i| start + i);
    start..end
}
