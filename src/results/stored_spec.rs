//! A run's stored `spec.toml` (the resolved spec it was trained with) as flat dotted keys, for
//! the views that list or compare whole specs: the HTML report's spec diff, MLflow params.

use std::path::Path;

use crate::results::layout::RunDir;
use crate::results::scan::ScanError;

/// The resolved spec of a run: its text and every leaf key, sorted by key.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct StoredSpec {
    pub text: String,
    /// `section.key` → value; strings without quotes, anything else as TOML writes it
    /// (`[0.5, 0.5, 0.5]`, `1e-3` as `0.001`).
    pub keys: Vec<(String, String)>,
}

impl StoredSpec {
    pub(crate) fn get(&self, key: &str) -> Option<&str> {
        self.keys
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads `<run_dir>/spec.toml`; `None` when the run has none (a run folder written by hand or
/// by an older runner).
pub(crate) fn read(run_dir: &Path) -> Result<Option<StoredSpec>, ScanError> {
    let path = RunDir::at(run_dir).spec();
    if !path.is_file() {
        return Ok(None);
    }
    let bad = |reason: String| ScanError::Read {
        path: path.clone(),
        reason,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        // toml's message already names the line and column
        bad(e.to_string().trim_end().to_string())
    })?;
    let mut keys = Vec::new();
    flatten("", &table, &mut keys);
    keys.sort();
    Ok(Some(StoredSpec { text, keys }))
}

/// Leaf values under dotted keys; arrays (including arrays of tables) stay one value.
pub(crate) fn flatten(prefix: &str, table: &toml::Table, out: &mut Vec<(String, String)>) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            toml::Value::String(s) => out.push((key, s.clone())),
            other => out.push((key, other.to_string())),
        }
    }
}

/// The keys whose value differs between two specs, in `a`'s order then `b`'s extra keys:
/// (key, value in `a`, value in `b`), `None` where a spec lacks the key.
pub(crate) fn diff<'a>(
    a: &'a StoredSpec,
    b: &'a StoredSpec,
) -> Vec<(&'a str, Option<&'a str>, Option<&'a str>)> {
    let mut out: Vec<(&str, Option<&str>, Option<&str>)> = a
        .keys
        .iter()
        .filter_map(|(k, v)| {
            let other = b.get(k);
            (other != Some(v.as_str())).then_some((k.as_str(), Some(v.as_str()), other))
        })
        .collect();
    out.extend(
        b.keys
            .iter()
            .filter(|(k, _)| a.get(k).is_none())
            .map(|(k, v)| (k.as_str(), None, Some(v.as_str()))),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> StoredSpec {
        let table: toml::Table = text.parse().unwrap();
        let mut keys = Vec::new();
        flatten("", &table, &mut keys);
        keys.sort();
        StoredSpec {
            text: text.into(),
            keys,
        }
    }

    #[test]
    fn flattens_with_dots_and_keeps_arrays_whole() {
        let s = spec(
            "[experiment]\nname = \"a\"\n[transforms]\nmean = [0.5, 0.5]\n[regularization]\nlambda = 1e-3\n",
        );
        assert_eq!(
            s.keys,
            vec![
                ("experiment.name".to_string(), "a".to_string()),
                ("regularization.lambda".to_string(), "0.001".to_string()),
                ("transforms.mean".to_string(), "[0.5, 0.5]".to_string()),
            ]
        );
    }

    #[test]
    fn diff_lists_changed_missing_and_extra_keys() {
        let a = spec("[r]\nlambda = 0\nkind = \"l2\"\nold = 1\n");
        let b = spec("[r]\nlambda = 0.1\nkind = \"l2\"\nnew = true\n");
        assert_eq!(
            diff(&a, &b),
            vec![
                ("r.lambda", Some("0"), Some("0.1")),
                ("r.old", Some("1"), None),
                ("r.new", None, Some("true")),
            ]
        );
    }

    #[test]
    fn a_bad_spec_names_the_file_and_line() {
        let dir = tempfile::tempdir().unwrap();
        let spec = RunDir::at(dir.path()).spec();
        std::fs::write(&spec, "[a]\nb = \n").unwrap();
        let e = read(dir.path()).unwrap_err().to_string();
        assert!(e.starts_with("cannot read "), "{e}");
        assert!(
            e.contains(&spec.display().to_string()) && e.contains("line 2"),
            "{e}"
        );
        assert_eq!(read(&dir.path().join("none")).unwrap(), None);
    }
}
