//! Spec errors and warnings, rendered the way rustc and toml render theirs: a header line,
//! `--> file:line:col`, the source line with a caret under the offending text, then `= note:` and
//! `= help:` lines.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One text a layer of the spec came from.
#[derive(Debug)]
pub struct Source {
    pub kind: SourceKind,
    /// The file, for [`SourceKind::File`]; relative paths are resolved against its folder.
    pub path: Option<PathBuf>,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// `pipeline/defaults.toml`, embedded in the binary.
    Defaults,
    /// An experiment or preset file on disk.
    File,
    /// A `--set key=value` argument, as the user wrote it; `text` is the TOML made of it.
    Override(String),
}

impl Source {
    pub fn defaults(text: &str) -> Arc<Source> {
        Arc::new(Source {
            kind: SourceKind::Defaults,
            path: None,
            text: text.to_owned(),
        })
    }

    pub fn file(path: PathBuf, text: String) -> Arc<Source> {
        Arc::new(Source {
            kind: SourceKind::File,
            path: Some(path),
            text,
        })
    }

    /// What a location line names: the file relative to the current folder, or the `--set`.
    pub fn name(&self) -> String {
        match &self.kind {
            SourceKind::Defaults => "pipeline/defaults.toml (embedded)".to_owned(),
            SourceKind::File => display_path(self.path.as_deref().unwrap_or(Path::new("?"))),
            SourceKind::Override(arg) => format!("--set {arg}"),
        }
    }

    /// The folder relative paths set by this source resolve against.
    pub(crate) fn base_dir(&self) -> PathBuf {
        match &self.path {
            Some(path) => path.parent().map(Path::to_path_buf).unwrap_or_default(),
            None => std::env::current_dir().unwrap_or_default(),
        }
    }
}

/// A span of a source's text.
#[derive(Debug, Clone)]
pub struct Snippet {
    pub source: Arc<Source>,
    pub span: Range<usize>,
}

impl Snippet {
    /// 1-based line and column (in characters) of the span's start.
    pub(crate) fn line_col(&self) -> (usize, usize) {
        let text = &self.source.text;
        let start = self.span.start.min(text.len());
        let before = &text[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, text[line_start..start].chars().count() + 1)
    }
}

impl Snippet {
    /// `file:line:col` for a file, `--set key=value` for an override (one line, no numbers).
    pub fn location(&self) -> String {
        match self.source.kind {
            SourceKind::Override(_) => self.source.name(),
            _ => {
                let (line, col) = self.line_col();
                format!("{}:{line}:{col}", self.source.name())
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding about a spec, with where it is.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub severity: Severity,
    /// Lowercase fragment naming the key path, e.g. "invalid `optimizer.lr`".
    pub message: String,
    /// The source text at fault; `None` when the problem is an absence.
    pub at: Option<Snippet>,
    /// The file at fault when there is no snippet (e.g. a required key that is missing).
    pub file: Option<Arc<Source>>,
    /// Printed after the caret: what was expected and what was found.
    pub label: String,
    pub notes: Vec<String>,
    pub help: Vec<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            at: None,
            file: None,
            label: String::new(),
            notes: Vec::new(),
            help: Vec::new(),
        }
    }

    pub(crate) fn warning(message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message)
        }
    }

    pub fn at(mut self, snippet: Option<Snippet>) -> Self {
        self.at = snippet;
        self
    }

    pub fn in_file(mut self, source: Arc<Source>) -> Self {
        self.file = Some(source);
        self
    }

    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    pub(crate) fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    pub(crate) fn help(mut self, help: impl Into<String>) -> Self {
        self.help.push(help.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        writeln!(f, "{level}: {}", self.message)?;
        let mut gutter = 1;
        if let Some(at) = &self.at {
            let (line, col) = at.line_col();
            gutter = line.to_string().len();
            let pad = " ".repeat(gutter);
            writeln!(f, "{pad}--> {}", at.location())?;
            let text = &at.source.text;
            let line_start = text[..at.span.start.min(text.len())]
                .rfind('\n')
                .map_or(0, |i| i + 1);
            let line_end = text[line_start..]
                .find('\n')
                .map_or(text.len(), |i| line_start + i);
            let line_text = text[line_start..line_end].trim_end_matches('\r');
            let start = at.span.start.clamp(line_start, line_end);
            let end = at.span.end.clamp(start, line_end);
            let width = text[start..end].chars().count().max(1);
            writeln!(f, "{pad} |")?;
            writeln!(f, "{line} | {line_text}")?;
            let caret = format!("{}{}", " ".repeat(col - 1), "^".repeat(width));
            if self.label.is_empty() {
                writeln!(f, "{pad} | {caret}")?;
            } else {
                writeln!(f, "{pad} | {caret} {}", self.label)?;
            }
        } else if let Some(file) = &self.file {
            writeln!(f, " --> {}", file.name())?;
            if !self.label.is_empty() {
                writeln!(f, "  = {}", self.label)?;
            }
        } else if !self.label.is_empty() {
            writeln!(f, "  = {}", self.label)?;
        }
        let pad = " ".repeat(gutter);
        for note in &self.notes {
            writeln!(f, "{pad} = note: {note}")?;
        }
        for help in &self.help {
            writeln!(f, "{pad} = help: {help}")?;
        }
        Ok(())
    }
}

