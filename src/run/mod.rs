//! Executes an expanded sweep: for each planned run, build its data, model and batch source,
//! train it with the generic loop, and record everything under `results/<experiment>/<run_id>/`.

mod cache;
mod model;
mod progress;
pub mod provenance;
mod record;
pub mod reproduce;
mod sources;
mod test_split;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use cache::{FeatureCache, Lookup};
pub use progress::Progress;
pub use sources::{Extractor, FeatureSet, FeatureSource, ImageSource};

pub use record::RunReport;
use record::{previous_done, Record};

use crate::results::store::RunLock;

use crate::results::layout::{ResultsRoot, RunDir};
use crate::results::schema::{self, ParamValue, RunKey};
use crate::results::store::{Manifest, Status};
use crate::setup::{Resolved, ResolvedRun};
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

/// Runs the resolved runs at positions `selected` (every run of the sweep, or those `--index`
/// or `--shard` chose) in order; a failing or diverging run is recorded and the sweep goes on.
pub fn run_sweep(resolved: &Resolved, selected: &[usize], opts: &RunOptions) -> Vec<RunReport> {
    let exp = resolved.exp;
    let runs: Vec<&ResolvedRun> = selected.iter().map(|&i| &resolved.runs[i]).collect();
    let cache_dir = |spec: &RunSpec| {
        spec.cache
            .dir
            .clone()
            .unwrap_or_else(|| ResultsRoot::new(&opts.results).cache())
    };
    let mut caches: HashMap<PathBuf, FeatureCache> = HashMap::new();
    let mut reports = Vec::new();
    // `runs` may be a selection (`--index`, `--shard`): number them within the whole sweep,
    // and give each swept key one column type across the whole sweep (item: bool and string
    // values of one key become strings in every run, whichever runs this invocation trains)
    let total: usize = exp.sweep.axes.iter().map(|a| a.len()).product();
    let mut swept_all: Vec<Vec<(String, ParamValue)>> = exp
        .runs
        .iter()
        .chain(runs.iter().map(|r| r.planned))
        .map(swept_values)
        .collect();
    schema::unify_types(&mut swept_all);
    let selected = swept_all.split_off(exp.runs.len());
    for (run, swept) in runs.iter().zip(selected) {
        if crate::train::interrupt::requested() {
            break;
        }
        let started = Instant::now();
        let label = swept
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(" ");
        let head = format!(
            "run {}/{}{}",
            run.index() + 1,
            total,
            if label.is_empty() {
                String::new()
            } else {
                format!(" [{label}]")
            }
        );
        let cache = caches
            .entry(cache_dir(run.spec()))
            .or_insert_with_key(|d| FeatureCache::new(d.clone()));
        let report = match execute(exp, run, &swept, &head, opts, cache) {
            Ok(r) => r,
            Err((run_id, dir, TrainError::Locked)) => RunReport {
                index: run.index(),
                run_id,
                dir,
                swept: swept.clone(),
                status: Status::Running,
                best: None,
                last: None,
                test: None,
                seconds: 0.0,
                error: None,
                reused: false,
                stages: Vec::new(),
            },
            Err((run_id, dir, e)) => {
                tracing::error!("{head}: failed: {e}");
                RunReport {
                    index: run.index(),
                    run_id,
                    dir,
                    swept: swept.clone(),
                    status: Status::Failed,
                    best: None,
                    last: None,
                    test: None,
                    seconds: started.elapsed().as_secs_f64(),
                    error: Some(e.to_string()),
                    reused: false,
                    stages: Vec::new(),
                }
            }
        };
        let stop = report.status == Status::Interrupted;
        reports.push(report);
        if stop {
            break;
        }
    }
    reports
}

type RunFailure = (String, PathBuf, TrainError);

