//! `runner slurm`: a sweep as a Slurm job array (see `crate::slurm` for the script).

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::sweep::{load, plan, resolve, SpecArgs};
use super::Failure;

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  runner slurm experiments/lambda_sweep.toml --max-parallel 4 --submit\n  \
    runner slurm experiments/lambda_sweep.toml --only unfinished --submit\n  \
    runner slurm experiments/lambda_sweep.toml --submit -- --qos=low --account=lab"
)]
pub(super) struct SlurmArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Where results go (the script goes to `<DIR>/<experiment>/slurm/`).
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// Partition to submit to (`#SBATCH --partition`).
    #[arg(long)]
    partition: Option<String>,
    /// Time limit per task, in Slurm's format (`30`, `2:00:00`, `1-0`).
    #[arg(long)]
    time: Option<String>,
    /// CPUs per task; also the runner's thread count inside the task.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    cpus_per_task: Option<u32>,
    /// Memory per node, in Slurm's format (`4G`).
    #[arg(long)]
    mem: Option<String>,
    /// At most K tasks at once (`--array=…%K`).
    #[arg(long, value_name = "K", value_parser = clap::value_parser!(u32).range(1..))]
    max_parallel: Option<u32>,
    /// `unfinished`: only the points whose run is not `done`.
    #[arg(long, value_enum)]
    only: Option<Only>,
    /// Run `sbatch`, print the job id and return (without it: write the script and print the
    /// command).
    #[arg(long)]
    submit: bool,
    /// Further `sbatch` arguments, after `--` (e.g. `-- --dependency=afterok:123 --qos=low`).
    #[arg(last = true, value_name = "SBATCH_ARGS")]
    extra: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Only {
    Unfinished,
}

/// The plan's point numbers the array runs: all, or those not done yet (`--only unfinished`;
/// in a halving sweep a point stopped at a rung is finished too).
fn points_to_submit(
    plan: &crate::results::plan::ExperimentPlan,
    exp_dir: &std::path::Path,
    only: Option<Only>,
    halving: bool,
) -> Vec<usize> {
    use crate::views::status::State;
    match only {
        None => plan.points.iter().map(|p| p.number).collect(),
        Some(Only::Unfinished) => plan
            .points
            .iter()
            .map(|p| crate::views::status::point_status(exp_dir, p))
            .filter(|s| !(s.state == State::Done || halving && s.state == State::Stopped))
            .map(|s| s.point.number)
            .collect(),
    }
}

pub(super) fn cmd_slurm(a: SlurmArgs) -> Result<(), Failure> {
    let exp = load(&a.spec)?;
    // a halving sweep's tasks decide one rung per round of the array (the last task to reach
    // it decides): one array per rung and one more to train the last points to the end
    let rounds = exp
        .sweep
        .halving
        .as_ref()
        .map_or(1, |h| h.rungs().len() + 1);
    let resolved = resolve(&exp)?;
    let plan = plan(&exp, &resolved, &a.spec, &a.results)?;
    let exp_dir = a.results.join(&exp.name);
    let points = points_to_submit(&plan, &exp_dir, a.only, rounds > 1);
    if points.is_empty() {
        println!(
            "{}: all {} points are done: nothing to submit",
            exp.name,
            plan.points.len()
        );
        return Ok(());
    }
    let runner = std::env::current_exe()
        .map_err(|e| Failure::failed(format!("cannot find the runner binary: {e}")))?;
    let project = std::env::current_dir()
        .map_err(|e| Failure::failed(format!("cannot read the current folder: {e}")))?;
    let written_at = crate::durable::timestamp::now_utc();
    let opts = crate::slurm::SlurmOptions {
        partition: a.partition.clone(),
        time: a.time.clone(),
        cpus_per_task: a.cpus_per_task,
        mem: a.mem.clone(),
        max_parallel: a.max_parallel,
        extra: a.extra.clone(),
    };
    let job = crate::slurm::Job {
        experiment: &exp.name,
        runner: &runner,
        project: &project,
        spec: &a.spec.spec,
        overrides: &a.spec.overrides,
        pipeline: a.spec.pipeline.as_deref(),
        results: &a.results,
        points: &points,
        opts: &opts,
        written_at: &written_at,
    };
    let script = crate::slurm::write_script(&job).map_err(Failure::failed)?;
    // round k > 1 starts when every task of round k - 1 has ended, however it ended
    let extra_of = |after: Option<&str>| -> Vec<String> {
        let mut extra = opts.extra.clone();
        extra.extend(after.map(|id| format!("--dependency=afterany:{id}")));
        extra
    };
    let command = |extra: &[String]| -> String {
        std::iter::once("sbatch".to_string())
            .chain(crate::slurm::sbatch_args(&script, extra))
            .map(|w| crate::slurm::shell_quote(&w))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "{}: {} of {} points as array {}, script {}",
        exp.name,
        points.len(),
        plan.points.len(),
        crate::slurm::array_ranges(&points),
        script.display()
    );
    if rounds > 1 {
        println!(
            "{}: successive halving: the array is submitted {rounds} times, one round per rung and one to finish, each after the one before; a round's tasks whose points were stopped end at once",
            exp.name
        );
    }
    if !a.submit {
        if rounds == 1 {
            println!("submit with: {}", command(&opts.extra));
        } else {
            println!(
                "submit with:
  j=$({})",
                command(&opts.extra)
            );
            for _ in 1..rounds {
                println!(
                    "  j=$({})",
                    command(&extra_of(Some("$j")))
                        .replace("'--dependency=afterany:$j'", "--dependency=afterany:$j")
                );
            }
        }
        return Ok(());
    }
    let mut ids: Vec<String> = Vec::new();
    for round in 0..rounds {
        let extra = extra_of(ids.last().map(String::as_str));
        println!("{}", command(&extra));
        let id = crate::slurm::submit(&script, &extra).map_err(Failure::failed)?;
        match ids.last() {
            None => println!("submitted job {id}"),
            Some(before) => println!(
                "submitted job {id} (round {} of {rounds}, after job {before})",
                round + 1
            ),
        }
        ids.push(id);
    }
    println!(
        "follow with: squeue -j {}; runner status {}",
        ids.join(","),
        exp_dir.display()
    );
    Ok(())
}
