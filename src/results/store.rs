//! What a run's folder holds and how it is written: the manifest, the run's status, the atomic
//! writes (the folder's paths are `layout`'s).
//!
//! Every file is written to a temporary sibling and renamed into place, so a reader (or a
//! runner killed at any instant) only ever sees complete files.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::layout::RunDir;
use super::schema::ParamValue;
use polars::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Polars {
        path: PathBuf,
        #[source]
        source: PolarsError,
    },
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
}

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
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Running => "running",
            Status::Done => "done",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
            Status::Interrupted => "interrupted",
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
    /// `lock::remove_orphaned_private_files`'.
    pub fn remove_stale_temp_files(&self) {
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

    pub fn write_manifest(&self, m: &Manifest) -> Result<(), StoreError> {
        let json = serde_json::to_string_pretty(m).expect("manifest serialises");
        write_text(&self.manifest(), &(json + "\n"))
    }

    pub fn read_manifest(&self) -> Result<Manifest, StoreError> {
        read_manifest(&self.manifest())
    }
}

/// Writes `text` to `path` atomically.
pub fn write_text(path: &Path, text: &str) -> Result<(), StoreError> {
    write_atomic(path, |f| f.write_all(text.as_bytes()))
}

/// Writes a table to `path` atomically.
pub fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<(), StoreError> {
    // Encoded in memory first (a run's tables are small): writing straight to the file,
    // polars' writer turns a full disk into "Invalid thrift: transport error".
    let mut bytes = Vec::new();
    ParquetWriter::new(&mut bytes)
        .finish(df)
        .map_err(|source| StoreError::Polars {
            path: path.to_path_buf(),
            source,
        })?;
    write_atomic(path, |f| f.write_all(&bytes))
}

pub fn read_manifest(path: &Path) -> Result<Manifest, StoreError> {
    let text = std::fs::read_to_string(path).map_err(|e| StoreError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| StoreError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Writes a file the user named (`report -o`, `preview -o`, an export): its missing folders
/// are created first, as every command does for the files it writes; then [`write_atomic`].
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::new(
                e.kind(),
                format!("cannot create its folder {}: {e}", dir.display()),
            ),
        })?;
    }
    write_atomic(path, |f| f.write_all(bytes))
}

/// Writes through a temporary file in the same folder, syncs it, then renames it over `path`.
/// On any error the temporary file is removed and `path` keeps its previous content.
pub fn write_atomic(
    path: &Path,
    write: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> Result<(), StoreError> {
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // unique across the hosts sharing the folder (pids repeat from one node to the next)
    let tmp = dir.join(format!(".{name}.tmp{}.{}", std::process::id(), hostname()));
    let _whole = super::exit_guard::ExitGuard::hold();
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        write(&mut f)?;
        f.sync_all()?;
        crate::fault::point_for("before-rename", &name);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

/// This machine's short host name (what `hostname -s` prints).
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().split('.').next().unwrap_or("").to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_whole_files_and_cleans_up_on_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        write_atomic(&p, |f| f.write_all(b"one")).unwrap();
        let err = write_atomic(&p, |f| {
            f.write_all(b"partial")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(err.unwrap_err().to_string().contains("disk full"));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "one");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.txt")]);
    }
}
