//! A run's pretrained weights loaded into its model, and a model file written: shared by the
//! model paths (`model.rs`) and the frozen-head path (`frozen.rs`).

use std::time::Instant;

use crate::durable::tensor_file::TensorFile;
use crate::durable::StoreError;
use crate::models::WeightsError;
use crate::models::{load_torchvision_file, Backbone, Classifier};
use crate::setup::Weights;
use crate::train::TrainError;

/// The tensors of the run's weights file, or why it could not be read (said when it is loaded).
pub(super) fn tensors_of(weights: &Weights) -> Result<&TensorFile, TrainError> {
    weights
        .file
        .as_ref()
        .map_err(|e| TrainError::Input(format!("weights file {}: {e}", weights.path.display())))
}

/// Loads the run's pretrained weights into `model` and logs what it loaded.
pub(super) fn load_pretrained<B: Backbone>(
    model: &mut Classifier<B>,
    weights: &Weights,
    replace_head: bool,
) -> Result<(), TrainError> {
    let t = Instant::now();
    let classes = model.classes();
    let w = &weights.path;
    let file = tensors_of(weights)?;
    let report = load_torchvision_file(model, w, file, replace_head)
        .map_err(|e| TrainError::Input(e.to_string()))?;
    tracing::info!(
        "loaded {} tensors of {} from {}{} in {:.2}s{}",
        report.tensors_loaded,
        B::NAME,
        w.display(),
        weights
            .origin
            .as_ref()
            .map_or(String::new(), |o| format!(" ({o})")),
        t.elapsed().as_secs_f64(),
        if report.head_replaced {
            format!(
                "; its {}-class head was replaced by a new {classes}-class head (head.replace = true)",
                report.checkpoint_classes.unwrap_or(0)
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

/// A failed write of a model file: a write error is the disk's, anything else the input's.
pub(super) fn save_error(e: WeightsError) -> TrainError {
    match e {
        WeightsError::Write { path, source } => StoreError::Io { path, source }.into(),
        other => TrainError::Input(other.to_string()),
    }
}
