//! Pretrained weights from safetensors files named like PyTorch state dicts (torchvision's
//! ResNets, efficientnet_pytorch's EfficientNet), and saving trained classifiers the same way.
//!
//! The model's own tensor names (from its `TensorCollection`) are the state-dict names except
//! that dfdx calls BatchNorm's γ `scale` where PyTorch says `weight`.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use ::safetensors::Dtype as SafeDtype;
use dfdx::prelude::*;

use super::{Backbone, Classifier};
use crate::nn::tensors;
use crate::results::tensor_file::{self, Data, Entry, TensorFile};

/// One way a checkpoint disagrees with the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch {
    Missing {
        name: String,
        expected: Vec<usize>,
    },
    Unexpected {
        name: String,
        found: Vec<usize>,
    },
    Shape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    Dtype {
        name: String,
        found: String,
    },
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::Missing { name, expected } => {
                write!(f, "missing tensor `{name}` (expected shape {expected:?})")
            }
            Mismatch::Unexpected { name, found } => write!(
                f,
                "unexpected tensor `{name}` (shape {found:?}) not in the model"
            ),
            Mismatch::Shape {
                name,
                expected,
                found,
            } => {
                write!(
                    f,
                    "tensor `{name}` has shape {found:?}, expected {expected:?}"
                )
            }
            Mismatch::Dtype { name, found } => {
                write!(f, "tensor `{name}` has dtype {found}, expected F32")
            }
        }
    }
}

fn list(problems: &[Mismatch]) -> String {
    problems.iter().map(|p| format!("\n  - {p}")).collect()
}

#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read weights file {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("weights file {} is not a valid safetensors file: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("weights file {} does not match the {arch} model ({} problems):{}", path.display(), problems.len(), list(problems))]
    Mismatch {
        path: PathBuf,
        arch: String,
        problems: Vec<Mismatch>,
    },
    #[error(
        "weights file {} has a {found}-class head `{head}` but the model has {expected} classes; \
         set head.replace = true to re-initialise the head",
        path.display()
    )]
    HeadClasses {
        path: PathBuf,
        head: String,
        found: usize,
        expected: usize,
    },
}

/// What [`load_torchvision_weights`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    pub path: PathBuf,
    /// Tensors copied from the file (BatchNorm running statistics included).
    pub tensors_loaded: usize,
    /// The head was re-initialised instead of loaded (class count differs, opted in).
    pub head_replaced: bool,
    /// Class count of the checkpoint's head, when it has one.
    pub checkpoint_classes: Option<usize>,
}

/// PyTorch state-dict name of a tensor named `name` in the model.
pub fn torch_name(name: &str) -> String {
    match name.strip_suffix(".scale") {
        Some(stem) => format!("{stem}.weight"),
        None => name.to_string(),
    }
}

fn dtype_name(d: SafeDtype) -> String {
    format!("{d:?}")
}

