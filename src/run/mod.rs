//! Executes an expanded sweep: for each planned run, build its data, model and batch source,
//! train it with the generic loop, and record everything under `results/<experiment>/<run_id>/`.

mod cache;
mod identity;
mod model;
mod progress;
pub mod provenance;
mod record;
pub mod reproduce;
mod sources;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use cache::{FeatureCache, Lookup};
pub use identity::Identities;
pub use progress::Progress;
pub use sources::{Extractor, FeatureSet, FeatureSource, ImageSource};

pub use record::RunReport;
use record::{previous_done, Record};

use crate::results::store::RunLock;

use crate::results::schema::{self, ParamValue, RunKey};
use crate::results::store::{Manifest, RunDir, Status};
use crate::setup;
use crate::spec::expand::{self, PlannedRun};
use crate::spec::{Experiment, RunSpec};
use crate::train::{Outcome, TrainError};

/// How to execute a sweep.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The results root: runs go to `<results>/<experiment>/<run_id>/`.
    pub results: PathBuf,
    /// Train runs whose status is already `done` again.
    pub rerun: bool,
    /// Show a progress bar (stderr is a terminal).
    pub progress: bool,
}

/// The swept parameters of a run, typed by the resolved spec field they set (so λ is a float
/// column in every run even when the sweep wrote `0`).
pub fn swept_values(run: &PlannedRun) -> Vec<(String, ParamValue)> {
    let resolved = toml::Value::try_from(&run.spec).ok();
    run.swept
        .iter()
        .map(|(key, raw)| {
            let typed = resolved
                .as_ref()
                .and_then(|v| key.split('.').try_fold(v, |v, k| v.get(k)));
            (key.clone(), ParamValue::from_toml(typed.unwrap_or(raw)))
        })
        .collect()
}

/// Runs every planned run in order; a failing or diverging run is recorded and the sweep
/// goes on.
pub fn run_sweep(exp: &Experiment, runs: &[PlannedRun], opts: &RunOptions) -> Vec<RunReport> {
    let mut ids = Identities::default();
    let cache_dir = |spec: &RunSpec| {
        spec.cache
            .dir
            .clone()
            .unwrap_or_else(|| opts.results.join(".cache"))
    };
    let mut caches: HashMap<PathBuf, FeatureCache> = HashMap::new();
    let mut reports = Vec::new();
    for run in runs {
        let started = Instant::now();
        let swept = swept_values(run);
        let label = swept
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let head = format!(
            "run {}/{}{}",
            run.index + 1,
            runs.len(),
            if label.is_empty() {
                String::new()
            } else {
                format!(" [{label}]")
            }
        );
        let cache = caches
            .entry(cache_dir(&run.spec))
            .or_insert_with_key(|d| FeatureCache::new(d.clone()));
        let report = match execute(exp, run, &swept, &head, opts, &mut ids, cache) {
            Ok(r) => r,
            Err((run_id, dir, TrainError::Locked)) => RunReport {
                index: run.index,
                run_id,
                dir,
                swept: swept.clone(),
                status: Status::Running,
                best: None,
                last: None,
                seconds: 0.0,
                error: None,
                reused: false,
            },
            Err((run_id, dir, e)) => {
                tracing::error!("{head}: failed: {e}");
                RunReport {
                    index: run.index,
                    run_id,
                    dir,
                    swept: swept.clone(),
                    status: Status::Failed,
                    best: None,
                    last: None,
                    seconds: started.elapsed().as_secs_f64(),
                    error: Some(e.to_string()),
                    reused: false,
                }
            }
        };
        reports.push(report);
    }
    reports
}

type RunFailure = (String, PathBuf, TrainError);

