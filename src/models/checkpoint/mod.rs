//! PyTorch checkpoints (`.pth`/`.pt`) read without running Python or pickle: the zip format
//! `torch.save` writes since PyTorch 1.6 and the older format of consecutive pickles followed by
//! the raw storages, holding a state dict (at the top, or under `state_dict`/`model`). The
//! pickle is read by an allow-list opcode machine ([`pickle`]) that refuses any global a state
//! dict does not use, so a file that would run code when `torch.load`ed is refused, not run.
//!
//! [`Checkpoint::to_tensor_file`] turns one into the safetensors the training path reads.

mod dtype;
mod legacy;
mod pickle;
mod value;
mod zip_format;

use std::collections::HashMap;
use std::fmt;

pub use dtype::{TorchDtype, Values};
use pickle::{Arena, PickleError, TensorRef, Unpickled, Value};

use crate::durable::tensor_file::{self, Data, Entry, TensorFile};

/// The container a checkpoint came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `torch.save` since PyTorch 1.6: a zip of `data.pkl` and one file per storage.
    Zip,
    /// `torch.save(..., _use_new_zipfile_serialization=False)` and PyTorch before 1.6.
    Legacy,
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Zip => "PyTorch zip checkpoint",
            Format::Legacy => "PyTorch legacy (pre-1.6) checkpoint",
        })
    }
}

/// One tensor of a checkpoint's state dict.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckpointTensor {
    pub name: String,
    /// The type stored in the file (f16 and bf16 are widened to f32 in `values`).
    pub dtype: TorchDtype,
    pub shape: Vec<usize>,
    pub values: Values,
}

/// A checkpoint's state dict, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Checkpoint {
    pub format: Format,
    /// The key of the checkpoint dict the state dict was under (`state_dict`, `model`), if any.
    pub nested_under: Option<String>,
    /// In the state dict's order.
    pub tensors: Vec<CheckpointTensor>,
}

/// Keys a training script's checkpoint dict keeps its model's state dict under, in the order
/// they are tried.
const NESTED_KEYS: [&str; 4] = ["state_dict", "model", "model_state_dict", "module"];

/// Whether `bytes` look like a PyTorch checkpoint of either format (or the tar format before
/// PyTorch 0.4, which [`read_checkpoint`] names and refuses).
pub(crate) fn looks_like_checkpoint(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04") || legacy::is_legacy(bytes) || is_tar(bytes)
}

fn is_tar(bytes: &[u8]) -> bool {
    bytes.get(257..262) == Some(b"ustar")
}

/// Why a checkpoint cannot be read; the caller names the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CheckpointError {
    #[error("{0}")]
    Container(String),
    #[error("{0}")]
    Pickle(String),
    #[error("{0}")]
    StateDict(String),
    #[error("tensor `{name}`: {why}")]
    Tensor { name: String, why: String },
}

impl From<PickleError> for CheckpointError {
    fn from(e: PickleError) -> Self {
        CheckpointError::Pickle(e.to_string())
    }
}

/// Reads a checkpoint file's bytes.
pub fn read_checkpoint(bytes: &[u8]) -> Result<Checkpoint, CheckpointError> {
    if bytes.starts_with(b"PK\x03\x04") {
        let archive = zip_format::open(bytes)?;
        return from_pickle(Format::Zip, &archive.pickle, |key| archive.storage(key));
    }
    if legacy::is_legacy(bytes) {
        let file = legacy::open(bytes)?;
        return from_pickle(Format::Legacy, &file.pickle, |key| file.storage(key));
    }
    if is_tar(bytes) {
        return Err(CheckpointError::Container(
            "it is a PyTorch checkpoint in the tar format of PyTorch before 0.4, which is not \
             read; load it with that PyTorch and save its state dict again with torch.save"
                .into(),
        ));
    }
    Err(CheckpointError::Container(
        "it is neither a zip nor a legacy PyTorch checkpoint".into(),
    ))
}

