//! Executes an expanded sweep: for each planned run, build its data, model and batch source,
//! train it with the generic loop, and record everything under `results/<experiment>/<run_id>/`.

mod cache;
mod frozen;
mod halving;
mod life;
mod model;
pub(crate) mod plan;
mod pretrained;
mod progress;
pub(crate) mod provenance;
mod record;
pub(crate) mod reproduce;
mod resume;
mod sources;
mod test_split;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Instant;

pub(crate) use cache::FeatureCache;
pub(crate) use halving::{run_halving, HalvingError, HalvingOutcome};
pub(crate) use progress::Progress;

use life::{Identity, Opened, RunLife};
pub(crate) use record::RunReport;

use crate::results::layout::{ResultsRoot, RunDir};
use crate::results::schema::{self, ParamValue};
use crate::results::store::Status;
use crate::setup::{Resolved, ResolvedRun};
use crate::spec::expand::PlannedRun;
use crate::spec::{Experiment, RunSpec};
use crate::train::TrainError;

/// How to execute a sweep.
#[derive(Debug, Clone)]
pub(crate) struct RunOptions {
    /// The results root: runs go to `<results>/<experiment>/<run_id>/`.
    pub results: PathBuf,
    /// Train runs whose status is already `done` again.
    pub rerun: bool,
    /// Show a progress bar (stderr is a terminal).
    pub progress: bool,
    /// Train each run only up to this epoch, then pause it with its checkpoint (a
    /// successive-halving rung); `None` = to the end.
    pub pause_after: Option<usize>,
}

/// The swept parameters of a run, typed by the resolved spec field they set (so λ is a float
/// column in every run even when the sweep wrote `0`).
pub(crate) fn swept_values(run: &PlannedRun) -> Vec<(String, ParamValue)> {
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
pub(crate) fn run_sweep(
    resolved: &Resolved,
    selected: &[usize],
    opts: &RunOptions,
) -> Vec<RunReport> {
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
            // another process holds it: neither done nor failed here
            Err((run_id, dir, TrainError::Locked)) => {
                RunReport::new(run.index(), run_id, dir, swept.clone(), Status::Running)
            }
            Err((run_id, dir, e)) => {
                tracing::error!("{head}: failed: {e}");
                RunReport {
                    seconds: started.elapsed().as_secs_f64(),
                    error: Some(e.to_string()),
                    ..RunReport::new(run.index(), run_id, dir, swept.clone(), Status::Failed)
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

/// One run's life, step by step (`life.rs` owns the run's folder, lock and manifest throughout).
fn execute(
    exp: &Experiment,
    run: &ResolvedRun,
    swept: &[(String, ParamValue)],
    head: &str,
    opts: &RunOptions,
    cache: &mut FeatureCache,
) -> Result<RunReport, RunFailure> {
    let started = Instant::now();
    let id = Identity::of(run).map_err(|e| ("-".to_string(), PathBuf::from("-"), e))?;
    let dir = RunDir::new(&opts.results, &run.spec().experiment.name, &id.run_id);
    let fail = |e| (id.run_id.clone(), dir.path().to_path_buf(), e);
    let opened = RunLife::open(exp, run, &id, swept, dir.clone(), opts.rerun).map_err(fail)?;
    let mut life = match opened {
        Opened::Done(report) => {
            let run_id = &id.run_id;
            tracing::info!("{head}: {run_id} already done, skipping (--rerun to train it again)");
            return Ok(report);
        }
        Opened::Held => return Err(fail(TrainError::Locked)),
        Opened::Ready(life) => life,
    };
    let progress = Progress::new(opts.progress, head, run.fit.epochs);
    let trained = life.train(run, &id, cache, &progress, head, opts.pause_after);
    life.finish(trained, run, head, started).map_err(fail)
}
