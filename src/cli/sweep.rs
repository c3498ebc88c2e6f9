//! `runner run`, `check`, `plan` and `reproduce`: the commands that read a spec, plan its sweep
//! and train it.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;

use super::sweep_table;
use super::Failure;
use crate::results::layout::ResultsRoot;
use crate::results::plan::ExperimentPlan;
use crate::results::store::Status;
use crate::run::{self, RunOptions};
use crate::setup::Resolved;
use crate::spec::expand;
use crate::spec::{self, LoadOptions};

#[derive(Debug, Args)]
pub(super) struct SpecArgs {
    /// The experiment spec (TOML).
    pub(super) spec: PathBuf,
    /// Override a key of the spec: `--set regularization.lambda=0.01` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub(super) overrides: Vec<String>,
    /// The folder of presets named in `use` (default: the nearest `pipeline/` above the spec).
    #[arg(long, value_name = "DIR")]
    pub(super) pipeline: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct RunArgs {
    #[command(flatten)]
    pub(super) spec: SpecArgs,
    /// Where results go: `<DIR>/<experiment>/<run_id>/`.
    #[arg(long, default_value = "results", value_name = "DIR")]
    pub(super) results: PathBuf,
    /// Train runs again even when their results are complete.
    #[arg(long)]
    pub(super) rerun: bool,
    /// Train only sweep point I (numbered from 1, as `runner plan` prints), or `env`: the index
    /// from SLURM_ARRAY_TASK_ID, else JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs, from 0).
    #[arg(long, value_name = "I|env", conflicts_with = "shard")]
    pub(super) index: Option<spec::select::Selection>,
    /// Train every N-th sweep point starting at I (`--shard 2/4`: points 2, 6, 10, …).
    #[arg(long, value_name = "I/N", value_parser = spec::select::parse_shard)]
    pub(super) shard: Option<spec::select::Selection>,
}

#[derive(Debug, Args)]
pub(super) struct ReproduceArgs {
    /// A run's folder: `results/<experiment>/<run_id>`.
    pub(super) run: PathBuf,
    /// Largest absolute difference allowed per metric value (timings are not compared).
    #[arg(long, default_value_t = 1e-5)]
    pub(super) tolerance: f64,
    /// The project folder the run's relative paths refer to (default: found from the run folder).
    #[arg(long, value_name = "DIR")]
    pub(super) project: Option<PathBuf>,
}

/// Loads the spec (its warnings are printed by [`resolve`]).
pub(super) fn load(a: &SpecArgs) -> Result<spec::Experiment, Failure> {
    super::failure::given(&a.spec, "spec file")?;
    if let Some(dir) = &a.pipeline {
        super::failure::given_folder(dir, "--pipeline folder")?;
    }
    let opts = LoadOptions {
        overrides: a.overrides.clone(),
        pipeline_dir: a.pipeline.clone(),
    };
    Ok(spec::load(&a.spec, &opts)?)
}

/// Opens what the experiment's runs name (datasets, weights), checked, and prints every
/// warning of the spec and of what it names, each once (a base warning repeats in every run).
pub(super) fn resolve(exp: &spec::Experiment) -> Result<Resolved<'_>, Failure> {
    let resolved = Resolved::new(exp)?;
    let mut seen = std::collections::HashSet::new();
    for w in exp
        .warnings
        .iter()
        .chain(exp.runs.iter().flat_map(|r| &r.warnings))
        .chain(&resolved.warnings)
    {
        if seen.insert(w) {
            eprintln!("{w}");
        }
    }
    Ok(resolved)
}

/// Every run's id, in plan order.
fn run_ids(resolved: &Resolved) -> Result<Vec<String>, Failure> {
    resolved
        .runs
        .iter()
        .map(|r| r.run_id())
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::Spec(format!("error: {e}")))
}

pub(super) fn cmd_check(a: SpecArgs) -> Result<(), Failure> {
    let exp = load(&a)?;
    let runs = resolve(&exp)?.runs.len();
    println!(
        "{}: ok ({} run{})",
        a.spec.display(),
        runs,
        if runs == 1 { "" } else { "s" }
    );
    Ok(())
}

