//! Pretrained weights from safetensors files named like PyTorch state dicts (torchvision's
//! ResNets, efficientnet_pytorch's EfficientNet), and the deterministic hash fill the golden
//! tests use in place of stored weights.
//!
//! The model's own tensor names (from its `TensorCollection`) are the state-dict names except
//! that dfdx calls BatchNorm's γ `scale` where PyTorch says `weight`.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};

use ::safetensors::{Dtype as SafeDtype, SafeTensors};
use dfdx::nn::tensor_collection::{
    RecursiveWalker, ScalarOptions, TensorOptions, TensorVisitor, ViewTensorMut, ViewTensorName,
};
use dfdx::prelude::*;

use super::{hidden_prefix, Backbone, Classifier, Dev};

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
            hidden: format!("{}.", hidden_prefix(B::HEAD)),
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

/// Checks (and with `write`, copies) every model tensor against the file.
struct Loader<'a, 'b> {
    file: &'a SafeTensors<'b>,
    names: HeadNames,
    /// `"fc."` when the head is not taken from the file.
    skip_prefix: Option<String>,
    write: bool,
    problems: Vec<Mismatch>,
    seen: HashSet<String>,
    loaded: usize,
}

impl TensorVisitor<f32, Dev> for Loader<'_, '_> {
    type Viewer = (ViewTensorMut, ViewTensorName);
    type Err = CpuError;
    type E2 = f32;
    type D2 = Dev;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, Dev>,
        (t, name): (&mut Tensor<S, f32, Dev>, String),
    ) -> Result<Option<Tensor<S, f32, Dev>>, CpuError> {
        let Some(name) = self.names.torch(&name) else {
            return Ok(None);
        };
        if self
            .skip_prefix
            .as_ref()
            .is_some_and(|p| name.starts_with(p.as_str()))
        {
            return Ok(None);
        }
        let expected: Vec<usize> = t.shape().concrete().into_iter().collect();
        match self.file.tensor(&name) {
            Err(_) => self.problems.push(Mismatch::Missing {
                name: name.clone(),
                expected,
            }),
            Ok(view) => {
                if view.dtype() != SafeDtype::F32 {
                    self.problems.push(Mismatch::Dtype {
                        name: name.clone(),
                        found: dtype_name(view.dtype()),
                    });
                } else if view.shape() != expected.as_slice() {
                    self.problems.push(Mismatch::Shape {
                        name: name.clone(),
                        expected,
                        found: view.shape().to_vec(),
                    });
                } else if self.write {
                    let data: Vec<f32> = view
                        .data()
                        .chunks_exact(4)
                        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                        .collect();
                    t.copy_from(&data);
                    self.loaded += 1;
                }
            }
        }
        self.seen.insert(name);
        Ok(None)
    }

    /// BatchNorm's ε and momentum are architecture settings, not checkpoint contents.
    fn visit_scalar<N: num_traits::NumCast>(
        &mut self,
        _: ScalarOptions<N>,
        _: (&mut N, String),
    ) -> Result<Option<N>, CpuError> {
        Ok(None)
    }
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
    let file = SafeTensors::deserialize(&bytes).map_err(|e| WeightsError::Format {
        path: path.clone(),
        message: format!("{e:?}"),
    })?;

    let names = HeadNames::of(model);
    let head_weight = format!("{}.weight", model.hidden.layout.last_linear(B::HEAD));
    let expected_head = [model.head.classes(), model.head.features()];
    let file_head = file.tensor(&head_weight).ok().map(|v| v.shape().to_vec());
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
    let replace = replace_head && file_head.as_deref() != Some(&expected_head[..]);
    let skip_head = replace || other_classes;

    let mut loader = Loader {
        file: &file,
        names,
        skip_prefix: skip_head.then(|| format!("{}.", B::HEAD)),
        write: false,
        problems: vec![],
        seen: HashSet::new(),
        loaded: 0,
    };
    Classifier::<B>::iter_tensors(&mut RecursiveWalker {
        m: (&mut *model, String::new()),
        f: &mut loader,
    })
    .unwrap();
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
            Ok(names) => {
                loader.seen.extend(names);
                hidden = Some(copy);
            }
            Err((name, expected, None)) => {
                loader.problems.push(Mismatch::Missing { name, expected })
            }
            Err((name, expected, Some(found))) => loader.problems.push(Mismatch::Shape {
                name,
                expected,
                found,
            }),
        }
    }
    let mut extra: Vec<Mismatch> = file
        .tensors()
        .into_iter()
        .filter(|(name, _)| {
            let head_skipped = skip_head && name.starts_with(&format!("{}.", B::HEAD));
            let known = loader.seen.contains(name) || name.ends_with("num_batches_tracked");
            !(known || head_skipped)
        })
        .map(|(name, v)| Mismatch::Unexpected {
            name,
            found: v.shape().to_vec(),
        })
        .collect();
    extra.sort_by(|a, b| format!("{a}").cmp(&format!("{b}")));
    loader.problems.extend(extra);
    if other_classes && !replace_head {
        if loader.problems.is_empty() {
            return Err(WeightsError::HeadClasses {
                path,
                head: B::HEAD.to_string(),
                found: checkpoint_classes.unwrap_or(0),
                expected: expected_head[0],
            });
        }
        loader.problems.push(Mismatch::Shape {
            name: head_weight,
            expected: expected_head.to_vec(),
            found: file_head.unwrap_or_default(),
        });
    }
    if !loader.problems.is_empty() {
        return Err(WeightsError::Mismatch {
            path,
            arch: B::NAME.to_string(),
            problems: loader.problems,
        });
    }

    loader.write = true;
    loader.seen.clear();
    Classifier::<B>::iter_tensors(&mut RecursiveWalker {
        m: (&mut *model, String::new()),
        f: &mut loader,
    })
    .unwrap();
    if let Some(hidden) = hidden {
        loader.loaded += hidden.torch_tensors(B::HEAD).len();
        model.hidden = hidden;
    }
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
        tensors_loaded: loader.loaded,
        head_replaced: replace,
        checkpoint_classes,
    })
}

