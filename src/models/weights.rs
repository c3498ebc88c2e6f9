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

use super::weights_file::parse_weights;
use super::{Backbone, Classifier};
use crate::durable::tensor_file::{self, Data, Entry, TensorFile};
use crate::nn::tensors;

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
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read weights file {}: {message}", path.display())]
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
pub(crate) fn torch_name(name: &str) -> String {
    match name.strip_suffix(".scale") {
        Some(stem) => format!("{stem}.weight"),
        None => name.to_string(),
    }
}

/// The model's names for a classifier's head, and the PyTorch ones: an MLP head's hidden
/// buffers (`fc.hidden.*`) have no single PyTorch tensor (they are written and read layer by
/// layer, see [`crate::nn::HiddenLayers::torch_tensors`]), and its last layer `fc.weight` is
/// `fc.<index>.weight` in the `nn.Sequential`.
struct HeadNames {
    /// `fc.hidden.`
    hidden: String,
    /// `fc.` → `fc.4.` for an MLP head; `None` for a linear head.
    last: Option<(String, String)>,
}

impl HeadNames {
    fn of<B: Backbone>(model: &Classifier<B>) -> Self {
        let last = model.hidden.layout.last_linear(B::HEAD);
        HeadNames {
            hidden: format!("{}.", super::hidden_prefix(B::HEAD)),
            last: (last != B::HEAD).then(|| (format!("{}.", B::HEAD), format!("{last}."))),
        }
    }
    /// The PyTorch name of a model tensor, `None` for the hidden buffers.
    fn torch(&self, name: &str) -> Option<String> {
        if name.starts_with(&self.hidden) {
            return None;
        }
        let name = torch_name(name);
        Some(match &self.last {
            Some((from, to)) if name.starts_with(from.as_str()) => {
                format!("{to}{}", &name[from.len()..])
            }
            _ => name,
        })
    }
}

fn dtype_name(d: SafeDtype) -> String {
    format!("{d:?}")
}

/// Loads a safetensors file or a PyTorch checkpoint with state-dict names into `model`.
///
/// Every model tensor must be in the file with the same shape (f32), and the file must hold
/// nothing else (`num_batches_tracked` counters aside); otherwise the error lists each
/// offending tensor and the model is left untouched. When the checkpoint's head has a different
/// class count, `replace_head = true` keeps a freshly initialised head (reported in
/// [`LoadReport::head_replaced`], for the caller to say); without it that is an error.
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
    let stored = parse_weights(bytes).map_err(|message| WeightsError::Format {
        path: path.clone(),
        message,
    })?;
    load_torchvision_file(model, &path, &stored.tensors, replace_head)
}

