//! Formats a comparison [`Table`] as a terminal table, Markdown, CSV or JSON.
//!
//! Table and Markdown are for reading: 4 significant digits, `mean ± sd` for seed groups, `-`
//! for a run without epochs. CSV and JSON are for scripts: full precision, a `<metric>_sd` column
//! next to each metric of a seed group, empty / null for missing and NaN values.

use comfy_table::{presets, CellAlignment, ContentArrangement};

use super::{Format, Row, Stat, Table, METRICS};
use crate::number::{metric, ColumnFormat};
use crate::results::schema::ParamValue;
use crate::views::format;

pub fn render(table: &Table, format: Format) -> String {
    match format {
        Format::Table => text_table(table, presets::UTF8_FULL_CONDENSED),
        Format::Markdown => text_table(table, presets::ASCII_MARKDOWN),
        Format::Csv => csv(table),
        Format::Json => json(table),
    }
}

/// A comfy table with fixed layout (no wrapping to the terminal width, so output is the same
/// in a pipe, a test or a terminal); the columns marked in `right` (numbers) right-aligned.
pub fn comfy(header: Vec<String>, rows: Vec<Vec<String>>, preset: &str, right: &[bool]) -> String {
    let mut t = comfy_table::Table::new();
    t.load_preset(preset)
        .set_content_arrangement(ContentArrangement::Disabled)
        .set_header(header);
    for r in rows {
        t.add_row(r);
    }
    for (i, c) in t.column_iter_mut().enumerate() {
        if right.get(i).copied().unwrap_or(false) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    let mut s = t.to_string();
    s.push('\n');
    s
}

fn text_table(table: &Table, preset: &str) -> String {
    let rows = text_rows(table);
    // numbers right, text left: a parameter column is numeric when all its values are
    let numeric = |p: usize| {
        table.rows.iter().all(|r| {
            matches!(
                r.params[p],
                None | Some(ParamValue::Int(_) | ParamValue::Float(_))
            )
        })
    };
    let mut right = vec![false, false];
    right.extend((0..table.params.len()).map(numeric));
    right.extend(std::iter::repeat_n(
        true,
        table.metrics().len() + usize::from(table.aggregated),
    ));
    right.push(false);
    comfy(table.columns(), rows, preset, &right)
}

/// The cells of the readable formats, one per [`Table::columns`] entry: 4 significant digits,
/// `mean ± sd` for seed groups, `-` for a missing value.
pub(crate) fn text_rows(table: &Table) -> Vec<Vec<String>> {
    // each parameter column with the digits that keep its values apart
    let formats: Vec<ColumnFormat> = (0..table.params.len())
        .map(|p| ColumnFormat::for_params(table.rows.iter().filter_map(|r| r.params[p].as_ref())))
        .collect();
    table
        .rows
        .iter()
        .map(|r| {
            let mut cells = vec![r.experiment.clone(), short_ids(&r.run_ids)];
            cells.extend(
                r.params
                    .iter()
                    .zip(&formats)
                    .map(|(p, f)| p.as_ref().map_or("-".into(), |v| f.param(v))),
            );
            if table.aggregated {
                cells.push(r.runs.len().to_string());
            }
            cells.extend(table.metrics().map(|m| stat_text(&r.stats[m], m == 0)));
            cells.push(r.status.clone());
            cells
        })
        .collect()
}

/// "a1b2c3d4e5f6" or "a1b2c3d4e5f6 +2" for a seed group.
fn short_ids(ids: &[String]) -> String {
    match ids {
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} +{}", rest.len()),
        [] => String::new(),
    }
}

fn stat_text(s: &Stat, integer: bool) -> String {
    let f = |x: f64| {
        if integer && x.fract() == 0.0 {
            format!("{x}")
        } else {
            metric(x)
        }
    };
    if s.n == 0 || (s.mean.is_nan() && s.n == 1) {
        return "-".into();
    }
    if s.sd.is_nan() {
        f(s.mean)
    } else {
        format!("{} ± {}", f(s.mean), metric(s.sd))
    }
}

/// Column names and cells for the script formats: metrics as numbers (None = null), `n` and
/// `<metric>_sd` columns when rows are seed groups.
enum Value {
    Text(String),
    Param(ParamValue),
    Num(f64),
    Null,
}

fn flat(table: &Table) -> (Vec<String>, Vec<Vec<Value>>) {
    let mut header = vec!["experiment".to_string(), "run_id".to_string()];
    header.extend(table.params.iter().cloned());
    if table.aggregated {
        header.push("n".into());
    }
    for m in table.metrics().map(|m| METRICS[m]) {
        header.push(m.to_string());
        if table.aggregated {
            header.push(format!("{m}_sd"));
        }
    }
    header.push("status".into());
    let num = |x: f64| {
        if x.is_finite() {
            Value::Num(x)
        } else {
            Value::Null
        }
    };
    let rows = table
        .rows
        .iter()
        .map(|r: &Row| {
            let mut v = vec![
                Value::Text(r.experiment.clone()),
                Value::Text(r.run_ids.join(",")),
            ];
            v.extend(
                r.params
                    .iter()
                    .map(|p| p.clone().map_or(Value::Null, Value::Param)),
            );
            if table.aggregated {
                v.push(Value::Param(ParamValue::Int(r.runs.len() as i64)));
            }
            for s in &r.stats[table.metrics()] {
                v.push(num(s.mean));
                if table.aggregated {
                    v.push(num(s.sd));
                }
            }
            v.push(Value::Text(r.status.clone()));
            v
        })
        .collect();
    (header, rows)
}

fn csv(table: &Table) -> String {
    let (header, rows) = flat(table);
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| match v {
                    Value::Text(s) => s.clone(),
                    Value::Param(p) => p.to_string(),
                    Value::Num(x) => format!("{x}"),
                    Value::Null => String::new(),
                })
                .collect()
        })
        .collect();
    format::csv(&header, &rows)
}

/// The rows as a JSON array of objects, keys in column order.
pub(crate) fn json_value(table: &Table) -> serde_json::Value {
    let (header, rows) = flat(table);
    format::objects(
        &header,
        rows.iter()
            .map(|r| r.iter().map(json_cell).collect())
            .collect(),
    )
}

fn json(table: &Table) -> String {
    format::json(&json_value(table))
}

fn json_cell(v: &Value) -> serde_json::Value {
    match v {
        Value::Text(s) | Value::Param(ParamValue::Str(s)) => s.clone().into(),
        Value::Param(ParamValue::Float(f)) | Value::Num(f) => format::number(*f),
        Value::Param(ParamValue::Int(i)) => (*i).into(),
        Value::Param(ParamValue::Bool(b)) => (*b).into(),
        Value::Null => serde_json::Value::Null,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn csv_quotes_only_when_needed() {
        let header = ["kind".to_string(), "note".to_string()];
        let rows = [
            vec!["sgd".to_string(), "a,b".to_string()],
            vec!["say \"hi\"".to_string(), "two\r\nlines".to_string()],
        ];
        assert_eq!(
            crate::views::format::csv(&header, &rows),
            "kind,note\nsgd,\"a,b\"\n\"say \"\"hi\"\"\",\"two\r\nlines\"\n"
        );
    }
}
