//! A model file a run kept, read whole. A run that trained only a head on a frozen backbone
//! keeps the head and names the backbone that its experiment stores once for all its runs
//! (`models::shared_backbone`); every reader of a kept model (evaluate, the test split, ONNX
//! export, predict, a run's model given as pretrained weights) reads it through here and gets
//! the whole classifier.

use std::path::{Path, PathBuf};

use crate::durable::tensor_file::{self, TensorFile};
use crate::durable::StoreError;
use crate::models::shared_backbone::{BACKBONE_FILE, BACKBONE_SHA256};
use crate::results::layout::ExperimentDir;
use crate::spec::display_path;

/// Reads the model file a run kept at `path`, joined with its shared backbone if it names one.
pub fn read(path: &Path) -> Result<TensorFile, StoreError> {
    join_shared(path, TensorFile::read_run_file(path)?)
}

/// `file` (read from `path`) joined with the shared backbone it names, if it names one: found
/// in the store of the experiment the run folder holding `path` belongs to, checked against
/// the checksum the run recorded.
pub(crate) fn join_shared(path: &Path, file: TensorFile) -> Result<TensorFile, StoreError> {
    let Some(name) = file.metadata().get(BACKBONE_FILE).cloned() else {
        return Ok(file);
    };
    let store = store_of(path);
    let stored = store.join(&name);
    let failed = |reason: String| StoreError::Read {
        path: stored.clone(),
        reason,
    };
    if !stored.is_file() {
        return Err(failed(format!(
            "it is missing: {} keeps only the trained head, and its frozen backbone is stored once \
             for all the runs of its experiment, in {} (copy that folder along with a run folder)",
            display_path(path),
            display_path(&store)
        )));
    }
    let backbone =
        TensorFile::read(&stored).map_err(|e| failed(format!("the file is damaged ({e})")))?;
    let expected = file.metadata().get(BACKBONE_SHA256);
    if backbone.metadata().get(tensor_file::CHECKSUM) != expected {
        return Err(failed(format!(
            "it is not the backbone {} was trained with (its checksum differs from the one the \
             run recorded)",
            display_path(path)
        )));
    }
    file.joined(backbone).map_err(failed)
}

/// The store of shared backbones for a model file inside a run folder.
fn store_of(model: &Path) -> PathBuf {
    let run = model.parent().unwrap_or(Path::new("."));
    ExperimentDir::of_run(run).backbones()
}
