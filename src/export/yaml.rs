//! The little YAML MLflow's file store keeps in `meta.yaml`: flat `key: scalar` maps. Written
//! with JSON-quoted strings (valid YAML that PyYAML reads back exactly); read back with a YAML
//! parser (yaml-rust2), which takes whatever MLflow itself writes.

/// A scalar of a flat YAML map.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Scalar {
    Str(String),
    Int(i64),
    Null,
    /// An empty list, `[]` (MLflow's legacy `tags` field of a run).
    EmptyList,
}

/// `key: value` lines, in the given order.
pub(super) fn write(map: &[(&str, Scalar)]) -> String {
    let mut out = String::new();
    for (k, v) in map {
        let v = match v {
            Scalar::Str(s) => serde_json::to_string(s).expect("strings serialise"),
            Scalar::Int(i) => i.to_string(),
            Scalar::Null => "null".into(),
            Scalar::EmptyList => "[]".into(),
        };
        out.push_str(&format!("{k}: {v}\n"));
    }
    out
}

/// The value of a top-level key of a YAML map, as text (`None` when absent, `null`, or the
/// text is not YAML).
pub(super) fn get(text: &str, key: &str) -> Option<String> {
    use yaml_rust2::{Yaml, YamlLoader};
    let docs = YamlLoader::load_from_str(text).ok()?;
    match &docs.first()?[key] {
        Yaml::String(s) | Yaml::Real(s) => Some(s.clone()),
        Yaml::Integer(i) => Some(i.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes_and_what_mlflow_writes() {
        let text = write(&[
            ("name", Scalar::Str("a: \"b\" 'c'".into())),
            ("experiment_id", Scalar::Str("12".into())),
            ("start_time", Scalar::Int(5)),
            ("end_time", Scalar::Null),
        ]);
        assert_eq!(get(&text, "name").as_deref(), Some("a: \"b\" 'c'"));
        assert_eq!(get(&text, "experiment_id").as_deref(), Some("12"));
        assert_eq!(get(&text, "start_time").as_deref(), Some("5"));
        assert_eq!(get(&text, "end_time"), None);
        assert_eq!(get(&text, "missing"), None);
        // as PyYAML writes it
        let mlflow = "experiment_id: '619718188370497206'\nlifecycle_stage: active\nname: it''s a\n  long name\n";
        assert_eq!(
            get(mlflow, "experiment_id").as_deref(),
            Some("619718188370497206")
        );
        assert_eq!(get(mlflow, "lifecycle_stage").as_deref(), Some("active"));
        assert_eq!(get(mlflow, "name").as_deref(), Some("it''s a long name"));
    }
}