/// Why a spec could not be loaded. `Display` is the full rendered message.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// A spec or preset file could not be read.
    #[error("{diag}")]
    Read {
        diag: Box<Diagnostic>,
        #[source]
        source: std::io::Error,
    },
    /// Not valid TOML.
    #[error("{0}")]
    Syntax(Box<Diagnostic>),
    /// Valid TOML that does not fit the schema: unknown key, wrong type, unknown variant.
    #[error("{0}")]
    Schema(Box<Diagnostic>),
    /// A `use` entry names no preset, or presets use each other in a cycle.
    #[error("{0}")]
    Preset(Box<Diagnostic>),
    /// A `--set` argument that is not `key=value`.
    #[error("{0}")]
    Override(Box<Diagnostic>),
    /// A bad `[sweep]`: unknown key, empty list, mismatched zip lengths, a key swept twice.
    #[error("{0}")]
    Sweep(Box<Diagnostic>),
    /// The spec parses but its values fail the semantic checks; every failed check is listed.
    #[error("{}", render_all(.0))]
    Invalid(Vec<Diagnostic>),
    /// A bug in the runner, e.g. `defaults.toml` lacks a key.
    #[error("error: internal: {0}")]
    Internal(String),
}

impl SpecError {
    /// The findings behind this error (one, except for [`SpecError::Invalid`]); the spec fuzzer
    /// checks that each has a location.
    pub fn diagnostics(&self) -> Vec<&Diagnostic> {
        match self {
            SpecError::Read { diag, .. }
            | SpecError::Syntax(diag)
            | SpecError::Schema(diag)
            | SpecError::Preset(diag)
            | SpecError::Override(diag)
            | SpecError::Sweep(diag) => vec![diag],
            SpecError::Invalid(all) => all.iter().collect(),
            SpecError::Internal(_) => Vec::new(),
        }
    }

    /// Adds a note to every finding (e.g. which sweep point it is about).
    pub(crate) fn with_note(mut self, note: &str) -> Self {
        match &mut self {
            SpecError::Read { diag, .. }
            | SpecError::Syntax(diag)
            | SpecError::Schema(diag)
            | SpecError::Preset(diag)
            | SpecError::Override(diag)
            | SpecError::Sweep(diag) => diag.notes.push(note.to_owned()),
            SpecError::Invalid(all) => all.iter_mut().for_each(|d| d.notes.push(note.to_owned())),
            SpecError::Internal(_) => {}
        }
        self
    }
}

fn render_all(diags: &[Diagnostic]) -> String {
    let mut out = diags
        .iter()
        .map(|d| d.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    if diags.len() > 1 {
        out.push_str(&format!("\nerror: {} problems in the spec\n", diags.len()));
    }
    out
}

/// The nearest candidate to a misspelt word, if any is close enough to be a likely typo.
pub(super) fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(word, c), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// What is at a path that should have been a folder, for "expected a folder, found …": `a file
/// at PATH`, `nothing at PATH`, ….
pub fn found_instead_of_folder(path: &Path) -> String {
    let what = match std::fs::metadata(path) {
        Ok(m) if m.is_file() => "a file",
        Ok(m) if !m.is_dir() => "something that is not a folder",
        Ok(_) => "a folder it cannot read",
        Err(_) => "nothing",
    };
    format!("{what} at {}", display_path(path))
}

/// A path for messages: relative to the current folder when under it, so output is stable.
pub fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&cwd)
        .unwrap_or(path)
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["kind", "lambda", "apply_to", "allow_unstable"];
        assert_eq!(did_you_mean("lamda", keys), Some("lambda"));
        assert_eq!(did_you_mean("apply", keys), Some("apply_to"));
        assert_eq!(did_you_mean("zzz", keys), None);
    }

    #[test]
    fn line_and_column_count_characters() {
        let source = Source::defaults("a = 1\nλ = \"x\"\n");
        let at = Snippet {
            source,
            span: 11..14,
        };
        assert_eq!(at.line_col(), (2, 5));
    }
}