fn execute(
    exp: &Experiment,
    run: &PlannedRun,
    swept: &[(String, ParamValue)],
    head: &str,
    opts: &RunOptions,
    ids: &mut Identities,
    cache: &mut FeatureCache,
) -> Result<RunReport, RunFailure> {
    let started = Instant::now();
    let spec = &run.spec;
    let fail = |id: &str, dir: &Path| {
        let (id, dir) = (id.to_string(), dir.to_path_buf());
        move |e: TrainError| (id.clone(), dir.clone(), e)
    };
    let t0 = Instant::now();
    let (folder, data_fp) = ids
        .dataset(spec)
        .map_err(|e| fail("-", Path::new("-"))(e.into()))?;
    let weights_hash = ids
        .weights(spec)
        .map_err(|e| fail("-", Path::new("-"))(e.into()))?;
    let run_id = ids
        .run_id(spec)
        .map_err(|e| fail("-", Path::new("-"))(e.into()))?;
    let identify_secs = t0.elapsed().as_secs_f64();
    let dir = RunDir::new(&opts.results, &spec.experiment.name, &run_id);
    let fail = fail(&run_id, &dir.path);

    if !opts.rerun {
        if let Some(done) = previous_done(&dir, swept, run) {
            tracing::info!("{head}: {run_id} already done, skipping (--rerun to train it again)");
            return Ok(done);
        }
    }
    dir.create()
        .map_err(|e| fail(TrainError::Store(e.to_string())))?;
    let Some(_lock) = RunLock::acquire(&dir).map_err(|e| fail(TrainError::Store(e.to_string())))?
    else {
        return Err(fail(TrainError::Locked));
    };
    dir.remove_stale_temp_files();
    // an interrupted earlier invocation left epochs behind: keep them for resuming
    let previous = dir.read_manifest().ok();
    // --rerun starts over; otherwise the epochs of an unfinished earlier invocation are kept
    let prior_rows = match &previous {
        Some(m) if m.status != Status::Done && !opts.rerun => {
            schema::read_epochs(&dir.file("metrics.parquet"), &m.classes).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    if opts.rerun {
        let _ = std::fs::remove_file(dir.file(CHECKPOINT));
    }
    dir.write_text("spec.toml", &spec.to_toml())
        .map_err(|e| fail(TrainError::Store(e.to_string())))?;
    let (git_commit, git_dirty) =
        provenance::git_state(exp.source.parent().unwrap_or(Path::new(".")));
    let mut manifest = Manifest {
        experiment: spec.experiment.name.clone(),
        run_id: run_id.clone(),
        index: run.index,
        swept: swept.to_vec(),
        spec_hash: expand::run_id(spec, ""),
        dataset_fingerprint: data_fp.clone(),
        weights_hash: weights_hash.clone(),
        seed: spec.experiment.seed,
        status: Status::Running,
        epochs_done: prior_rows.len(),
        epochs: spec.train.epochs as usize,
        diverged_epoch: None,
        error: None,
        classes: folder.classes.clone(),
        device: "cpu".into(),
        threads: rayon::current_num_threads(),
        git_commit,
        git_dirty,
        runner_version: env!("CARGO_PKG_VERSION").into(),
        crate_versions: provenance::crate_versions(),
        started_at: previous
            .as_ref()
            .map(|m| m.started_at.clone())
            .unwrap_or_else(provenance::now_utc),
        finished_at: None,
    };
    manifest
        .crate_versions
        .push(("rustc".into(), provenance::rustc_version().into()));
    dir.write_manifest(&manifest)
        .map_err(|e| fail(TrainError::Store(e.to_string())))?;

    let key = RunKey {
        experiment: &spec.experiment.name,
        run_id: &run_id,
        swept,
        classes: &folder.classes,
    };
    let cfg = setup::fit_config(spec, folder.num_classes());
    let progress = Progress::new(opts.progress, head, cfg.epochs);
    let mut rec = Record {
        dir: &dir,
        key: &key,
        manifest,
        rows: prior_rows,
        progress: &progress,
        epochs: cfg.epochs,
        stages: vec![("identify", identify_secs)],
    };
    let paths = model::Paths {
        checkpoint: &dir.file(CHECKPOINT),
        model: &dir.file("model.safetensors"),
    };
    let hashes = model::Hashes {
        dataset: &data_fp,
        weights: weights_hash.as_deref(),
    };
    let result = model::train(
        spec, &folder, &hashes, &cfg, cache, &progress, &paths, &mut rec,
    );
    progress.finish();
    let Record {
        mut manifest,
        rows,
        stages,
        ..
    } = rec;
    let other = started.elapsed().as_secs_f64() - stages.iter().map(|(_, s)| s).sum::<f64>();
    tracing::info!(
        "{head}: time by stage: {}, other {other:.2}s",
        stages
            .iter()
            .map(|(n, s)| format!("{n} {s:.2}s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    manifest.finished_at = Some(provenance::now_utc());
    let (status, error) = match &result {
        Ok(Outcome::Done) => (Status::Done, None),
        Ok(Outcome::Diverged { epoch }) => {
            manifest.diverged_epoch = Some(*epoch);
            tracing::warn!("{head}: diverged in epoch {epoch} (non-finite loss)");
            (Status::Diverged, None)
        }
        Err(e) => (Status::Failed, Some(e.to_string())),
    };
    if let Some(best) = schema::best_epoch(&rows).filter(|b| !b.confusion.is_empty()) {
        let write = |name: &str, df: polars::prelude::PolarsResult<polars::prelude::DataFrame>| {
            let mut df = df.map_err(|e| TrainError::Store(e.to_string()))?;
            dir.write_parquet(name, &mut df)
                .map_err(|e| TrainError::Store(e.to_string()))
        };
        write("per_class.parquet", schema::per_class_frame(&key, best)).map_err(&fail)?;
        write("confusion.parquet", schema::confusion_frame(&key, best)).map_err(&fail)?;
    }
    manifest.status = status;
    manifest.error = error.clone();
    dir.write_manifest(&manifest)
        .map_err(|e| fail(TrainError::Store(e.to_string())))?;
    if let Err(e) = result {
        return Err(fail(e));
    }
    Ok(RunReport {
        index: run.index,
        run_id,
        dir: dir.path.clone(),
        swept: swept.to_vec(),
        status,
        best: schema::best_epoch(&rows).cloned(),
        last: rows.last().cloned(),
        seconds: started.elapsed().as_secs_f64(),
        error,
        reused: false,
    })
}

/// The checkpoint file of an unfinished run.
pub const CHECKPOINT: &str = "checkpoint.safetensors";