/// The state dict of an unpickled checkpoint, its tensors' values read from the storages
/// `storage` returns by key.
fn from_pickle<'a>(
    format: Format,
    unpickled: &Unpickled,
    storage: impl Fn(&str) -> Result<&'a [u8], CheckpointError>,
) -> Result<Checkpoint, CheckpointError> {
    let StateDict {
        nested_under,
        entries,
    } = state_dict(&unpickled.root, &unpickled.arena)?;
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, t) in entries {
        let fail = |why: String| CheckpointError::Tensor {
            name: name.clone(),
            why,
        };
        let (key, base) = match &t.storage.view {
            Some((root, offset, _)) => (root.as_str(), *offset),
            None => (t.storage.key.as_str(), 0),
        };
        let bytes = storage(key).map_err(|e| fail(e.to_string()))?;
        let values = strided(t, bytes, base).map_err(fail)?;
        tensors.push(CheckpointTensor {
            name,
            dtype: t.storage.dtype,
            shape: t.shape.clone(),
            values,
        });
    }
    Ok(Checkpoint {
        format,
        nested_under,
        tensors,
    })
}

/// A state dict found in a pickle: its tensors by name, and the key it was under.
struct StateDict<'a> {
    nested_under: Option<String>,
    entries: Vec<(String, &'a TensorRef)>,
}

/// The state dict: the root dict when it holds tensors, else the dict under the first of
/// [`NESTED_KEYS`] that holds one.
fn state_dict<'a>(root: &'a Value, arena: &'a Arena) -> Result<StateDict<'a>, CheckpointError> {
    let Value::Dict(id) = root else {
        return Err(CheckpointError::StateDict(format!(
            "it holds a {}, not a state dict (a dict of tensors)",
            root.kind()
        )));
    };
    let items = arena.dict(*id);
    let holds_tensors =
        |items: &[(Value, Value)]| items.iter().any(|(_, v)| matches!(v, Value::Tensor(_)));
    let (nested, items) = if holds_tensors(items) || items.is_empty() {
        (None, items)
    } else {
        let nested = NESTED_KEYS.iter().find_map(|key| {
            items.iter().find_map(|(k, v)| match (k, v) {
                (Value::Str(k), Value::Dict(d))
                    if &**k == *key && holds_tensors(arena.dict(*d)) =>
                {
                    Some((k.to_string(), arena.dict(*d)))
                }
                _ => None,
            })
        });
        match nested {
            Some((key, items)) => (Some(key), items),
            None => {
                let keys: Vec<String> = items
                    .iter()
                    .map(|(k, v)| match k {
                        Value::Str(k) => format!("`{k}` ({})", v.kind()),
                        other => format!("a {} key", other.kind()),
                    })
                    .collect();
                return Err(CheckpointError::StateDict(format!(
                    "it holds a dict of {} but no state dict: no tensors at its top level, and \
                     none under {}",
                    keys.join(", "),
                    NESTED_KEYS.map(|k| format!("`{k}`")).join(", ")
                )));
            }
        }
    };
    let mut out = Vec::with_capacity(items.len());
    for (k, v) in items {
        let Value::Str(name) = k else {
            return Err(CheckpointError::StateDict(format!(
                "its state dict has a {} key where tensor names are strings",
                k.kind()
            )));
        };
        match v {
            Value::Tensor(t) => out.push((name.to_string(), &**t)),
            other => {
                return Err(CheckpointError::StateDict(format!(
                    "its state dict's `{name}` is a {}, not a tensor",
                    other.kind()
                )))
            }
        }
    }
    Ok(StateDict {
        nested_under: nested,
        entries: out,
    })
}

/// The most elements a tensor may have beyond its storage's (a view that repeats elements
/// through a zero stride): enough for any buffer a state dict broadcasts, and no more, so that
/// a small file cannot ask for a huge allocation.
const MAX_BROADCAST: usize = 1 << 24;

