//! The one error of the views (`compare`, `plot`, `report`, `status`) and the MLflow export:
//! a results file that cannot be found, read or written, a bad filter or column, a figure that
//! cannot be drawn. The command line decides its exit code (a missing path is a usage error).

use std::path::PathBuf;

use crate::durable::StoreError;
use crate::results::scan::ScanError;

#[derive(Debug, thiserror::Error)]
pub enum ViewError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("no such results folder or file: {0}")]
    Missing(PathBuf),
    #[error("bad glob pattern '{pattern}': {reason}")]
    Glob { pattern: String, reason: String },
    #[error("no runs (folders with metrics.parquet or manifest.json) under {0}")]
    NoRuns(String),
    #[error("{0}")]
    Filter(String),
    #[error("{0}")]
    Column(String),
    #[error("{0}")]
    Plot(String),
}

impl From<ScanError> for ViewError {
    /// Variant for variant: the reader's message is the view's message.
    fn from(e: ScanError) -> Self {
        match e {
            ScanError::Read { path, reason } => ViewError::Read { path, reason },
            ScanError::Missing(path) => ViewError::Missing(path),
            ScanError::Glob { pattern, reason } => ViewError::Glob { pattern, reason },
            ScanError::NoRuns(input) => ViewError::NoRuns(input),
        }
    }
}

impl From<StoreError> for ViewError {
    /// The file named once: a store error already says which file it could not write.
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Io { path, source } => ViewError::Write {
                path,
                reason: source.to_string(),
            },
            StoreError::Polars { path, source } => ViewError::Write {
                path,
                reason: source.to_string(),
            },
            StoreError::Read { path, reason } => ViewError::Read { path, reason },
        }
    }
}