/// Loads a safetensors checkpoint with PyTorch state-dict names into `model`.
///
/// Every model tensor must be in the file with the same shape (f32), and the file must hold
/// nothing else (`num_batches_tracked` counters aside); otherwise the error lists each
/// offending tensor and the model is left untouched. When the checkpoint's head has a different
/// class count, `replace_head = true` keeps a freshly initialised head (reported in
/// [`LoadReport::head_replaced`] and logged); without it that is an error.
pub fn load_torchvision_weights<B: Backbone>(
    model: &mut Classifier<B>,
    path: impl AsRef<Path>,
    replace_head: bool,
) -> Result<LoadReport, WeightsError> {
    let path = path.as_ref().to_path_buf();
    let bytes = std::fs::read(&path).map_err(|source| WeightsError::Io {
        path: path.clone(),
        source,
    })?;
    let format = |message: String| WeightsError::Format {
        path: path.clone(),
        message,
    };
    let stored = TensorFile::from_bytes(bytes).map_err(format)?;
    let file = stored.tensors().map_err(format)?;

    let head_weight = format!("{}.weight", B::HEAD);
    let expected_head = [model.head.classes(), B::FEATURES];
    let file_head = file.tensor(&head_weight).ok().map(|v| v.shape().to_vec());
    let checkpoint_classes = file_head.as_ref().filter(|s| s.len() == 2).map(|s| s[0]);
    // A head for the same features but another class count: replace on request, else refuse.
    let other_classes = file_head
        .as_ref()
        .is_some_and(|s| s.len() == 2 && s[1] == B::FEATURES && s[0] != expected_head[0]);
    let replace = replace_head && file_head.as_deref() != Some(&expected_head[..]);
    let skip_head = replace || other_classes;

    let head_prefix = format!("{}.", B::HEAD);
    let skipped = |name: &str| skip_head && name.starts_with(&head_prefix);
    // check every tensor before changing any
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for t in tensors::collect(&*model) {
        let name = torch_name(&t.name);
        if skipped(&name) {
            continue;
        }
        match file.tensor(&name) {
            Err(_) => problems.push(Mismatch::Missing {
                name: name.clone(),
                expected: t.dims,
            }),
            Ok(view) if view.dtype() != SafeDtype::F32 => problems.push(Mismatch::Dtype {
                name: name.clone(),
                found: dtype_name(view.dtype()),
            }),
            Ok(view) if view.shape() != t.dims.as_slice() => problems.push(Mismatch::Shape {
                name: name.clone(),
                expected: t.dims,
                found: view.shape().to_vec(),
            }),
            Ok(_) => {}
        }
        seen.insert(name);
    }
    let mut extra: Vec<Mismatch> = file
        .tensors()
        .into_iter()
        .filter(|(name, _)| {
            let known = seen.contains(name) || name.ends_with("num_batches_tracked");
            !(known || skipped(name))
        })
        .map(|(name, v)| Mismatch::Unexpected {
            name,
            found: v.shape().to_vec(),
        })
        .collect();
    extra.sort_by(|a, b| format!("{a}").cmp(&format!("{b}")));
    problems.extend(extra);
    if other_classes && !replace_head {
        if problems.is_empty() {
            return Err(WeightsError::HeadClasses {
                path,
                head: B::HEAD.to_string(),
                found: checkpoint_classes.unwrap_or(0),
                expected: expected_head[0],
            });
        }
        problems.push(Mismatch::Shape {
            name: head_weight,
            expected: expected_head.to_vec(),
            found: file_head.unwrap_or_default(),
        });
    }
    if !problems.is_empty() {
        return Err(WeightsError::Mismatch {
            path,
            arch: B::NAME.to_string(),
            problems,
        });
    }

    let mut loaded = 0;
    tensors::for_each_mut(model, |t| -> Result<(), WeightsError> {
        let name = torch_name(t.name());
        if !skipped(&name) {
            let (_, values) = stored.f32(&name).map_err(format)?;
            t.set_values(&values);
            loaded += 1;
        }
        Ok(())
    })?;
    if replace {
        model.head.reset_params();
        tracing::info!(
            file = %path.display(),
            checkpoint_classes = ?checkpoint_classes,
            classes = expected_head[0],
            "re-initialised the classification head `{}` instead of loading it",
            B::HEAD
        );
    }
    Ok(LoadReport {
        path,
        tensors_loaded: loaded,
        head_replaced: replace,
        checkpoint_classes,
    })
}

/// Writes `model` as a safetensors file with PyTorch state-dict names (BatchNorm γ as
/// `weight`), loadable by [`load_torchvision_weights`] and by PyTorch; atomically, like every
/// result file.
pub fn save_torchvision_weights<B: Backbone>(
    model: &Classifier<B>,
    path: impl AsRef<Path>,
) -> Result<(), WeightsError> {
    let all = tensors::collect(model);
    let entries: Vec<Entry> = all
        .iter()
        .map(|t| Entry {
            name: torch_name(&t.name),
            dims: t.dims.clone(),
            data: Data::F32(&t.values),
        })
        .collect();
    tensor_file::write(path.as_ref(), &entries, Default::default()).map_err(|e| match e {
        crate::results::store::StoreError::Io { path, source } => WeightsError::Io { path, source },
        other => WeightsError::Format {
            path: path.as_ref().to_path_buf(),
            message: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torch_names_call_batchnorm_gamma_weight() {
        assert_eq!(torch_name("layer1.0.bn1.scale"), "layer1.0.bn1.weight");
        assert_eq!(torch_name("layer1.0.conv1.weight"), "layer1.0.conv1.weight");
    }
}
