//! `runner export mlflow`: writes runs into MLflow's file store, so that
//! `MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri DIR` (or `MlflowClient`) shows
//! them. The layout follows mlflow/store/tracking/file_store.py (checked against 3.17):
//!
//! ```text
//! DIR/<experiment_id>/meta.yaml               experiment_id, name, artifact_location, lifecycle_stage
//! DIR/<experiment_id>/<run_id>/meta.yaml      run_id, experiment_id, status, start_time, end_time, …
//! DIR/<experiment_id>/<run_id>/metrics/<key>  one "<timestamp_ms> <value> <step>" line per epoch
//! DIR/<experiment_id>/<run_id>/params/<key>   the raw value
//! DIR/<experiment_id>/<run_id>/tags/<key>     the raw value
//! DIR/<experiment_id>/<run_id>/artifacts/     (empty; MLflow only treats a folder with metrics/,
//!                                              params/ and artifacts/ as a run)
//! ```
//!
//! MLflow's run id is the runner's run id, and an experiment is found again by its name, so
//! exporting again updates the same runs in the same experiment instead of adding copies. Every
//! file goes through the atomic write of `durable`.

use std::path::{Path, PathBuf};

use super::yaml::{self, Scalar};
use crate::durable;
use crate::durable::timestamp::parse_rfc3339;
use crate::results::layout::RunDir;
use crate::results::scan::{self, Run};
use crate::results::store::Status;
use crate::results::{schema, stored_spec};
use crate::views::plot;
use crate::views::ViewError;

/// What one experiment's export did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Exported {
    pub name: String,
    pub experiment_id: String,
    /// False when the store already had an experiment of this name (its runs were updated).
    pub created: bool,
    pub runs: usize,
    pub dir: PathBuf,
}

/// MLflow's RunStatus numbers, as stored in a run's meta.yaml.
fn mlflow_status(s: Option<Status>) -> i64 {
    match s {
        Some(Status::Running) => 1,
        Some(Status::Done) => 3,
        // a diverged run stopped early on its own: FAILED, with runner.status saying why
        Some(Status::Diverged | Status::Failed) => 4,
        // stopped by Ctrl-C, resumable, or kept at a successive-halving rung: KILLED
        Some(Status::Interrupted | Status::Paused) => 5,
        None => 3,
    }
}

/// Exports the runs found under `results` (experiment folders, results folders or run folders)
/// into the MLflow file store `to`, created if missing.
/// Also returns the runs that could not be read (not exported).
pub(crate) fn export(
    results: &[String],
    to: &Path,
) -> Result<(Vec<Exported>, Vec<ViewError>), ViewError> {
    let dirs = scan::find_run_dirs(results)?;
    let scan::Loaded { runs, unreadable } = scan::load_some_runs(&dirs)?;
    let mut names: Vec<&str> = runs.iter().map(|r| r.experiment.as_str()).collect();
    names.sort();
    names.dedup();
    mkdir(to)?;
    let root = std::fs::canonicalize(to).map_err(|e| ViewError::Write {
        path: to.to_path_buf(),
        reason: e.to_string(),
    })?;
    ensure_default_experiment(&root)?;
    let mut unreadable: Vec<ViewError> = unreadable.into_iter().map(ViewError::from).collect();
    let exported = names
        .iter()
        .map(|name| {
            let of: Vec<&Run> = runs.iter().filter(|r| r.experiment == *name).collect();
            export_experiment(&root, name, &of, &mut unreadable)
        })
        .collect::<Result<_, _>>()?;
    Ok((exported, unreadable))
}

/// Exports one experiment's runs; a run with a file that cannot be read (its spec, its test
/// split's table) is left out and added to `unreadable`, as one whose metrics cannot be read.
fn export_experiment(
    root: &Path,
    name: &str,
    runs: &[&Run],
    unreadable: &mut Vec<ViewError>,
) -> Result<Exported, ViewError> {
    let (id, created) = match find_experiment(root, name)? {
        Some(id) => (id, false),
        None => (new_experiment(root, name)?, true),
    };
    let exp_dir = root.join(&id);
    let differing = plot::differing_keys(runs);
    let done = crate::durable::parallel::try_map(runs, |r| {
        match export_run(&exp_dir, &id, r, &plot::legend_label(r, &differing)) {
            Err(e @ ViewError::Read { .. }) => Ok(Some(e)),
            other => other.map(|()| None),
        }
    })?;
    let left_out: Vec<ViewError> = done.into_iter().flatten().collect();
    let exported = runs.len() - left_out.len();
    unreadable.extend(left_out);
    Ok(Exported {
        name: name.to_string(),
        experiment_id: id,
        created,
        runs: exported,
        dir: exp_dir,
    })
}

