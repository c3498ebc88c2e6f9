//! What the user looks at of recorded results: the comparison table, the plots, where a sweep
//! stands, and the HTML report. Everything here reads results trees; nothing trains or builds a
//! model (that is `inspect`).

pub mod compare;
mod error;
pub(crate) mod format;
pub mod plot;
pub(crate) mod report;
pub(crate) mod status;

pub use error::ViewError;

use crate::results::layout::RunDir;
use crate::results::scan::Run;
use crate::results::store::{self, Manifest};

/// A run's manifest when it has one (a folder with metrics alone is a run too), or why it
/// cannot be read.
pub(crate) fn manifest_of(run: &Run) -> Result<Option<Manifest>, ViewError> {
    let path = RunDir::at(&run.dir).manifest();
    if !path.is_file() {
        return Ok(None);
    }
    store::read_manifest(&path)
        .map(Some)
        .map_err(|e| ViewError::Read {
            path,
            reason: e.to_string(),
        })
}