/// FNV-1a 32-bit hash of the UTF-8 bytes of `s`.
pub fn fnv1a32(s: &str) -> u32 {
    s.bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619))
}

/// The counter-based uniform numbers u ∈ [0, 1) of the golden tests' weight fill for the
/// tensor called `name`: element j hashes `fnv1a32(name) + j·0x9E3779B9` with murmur3's finaliser.
pub fn hash_uniforms(name: &str, len: usize) -> impl Iterator<Item = f64> {
    let seed = fnv1a32(name);
    (0..len).map(move |j| {
        let mut h = seed.wrapping_add((j as u32).wrapping_mul(0x9E37_79B9));
        h ^= h >> 16;
        h = h.wrapping_mul(0x85EB_CA6B);
        h ^= h >> 13;
        h = h.wrapping_mul(0xC2B2_AE35);
        h ^= h >> 16;
        h as f64 / 4294967296.0
    })
}

/// Fills every tensor of `model` from [`hash_uniforms`] of its state-dict name: BatchNorm γ and
/// running_var 0.5 + u; β and running_mean (2u − 1)·0.2; conv/linear weights (2u − 1)/√fan_in;
/// the head bias (2u − 1)/√features. This reproduces the weights behind the golden files.
pub fn fill_with_hash<B: Backbone>(model: &mut Classifier<B>) {
    struct Filler {
        head_bias: String,
        features: usize,
        hidden: String,
    }
    impl TensorVisitor<f32, Dev> for Filler {
        type Viewer = (ViewTensorMut, ViewTensorName);
        type Err = CpuError;
        type E2 = f32;
        type D2 = Dev;
        fn visit<S: Shape>(
            &mut self,
            _: TensorOptions<S, f32, Dev>,
            (t, name): (&mut Tensor<S, f32, Dev>, String),
        ) -> Result<Option<Tensor<S, f32, Dev>>, CpuError> {
            if name.starts_with(&self.hidden) {
                return Ok(None); // an MLP head's hidden layers keep their initialisation
            }
            let torch = torch_name(&name);
            let dims: Vec<usize> = t.shape().concrete().into_iter().collect();
            let len: usize = dims.iter().product();
            let u = hash_uniforms(&torch, len);
            let values: Vec<f32> = if name.ends_with(".scale") || name.ends_with("running_var") {
                u.map(|u| (0.5 + u) as f32).collect()
            } else if name.ends_with("running_mean")
                || (name.ends_with(".bias") && torch != self.head_bias)
            {
                u.map(|u| ((2.0 * u - 1.0) * 0.2) as f32).collect()
            } else if torch == self.head_bias {
                let s = (self.features as f64).sqrt();
                u.map(|u| ((2.0 * u - 1.0) / s) as f32).collect()
            } else {
                let fan_in = (len / dims[0].max(1)).max(1) as f64;
                u.map(|u| ((2.0 * u - 1.0) / fan_in.sqrt()) as f32)
                    .collect()
            };
            t.copy_from(&values);
            Ok(None)
        }
        fn visit_scalar<N: num_traits::NumCast>(
            &mut self,
            _: ScalarOptions<N>,
            _: (&mut N, String),
        ) -> Result<Option<N>, CpuError> {
            Ok(None)
        }
    }
    let mut f = Filler {
        head_bias: format!("{}.bias", B::HEAD),
        features: B::FEATURES,
        hidden: format!("{}.", hidden_prefix(B::HEAD)),
    };
    Classifier::<B>::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut f,
    })
    .unwrap();
}

