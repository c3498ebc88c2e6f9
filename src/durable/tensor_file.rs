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
const CHECKSUM: &str = "sha256";

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
    metadata.insert(CHECKSUM.into(), hex::encode(digest.finalize()));
    let views = encoded
        .iter()
        .map(|(name, dtype, dims, bytes)| {
            TensorView::new(*dtype, dims.to_vec(), bytes).map(|v| (*name, v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{e:?}"))?;
    safetensors::tensor::serialize(views, &Some(metadata)).map_err(|e| format!("{e:?}"))
}

/// A safetensors file read into memory, its checksum (when it has one) verified.
pub struct TensorFile {
    bytes: Vec<u8>,
    metadata: HashMap<String, String>,
}

impl TensorFile {
    /// Reads and checks a file; the error says what is wrong with it, without the path.
    pub fn read(path: &Path) -> Result<Self, String> {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        Self::from_bytes(bytes)
    }

    /// Reads a file a run wrote (its `model.safetensors`): the error names the file, and one
    /// that is there but does not parse or fails its checksum is called damaged.
    pub fn read_run_file(path: &Path) -> Result<Self, StoreError> {
        let failed = |reason: String| StoreError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| failed(e.to_string()))?;
        Self::from_bytes(bytes).map_err(|e| failed(format!("the file is damaged ({e})")))
    }

    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, String> {
        let (_, header) = SafeTensors::read_metadata(&bytes).map_err(|e| format!("{e:?}"))?;
        let metadata = header.metadata().clone().unwrap_or_default();
        let file = TensorFile { bytes, metadata };
        let tensors = file.tensors()?;
        if let Some(expected) = file.metadata.get(CHECKSUM) {
            let mut names = tensors.names();
            names.sort();
            let mut digest = Sha256::new();
            for name in names {
                digest.update(tensors.tensor(name).map_err(|e| format!("{e:?}"))?.data());
            }
            if hex::encode(digest.finalize()) != *expected {
                return Err("its checksum does not match its content (the file is corrupt)".into());
            }
        }
        Ok(file)
    }

    pub fn metadata(&self) -> &HashMap<String, String> {
        &self.metadata
    }

    /// The parsed tensors, for names, shapes and dtypes.
    pub fn tensors(&self) -> Result<SafeTensors<'_>, String> {
        SafeTensors::deserialize(&self.bytes).map_err(|e| format!("{e:?}"))
    }

    /// The f32 tensor `name`: its dimensions and values.
    pub fn f32(&self, name: &str) -> Result<(Vec<usize>, Vec<f32>), String> {
        self.with_view(name, Dtype::F32, |t| {
            let values = t
                .data()
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect();
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
        let tensors = self.tensors()?;
        let t = tensors
            .tensor(name)
            .map_err(|_| format!("it has no tensor `{name}`"))?;
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