pub(super) fn cmd_plan(a: SpecArgs) -> Result<(), Failure> {
    let exp = load(&a)?;
    let ids = run_ids(&resolve(&exp)?)?;
    print!("{}", expand::render(&exp, &exp.runs, &ids));
    Ok(())
}

/// Computes every run id and records the plan under `results`.
pub(super) fn plan(
    exp: &spec::Experiment,
    resolved: &Resolved,
    a: &SpecArgs,
    results: &Path,
) -> Result<ExperimentPlan, Failure> {
    let plan = run::plan::of(exp, &run_ids(resolved)?, &a.overrides);
    plan.write(results).map_err(Failure::failed)?;
    Ok(plan)
}

pub(super) fn cmd_run(a: RunArgs) -> Result<(), Failure> {
    let start = Instant::now();
    let exp = load(&a.spec)?;
    let resolved = resolve(&exp)?;
    // the arguments first: a command that fails on them writes nothing
    let mut selected: Vec<usize> = (0..resolved.runs.len()).collect();
    if let Some(sel) = a.index.as_ref().or(a.shard.as_ref()) {
        let (picked, said) = spec::select::resolve(sel, selected.len(), |k| std::env::var(k).ok())
            .map_err(Failure::Usage)?;
        if let Some(said) = said {
            tracing::info!("{said}");
        }
        selected.retain(|i| picked.contains(i));
    }
    refuse_unsupported_precision(&a.spec.spec, &resolved, &selected)?;
    let plan = run::plan::of(&exp, &run_ids(&resolved)?, &a.spec.overrides);
    run::plan::record_or_warn(&plan, &a.results);
    tracing::info!(
        "{}: {} run(s), results in {}",
        exp.name,
        selected.len(),
        ResultsRoot::new(&a.results)
            .experiment(&exp.name)
            .path()
            .display()
    );
    announce_engine()?;
    let opts = RunOptions {
        results: a.results,
        rerun: a.rerun,
        progress: std::io::stderr().is_terminal(),
        pause_after: None,
    };
    if let Err(e) = crate::train::interrupt::install() {
        tracing::warn!("cannot handle Ctrl-C ({e}): it stops the runner at once");
    }
    let task = a.index.is_some() || a.shard.is_some();
    let Some(halving) = &exp.sweep.halving else {
        let reports = run::run_sweep(&resolved, &selected, &opts);
        return summarise(&exp, &reports, selected.len(), start);
    };
    let outcome = run::run_halving(&resolved, halving, &opts, &selected).map_err(|e| match e {
        run::HalvingError::Mismatch { .. } => Failure::Input(e.to_string()),
        other => Failure::failed(other),
    })?;
    let summary = summarise(&exp, &outcome.reports, selected.len(), start);
    if task {
        say_where_halving_left(&a.spec.spec, &outcome, &selected);
    }
    summary
}

/// What an `--index` / `--shard` task of a halving sweep did with its points: stopped by a
/// decision, or waiting at a rung for the other points (both exit 0: the task did its part).
fn say_where_halving_left(spec: &Path, outcome: &run::HalvingOutcome, selected: &[usize]) {
    let numbers = |runs: &mut dyn Iterator<Item = usize>| {
        let n: Vec<String> = runs.map(|i| (i + 1).to_string()).collect();
        format!(
            "point{} {}",
            if n.len() == 1 { "" } else { "s" },
            n.join(", ")
        )
    };
    for r in outcome.reports.iter().filter(|r| r.halted.is_some()) {
        let halted = r.halted.expect("filtered");
        println!(
            "{} ({}) was {halted} by halving: not promoted, nothing more to train",
            numbers(&mut std::iter::once(r.index)),
            r.run_id
        );
    }
    if let Some(w) = outcome.waiting {
        let halted: Vec<usize> = outcome
            .reports
            .iter()
            .filter(|r| r.halted.is_some())
            .map(|r| r.index)
            .collect();
        let waiting = numbers(&mut selected.iter().copied().filter(|i| !halted.contains(i)));
        println!(
            "{waiting} paused at rung {} (epoch {}): {} of {} points have reached it; the rung is decided when the last one does: run the tasks again (or `runner run {}`) to go on",
            w.rung,
            w.epoch,
            w.reached,
            w.points,
            spec.display()
        );
    }
}

