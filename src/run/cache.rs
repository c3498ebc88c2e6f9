//! The frozen-feature cache: a frozen backbone under deterministic transforms gives the same
//! features every epoch and every run of a sweep, so they are computed once per key, kept in
//! memory for the process and on disk for the next one.
//!
//! A cache file holds `train_x [n, f]`, `train_y [n]`, `val_x`, `val_y` (safetensors) and, in
//! its metadata, the key and a SHA-256 of the tensor bytes: a file that is truncated, corrupt
//! or from another key is detected, reported and rebuilt, never trusted.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use sha2::{Digest, Sha256};

use super::sources::FeatureSet;
use crate::data::IMAGE_EXTENSIONS;
use crate::results::store::StoreError;
use crate::results::tensor_file::{self, Data, Entry, TensorFile};
use crate::train::TrainError;

pub type Features = Arc<(FeatureSet, FeatureSet)>;

/// Whether the features came from memory, disk, or were computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Memory,
    Disk,
    Built,
}

pub struct FeatureCache {
    dir: PathBuf,
    memory: HashMap<String, Features>,
}

impl FeatureCache {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            memory: HashMap::new(),
        }
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!(
            "features-{}.safetensors",
            &key[..16.min(key.len())]
        ))
    }

    /// The features for `key`, building (and storing) them with `build` on a miss.
    pub fn get_or_build(
        &mut self,
        key: &str,
        build: impl FnOnce() -> Result<(FeatureSet, FeatureSet), TrainError>,
    ) -> Result<(Features, Lookup), TrainError> {
        if let Some(f) = self.memory.get(key) {
            return Ok((f.clone(), Lookup::Memory));
        }
        let path = self.path(key);
        if path.exists() {
            match read(&path, key) {
                Ok(f) => {
                    let f = Arc::new(f);
                    self.memory.insert(key.to_string(), f.clone());
                    return Ok((f, Lookup::Disk));
                }
                Err(why) => tracing::warn!(
                    "feature cache {} is unusable ({why}): rebuilding it",
                    path.display()
                ),
            }
        }
        let f = Arc::new(build()?);
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| TrainError::Store(format!("cannot create {}: {e}", self.dir.display())))?;
        write(&path, key, &f).map_err(|e| TrainError::Store(e.to_string()))?;
        self.memory.insert(key.to_string(), f.clone());
        Ok((f, Lookup::Built))
    }
}

fn write(path: &Path, key: &str, f: &(FeatureSet, FeatureSet)) -> Result<(), StoreError> {
    let labels = |s: &FeatureSet| s.labels.iter().map(|&y| y as i64).collect::<Vec<_>>();
    let (train_y, val_y) = (labels(&f.0), labels(&f.1));
    let entries = [
        Entry {
            name: "train_x".into(),
            dims: vec![f.0.len(), f.0.width],
            data: Data::F32(&f.0.x),
        },
        Entry {
            name: "train_y".into(),
            dims: vec![f.0.len()],
            data: Data::I64(&train_y),
        },
        Entry {
            name: "val_x".into(),
            dims: vec![f.1.len(), f.1.width],
            data: Data::F32(&f.1.x),
        },
        Entry {
            name: "val_y".into(),
            dims: vec![f.1.len()],
            data: Data::I64(&val_y),
        },
    ];
    tensor_file::write(
        path,
        &entries,
        HashMap::from([("key".to_string(), key.to_string())]),
    )
}

fn read(path: &Path, key: &str) -> Result<(FeatureSet, FeatureSet), String> {
    // the codec verifies the checksum over the tensors
    let file = TensorFile::read(path)?;
    if file.metadata().get("key").map(String::as_str) != Some(key) {
        return Err("it belongs to another key".into());
    }
    let set = |x: &str, y: &str| -> Result<FeatureSet, String> {
        let (dims, x) = file.f32(x)?;
        let (_, y) = file.i64(y)?;
        Ok(FeatureSet {
            x,
            width: dims.get(1).copied().unwrap_or(0),
            labels: y.into_iter().map(|y| y as usize).collect(),
        })
    };
    Ok((set("train_x", "train_y")?, set("val_x", "val_y")?))
}

/// The cache key: everything the features depend on.
pub fn key(parts: &[(&str, String)]) -> String {
    let mut h = Sha256::new();
    h.update(b"runner-features-v1\n");
    h.update(IMAGE_EXTENSIONS.join(",").as_bytes());
    for (k, v) in parts {
        h.update(format!("{k}={v}\n").as_bytes());
    }
    crate::data::hex_digest(&h.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets() -> (FeatureSet, FeatureSet) {
        (
            FeatureSet {
                x: vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
                width: 3,
                labels: vec![0, 1],
            },
            FeatureSet {
                x: vec![0.5, -0.5, 1.5],
                width: 3,
                labels: vec![1],
            },
        )
    }

    #[test]
    fn builds_once_then_hits_memory_then_disk_and_rebuilds_corrupt_files() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(&[("a", "1".into())]);
        let mut c = FeatureCache::new(dir.path().to_path_buf());
        let (f, l) = c.get_or_build(&k, || Ok(sets())).unwrap();
        assert_eq!((l, &*f), (Lookup::Built, &sets()));
        let (_, l) = c.get_or_build(&k, || panic!("must not rebuild")).unwrap();
        assert_eq!(l, Lookup::Memory);
        let mut fresh = FeatureCache::new(dir.path().to_path_buf());
        let (f, l) = fresh
            .get_or_build(&k, || panic!("must not rebuild"))
            .unwrap();
        assert_eq!((l, &*f), (Lookup::Disk, &sets()));

        // a truncated file and a flipped byte are both rebuilt
        let path = fresh.path(&k);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let (_, l) = FeatureCache::new(dir.path().to_path_buf())
            .get_or_build(&k, || Ok(sets()))
            .unwrap();
        assert_eq!(l, Lookup::Built);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&path, &bytes).unwrap();
        let (_, l) = FeatureCache::new(dir.path().to_path_buf())
            .get_or_build(&k, || Ok(sets()))
            .unwrap();
        assert_eq!(l, Lookup::Built);
        assert_ne!(k, key(&[("a", "2".into())]));
    }
}