/// The id of the active experiment called `name`, if the store has one.
fn find_experiment(root: &Path, name: &str) -> Result<Option<String>, ViewError> {
    let read_err = |path: &Path, e: std::io::Error| ViewError::Read {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir(root).map_err(|e| read_err(root, e))? {
        let entry = entry.map_err(|e| read_err(root, e))?;
        let meta = entry.path().join("meta.yaml");
        // `.trash` holds deleted experiments; other folders without meta.yaml are not ours
        if entry.file_name().to_string_lossy().starts_with('.') || !meta.is_file() {
            continue;
        }
        let text = std::fs::read_to_string(&meta).map_err(|e| read_err(&meta, e))?;
        if yaml::get(&text, "name").as_deref() == Some(name)
            && yaml::get(&text, "lifecycle_stage").as_deref() != Some("deleted")
        {
            let id = yaml::get(&text, "experiment_id").ok_or_else(|| ViewError::Read {
                path: meta.clone(),
                reason: "no experiment_id".into(),
            })?;
            found.push(id);
        }
    }
    found.sort();
    match found.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(one.clone())),
        many => Err(ViewError::Read {
            path: root.to_path_buf(),
            reason: format!(
                "{} experiments are called '{name}' (ids {}); MLflow allows one",
                many.len(),
                many.join(", ")
            ),
        }),
    }
}

/// A new experiment id: MLflow's own are random 18-digit numbers; this one is derived from the
/// name (the next free number on a clash), so exporting into a fresh store twice gives the same
/// id.
fn new_experiment(root: &Path, name: &str) -> Result<String, ViewError> {
    use sha2::{Digest, Sha256};
    let h = Sha256::digest(name.as_bytes());
    let mut n = u64::from_le_bytes(h[..8].try_into().expect("8 bytes")) % 900_000_000_000_000_000
        + 100_000_000_000_000_000;
    while root.join(n.to_string()).exists() {
        n += 1;
    }
    let id = n.to_string();
    write_experiment_meta(root, &id, name)?;
    Ok(id)
}

fn write_experiment_meta(root: &Path, id: &str, name: &str) -> Result<(), ViewError> {
    let dir = root.join(id);
    mkdir(&dir)?;
    let now = now_ms();
    let meta = yaml::write(&[
        ("artifact_location", Scalar::Str(file_uri(&dir))),
        ("creation_time", Scalar::Int(now)),
        ("experiment_id", Scalar::Str(id.into())),
        ("last_update_time", Scalar::Int(now)),
        ("lifecycle_stage", Scalar::Str("active".into())),
        ("name", Scalar::Str(name.into())),
    ]);
    write(&dir.join("meta.yaml"), meta.as_bytes())
}

/// MLflow creates experiment 0, "Default", when it opens a store; do the same so that a store
/// made here looks like one MLflow made.
fn ensure_default_experiment(root: &Path) -> Result<(), ViewError> {
    if root.join("0").join("meta.yaml").is_file() {
        return Ok(());
    }
    write_experiment_meta(root, "0", "Default")
}

