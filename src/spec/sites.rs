//! Where each key got its value. Serde hands back values without positions, so every layer's
//! document is walked once to record, per dotted key, the source and spans that set it; merged
//! in layer order this says which file (or `--set`, or sweep value) a resolved value came from.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::Arc;

use toml::de::{DeTable, DeValue};

use super::error::{Snippet, Source, SourceKind};

#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub source: Arc<Source>,
    pub key: Range<usize>,
    pub value: Range<usize>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Sites {
    by_key: HashMap<String, Site>,
}

impl Sites {
    /// Records every key of a parsed document, tables and leaves alike.
    pub(crate) fn of_document(source: &Arc<Source>, doc: &DeTable<'_>) -> Sites {
        let mut sites = Sites::default();
        sites.walk(source, "", doc);
        sites
    }

    fn walk(&mut self, source: &Arc<Source>, prefix: &str, table: &DeTable<'_>) {
        for (key, value) in table.iter() {
            let path = join_key(prefix, key.get_ref());
            let site = Site {
                source: source.clone(),
                key: key.span(),
                value: value.span(),
            };
            self.by_key.insert(path.clone(), site);
            if let DeValue::Table(inner) = value.get_ref() {
                self.walk(source, &path, inner);
            }
        }
    }

    pub(crate) fn insert(&mut self, key: String, site: Site) {
        self.by_key.insert(key, site);
    }

    /// Keys set in `other` now come from there.
    pub(crate) fn update(&mut self, other: Sites) {
        self.by_key.extend(other.by_key);
    }

    pub(crate) fn get(&self, key: &str) -> Option<&Site> {
        self.by_key.get(key)
    }

    /// The value a key was given, for pointing at it.
    pub(crate) fn value(&self, key: &str) -> Option<Snippet> {
        self.get(key).map(|s| Snippet {
            source: s.source.clone(),
            span: s.value.clone(),
        })
    }

    /// True when no file, `--set` or sweep set the key: the value is the embedded default.
    pub(crate) fn is_default(&self, key: &str) -> bool {
        self.get(key)
            .is_none_or(|s| s.source.kind == SourceKind::Defaults)
    }

    /// The dotted key an error span falls on: the key whose name is exactly that span, else the
    /// innermost key whose value holds it.
    pub(crate) fn key_at(&self, span: &Range<usize>) -> Option<&str> {
        if let Some((key, _)) = self.by_key.iter().find(|(_, s)| s.key == *span) {
            return Some(key);
        }
        self.by_key
            .iter()
            .filter(|(_, s)| s.value.start <= span.start && span.end <= s.value.end)
            .min_by_key(|(key, s)| (s.value.len(), std::cmp::Reverse(key.len())))
            .map(|(key, _)| key.as_str())
    }

    /// Every dotted key, sorted.
    pub(crate) fn keys(&self) -> Vec<&str> {
        let mut keys: Vec<&str> = self.by_key.keys().map(String::as_str).collect();
        keys.sort_unstable();
        keys
    }
}

/// `prefix.key`, quoting a key that is not a bare TOML key (sweep keys hold dots).
pub(super) fn join_key(prefix: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    };
    if prefix.is_empty() {
        key
    } else {
        format!("{prefix}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sites(text: &str) -> Sites {
        let source = Source::defaults(text);
        let doc = DeTable::parse(&source.text).unwrap();
        Sites::of_document(&source, doc.get_ref())
    }

    #[test]
    fn records_leaves_under_headers_and_dotted_keys() {
        let text =
            "[optimizer]\nlr = 0.1\n[sweep]\ngrid = { \"regularization.lambda\" = [0, 1] }\n";
        let s = sites(text);
        let lr = s.get("optimizer.lr").unwrap();
        assert_eq!(&text[lr.value.clone()], "0.1");
        assert!(s.get("sweep.grid.\"regularization.lambda\"").is_some());
        let at = s.get("optimizer.lr").unwrap().value.clone();
        assert_eq!(s.key_at(&at), Some("optimizer.lr"));
    }
}
