//! Why a command did not succeed, and the one map from that to the process's exit code.

use std::path::Path;
use std::process::ExitCode;

use crate::spec;

/// Why a command did not succeed. This is the one place that decides exit codes: every
/// command returns `Result<(), Failure>` and [`super::main`] maps it.
#[derive(Debug)]
pub enum Failure {
    /// The spec, or a file or value it names, is wrong; nothing was written. The message is
    /// already rendered (spec diagnostics carry file:line:col).
    Spec(String),
    /// A file or folder the command was given is not what it needs (a folder that is not a
    /// run, a data folder with other classes); nothing was written.
    Input(String),
    /// The command line is wrong in a way clap cannot see (clap itself exits 2 as well).
    Usage(String),
    /// The work ran and some of it failed: a run failed or diverged, a reproduction deviated,
    /// results could not be read or written. `None` when the output already said why.
    Failed(Option<String>),
    /// Ctrl-C stopped the work; what was interrupted resumes on the next invocation.
    Interrupted,
}

impl Failure {
    /// 78 = sysexits' EX_CONFIG, 2 = usage (as clap), 1 = the work failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Spec(_) | Failure::Input(_) => 78,
            Failure::Usage(_) => 2,
            Failure::Failed(_) => 1,
            Failure::Interrupted => crate::train::interrupt::EXIT_INTERRUPTED,
        }
    }

    pub(super) fn failed(e: impl std::fmt::Display) -> Self {
        Failure::Failed(Some(e.to_string()))
    }

    /// A reader's error: a results path that does not exist is the command line's fault.
    pub(super) fn view(e: crate::views::ViewError) -> Self {
        match e {
            crate::views::ViewError::Missing(_) => Failure::Usage(e.to_string()),
            other => Failure::failed(other),
        }
    }
}

/// The rule for every path given on the command line: one that does not exist is a usage
/// error (exit 2), whatever the command; `what` says which argument it is.
pub(super) fn given(path: &Path, what: &str) -> Result<(), Failure> {
    match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Failure::Usage(format!(
            "{what} {} does not exist",
            path.display()
        ))),
        _ => Ok(()),
    }
}

/// [`given`] for a path that must be a folder: a file there is a usage error too.
pub(super) fn given_folder(path: &Path, what: &str) -> Result<(), Failure> {
    given(path, what)?;
    if path.is_dir() {
        return Ok(());
    }
    Err(Failure::Usage(format!(
        "{what} {} is a file, not a folder",
        path.display()
    )))
}

impl From<spec::SpecError> for Failure {
    fn from(e: spec::SpecError) -> Self {
        Failure::Spec(e.to_string())
    }
}

/// Prints a failure's message (once, on stderr) and turns the outcome into the exit status.
pub(super) fn exit_status(outcome: Result<(), Failure>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            match &f {
                // spec errors are rendered diagnostics that begin with their own `error:`
                Failure::Spec(msg) => eprintln!("{msg}"),
                Failure::Input(msg) | Failure::Usage(msg) | Failure::Failed(Some(msg)) => {
                    eprintln!("error: {msg}")
                }
                Failure::Failed(None) | Failure::Interrupted => {}
            }
            ExitCode::from(f.exit_code())
        }
    }
}