// Long: one run's files of the MLflow file store, written in order (metrics, test score, params,
// tags, artifacts, meta.yaml last).
fn export_run(exp_dir: &Path, exp_id: &str, run: &Run, label: &str) -> Result<(), ViewError> {
    let manifest = crate::views::manifest_of(run)?;
    let spec = stored_spec::read(&run.dir)?;
    let metrics_path = RunDir::at(&run.dir).metrics();
    let metrics = if metrics_path.is_file() {
        Some(
            schema::read_frame(&metrics_path).map_err(|e| ViewError::Read {
                path: metrics_path.clone(),
                reason: e.to_string(),
            })?,
        )
    } else {
        None
    };
    // the kept model on the test split: one value per column, at the epoch of its weights
    let test_path = RunDir::at(&run.dir).test_tables().metrics;
    let test = if test_path.is_file() {
        Some(
            schema::read_score(&test_path, "test").map_err(|e| ViewError::Read {
                path: test_path.clone(),
                reason: e.to_string(),
            })?,
        )
    } else {
        None
    };
    // every file is read: from here on only writes
    let dir = exp_dir.join(&run.run_id);
    for sub in ["metrics", "params", "tags", "artifacts"] {
        mkdir(&dir.join(sub))?;
    }

    // times: the manifest's, and each epoch stamped at the end of its training time
    let start_ms = manifest
        .as_ref()
        .and_then(|m| parse_rfc3339(&m.started_at))
        .map_or(0, |s| s as i64 * 1000);
    let seconds = metrics.as_ref().and_then(|m| {
        m.columns
            .iter()
            .find(|(k, _)| k == "epoch_seconds")
            .map(|(_, v)| v.clone())
    });
    let epoch_ms: Vec<i64> = match (&metrics, &seconds) {
        (Some(m), Some(s)) => {
            let mut t = start_ms as f64;
            s.iter()
                .take(m.epochs.len())
                .map(|x| {
                    t += if x.is_finite() { x * 1000.0 } else { 0.0 };
                    t.round() as i64
                })
                .collect()
        }
        (Some(m), None) => vec![start_ms; m.epochs.len()],
        _ => Vec::new(),
    };
    let end_ms = match manifest
        .as_ref()
        .map(|m| (m.status, m.finished_at.as_deref()))
    {
        Some((Status::Running, _)) => None,
        Some((_, Some(f))) => parse_rfc3339(f).map(|s| s as i64 * 1000),
        _ => Some(epoch_ms.last().copied().unwrap_or(start_ms)),
    };

    if let Some(m) = &metrics {
        for (key, values) in &m.columns {
            let mut text = String::new();
            for ((step, v), ts) in m.epochs.iter().zip(values).zip(&epoch_ms) {
                text.push_str(&format!("{ts} {v} {step}\n"));
            }
            write(&dir.join("metrics").join(key), text.as_bytes())?;
        }
    }

    if let Some((step, values)) = test {
        let ts = end_ms.unwrap_or(start_ms);
        for (key, v) in values {
            write(
                &dir.join("metrics").join(key),
                format!("{ts} {v} {step}\n").as_bytes(),
            )?;
        }
    }

    // every resolved spec key; the swept values alone for a run without spec.toml
    let params: Vec<(String, String)> = match &spec {
        Some(s) => s.keys.clone(),
        None => run
            .params
            .iter()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect(),
    };
    for (k, v) in &params {
        write(&dir.join("params").join(k), v.as_bytes())?;
    }

    let mut tags: Vec<(&str, String)> = vec![
        ("mlflow.runName", label.to_string()),
        ("runner.run_id", run.run_id.clone()),
        ("runner.status", run.status_str().to_string()),
        ("runner.results_dir", run.dir.display().to_string()),
    ];
    if let Some(halted) = run.halted {
        // a stopped point reads as such in MLflow's run list, and filters by rung
        tags.push(("runner.halving", halted.to_string()));
        tags.push(("runner.halving.rung", halted.rung.to_string()));
        tags.push(("runner.halving.epoch", halted.epoch.to_string()));
    }
    if let Some(m) = &manifest {
        if let Some(c) = &m.git_commit {
            tags.push(("mlflow.source.git.commit", c.clone()));
        }
        if let Some(d) = m.git_dirty {
            tags.push(("runner.git_dirty", d.to_string()));
        }
        tags.push(("runner.device", m.device.clone()));
        tags.push(("runner.version", m.runner_version.clone()));
        if let Some(e) = &m.error {
            tags.push(("runner.error", e.clone()));
        }
        if let Some(t) = &m.test {
            tags.push((
                "runner.test_model",
                format!("{} (epoch {})", t.model, t.epoch),
            ));
        }
    }
    for (k, v) in &tags {
        write(&dir.join("tags").join(k), v.as_bytes())?;
    }
    if run.halted.is_none() {
        // exported earlier while stopped, trained on since: the mark no longer holds
        for k in [
            "runner.halving",
            "runner.halving.rung",
            "runner.halving.epoch",
        ] {
            let _ = std::fs::remove_file(dir.join("tags").join(k));
        }
    }

    let user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let meta = yaml::write(&[
        (
            "artifact_uri",
            Scalar::Str(file_uri(&dir.join("artifacts"))),
        ),
        ("end_time", end_ms.map_or(Scalar::Null, Scalar::Int)),
        ("entry_point_name", Scalar::Str(String::new())),
        ("experiment_id", Scalar::Str(exp_id.into())),
        ("lifecycle_stage", Scalar::Str("active".into())),
        ("run_id", Scalar::Str(run.run_id.clone())),
        ("run_name", Scalar::Str(label.to_string())),
        // older MLflow versions read the id from run_uuid
        ("run_uuid", Scalar::Str(run.run_id.clone())),
        ("source_name", Scalar::Str(String::new())),
        ("source_type", Scalar::Int(4)),
        ("source_version", Scalar::Str(String::new())),
        ("start_time", Scalar::Int(start_ms)),
        ("status", Scalar::Int(mlflow_status(run.status))),
        ("tags", Scalar::EmptyList),
        ("user_id", Scalar::Str(user)),
    ]);
    // meta.yaml last: a run MLflow can list has all its files
    write(&dir.join("meta.yaml"), meta.as_bytes())
}

