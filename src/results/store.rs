//! The results tree: `results/<experiment>/<run_id>/{metrics.parquet, per_class.parquet,
//! confusion.parquet, spec.toml, manifest.json, model.safetensors}`.
//!
//! Every file is written to a temporary sibling and renamed into place, so a reader (or a
//! runner killed at any instant) only ever sees complete files.

use std::io::Write;
use std::path::{Path, PathBuf};

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
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Running => "running",
            Status::Done => "done",
            Status::Diverged => "diverged",
            Status::Failed => "failed",
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
    pub error: Option<String>,
    pub classes: Vec<String>,
    pub device: String,
    pub threads: usize,
    pub git_commit: Option<String>,
    pub git_dirty: Option<bool>,
    pub runner_version: String,
    pub crate_versions: Vec<(String, String)>,
    pub started_at: String,
    pub finished_at: Option<String>,
}

/// One run's folder.
#[derive(Debug, Clone)]
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn new(results: &Path, experiment: &str, run_id: &str) -> Self {
        Self {
            path: results.join(experiment).join(run_id),
        }
    }

    pub fn create(&self) -> Result<(), StoreError> {
        std::fs::create_dir_all(&self.path).map_err(|source| StoreError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Removes temporary files that a killed writer left behind (only ever called while
    /// holding the run's lock, so no live writer owns them).
    pub fn remove_stale_temp_files(&self) {
        let Ok(entries) = std::fs::read_dir(&self.path) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".tmp") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    pub fn write_text(&self, name: &str, text: &str) -> Result<(), StoreError> {
        write_atomic(&self.file(name), |f| f.write_all(text.as_bytes()))
    }

    pub fn write_manifest(&self, m: &Manifest) -> Result<(), StoreError> {
        let json = serde_json::to_string_pretty(m).expect("manifest serialises");
        self.write_text("manifest.json", &(json + "\n"))
    }

    pub fn read_manifest(&self) -> Result<Manifest, StoreError> {
        read_manifest(&self.file("manifest.json"))
    }

    pub fn write_parquet(&self, name: &str, df: &mut DataFrame) -> Result<(), StoreError> {
        let path = self.file(name);
        let mut err = None;
        write_atomic(&path, |f| {
            ParquetWriter::new(f).finish(df).map(|_| ()).map_err(|e| {
                err = Some(e);
                std::io::Error::other("parquet")
            })
        })
        .map_err(|e| match err.take() {
            Some(source) => StoreError::Polars {
                path: path.clone(),
                source,
            },
            None => e,
        })
    }
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
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        write(&mut f)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(io(e));
    }
    Ok(())
}

/// The project folder a run belongs to: the nearest ancestor with `pipeline/defaults.toml`.
pub fn project_of(run_dir: &Path) -> Option<PathBuf> {
    let abs = std::fs::canonicalize(run_dir).ok()?;
    abs.ancestors()
        .find(|d| d.join("pipeline/defaults.toml").is_file())
        .map(Path::to_path_buf)
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

/// Exclusive ownership of a run folder by one process: a `lock` file holding its pid, created
/// with `create_new` so two runners cannot both take it. A lock left by a process that no
/// longer exists (a runner killed with SIGKILL) is stale and taken over.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// `Ok(None)` when a live process holds the run.
    pub fn acquire(dir: &RunDir) -> Result<Option<Self>, StoreError> {
        let path = dir.file("lock");
        for _ in 0..3 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(std::process::id().to_string().as_bytes())
                        .map_err(|source| StoreError::Io {
                            path: path.clone(),
                            source,
                        })?;
                    return Ok(Some(Self { path }));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|s| s.trim().parse::<u32>().ok());
                    match holder {
                        Some(pid) if pid != std::process::id() && process_alive(pid) => {
                            tracing::info!(
                                "{} is being trained by process {pid}: moving on",
                                dir.path.display()
                            );
                            return Ok(None);
                        }
                        // stale (or half-written by a process killed mid-write): take it over
                        _ => {
                            let _ = std::fs::remove_file(&path);
                        }
                    }
                }
                Err(source) => return Err(StoreError::Io { path, source }),
            }
        }
        Ok(None)
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

fn process_alive(pid: u32) -> bool {
    let proc = Path::new("/proc");
    if proc.is_dir() {
        // a zombie (killed, not yet reaped) holds nothing
        return std::fs::read_to_string(proc.join(pid.to_string()).join("stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false);
    }
    // without /proc, assume the holder lives: never train a run twice at once
    true
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn a_second_lock_fails_while_the_first_lives_and_stale_locks_are_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir {
            path: dir.path().to_path_buf(),
        };
        let first = RunLock::acquire(&run).unwrap().unwrap();
        // our own pid counts as stale for ourselves, so fake a live holder: pid 1 always exists
        std::fs::write(run.file("lock"), "1").unwrap();
        assert!(RunLock::acquire(&run).unwrap().is_none());
        std::fs::write(run.file("lock"), "4294967").unwrap(); // no such process
        let second = RunLock::acquire(&run).unwrap();
        assert!(second.is_some());
        drop(second);
        assert!(!run.file("lock").exists());
        std::mem::forget(first);
    }
}