/// The tensor's elements, row-major, from its storage's bytes (`base` elements in, for a legacy
/// view storage): any strides whose elements lie within the storage are read.
fn strided(t: &TensorRef, bytes: &[u8], base: usize) -> Result<Values, String> {
    let dtype = t.storage.dtype;
    let size = dtype.size();
    if t.shape.len() != t.stride.len() {
        return Err(format!(
            "its shape {:?} and stride {:?} differ in length",
            t.shape, t.stride
        ));
    }
    let available = bytes.len() / size;
    let count = element_count(t, base, available)?;
    let contiguous = is_contiguous(&t.shape, &t.stride);
    let start = (base + t.offset) * size;
    let decoded = if contiguous {
        let whole = &bytes[start.min(bytes.len())..];
        Values::decode(dtype, whole.chunks_exact(size).take(count))
    } else {
        let mut index = vec![0usize; t.shape.len()];
        let elements = (0..count).map(|_| {
            let at = base
                + t.offset
                + index
                    .iter()
                    .zip(&t.stride)
                    .map(|(i, s)| i * s)
                    .sum::<usize>();
            // the next index, last dimension fastest
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < t.shape[d] {
                    break;
                }
                index[d] = 0;
            }
            &bytes[at * size..(at + 1) * size]
        });
        Values::decode(dtype, elements)
    };
    decoded.ok_or_else(|| {
        format!(
            "its dtype {} is not read (weights are float32, float16 or bfloat16, counters int64)",
            dtype.torch_name()
        )
    })
}

/// How many elements the tensor has, once its view is known to stay inside a storage of
/// `available` elements (`base` elements in).
fn element_count(t: &TensorRef, base: usize, available: usize) -> Result<usize, String> {
    let count = t
        .shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .filter(|&n| n <= available.max(MAX_BROADCAST))
        .ok_or_else(|| {
            format!(
                "its shape {:?} has more elements than its storage of {available} holds",
                t.shape
            )
        })?;
    if count == 0 {
        return Ok(0);
    }
    // the furthest element the view reaches, which must be inside the storage
    let last = t
        .shape
        .iter()
        .zip(&t.stride)
        .try_fold(base + t.offset, |acc, (&n, &s)| {
            (n - 1).checked_mul(s).and_then(|d| acc.checked_add(d))
        });
    match last {
        Some(last) if last < available => Ok(count),
        _ => Err(format!(
            "its view (offset {}, shape {:?}, stride {:?}) reaches past the end of its \
             storage of {available} {} elements",
            t.offset,
            t.shape,
            t.stride,
            t.storage.dtype.torch_name()
        )),
    }
}

/// Whether strides lay the elements out row-major without gaps (a dimension of 1 may have
/// any stride).
fn is_contiguous(shape: &[usize], stride: &[usize]) -> bool {
    let mut expected = 1;
    let mut ok = true;
    for (&n, &s) in shape.iter().zip(stride).rev() {
        ok &= n == 1 || s == expected;
        expected *= n;
    }
    ok
}

impl Checkpoint {
    /// The state dict as safetensors bytes (f32 and i64 tensors under their state-dict names),
    /// the form every weights file is loaded from.
    pub(crate) fn to_safetensors(&self) -> Result<Vec<u8>, String> {
        tensor_file::encode(&self.entries(), HashMap::new())
    }

    pub(crate) fn to_tensor_file(&self) -> Result<TensorFile, String> {
        TensorFile::from_bytes(self.to_safetensors()?)
    }

    pub(crate) fn entries(&self) -> Vec<Entry<'_>> {
        self.tensors
            .iter()
            .map(|t| Entry {
                name: t.name.clone(),
                dims: t.shape.clone(),
                data: match &t.values {
                    Values::F32(v) => Data::F32(v),
                    Values::I64(v) => Data::I64(v),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests;