fn file_uri(path: &Path) -> String {
    format!("file://{}", path.display())
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

fn mkdir(dir: &Path) -> Result<(), ViewError> {
    std::fs::create_dir_all(dir).map_err(|e| ViewError::Write {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), ViewError> {
    Ok(durable::write_file(path, bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::results::schema::ParamValue;
    use crate::testing::{write_run, SyntheticRun};

    fn sweep(results: &Path) {
        for (lambda, status) in [(0.0, Status::Done), (0.1, Status::Diverged)] {
            write_run(
                results,
                &SyntheticRun {
                    experiment: "sweep".into(),
                    swept: vec![("regularization.lambda".into(), ParamValue::Float(lambda))],
                    classes: vec!["cat".into(), "dog".into()],
                    epochs: 4,
                    status,
                    per_class: false,
                },
            )
            .unwrap();
        }
    }

    #[test]
    fn writes_the_file_store_layout_and_updates_it_in_place() {
        let tmp = tempfile::tempdir().unwrap();
        let results = tmp.path().join("results");
        sweep(&results);
        let to = tmp.path().join("mlruns");
        let inputs = vec![results.join("sweep").display().to_string()];
        let (first, unreadable) = export(&inputs, &to).unwrap();
        assert!(unreadable.is_empty(), "{unreadable:?}");
        assert_eq!(first.len(), 1);
        assert!(first[0].created);
        let (again, _) = export(&inputs, &to).unwrap();
        assert!(!again[0].created);
        assert_eq!(again[0].experiment_id, first[0].experiment_id);
        let exp = to.join(&first[0].experiment_id);
        let meta = std::fs::read_to_string(exp.join("meta.yaml")).unwrap();
        assert_eq!(yaml::get(&meta, "name").as_deref(), Some("sweep"));
        assert!(to.join("0/meta.yaml").is_file());
        let mut run_dirs: Vec<PathBuf> = std::fs::read_dir(&exp)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.is_dir())
            .collect();
        run_dirs.sort();
        assert_eq!(run_dirs.len(), 2, "re-export must not add runs");
        let statuses: Vec<String> = run_dirs
            .iter()
            .map(|d| {
                let m = std::fs::read_to_string(d.join("meta.yaml")).unwrap();
                assert!(d.join("artifacts").is_dir());
                yaml::get(&m, "status").unwrap()
            })
            .collect();
        assert!(statuses.contains(&"3".into()) && statuses.contains(&"4".into()));
        // a diverged run records epochs/2 = 2 epochs, stamped after 1.5 s each
        let diverged = run_dirs
            .iter()
            .find(|d| std::fs::read_to_string(d.join("tags/runner.status")).unwrap() == "diverged")
            .unwrap();
        let lines = std::fs::read_to_string(diverged.join("metrics/val_acc.cat")).unwrap();
        let start = parse_rfc3339("2026-01-01T00:00:00Z").unwrap() as i64 * 1000;
        let parsed: Vec<(i64, i64)> = lines
            .lines()
            .map(|l| {
                let p: Vec<&str> = l.split(' ').collect();
                (p[0].parse().unwrap(), p[2].parse().unwrap())
            })
            .collect();
        assert_eq!(parsed, vec![(start + 1500, 1), (start + 3000, 2)]);
        assert_eq!(
            std::fs::read_to_string(diverged.join("params/regularization.lambda")).unwrap(),
            "0.1"
        );
        assert_eq!(
            std::fs::read_to_string(diverged.join("tags/mlflow.runName")).unwrap(),
            "lambda=0.1"
        );
    }
}
