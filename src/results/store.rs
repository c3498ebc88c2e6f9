//! What a run's folder holds: the manifest and the run's status, its lock, and reading and
//! writing them (the folder's paths are `layout`'s; every write is `durable`'s atomic one).

use std::path::Path;

use super::layout::RunDir;
use super::schema::ParamValue;
use crate::durable::lock::FileLock;
use crate::durable::{write_text, StoreError};
use serde::{Deserialize, Serialize};

/// How a run ended (or that it has not).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Running,
    Done,
    Diverged,
    Failed,
    /// Stopped by Ctrl-C; the next invocation resumes it from its checkpoint.
    Interrupted,
    /// Trained up to a successive-halving rung and kept there with its checkpoint: waiting for
    /// the rung's decision, or, with the manifest's `halted` set, stopped there by it.
    Paused,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Running => "running",
            Status::Done => "done",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
            Status::Paused => "paused",
        })
    }
}

/// What a run was and how it went, next to its metrics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub experiment: String,
    pub run_id: String,
    pub index: usize,
    /// The swept parameters of this run, as dotted key → value, typed like its Parquet column.
    pub swept: Vec<(String, ParamValue)>,
    pub spec_hash: String,
    pub dataset_fingerprint: String,
    /// SHA-256 of `split.csv`, which lists the split of every image, for a dataset from a
    /// manifest or with a split made from fractions (absent otherwise, and in older manifests).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub split_sha256: Option<String>,
    pub weights_hash: Option<String>,
    pub seed: u64,
    pub status: Status,
    pub epochs_done: usize,
    pub epochs: usize,
    pub diverged_epoch: Option<usize>,
    /// Undecodable images left out of the last recorded epoch (`on_bad_image = "skip"`).
    #[serde(default)]
    pub skipped_images: usize,
    /// Set when early stopping ended the run (its status is `done`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_early: Option<StoppedEarly>,
    /// Set when successive halving stopped the run at a rung (its status is `paused`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub halted: Option<HaltedAt>,
    pub error: Option<String>,
    /// The kept model scored on the held-out test split (`dataset.test_dir`), once, after
    /// training; its tables are `test_metrics.parquet`, `test_per_class.parquet` and
    /// `test_confusion.parquet`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<TestScore>,
    pub classes: Vec<String>,
    pub device: String,
    /// The CPU engine the run's ops ran on (`oneDNN 2.6.3 (avx512_core_amx, 2 OpenMP
    /// threads)`, `built-in (…why)`); absent in manifests of older runners. Not part of the
    /// run's identity: both engines give the same results within tolerance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    /// What the convolutions computed in: `32`, or `bf16-mixed (avx512_core_bf16)` with the
    /// instruction set oneDNN ran them on; absent in manifests of older runners (all `32`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub precision: Option<String>,
    pub threads: usize,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub runner_version: String,
    pub crate_versions: Vec<(String, String)>,
    pub started_at: String,
    pub finished_at: Option<String>,
    /// The process that last wrote this manifest (absent in manifests of older runners).
    #[serde(default)]
    pub host: Option<String>,
    #[serde(default)]
    pub pid: Option<u32>,
    /// Its scheduler task (`slurm 123_4`), if any.
    #[serde(default)]
    pub task: Option<String>,
}

/// Where successive halving stopped a run: the rung (from 0) and its epoch, the run's last.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct HaltedAt {
    pub rung: usize,
    pub epoch: usize,
}

impl std::fmt::Display for HaltedAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped at rung {} (epoch {})", self.rung, self.epoch)
    }
}

/// How early stopping ended a run.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct StoppedEarly {
    /// The last epoch trained.
    pub epoch: usize,
    /// The best epoch by the watched metric.
    pub best_epoch: usize,
    pub reason: String,
    /// model.safetensors holds the best epoch's weights (`early_stopping.restore_best`).
    pub restored_best: bool,
}

/// Which weights of a run `model.safetensors` holds, the one model its test split, `evaluate`
/// and `export` use.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum KeptModel {
    /// The best epoch's weights, restored at the end (`early_stopping.restore_best`).
    Best,
    /// The last epoch's weights.
    Final,
}

impl std::fmt::Display for KeptModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KeptModel::Best => "best",
            KeptModel::Final => "final",
        })
    }
}

/// A model's score on a labelled split.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TestScore {
    /// The epoch whose weights were scored.
    pub epoch: usize,
    pub model: KeptModel,
    pub images: usize,
    pub loss: f64,
    pub acc: f64,
}

/// What a run folder's files are read and written with (its paths are [`RunDir`]'s).
impl RunDir {
    pub fn create(&self) -> Result<(), StoreError> {
        std::fs::create_dir_all(self.path()).map_err(|source| StoreError::Io {
            path: self.path().to_path_buf(),
            source,
        })
    }

    /// Removes temporary files that a killed writer left behind (only ever called while
    /// holding the run's lock, so no live writer owns them). The lock's own private files are
    /// `durable::lock::remove_orphaned_private_files`'.
    pub(crate) fn remove_stale_temp_files(&self) {
        let Ok(entries) = std::fs::read_dir(self.path()) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    pub(crate) fn write_manifest(&self, m: &Manifest) -> Result<(), StoreError> {
        let json = serde_json::to_string_pretty(m).expect("manifest serialises");
        write_text(&self.manifest(), &(json + "\n"))
    }

    pub(crate) fn read_manifest(&self) -> Result<Manifest, StoreError> {
        read_manifest(&self.manifest())
    }
}

pub(crate) fn read_manifest(path: &Path) -> Result<Manifest, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| StoreError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| StoreError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// A run folder's lock (`<run>/lock`), held while the run trains.
#[derive(Debug)]
pub struct RunLock {
    _lock: FileLock,
}

impl RunLock {
    /// `Ok(None)` when another live process holds the run.
    pub fn acquire(dir: &RunDir) -> Result<Option<Self>, StoreError> {
        let path = dir.lock();
        match FileLock::try_acquire(&path) {
            Ok(Ok(lock)) => Ok(Some(Self { _lock: lock })),
            Ok(Err(busy)) => {
                tracing::info!(
                    "{} is being trained by {}: moving on",
                    dir.path().display(),
                    busy.describe()
                );
                Ok(None)
            }
            Err(source) => Err(StoreError::Io { path, source }),
        }
    }
}
