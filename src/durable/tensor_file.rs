//! The one safetensors codec of the crate: named f32 and i64 tensors with string metadata.
//!
//! Files are written atomically (temp file, fsync, rename) with a SHA-256 of their tensor data
//! in the metadata, and the checksum is verified on reading, so a truncated or bit-flipped
//! checkpoint, cache or weights file is reported instead of trusted. Files written elsewhere
//! (PyTorch's pretrained weights) carry no checksum and are read as they are.

use std::collections::HashMap;
use std::path::Path;

use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use sha2::{Digest, Sha256};

use super::{write_atomic, StoreError};

/// Metadata key of the checksum over every tensor's bytes, in name order.
pub(crate) const CHECKSUM: &str = "sha256";

/// A tensor to write.
pub struct Entry<'a> {
    pub name: String,
    pub dims: Vec<usize>,
    pub data: Data<'a>,
}

pub enum Data<'a> {
    F32(&'a [f32]),
    I64(&'a [i64]),
}

impl Entry<'_> {
    fn bytes(&self) -> (Dtype, Vec<u8>) {
        match self.data {
            // one copy, not a per-value loop (this runs at opt-level 1 in the dev profile)
            Data::F32(v) if cfg!(target_endian = "little") => {
                (Dtype::F32, bytemuck::cast_slice(v).to_vec())
            }
            Data::F32(v) => (Dtype::F32, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
            Data::I64(v) => (Dtype::I64, v.iter().flat_map(|x| x.to_le_bytes()).collect()),
        }
    }
}

/// Writes `entries` and `metadata` (plus the checksum) to `path`, atomically.
pub fn write(
    path: &Path,
    entries: &[Entry],
    metadata: HashMap<String, String>,
) -> Result<(), StoreError> {
    let data = encode(entries, metadata).map_err(|message| StoreError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, message),
    })?;
    write_atomic(path, |f| std::io::Write::write_all(f, &data))
}