/// [`load_torchvision_weights`] from a file already read (`path` names it in messages).
// Long: the checks of a weights file against the model (names, shapes, the head's classes,
// `replace`) and then the copy, in the order their messages are reported.
pub fn load_torchvision_file<B: Backbone>(
    model: &mut Classifier<B>,
    path: &Path,
    file: &TensorFile,
    replace_head: bool,
) -> Result<LoadReport, WeightsError> {
    let path = path.to_path_buf();
    let format = |message: String| WeightsError::Format {
        path: path.clone(),
        message,
    };

    let names = HeadNames::of(model);
    // the head's last linear layer (its only one for a linear head)
    let (head_weight, expected_head, file_head) = head_shapes(model, file);
    // the checkpoint's own head: our last layer's name, else a bare linear head's
    let checkpoint_classes = [head_weight.clone(), format!("{}.weight", B::HEAD)]
        .iter()
        .find_map(|n| file.tensor(n).ok().map(|v| v.shape().to_vec()))
        .filter(|s| s.len() == 2)
        .map(|s| s[0]);
    // A head for the same features but another class count: replace on request, else refuse.
    let other_classes = file_head
        .as_ref()
        .is_some_and(|s| s.len() == 2 && s[1] == expected_head[1] && s[0] != expected_head[0]);
    let replace = head_replaced(replace_head, &expected_head, file_head.as_deref());
    let skip_head = replace || other_classes;

    let head_prefix = format!("{}.", B::HEAD);
    let skipped = |name: &str| skip_head && name.starts_with(&head_prefix);
    // check every tensor before changing any
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    for t in tensors::collect(&*model) {
        let Some(name) = names.torch(&t.name) else {
            continue; // an MLP head's hidden layers: below
        };
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
    // An MLP head's hidden layers, read into a copy so a failed load changes nothing.
    let mut hidden = None;
    if !skip_head && !model.hidden.is_empty() {
        let mut copy = model.hidden.clone();
        let read = copy.load_torch(B::HEAD, |name| {
            let v = file.tensor(name).ok()?;
            let data = v.data().chunks_exact(4);
            let data = data.map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            (v.dtype() == SafeDtype::F32).then(|| (v.shape().to_vec(), data.collect()))
        });
        match read {
            Ok(read) => {
                seen.extend(read);
                hidden = Some(copy);
            }
            Err((name, expected, None)) => problems.push(Mismatch::Missing { name, expected }),
            Err((name, expected, Some(found))) => problems.push(Mismatch::Shape {
                name,
                expected,
                found,
            }),
        }
    }
    let mut extra: Vec<Mismatch> = file
        .views()
        .map_err(format)?
        .into_iter()
        .filter(|(name, _)| {
            let known = seen.contains(*name) || name.ends_with("num_batches_tracked");
            !(known || skipped(name))
        })
        .map(|(name, v)| Mismatch::Unexpected {
            name: name.to_string(),
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
        let Some(name) = names.torch(t.name()) else {
            return Ok(());
        };
        if !skipped(&name) {
            let (_, values) = file.f32(&name).map_err(format)?;
            t.set_values(&values);
            loaded += 1;
        }
        Ok(())
    })?;
    if let Some(hidden) = hidden {
        loaded += hidden.torch_tensors(B::HEAD).len();
        model.hidden = hidden;
    }
    if replace {
        // said once, by the caller that trains (`LoadReport::head_replaced`): this also runs
        // when a spec's weights are checked
        model.head.reset_params();
    }
    Ok(LoadReport {
        path,
        tensors_loaded: loaded,
        head_replaced: replace,
        checkpoint_classes,
    })
}

/// The name of the head's last weight, its shape in `model` and in `file`.
fn head_shapes<B: Backbone>(
    model: &Classifier<B>,
    file: &TensorFile,
) -> (String, [usize; 2], Option<Vec<usize>>) {
    let head_weight = format!("{}.weight", model.hidden.layout.last_linear(B::HEAD));
    let expected_head = [model.head.classes(), model.head.features()];
    let file_head = file.tensor(&head_weight).ok().map(|v| v.shape().to_vec());
    (head_weight, expected_head, file_head)
}

/// Whether loading `file` into `model` re-initialises the model's head instead of loading it
/// (`replace_head` and a checkpoint head of another shape), as [`load_torchvision_file`] does.
pub(crate) fn replaces_head<B: Backbone>(
    model: &Classifier<B>,
    file: &TensorFile,
    replace_head: bool,
) -> bool {
    let (_, expected, found) = head_shapes(model, file);
    head_replaced(replace_head, &expected, found.as_deref())
}

/// A load replaces the head (rather than loading it) when asked to and the checkpoint's head
/// has another shape, or none.
fn head_replaced(replace_head: bool, expected: &[usize], found: Option<&[usize]>) -> bool {
    replace_head && found != Some(expected)
}

/// Writes `model` as a safetensors file with PyTorch state-dict names (BatchNorm γ as
/// `weight`), loadable by [`load_torchvision_weights`] and by PyTorch; atomically, like every
/// result file.
pub fn save_torchvision_weights<B: Backbone>(
    model: &Classifier<B>,
    path: impl AsRef<Path>,
) -> Result<(), WeightsError> {
    write_entries(path.as_ref(), &torch_entries(model), Default::default())
}

/// Every tensor of `model` under its PyTorch name: (name, dimensions, values).
pub(crate) fn torch_entries<B: Backbone>(
    model: &Classifier<B>,
) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let names = HeadNames::of(model);
    tensors::collect(model)
        .into_iter()
        .filter_map(|t| Some((names.torch(&t.name)?, t.dims, t.values)))
        .chain(model.hidden.torch_tensors(B::HEAD))
        .collect()
}

/// Writes named tensors (see [`torch_entries`]) and `metadata` as a safetensors file.
pub(crate) fn write_entries(
    path: &Path,
    all: &[(String, Vec<usize>, Vec<f32>)],
    metadata: std::collections::HashMap<String, String>,
) -> Result<(), WeightsError> {
    let entries: Vec<Entry> = all
        .iter()
        .map(|(name, dims, values)| Entry {
            name: name.clone(),
            dims: dims.clone(),
            data: Data::F32(values),
        })
        .collect();
    tensor_file::write(path, &entries, metadata).map_err(|e| match e {
        crate::durable::StoreError::Io { path, source } => WeightsError::Write { path, source },
        other => WeightsError::Format {
            path: path.to_path_buf(),
            message: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn saved_weights_replace_the_file_atomically() {
        // a hard link sees writes into the old file but not a rename over it
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("weights.safetensors");
        let other = dir.path().join("earlier.safetensors");
        std::fs::write(&path, b"earlier weights").unwrap();
        std::fs::hard_link(&path, &other).unwrap();
        let model = Classifier::<crate::models::SmallCnn>::new(&crate::train::Dev::default(), 2);
        save_torchvision_weights(&model, &path).unwrap();
        assert!(
            std::fs::read(&other).unwrap() == b"earlier weights",
            "the old file was written into"
        );
        let mut back = Classifier::<crate::models::SmallCnn>::new(&crate::train::Dev::default(), 2);
        load_torchvision_weights(&mut back, &path, false).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    use super::*;

    #[test]
    fn torch_names_call_batchnorm_gamma_weight() {
        assert_eq!(torch_name("layer1.0.bn1.scale"), "layer1.0.bn1.weight");
        assert_eq!(torch_name("layer1.0.conv1.weight"), "layer1.0.conv1.weight");
    }
}
