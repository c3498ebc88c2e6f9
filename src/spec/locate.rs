//! Where a run's keys were set, for findings about their values: the spec's own checks and,
//! after loading, the checks of what the keys name on disk (`crate::setup`), which point at the
//! same lines.

use std::sync::Arc;

use super::error::{Diagnostic, Source, SpecError};
use super::sites::Sites;

/// The sites of one run's keys (or the base run's), and the experiment file for findings about
/// a key that no file set.
#[derive(Debug, Clone)]
pub struct Locator {
    sites: Sites,
    file: Arc<Source>,
    /// Said under every error about a sweep point: which values it takes.
    point: Option<String>,
}

impl Locator {
    pub(crate) fn new(sites: Sites, file: Arc<Source>, swept: &[(String, toml::Value)]) -> Self {
        let point = (!swept.is_empty()).then(|| {
            let values: Vec<String> = swept.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("in the sweep run with {}", values.join(", "))
        });
        Locator { sites, file, point }
    }

    /// An error about `key`'s value, pointing where it was set.
    pub fn invalid(&self, key: &str, label: String) -> Diagnostic {
        self.locate(
            Diagnostic::error(format!("invalid value for `{key}`")).label(label),
            key,
        )
    }

    pub(crate) fn warning(&self, key: &str, message: String, label: String) -> Diagnostic {
        self.locate(Diagnostic::warning(message).label(label), key)
    }

    /// A required string key left at its empty default: points at the experiment file.
    pub fn missing(&self, key: &str, example: &str) -> Diagnostic {
        let (table, leaf) = key.split_once('.').expect("dotted key");
        Diagnostic::error(format!("missing `{key}`"))
            .in_file(self.file.clone())
            .label(format!("expected a value for `{leaf}` under [{table}]"))
            .help(format!(
                "add `{leaf} = \"{example}\"` under [{table}], or pass `--set {key}={example}`"
            ))
    }

    fn locate(&self, diag: Diagnostic, key: &str) -> Diagnostic {
        match self.sites.value(key) {
            Some(at) if !self.sites.is_default(key) => diag.at(Some(at)),
            // Left at the embedded default: say so, rather than point into a file the user never saw.
            at => diag.at(at).note(format!(
                "`{key}` keeps its default from pipeline/defaults.toml"
            )),
        }
    }

    /// "set at file:line:col", for notes about a second key.
    pub(crate) fn where_set(&self, key: &str) -> String {
        match self.sites.value(key) {
            Some(at) if !self.sites.is_default(key) => format!("`{key}` set at {}", at.location()),
            _ => format!("`{key}` keeps its default from pipeline/defaults.toml"),
        }
    }

    /// True when no file, `--set` or sweep set the key.
    pub(crate) fn is_default(&self, key: &str) -> bool {
        self.sites.is_default(key)
    }

    /// The error of a run's failed checks, saying which sweep point it is about.
    pub fn rejected(&self, errors: Vec<Diagnostic>) -> SpecError {
        let e = SpecError::Invalid(errors);
        match &self.point {
            Some(point) => e.with_note(point),
            None => e,
        }
    }
}