/// The bytes [`write`] writes: `entries` and `metadata` plus the checksum, as safetensors.
pub fn encode(entries: &[Entry], mut metadata: HashMap<String, String>) -> Result<Vec<u8>, String> {
    let encoded: Vec<(&str, Dtype, &[usize], Vec<u8>)> = entries
        .iter()
        .map(|e| {
            let (dtype, bytes) = e.bytes();
            (e.name.as_str(), dtype, e.dims.as_slice(), bytes)
        })
        .collect();
    let mut by_name: Vec<_> = encoded.iter().collect();
    by_name.sort_by_key(|e| e.0);
    let mut digest = Sha256::new();
    for e in by_name {
        digest.update(&e.3);
    }
    metadata.insert(CHECKSUM.into(), format!("{:x}", digest.finalize()));
    let views = encoded
        .iter()
        .map(|(name, dtype, dims, bytes)| {
            TensorView::new(*dtype, dims.to_vec(), bytes).map(|v| (*name, v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{e:?}"))?;
    safetensors::tensor::serialize(views, &Some(metadata)).map_err(|e| format!("{e:?}"))
}

/// The checksum a file written by [`write`] carries, read from its header alone (`None` for a
/// file without one); the error says why the header cannot be read.
pub(crate) fn read_checksum(path: &Path) -> Result<Option<String>, String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| e.to_string())?;
    let len = usize::try_from(u64::from_le_bytes(len)).map_err(|e| e.to_string())?;
    if len > 100_000_000 {
        return Err(format!("its header claims {len} bytes"));
    }
    let mut header = vec![0u8; len];
    f.read_exact(&mut header).map_err(|e| e.to_string())?;
    let header: serde_json::Value = serde_json::from_slice(&header).map_err(|e| e.to_string())?;
    Ok(header
        .get("__metadata__")
        .and_then(|m| m.get(CHECKSUM))
        .and_then(|s| s.as_str())
        .map(str::to_string))
}

/// A safetensors file read into memory, its checksum (when it has one) verified, its header
/// parsed once into an index. It may also hold the tensors of a second file it was
/// [joined](TensorFile::joined) with (a run's kept head and the frozen backbone its experiment
/// shares).
pub struct TensorFile {
    /// The bytes of each file joined, in order.
    parts: Vec<Vec<u8>>,
    index: HashMap<String, Located>,
    metadata: HashMap<String, String>,
}

/// Where a tensor's bytes are: which part, and the byte range in it.
struct Located {
    part: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: std::ops::Range<usize>,
}

impl TensorFile {
    /// Reads and checks a file; the error says what is wrong with it, without the path.
    pub fn read(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        Self::from_bytes(bytes)
    }

    /// Reads a file a run wrote (its `model.safetensors`): the error names the file, and one
    /// that is there but does not parse or fails its checksum is called damaged.
    pub(crate) fn read_run_file(path: &Path) -> Result<Self, StoreError> {
        let failed = |reason: String| StoreError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
        Self::from_bytes(bytes).map_err(|e| failed(format!("the file is damaged ({e})")))
    }

    pub(crate) fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        // `read_metadata` checks every offset against the buffer: the index below is in bounds
        let (n, header) = SafeTensors::read_metadata(&bytes).map_err(|e| format!("{e:?}"))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let start = 8 + n;
        let index: HashMap<String, Located> = header
            .tensors()
            .into_iter()
            .map(|(name, info)| {
                let (from, to) = info.data_offsets;
                let located = Located {
                    part: 0,
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    bytes: start + from..start + to,
                };
                (name, located)
            })
            .collect();
        let file = TensorFile {
            parts: vec![bytes],
            index,
            metadata,
        };
        if let Some(expected) = file.metadata.get(CHECKSUM) {
            if file.checksum() != *expected {
                return Err("its checksum does not match its content (the file is corrupt)".into());
            }
        }
        Ok(file)
    }

    /// SHA-256 over every tensor's bytes in name order (what [`write`] stores under `sha256`).
    fn checksum(&self) -> String {
        let mut digest = Sha256::new();
        for name in self.names() {
            let at = &self.index[name];
            digest.update(&self.parts[at.part][at.bytes.clone()]);
        }
        format!("{:x}", digest.finalize())
    }

    /// This file's tensors and those of `shared`, as one file with this file's metadata. A name
    /// in both is an error (naming it).
    pub fn joined(mut self, shared: TensorFile) -> Result<TensorFile, String> {
        let part = self.parts.len();
        for (name, mut at) in shared.index {
            if self.index.contains_key(&name) {
                return Err(format!("both files hold a tensor `{name}`"));
            }
            at.part += part;
            self.index.insert(name, at);
        }
        self.parts.extend(shared.parts);
        Ok(self)
    }

    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// Every tensor's name, sorted.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.index.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The tensor `name`: its dtype, shape and bytes.
    pub fn tensor(&self, name: &str) -> Result<TensorView<'_>, String> {
        let at = self
            .index
            .get(name)
            .ok_or_else(|| format!("it has no tensor `{name}`"))?;
        TensorView::new(
            at.dtype,
            at.shape.clone(),
            &self.parts[at.part][at.bytes.clone()],
        )
        .map_err(|e| format!("tensor `{name}`: {e:?}"))
    }

    /// Every tensor, in name order.
    pub fn views(&self) -> Result<Vec<(&str, TensorView<'_>)>, String> {
        self.names()
            .into_iter()
            .map(|name| Ok((name, self.tensor(name)?)))
            .collect()
    }

    /// The f32 tensor `name`: its dimensions and values.
    pub fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
        self.with_view(name, Dtype::F32, |t| {
            let mut values = vec![0f32; t.data().len() / 4];
            bytemuck::cast_slice_mut::<f32, u8>(&mut values).copy_from_slice(t.data());
            if cfg!(target_endian = "big") {
                values
                    .iter_mut()
                    .for_each(|x| *x = f32::from_bits(x.to_bits().swap_bytes()));
            }
            (t.shape().to_vec(), values)
        })
    }

    /// The i64 tensor `name`: its dimensions and values.
    pub fn i64(&self, name: &str) -> Result<(Vec<usize>, Vec<i64>), String> {
        self.with_view(name, Dtype::I64, |t| {
            let values = t
                .data()
                .chunks_exact(8)
                .map(|c| i64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect();
            (t.shape().to_vec(), values)
        })
    }

    fn with_view<R>(
        &self,
        name: &str,
        dtype: Dtype,
        f: impl FnOnce(&TensorView) -> R,
    ) -> Result<R, String> {
        let t = self.tensor(name)?;
        if t.dtype() != dtype {
            return Err(format!("`{name}` is {:?}, not {dtype:?}", t.dtype()));
        }
        Ok(f(&t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_catches_a_flipped_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.safetensors");
        let w = [1.5f32, -2.0, 3.25];
        let y = [4i64, 5];
        write(
            &path,
            &[
                Entry {
                    name: "w".into(),
                    dims: vec![3],
                    data: Data::F32(&w),
                },
                Entry {
                    name: "y".into(),
                    dims: vec![2],
                    data: Data::I64(&y),
                },
            ],
            HashMap::from([("epoch".to_string(), "7".to_string())]),
        )
        .unwrap();
        let f = TensorFile::read(&path).unwrap();
        assert_eq!(f.f32("w").unwrap(), (vec![3], w.to_vec()));
        assert_eq!(f.i64("y").unwrap(), (vec![2], y.to_vec()));
        assert_eq!(f.metadata()["epoch"], "7");
        assert!(f.f32("y").unwrap_err().contains("not F32"));

        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        let err = TensorFile::from_bytes(bytes).err().unwrap();
        assert!(err.contains("checksum"), "{err}");
        assert!(TensorFile::from_bytes(b"not a tensor file".to_vec()).is_err());
    }
}
