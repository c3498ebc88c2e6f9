//! The pretrained weights a spec's runs name: each file found (a path, or torchvision's and the
//! Hugging Face hub's caches, [`super::weights_source`]), read once, hashed (for the run id) and
//! checked against every backbone and class count that loads it, where the spec set it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::weights_source::locate;
use crate::durable::tensor_file::TensorFile;
use crate::models::weights_check::{check_weights, Unfit};
use crate::models::weights_file::parse_weights;
use crate::models::Arch;
use crate::spec::{display_path, Diagnostic, Locator};

/// A weights file, read once for every run that loads it.
pub struct Weights {
    /// The file read (for `"torchvision"` and `hf:…`, the cached file they name).
    pub path: PathBuf,
    /// SHA-256 of the file's bytes, as they are on disk (a checkpoint's too, not of its
    /// conversion): the run id and the feature cache's key hash it.
    pub sha256: String,
    /// The tensors, or why the file holds none a model can load (only a convolutional backbone
    /// loads them).
    pub file: Result<TensorFile, String>,
    /// What the file was when not safetensors ("PyTorch zip checkpoint", …), for the log.
    pub origin: Option<String>,
}

/// What one file gave: its contents, or why it cannot be read.
type Read = Result<Arc<Weights>, Unfit>;

/// Every weights file read so far, and every (backbone, classes, head.replace) it was checked
/// against.
#[derive(Default)]
pub(super) struct WeightsFiles {
    files: HashMap<PathBuf, Read>,
    checked: HashMap<(PathBuf, Arch, usize, bool), Result<(), Unfit>>,
}

impl WeightsFiles {
    fn read(&mut self, path: &Path) -> Read {
        self.files
            .entry(path.to_path_buf())
            .or_insert_with(|| {
                let bytes = std::fs::read(path).map_err(|e| Unfit {
                    summary: format!("cannot read {}: {e}", display_path(path)),
                    details: Vec::new(),
                })?;
                let sha256 = format!("{:x}", Sha256::digest(&bytes));
                // a frozen run's kept model is its head: joined with the backbone it names
                let parsed = parse_weights(bytes).and_then(|w| {
                    let tensors = super::kept_model::join_shared(path, w.tensors)
                        .map_err(|e| e.to_string())?;
                    Ok((tensors, w.origin))
                });
                let (file, origin) = match parsed {
                    Ok((tensors, origin)) => (Ok(tensors), origin),
                    Err(e) => (Err(e), None),
                };
                Ok(Arc::new(Weights {
                    path: path.to_path_buf(),
                    sha256,
                    file,
                    origin,
                }))
            })
            .clone()
    }

    /// The run's weights file, checked as the run will load it: into `arch` with `classes`
    /// outputs (`None` for the pixel models, which load no weights). Errors point at
    /// `backbone.weights`.
    pub(super) fn check(
        &mut self,
        weights: &Path,
        arch: Option<Arch>,
        classes: usize,
        replace_head: bool,
        at: &Locator,
    ) -> Result<Arc<Weights>, Box<Diagnostic>> {
        let path = locate(weights, arch).map_err(|u| {
            let diag = at.invalid("backbone.weights", u.summary);
            Box::new(u.details.into_iter().fold(diag, |d, n| d.note(n)))
        })?;
        let path = path.as_path();
        let unfit = |u: Unfit| {
            let mut diag = at
                .invalid("backbone.weights", u.summary)
                .note(format!("in {}", display_path(path)));
            for d in u.details {
                diag = diag.note(d);
            }
            Box::new(diag)
        };
        if !path.is_file() {
            return Err(Box::new(at.invalid(
                "backbone.weights",
                format!(
                    "expected a safetensors file or a PyTorch checkpoint, found no file {}",
                    display_path(path)
                ),
            )));
        }
        let weights = self.read(path).map_err(unfit)?;
        if let Some(arch) = arch {
            let file = weights.file.as_ref().map_err(|e| {
                unfit(Unfit {
                    summary: e.clone(),
                    details: Vec::new(),
                })
            })?;
            let key = (path.to_path_buf(), arch, classes, replace_head);
            let fit = self
                .checked
                .entry(key)
                .or_insert_with(|| check_weights(arch, path, file, classes, replace_head))
                .clone();
            fit.map_err(unfit)?;
        }
        Ok(weights)
    }
}