/// Writes `model` as a safetensors file with PyTorch state-dict names (BatchNorm γ as
/// `weight`), loadable by [`load_torchvision_weights`] and by PyTorch.
pub fn save_torchvision_weights<B: Backbone>(
    model: &Classifier<B>,
    path: impl AsRef<Path>,
) -> Result<(), WeightsError> {
    use dfdx::nn::tensor_collection::ViewTensorRef;
    struct Collect(Vec<(String, Vec<usize>, Vec<u8>)>, HeadNames);
    impl TensorVisitor<f32, Dev> for Collect {
        type Viewer = (ViewTensorRef, ViewTensorName);
        type Err = CpuError;
        type E2 = f32;
        type D2 = Dev;
        fn visit<S: Shape>(
            &mut self,
            _: TensorOptions<S, f32, Dev>,
            (t, name): (&Tensor<S, f32, Dev>, String),
        ) -> Result<Option<Tensor<S, f32, Dev>>, CpuError> {
            let Some(name) = self.1.torch(&name) else {
                return Ok(None);
            };
            let shape = t.shape().concrete().into_iter().collect();
            let bytes = t.as_vec().iter().flat_map(|v| v.to_le_bytes()).collect();
            self.0.push((name, shape, bytes));
            Ok(None)
        }
        fn visit_scalar<N: num_traits::NumCast>(
            &mut self,
            _: ScalarOptions<N>,
            _: (&N, String),
        ) -> Result<Option<N>, CpuError> {
            Ok(None)
        }
    }
    let path = path.as_ref().to_path_buf();
    let mut c = Collect(vec![], HeadNames::of(model));
    Classifier::<B>::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut c,
    })
    .unwrap();
    for (name, shape, values) in model.hidden.torch_tensors(B::HEAD) {
        let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        c.0.push((name, shape, bytes));
    }
    let views =
        c.0.iter()
            .map(|(n, s, b)| {
                Ok((
                    n.clone(),
                    ::safetensors::tensor::TensorView::new(SafeDtype::F32, s.clone(), b)?,
                ))
            })
            .collect::<Result<Vec<_>, ::safetensors::SafeTensorError>>()
            .map_err(|e| WeightsError::Format {
                path: path.clone(),
                message: format!("{e:?}"),
            })?;
    ::safetensors::serialize_to_file(views, &None, &path).map_err(|e| match e {
        ::safetensors::SafeTensorError::IoError(source) => WeightsError::Io {
            path: path.clone(),
            source,
        },
        e => WeightsError::Format {
            path: path.clone(),
            message: format!("{e:?}"),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_fill_matches_the_documented_values() {
        // conv1.weight starts 0.07495967, −0.01659734, −0.01964474 (fan_in 3·7·7).
        let s = (147f64).sqrt();
        let v: Vec<f64> = hash_uniforms("conv1.weight", 3)
            .map(|u| (2.0 * u - 1.0) / s)
            .collect();
        for (a, b) in v.iter().zip([0.07495967, -0.01659734, -0.01964474]) {
            assert!((a - b).abs() < 1e-7, "{a} vs {b}");
        }
        assert_eq!(torch_name("layer1.0.bn1.scale"), "layer1.0.bn1.weight");
        assert_eq!(torch_name("layer1.0.conv1.weight"), "layer1.0.conv1.weight");
    }
}