fn execute(
    exp: &Experiment,
    run: &ResolvedRun,
    swept: &[(String, ParamValue)],
    head: &str,
    opts: &RunOptions,
    cache: &mut FeatureCache,
) -> Result<RunReport, RunFailure> {
    let started = Instant::now();
    let spec = run.spec();
    let fail = |id: &str, dir: &Path| {
        let (id, dir) = (id.to_string(), dir.to_path_buf());
        move |e: TrainError| (id.clone(), dir.clone(), e)
    };
    let t0 = Instant::now();
    let folder = &run.dataset.folder;
    let data_fp = run
        .dataset
        .fingerprint()
        .map_err(|e| fail("-", Path::new("-"))(e.into()))?;
    let weights_hash = run.weights.as_ref().map(|w| w.sha256.clone());
    let run_id = run
        .run_id()
        .map_err(|e| fail("-", Path::new("-"))(e.into()))?;
    let identify_secs = t0.elapsed().as_secs_f64();
    let dir = RunDir::new(&opts.results, &spec.experiment.name, &run_id);
    let fail = fail(&run_id, dir.path());

    if !opts.rerun {
        if let Some(done) = previous_done(&dir, swept, run.planned) {
            tracing::info!("{head}: {run_id} already done, skipping (--rerun to train it again)");
            return Ok(done);
        }
    }
    dir.create().map_err(|e| fail(e.into()))?;
    let Some(_lock) = RunLock::acquire(&dir).map_err(|e| fail(e.into()))? else {
        return Err(fail(TrainError::Locked));
    };
    dir.remove_stale_temp_files();
    crate::durable::lock::remove_orphaned_private_files(dir.path());
    // an interrupted earlier invocation left epochs behind: keep them for resuming
    let previous = dir.read_manifest().ok();
    // --rerun starts over; otherwise the epochs of an unfinished earlier invocation are kept
    let prior_rows = match &previous {
        Some(m) if m.status != Status::Done && !opts.rerun => {
            schema::read_epochs(&dir.metrics(), &m.classes).unwrap_or_default()
        }
        _ => Vec::new(),
    };
    if opts.rerun {
        let _ = std::fs::remove_file(dir.checkpoint());
        let _ = std::fs::remove_file(dir.best_weights());
    }
    crate::durable::write_text(&dir.spec(), &spec.to_toml()).map_err(|e| fail(e.into()))?;
    let (git_commit, git_dirty) =
        provenance::git_state(exp.source.parent().unwrap_or(Path::new(".")));
    let mut manifest = Manifest {
        experiment: spec.experiment.name.clone(),
        run_id: run_id.clone(),
        index: run.index(),
        swept: swept.to_vec(),
        spec_hash: expand::run_id(spec, ""),
        dataset_fingerprint: data_fp.clone(),
        weights_hash: weights_hash.clone(),
        seed: spec.experiment.seed,
        status: Status::Running,
        epochs_done: prior_rows.len(),
        epochs: spec.train.epochs as usize,
        diverged_epoch: None,
        skipped_images: 0,
        stopped_early: None,
        test: None,
        error: None,
        classes: folder.classes.clone(),
        device: "cpu".into(),
        engine: Some(crate::ops::engine::describe_current()),
        threads: rayon::current_num_threads(),
        git_commit,
        git_dirty,
        runner_version: env!("CARGO_PKG_VERSION").into(),
        crate_versions: provenance::crate_versions(),
        started_at: previous
            .as_ref()
            .map(|m| m.started_at.clone())
            .unwrap_or_else(crate::durable::timestamp::now_utc),
        finished_at: None,
        host: Some(crate::durable::hostname()),
        pid: Some(std::process::id()),
        task: crate::durable::lock::task_name(),
    };
    manifest
        .crate_versions
        .push(("rustc".into(), provenance::rustc_version().into()));
    dir.write_manifest(&manifest).map_err(|e| fail(e.into()))?;

    let key = RunKey {
        experiment: &spec.experiment.name,
        run_id: &run_id,
        swept,
        classes: &folder.classes,
    };
    let cfg = &run.fit;
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
        checkpoint: &dir.checkpoint(),
        model: &dir.model(),
        best: &dir.best_weights(),
    };
    let result = model::train(run, &data_fp, cache, &progress, &paths, &mut rec);
    progress.finish();
    let Record {
        mut manifest,
        rows,
        stages,
        ..
    } = rec;
    let result = match result {
        Ok(outcome @ (Outcome::Done | Outcome::Stopped(_))) => {
            test_split::score(run, &dir, &mut manifest, &rows, head).map(|()| outcome)
        }
        other => other,
    };
    let other = started.elapsed().as_secs_f64() - stages.iter().map(|(_, s)| s).sum::<f64>();
    tracing::info!(
        "{head}: time by stage: {}, other {other:.2}s",
        stages
            .iter()
            .map(|(n, s)| format!("{n} {s:.2}s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    manifest.finished_at = Some(crate::durable::timestamp::now_utc());
    let (status, error) = match &result {
        Ok(Outcome::Done) => (Status::Done, None),
        Ok(Outcome::Interrupted { epoch }) => {
            tracing::warn!(
                "{head}: interrupted in epoch {epoch}; the next invocation resumes after epoch {}",
                epoch - 1
            );
            (Status::Interrupted, None)
        }
        Ok(Outcome::Stopped(stopped)) => {
            tracing::info!(
                "{head}: stopped early after epoch {}: {}",
                stopped.epoch,
                stopped.reason
            );
            manifest.stopped_early = Some(crate::results::store::StoppedEarly {
                epoch: stopped.epoch,
                best_epoch: stopped.best_epoch,
                reason: stopped.reason.clone(),
                restored_best: cfg.early_stopping.as_ref().is_some_and(|e| e.restore_best),
            });
            (Status::Done, None)
        }
        Ok(Outcome::Diverged { epoch }) => {
            manifest.diverged_epoch = Some(*epoch);
            tracing::warn!("{head}: diverged in epoch {epoch} (non-finite loss)");
            (Status::Diverged, None)
        }
        Err(e) => (Status::Failed, Some(e.to_string())),
    };
    manifest.status = status;
    manifest.error = error.clone();
    let manifest_test = manifest.test.clone();
    // the final manifest and the removal of the checkpoints belong together
    let _whole = crate::durable::exit_guard::ExitGuard::hold();
    let written = dir.write_manifest(&manifest).map_err(TrainError::from);
    // The first failure is the cause (a full disk fails every later write too): report it.
    if let Some(e) = result.err().or(written.err()) {
        return Err(fail(e));
    }
    if status == Status::Done {
        // everything of the run is recorded: its checkpoints are no longer needed
        let _ = std::fs::remove_file(dir.checkpoint());
        let _ = std::fs::remove_file(dir.best_weights());
    }
    Ok(RunReport {
        index: run.index(),
        run_id,
        dir: dir.path().to_path_buf(),
        swept: swept.to_vec(),
        status,
        best: schema::best_epoch(&rows).cloned(),
        last: rows.last().cloned(),
        test: manifest_test,
        seconds: started.elapsed().as_secs_f64(),
        error,
        reused: false,
        stages,
    })
}
