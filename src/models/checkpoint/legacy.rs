//! The format `torch.save` wrote before PyTorch 1.6 (and still writes with
//! `_use_new_zipfile_serialization=False`): consecutive pickles (the magic number, the protocol
//! version, the writer's byte order and type sizes, the object, the sorted storage keys), then
//! each storage in that order as an 8-byte little-endian element count and its raw elements.

use std::collections::HashMap;

use super::pickle::{unpickle, Unpickled, Value};
use super::CheckpointError;

/// `torch.serialization.MAGIC_NUMBER`, 0x1950a86a20f9469cfc6c, as pickle's LONG1 bytes.
const MAGIC: [u8; 10] = [0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19];
const PROTOCOL_VERSION: i64 = 1001;

/// PROTO 2, LONG1 of 10 bytes, then the magic: the file's first 14 bytes.
pub(super) fn is_legacy(bytes: &[u8]) -> bool {
    bytes.len() >= 14
        && bytes[0] == 0x80
        && bytes[2] == 0x8a
        && bytes[3] == 10
        && bytes[4..14] == MAGIC
}

pub(super) struct LegacyFile<'a> {
    pub pickle: Unpickled,
    /// Each storage's raw elements, by key.
    storages: HashMap<String, &'a [u8]>,
}

impl<'a> LegacyFile<'a> {
    pub(super) fn storage(&self, key: &str) -> Result<&'a [u8], CheckpointError> {
        self.storages.get(key).copied().ok_or_else(|| {
            CheckpointError::Container(format!("its storage `{key}` is not in the file"))
        })
    }
}

fn damaged(why: String) -> CheckpointError {
    CheckpointError::Container(format!("it is a legacy PyTorch checkpoint, but {why}"))
}

pub(super) fn open(bytes: &[u8]) -> Result<LegacyFile<'_>, CheckpointError> {
    let mut at = 0;
    let mut next = |what: &str| -> Result<Unpickled, CheckpointError> {
        let (value, len) = unpickle(&bytes[at..]).map_err(|e| match e {
            super::pickle::PickleError::Damaged { at: p, why } => {
                damaged(format!("its {what} is damaged at byte {}: {why}", at + p))
            }
            refused => refused.into(),
        })?;
        at += len;
        Ok(value)
    };
    next("magic number")?;
    match next("protocol version")?.root {
        Value::Int(PROTOCOL_VERSION) => {}
        other => {
            return Err(damaged(format!(
                "its protocol version is {other:?}, not {PROTOCOL_VERSION}"
            )))
        }
    }
    let info = next("system information")?;
    if let Value::Dict(id) = info.root {
        let little = info.arena.dict(id).iter().find_map(|(k, v)| match (k, v) {
            (Value::Str(k), Value::Bool(b)) if &**k == "little_endian" => Some(*b),
            _ => None,
        });
        if little == Some(false) {
            return Err(CheckpointError::Container(
                "it was written on a big-endian machine, which is not read".into(),
            ));
        }
    }
    let pickle = next("state dict")?;
    let keys = next("list of storages")?;
    let keys: Vec<String> = match keys.root {
        Value::List(id) => keys
            .arena
            .list(id)
            .iter()
            .map(|k| match k {
                Value::Str(s) => Ok(s.to_string()),
                other => Err(damaged(format!("a storage key is a {}", other.kind()))),
            })
            .collect::<Result<_, _>>()?,
        other => return Err(damaged(format!("its storage list is a {}", other.kind()))),
    };
    let sizes = element_sizes(&pickle);
    let mut storages = HashMap::new();
    for key in keys {
        let truncated = || {
            damaged(format!(
                "it ends inside storage `{key}` (the file is truncated)"
            ))
        };
        let header = bytes.get(at..at + 8).ok_or_else(truncated)?;
        let count = u64::from_le_bytes(header.try_into().expect("8 bytes"));
        let size = *sizes
            .get(&key)
            .ok_or_else(|| damaged(format!("its storage `{key}` is not used by any tensor")))?;
        let len = usize::try_from(count)
            .ok()
            .and_then(|c| c.checked_mul(size))
            .ok_or_else(truncated)?;
        let start = at + 8;
        let data = bytes
            .get(start..start.saturating_add(len))
            .ok_or_else(truncated)?;
        storages.insert(key, data);
        at = start + len;
    }
    Ok(LegacyFile { pickle, storages })
}

/// Bytes per element of each storage key the pickle names (its root key, for a view).
fn element_sizes(unpickled: &Unpickled) -> HashMap<String, usize> {
    let mut sizes = HashMap::new();
    let mut visit = |v: &Value| {
        let storage = match v {
            Value::Tensor(t) => &t.storage,
            Value::Storage(s) => &**s,
            _ => return,
        };
        let key = storage.view.as_ref().map_or(&storage.key, |v| &v.0);
        sizes.insert(key.clone(), storage.dtype.size());
    };
    unpickled.arena.each_value(&mut visit);
    visit(&unpickled.root);
    sizes
}
