//! A weights file's bytes as the tensors a model loads, whatever form they came in: safetensors
//! as they are, a PyTorch checkpoint (`.pth`/`.pt`) through the allow-list reader of
//! [`super::checkpoint`], told apart by their first bytes rather than by their names.

use super::checkpoint::{looks_like_checkpoint, read_checkpoint, Checkpoint};
use crate::durable::tensor_file::TensorFile;

/// The tensors of a weights file, and what it was when it was not safetensors.
pub(crate) struct WeightsFile {
    pub tensors: TensorFile,
    /// `None` for safetensors; else e.g. "PyTorch zip checkpoint, state dict under `model`".
    pub origin: Option<String>,
}

/// How a checkpoint is described in logs and in `runner weights inspect`.
pub(crate) fn describe_origin(c: &Checkpoint) -> String {
    match &c.nested_under {
        Some(key) => format!("{}, state dict under `{key}`", c.format),
        None => c.format.to_string(),
    }
}

/// Parses a weights file's bytes; the error is one sentence about the file (not naming it).
pub(crate) fn parse_weights(bytes: Vec<u8>) -> Result<WeightsFile, String> {
    if looks_like_checkpoint(&bytes) {
        let c = read_checkpoint(&bytes)
            .map_err(|e| format!("cannot read it as a PyTorch checkpoint: {e}"))?;
        let tensors = c
            .to_tensor_file()
            .map_err(|e| format!("cannot convert its tensors: {e}"))?;
        return Ok(WeightsFile {
            tensors,
            origin: Some(describe_origin(&c)),
        });
    }
    TensorFile::from_bytes(bytes)
        .map(|tensors| WeightsFile {
            tensors,
            origin: None,
        })
        .map_err(|message| {
            format!(
                "expected a safetensors file or a PyTorch checkpoint, found one that is neither ({message})"
            )
        })
}