/// Prints the end of a sweep (the table, the counts, each failure) and its exit status.
fn summarise(
    exp: &spec::Experiment,
    reports: &[run::RunReport],
    selected: usize,
    start: Instant,
) -> Result<(), Failure> {
    println!("{}", sweep_table::render(reports));
    let count = |status: Status| reports.iter().filter(|r| r.status == status).count();
    let (done, failed, diverged) = (
        count(Status::Done),
        count(Status::Failed),
        count(Status::Diverged),
    );
    // `Running` here means another process holds the run: neither done nor failed by us
    let mut also = String::new();
    let halted = reports.iter().filter(|r| r.halted.is_some()).count();
    for (n, what) in [
        (halted, "stopped by halving"),
        (count(Status::Paused) - halted, "paused at a halving rung"),
        (count(Status::Running), "held by another process"),
        (count(Status::Interrupted), "interrupted"),
        (selected.saturating_sub(reports.len()), "not started"),
    ] {
        if n > 0 {
            also += &format!(", {n} {what}");
        }
    }
    println!(
        "{}: {done} done, {failed} failed, {diverged} diverged{also} in {:.1}s",
        exp.name,
        start.elapsed().as_secs_f64()
    );
    // a task's share of the epochs says nothing about the sweep's
    if let Some(halving) = exp
        .sweep
        .halving
        .as_ref()
        .filter(|_| selected == exp.runs.len())
    {
        let trained: usize = reports
            .iter()
            .map(|r| r.last.as_ref().map_or(0, |l| l.epoch))
            .sum();
        let full = exp.runs.len() * halving.epochs as usize;
        println!(
            "{}: halving trained {trained} of the full sweep's {full} epochs ({:.0}%)",
            exp.name,
            100.0 * trained as f64 / full.max(1) as f64
        );
    }
    for r in reports.iter().filter(|r| r.error.is_some()) {
        // numbered from 1, like the log and the summary table
        eprintln!(
            "run {} ({}) failed: {}",
            r.index + 1,
            r.run_id,
            r.error.as_deref().unwrap_or_default()
        );
    }
    if count(Status::Interrupted) > 0 || crate::train::interrupt::requested() {
        eprintln!(
            "{}: interrupted; run the same command again to resume",
            exp.name
        );
        Err(Failure::Interrupted)
    } else if failed + diverged > 0 {
        Err(Failure::Failed(None))
    } else {
        Ok(())
    }
}

/// Logs the engine the runs will use; fails when oneDNN was demanded and cannot be used.
fn announce_engine() -> Result<(), Failure> {
    let engine = crate::ops::engine::selected().map_err(|why| Failure::Usage(why.into()))?;
    tracing::info!("engine: {}", engine.describe());
    Ok(())
}

/// Refuses, before anything is written, runs whose `train.precision` this process's engine
/// cannot compute (bf16 without oneDNN's bf16 kernels): no run may train in f32 while recording
/// bf16.
fn refuse_unsupported_precision(
    spec_file: &Path,
    resolved: &Resolved,
    selected: &[usize],
) -> Result<(), Failure> {
    let wants_bf16 = selected
        .iter()
        .any(|&i| resolved.runs[i].spec().train.precision == spec::Precision::Bf16Mixed);
    if !wants_bf16 {
        return Ok(());
    }
    crate::ops::engine::selected().map_err(|why| Failure::Usage(why.into()))?;
    match crate::ops::engine::bf16_support() {
        Ok(_) => Ok(()),
        Err(why) => Err(Failure::Spec(format!(
            "error: {}: train.precision = \"bf16-mixed\" cannot run on this machine: {why}\n  = help: set train.precision = \"32\" (or --set train.precision=32) to train in f32",
            spec_file.display()
        ))),
    }
}

pub(super) fn cmd_reproduce(a: ReproduceArgs) -> Result<(), Failure> {
    super::failure::given_folder(&a.run, "run folder")?;
    if let Some(project) = &a.project {
        super::failure::given_folder(project, "--project folder")?;
    }
    announce_engine()?;
    let r = run::reproduce::reproduce(&a.run, a.tolerance, a.project.as_deref())
        .map_err(Failure::failed)?;
    print!("{}", r.render());
    if r.passed() {
        Ok(())
    } else {
        Err(Failure::Failed(None))
    }
}
