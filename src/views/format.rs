//! The script formats of the views, through well-kept crates: CSV with the `csv` crate
//! (RFC 4180 quoting), JSON with serde_json (`preserve_order`: objects keep the column order).

use serde_json::Value;

/// A header and rows as CSV, one record per line.
pub(crate) fn csv(header: &[String], rows: &[Vec<String>]) -> String {
    let mut w = csv::Writer::from_writer(Vec::new());
    let records = std::iter::once(header).chain(rows.iter().map(Vec::as_slice));
    for record in records {
        w.write_record(record).expect("CSV into memory");
    }
    String::from_utf8(w.into_inner().expect("CSV into memory")).expect("CSV of UTF-8 fields")
}

/// Rows as a JSON array of objects, keys in column order.
pub(crate) fn objects(header: &[String], rows: Vec<Vec<Value>>) -> Value {
    Value::Array(
        rows.into_iter()
            .map(|r| Value::Object(header.iter().cloned().zip(r).collect()))
            .collect(),
    )
}

/// A JSON document, pretty printed, with a final newline.
pub(crate) fn json(value: &Value) -> String {
    serde_json::to_string_pretty(value).expect("JSON values serialise") + "\n"
}

/// A number, or null where JSON has none (NaN, ±inf).
pub(crate) fn number(x: f64) -> Value {
    serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number)
}
