//! One layer of a spec: a source parsed into the strict serde types, with where each key was set.
//! TOML and serde errors become located diagnostics here.

use std::sync::Arc;

use serde::Deserialize;
use toml::de::DeTable;

use super::error::{did_you_mean, Diagnostic, Snippet, Source, SourceKind, SpecError};
use super::raw::RawSpec;
use super::sites::Sites;

#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub source: Arc<Source>,
    pub raw: RawSpec,
    pub sites: Sites,
}

impl Layer {
    /// Parses a source; relative paths in it are made absolute against its folder.
    pub(crate) fn parse(source: Arc<Source>) -> Result<Layer, SpecError> {
        let base = source.base_dir();
        Self::parse_in(source, &base)
    }

    /// Parses a source whose relative paths resolve against `base` rather than its own folder
    /// (a run's stored spec, whose paths are relative to the project it ran in).
    pub(crate) fn parse_in(
        source: Arc<Source>,
        base: &std::path::Path,
    ) -> Result<Layer, SpecError> {
        let doc = DeTable::parse(&source.text).map_err(|e| syntax_error(&e, &source))?;
        let sites = Sites::of_document(&source, doc.get_ref());
        let mut raw = RawSpec::deserialize(toml::de::Deserializer::from(doc))
            .map_err(|e| SpecError::Schema(Box::new(schema_error(&e, &source, &sites))))?;
        raw.resolve_paths(base);
        Ok(Layer { source, raw, sites })
    }
}

fn syntax_error(err: &toml::de::Error, source: &Arc<Source>) -> SpecError {
    // toml's message is "what went wrong[, expected ...]"; the expectation goes by the caret.
    let message = err.message().trim().replace('\n', "; ");
    let (what, expected) = match message.split_once(", expected ") {
        // "nothing" means the value was complete before the caret.
        Some((what, "nothing")) => (
            what.to_owned(),
            "unexpected text after the value".to_owned(),
        ),
        Some((what, expected)) => (what.to_owned(), format!("expected {expected}")),
        None if message == "duplicate key" => (message.clone(), "already set above".to_owned()),
        None => (message.clone(), String::new()),
    };
    let diag = Diagnostic::error(format!("invalid toml: {}", what.to_lowercase()))
        .at(err.span().map(|span| Snippet {
            source: source.clone(),
            span,
        }))
        .in_file(source.clone())
        .label(expected);
    SpecError::Syntax(Box::new(diag))
}

/// Turns a serde message ("unknown field `lamda`, expected one of `kind`, `lambda`") into a
/// diagnostic naming the dotted key, with a suggestion for a misspelt key or variant.
pub(super) fn schema_error(
    err: &toml::de::Error,
    source: &Arc<Source>,
    sites: &Sites,
) -> Diagnostic {
    let span = err.span();
    let key = span
        .as_ref()
        .and_then(|s| sites.key_at(s))
        .map(str::to_owned);
    let at = span.map(|span| Snippet {
        source: source.clone(),
        span,
    });
    describe_serde_error(err.message(), key.as_deref(), at, source)
}

/// Shared by files, `--set` and sweep values, which all fail in serde's words.
pub(super) fn describe_serde_error(
    message: &str,
    key: Option<&str>,
    at: Option<Snippet>,
    source: &Arc<Source>,
) -> Diagnostic {
    let key_name = key.unwrap_or("?");
    let in_override = matches!(source.kind, SourceKind::Override(_));
    let diag = if let Some(rest) = message.strip_prefix("unknown field ") {
        let (found, expected) = split_expected(rest);
        let parent = key_name.rsplit_once('.').map(|(p, _)| p);
        let mut diag = Diagnostic::error(format!("unknown key `{key_name}`"))
            .label(match parent {
                Some(p) => format!("not a key of [{p}]"),
                None => "not a top-level key".to_owned(),
            })
            .note(format!("expected one of {}", quote_list(&expected)));
        if let Some(best) = did_you_mean(&found, expected.iter().map(String::as_str)) {
            // In a file the key is written under its table; in `--set` it is written in full.
            let written = match parent {
                Some(p) if in_override => format!("{p}.{best}"),
                _ => best.to_owned(),
            };
            diag = diag.help(format!("did you mean `{written}`?"));
        }
        diag
    } else if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (found, expected) = split_expected(rest);
        let mut diag = Diagnostic::error(format!("invalid value for `{key_name}`")).label(format!(
            "expected one of {}, found `{found}`",
            quote_list(&expected)
        ));
        if let Some(best) = did_you_mean(&found, expected.iter().map(String::as_str)) {
            diag = diag.help(format!("did you mean `\"{best}\"`?"));
        }
        diag
    } else if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
        Diagnostic::error(format!("wrong type for `{key_name}`"))
            .label(format!("expected {}, found {found}", friendly(expected)))
    } else if let Some(rest) = message.strip_prefix("invalid value: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
        Diagnostic::error(format!("invalid value for `{key_name}`"))
            .label(format!("expected {}, found {found}", friendly(expected)))
    } else if let Some(rest) = message.strip_prefix("invalid length ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, "?"));
        Diagnostic::error(format!("wrong length for `{key_name}`")).label(format!(
            "expected {}, found {found} elements",
            friendly(expected)
        ))
    } else {
        Diagnostic::error(format!("invalid `{key_name}`")).label(message.to_lowercase())
    };
    diag.at(at).in_file(source.clone())
}

/// "`lamda`, expected one of `kind`, `lambda`" → ("lamda", ["kind", "lambda"]).
fn split_expected(rest: &str) -> (String, Vec<String>) {
    let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
    let names = expected
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_owned())
        .collect();
    (found.trim_matches('`').to_owned(), names)
}

fn quote_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Serde's Rust type names in the words of a TOML user.
fn friendly(expected: &str) -> String {
    match expected {
        "f32" | "f64" => "a number".to_owned(),
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number >= 0".to_owned(),
        "i32" | "i64" => "a whole number".to_owned(),
        "a sequence" => "an array".to_owned(),
        s if s.starts_with("struct ") => "a table".to_owned(),
        s if s.starts_with("a map") => "a table".to_owned(),
        s => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Layer, SpecError> {
        Layer::parse(Source::defaults(text))
    }

    #[test]
    fn unknown_key_names_path_and_suggests() {
        let err = parse("[regularization]\nlamda = 0.1\n").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("unknown key `regularization.lamda`"),
            "{text}"
        );
        assert!(text.contains("did you mean `lambda`?"), "{text}");
        assert!(text.contains(":2:1"), "{text}");
    }

    #[test]
    fn wrong_type_names_path() {
        let err = parse("[optimizer]\nlr = \"fast\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("wrong type for `optimizer.lr`"), "{text}");
        assert!(
            text.contains("expected a number, found string \"fast\""),
            "{text}"
        );
    }

    #[test]
    fn unknown_variant_suggests() {
        let err = parse("[backbone]\nname = \"resnet43\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid value for `backbone.name`"), "{err}");
        assert!(err.contains("did you mean `\"resnet34\"`?"), "{err}");
    }
}
