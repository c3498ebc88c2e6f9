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
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::sources::FeatureSet;
use crate::data::IMAGE_EXTENSIONS;
use crate::durable::lock::{this_process, FileLock};
use crate::durable::tensor_file::{self, Data, Entry, TensorFile};
use crate::durable::StoreError;
use crate::train::TrainError;

pub(super) type Features = Arc<(FeatureSet, FeatureSet)>;

/// Whether the features came from memory, disk, or were computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lookup {
    Memory,
    Disk,
    Built,
}

pub(crate) struct FeatureCache {
    dir: PathBuf,
    memory: HashMap<String, Features>,
}

impl FeatureCache {
    pub(crate) fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            memory: HashMap::new(),
        }
    }

    pub(crate) fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!(
            "features-{}.safetensors",
            &key[..16.min(key.len())]
        ))
    }

    /// The features for `key`, building (and storing) them with `build` on a miss.
    pub(crate) fn get_or_build(
        &mut self,
        key: &str,
        build: impl FnOnce() -> Result<(FeatureSet, FeatureSet), TrainError>,
    ) -> Result<(Features, Lookup), TrainError> {
        if let Some(f) = self.memory.get(key) {
            return Ok((f.clone(), Lookup::Memory));
        }
        let path = self.path(key);
        if path.exists() {
            if let Some(f) = self.read_usable(&path, key) {
                return Ok((f, Lookup::Disk));
            }
        }
        // Tasks of a sweep starting together on a shared folder: one builds, the others wait
        // for its lock and then read what it wrote (the write is atomic and checksummed, so
        // even where the lock does not reach, a reader only ever sees a whole file).
        std::fs::create_dir_all(&self.dir).map_err(|source| StoreError::Io {
            path: self.dir.clone(),
            source,
        })?;
        let lock_path = path.with_extension("safetensors.lock");
        let waited = Instant::now();
        let mut builder = None;
        let _lock = FileLock::acquire_waiting(&lock_path, |busy| {
            tracing::info!(
                "feature cache {}: {} is building it; this task ({}) waits",
                path.display(),
                busy.describe(),
                this_process()
            );
            builder = Some(busy.describe());
        })
        .map_err(|source| StoreError::Io {
            path: lock_path.clone(),
            source,
        })?;
        crate::durable::lock::remove_orphaned_private_files(&self.dir);
        if builder.is_some() || path.exists() {
            if let Some(f) = self.read_usable(&path, key) {
                tracing::info!(
                    "feature cache {}: built by {}; this task ({}) waited {:.1}s and read it",
                    path.display(),
                    built_by(&path).unwrap_or_else(|| "another task".into()),
                    this_process(),
                    waited.elapsed().as_secs_f64()
                );
                return Ok((f, Lookup::Disk));
            }
        }
        let f = Arc::new(build()?);
        write(&path, key, &f)?;
        tracing::info!(
            "feature cache {}: built by this task ({})",
            path.display(),
            this_process()
        );
        self.memory.insert(key.to_string(), f.clone());
        Ok((f, Lookup::Built))
    }

    fn read_usable(&mut self, path: &Path, key: &str) -> Option<Features> {
        match read(path, key) {
            Ok(f) => {
                let f = Arc::new(f);
                self.memory.insert(key.to_string(), f.clone());
                Some(f)
            }
            Err(why) => {
                tracing::warn!(
                    "feature cache {} is unusable ({why}): rebuilding it",
                    path.display()
                );
                None
            }
        }
    }
}

/// Who wrote a cache file (recorded in its metadata).
fn built_by(path: &Path) -> Option<String> {
    TensorFile::read(path)
        .ok()?
        .metadata()
        .get("built_by")
        .cloned()
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
        HashMap::from([
            ("key".to_string(), key.to_string()),
            ("built_by".to_string(), this_process()),
            ("train_skipped".to_string(), f.0.skipped.to_string()),
            ("val_skipped".to_string(), f.1.skipped.to_string()),
        ]),
    )
}

fn read(path: &Path, key: &str) -> Result<(FeatureSet, FeatureSet), String> {
    // the codec verifies the checksum over the tensors
    let file = TensorFile::read(path)?;
    if file.metadata().get("key").map(String::as_str) != Some(key) {
        return Err("it belongs to another key".into());
    }
    // images skipped when the features were computed (absent from older files: none)
    let skipped = |k: &str| {
        file.metadata()
            .get(k)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    let set = |x: &str, y: &str, s: &str| -> Result<FeatureSet, String> {
        let (dims, x) = file.f32(x)?;
        let (_, y) = file.i64(y)?;
        Ok(FeatureSet {
            x,
            width: dims.get(1).copied().unwrap_or(0),
            labels: y.into_iter().map(|y| y as usize).collect(),
            skipped: skipped(s),
        })
    };
    Ok((
        set("train_x", "train_y", "train_skipped")?,
        set("val_x", "val_y", "val_skipped")?,
    ))
}

/// The cache key: everything the features depend on.
pub(super) fn key(parts: &[(&str, String)]) -> String {
    let mut h = Sha256::new();
    h.update(b"runner-features-v1\n");
    h.update(IMAGE_EXTENSIONS.join(",").as_bytes());
    for (k, v) in parts {
        h.update(format!("{k}={v}\n").as_bytes());
    }
    format!("{:x}", h.finalize())
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
                skipped: 2,
            },
            FeatureSet {
                x: vec![0.5, -0.5, 1.5],
                width: 3,
                labels: vec![1],
                skipped: 0,
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

    #[test]
    fn tasks_starting_together_build_once_and_the_others_wait_and_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let k = key(&[("a", "together".into())]);
        let builds = std::sync::atomic::AtomicUsize::new(0);
        let gate = std::sync::Barrier::new(4);
        let got: Vec<(FeatureSet, FeatureSet)> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..4)
                .map(|_| {
                    s.spawn(|| {
                        let mut c = FeatureCache::new(dir.path().to_path_buf());
                        gate.wait();
                        let (f, _) = c
                            .get_or_build(&k, || {
                                builds.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                                std::thread::sleep(std::time::Duration::from_millis(200));
                                Ok(sets())
                            })
                            .unwrap();
                        (*f).clone()
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(builds.into_inner(), 1);
        assert!(got.iter().all(|f| *f == sets()));
        assert!(
            built_by(&FeatureCache::new(dir.path().to_path_buf()).path(&k))
                .unwrap()
                .contains(&format!("pid {}", std::process::id()))
        );
    }
}
