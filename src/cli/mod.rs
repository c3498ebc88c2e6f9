//! The command line: every clap type of the program lives under here. Each command's
//! arguments are turned into the plain options of the module that does the work, and every
//! outcome goes through [`Failure`], the one map to exit codes.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod evaluate;
mod failure;
mod inspect;
mod results;
mod slurm;
mod sweep;
pub mod sweep_table;
mod values;
mod weights;

pub use failure::Failure;

#[derive(Debug, Parser)]
#[command(
    name = "runner",
    version,
    about = "Turns TOML experiment specs into trained models and comparable results"
)]
#[command(after_help = "`runner SPEC [OPTIONS]` is short for `runner run SPEC [OPTIONS]`.")]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
    /// CPU engine under the convolutions: auto (oneDNN when libdnnl.so.2 loads, else
    /// built-in), onednn or builtin [default: RUNNER_ENGINE, else auto]
    #[arg(long, global = true, value_name = "ENGINE")]
    engine: Option<crate::ops::engine::EngineChoice>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train every run of an experiment's sweep and record its results.
    Run(sweep::RunArgs),
    /// Validate a spec and every run of its sweep, without training.
    Check(sweep::SpecArgs),
    /// Print the runs a spec expands to, with their ids and swept values.
    Plan(sweep::SpecArgs),
    /// Train a recorded run again and compare every per-epoch metric with the stored ones.
    Reproduce(sweep::ReproduceArgs),
    /// Score a finished run's model on another labelled folder, with the run's transforms.
    Evaluate(evaluate::EvaluateArgs),
    /// Top classes of images under pretrained weights or a trained run.
    Predict(inspect::PredictArgs),
    /// Per-layer table of a model (output shapes, parameters, multiply-adds), or the arithmetic
    /// of one layer.
    Summary(inspect::SummaryArgs),
    /// One row per run across results folders or globs: swept values, best epoch, status.
    Compare(results::CompareArgs),
    /// Learning curves and sweep plots (PNG and SVG) next to the results.
    Plot(results::PlotArgs),
    /// A captioned grid of transformed training images (PNG).
    Preview(inspect::PreviewArgs),
    /// One self-contained HTML page about an experiment: table, curves, images, every run.
    Report(results::ReportArgs),
    /// Write results into another tool's format.
    #[command(subcommand)]
    Export(results::ExportCmd),
    /// Throughput of models, conv layers, matmul and image loading (vs PyTorch with BENCH_TORCH).
    Bench(bench::BenchArgs),
    /// Write (and with --submit, submit) a Slurm job array: one task per sweep point.
    Slurm(slurm::SlurmArgs),
    /// Where every planned point of an experiment stands: pending, running, done, failed,
    /// diverged or stale, with epochs, last writer and last update (from the files alone).
    Status(results::StatusArgs),
    /// Pretrained weights files: list what one holds and what a run loads from it, or convert a
    /// PyTorch checkpoint to safetensors.
    #[command(subcommand)]
    Weights(weights::WeightsCmd),
}

pub fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse_from(with_default_command(std::env::args_os().collect()));
    if let Err(why) = crate::fault::setup() {
        return failure::exit_status(Err(Failure::Usage(why)));
    }
    if let Err(why) = crate::ops::engine::choose(cli.engine) {
        return failure::exit_status(Err(Failure::Usage(why)));
    }
    failure::exit_status(match cli.command {
        Command::Run(a) => sweep::cmd_run(a),
        Command::Check(a) => sweep::cmd_check(a),
        Command::Plan(a) => sweep::cmd_plan(a),
        Command::Reproduce(a) => sweep::cmd_reproduce(a),
        Command::Evaluate(a) => evaluate::cmd_evaluate(a),
        Command::Predict(a) => inspect::cmd_predict(a),
        Command::Summary(a) => inspect::cmd_summary(a),
        Command::Compare(a) => results::cmd_compare(a),
        Command::Plot(a) => results::cmd_plot(a),
        Command::Preview(a) => inspect::cmd_preview(a),
        Command::Report(a) => results::cmd_report(a),
        Command::Export(a) => results::cmd_export(a),
        Command::Bench(a) => bench::cmd_bench(a),
        Command::Slurm(a) => slurm::cmd_slurm(a),
        Command::Status(a) => results::cmd_status(a),
        Command::Weights(a) => weights::cmd_weights(a),
    })
}

/// `runner SPEC …` means `runner run SPEC …`: insert `run` when the first argument is neither
/// a subcommand nor a flag.
fn with_default_command(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    if let Some(first) = args.get(1).and_then(|a| a.to_str()) {
        let cmd = Cli::command();
        let is_sub = cmd.get_subcommands().any(|s| s.get_name() == first) || first == "help";
        if !is_sub && !first.starts_with('-') {
            args.insert(1, "run".into());
        }
    }
    args
}

/// Logs to stderr at RUNNER_LOG's level (`info` when unset): a level (`debug`, `warn`) or
/// per-module levels (`runner=debug,warn`), as `tracing_subscriber::filter::Targets` reads them.
fn init_logging() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    let setting = std::env::var("RUNNER_LOG").ok();
    let parsed = setting.as_deref().map(str::parse::<Targets>);
    let filter = match &parsed {
        Some(Ok(targets)) => targets.clone(),
        None | Some(Err(_)) => Targets::new().with_default(LevelFilter::INFO),
    };
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_filter(filter);
    tracing_subscriber::registry().with(layer).init();
    if let (Some(value), Some(Err(e))) = (setting, parsed) {
        tracing::warn!(
            "RUNNER_LOG={value:?} is not a log filter ({e}); logging at info. Expected a level \
             (error, warn, info, debug, trace) or per-module levels (runner=debug,warn)"
        );
    }
}
