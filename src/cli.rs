//! Command-line arguments as the user wrote them, and the dispatch to each command.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use crate::plan;
use crate::run::{self, Identities, RunOptions};
use crate::spec::{self, LoadOptions};
use crate::store::Status;

/// Exit code for a spec that fails to parse or validate (sysexits' EX_CONFIG).
pub const EXIT_BAD_SPEC: u8 = 78;
/// Exit code when some run of a sweep failed or diverged.
pub const EXIT_RUNS_FAILED: u8 = 1;

#[derive(Debug, Parser)]
#[command(name = "runner", version, about = "Turns TOML experiment specs into trained models and comparable results")]
#[command(after_help = "`runner SPEC [OPTIONS]` is short for `runner run SPEC [OPTIONS]`.")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train every run of an experiment's sweep and record its results.
    Run(RunArgs),
    /// Validate a spec and every run of its sweep, without training.
    Check(SpecArgs),
    /// Print the runs a spec expands to, with their ids and swept values.
    Plan(SpecArgs),
    /// Train a recorded run again and compare every per-epoch metric with the stored ones.
    Reproduce(ReproduceArgs),
    /// Top classes of images under pretrained weights or a trained run.
    Predict(PredictArgs),
    /// Throughput of models, conv layers, matmul and image loading (vs PyTorch with BENCH_TORCH).
    Bench(BenchArgs),
}

#[derive(Debug, Args)]
struct BenchArgs {
    /// Two timed iterations per row instead of five (the whole run in a couple of minutes).
    #[arg(long)]
    quick: bool,
    /// Images for the loading benchmark.
    #[arg(long, default_value = "pipeline/data/catdog-photos")]
    images: PathBuf,
}

#[derive(Debug, Args)]
struct PredictArgs {
    /// Images (JPEG or PNG).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Architecture of `--weights`: resnet18, resnet34, efficientnet_lite0, small_cnn.
    #[arg(long, requires = "weights", conflicts_with = "run")]
    model: Option<String>,
    /// Safetensors weights with torchvision / efficientnet_pytorch names (a 1000-class head
    /// predicts ImageNet classes).
    #[arg(long, requires = "model")]
    weights: Option<PathBuf>,
    /// A trained run's folder instead: its backbone, transforms, classes and weights.
    #[arg(long, value_name = "DIR")]
    run: Option<PathBuf>,
    /// How many classes to show per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
}

#[derive(Debug, Args)]
struct ReproduceArgs {
    /// A run's folder: `results/<experiment>/<run_id>`.
    run: PathBuf,
    /// Largest absolute difference allowed per metric value (timings are not compared).
    #[arg(long, default_value_t = 1e-5)]
    tolerance: f64,
    /// The project folder the run's relative paths refer to (default: found from the run folder).
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct SpecArgs {
    /// The experiment spec (TOML).
    spec: PathBuf,
    /// Override a key of the spec: `--set regularization.lambda=0.01` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// The folder of presets named in `use` (default: the nearest `pipeline/` above the spec).
    #[arg(long, value_name = "DIR")]
    pipeline: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Where results go: `<DIR>/<experiment>/<run_id>/`.
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    /// Train runs again even when their results are complete.
    #[arg(long)]
    rerun: bool,
}

pub fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse_from(with_default_command(std::env::args_os().collect()));
    match cli.command {
        Command::Run(a) => cmd_run(a),
        Command::Check(a) => cmd_check(a),
        Command::Plan(a) => cmd_plan(a),
        Command::Reproduce(a) => cmd_reproduce(a),
        Command::Predict(a) => cmd_predict(a),
        Command::Bench(a) => cmd_bench(a),
    }
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

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("RUNNER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

fn load(a: &SpecArgs) -> Result<(spec::Experiment, Vec<plan::PlannedRun>), ExitCode> {
    let opts = LoadOptions { overrides: a.overrides.clone(), pipeline_dir: a.pipeline.clone() };
    let loaded = spec::load(&a.spec, &opts).and_then(|exp| plan::expand(&exp).map(|runs| (exp, runs)));
    match loaded {
        Ok((exp, runs)) => {
            // a base warning repeats in every run: print each once
            let mut seen = std::collections::HashSet::new();
            for w in exp.warnings.iter().chain(runs.iter().flat_map(|r| &r.warnings)) {
                if seen.insert(w) {
                    eprintln!("{w}");
                }
            }
            Ok((exp, runs))
        }
        Err(e) => {
            eprintln!("{e}");
            Err(ExitCode::from(EXIT_BAD_SPEC))
        }
    }
}

fn run_ids(runs: &[plan::PlannedRun]) -> Result<Vec<String>, ExitCode> {
    let mut ids = Identities::default();
    runs.iter()
        .map(|r| ids.run_id(&r.spec))
        .collect::<Result<_, _>>()
        .map_err(|e| {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_BAD_SPEC)
        })
}

fn cmd_check(a: SpecArgs) -> ExitCode {
    match load(&a) {
        Ok((exp, runs)) => {
            println!("{}: ok ({} run{})", a.spec.display(), runs.len(), if runs.len() == 1 { "" } else { "s" });
            let _ = exp;
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn cmd_plan(a: SpecArgs) -> ExitCode {
    let (exp, runs) = match load(&a) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match run_ids(&runs) {
        Ok(ids) => {
            print!("{}", plan::render(&exp, &runs, &ids));
            ExitCode::SUCCESS
        }
        Err(code) => code,
    }
}

fn cmd_run(a: RunArgs) -> ExitCode {
    let start = Instant::now();
    let (exp, runs) = match load(&a.spec) {
        Ok(v) => v,
        Err(code) => return code,
    };
    tracing::info!("{}: {} run(s), results in {}", exp.name, runs.len(), a.results.join(&exp.name).display());
    let opts = RunOptions { results: a.results, rerun: a.rerun, progress: std::io::stderr().is_terminal() };
    let reports = run::run_sweep(&exp, &runs, &opts);
    println!("{}", crate::report::summary(&reports));
    let failed = reports.iter().filter(|r| r.status == Status::Failed).count();
    let diverged = reports.iter().filter(|r| r.status == Status::Diverged).count();
    let done = reports.len() - failed - diverged;
    println!(
        "{}: {done} done, {failed} failed, {diverged} diverged in {:.1}s",
        exp.name,
        start.elapsed().as_secs_f64()
    );
    for r in reports.iter().filter(|r| r.error.is_some()) {
        eprintln!("run {} ({}) failed: {}", r.index, r.run_id, r.error.as_deref().unwrap_or_default());
    }
    if failed + diverged > 0 {
        ExitCode::from(EXIT_RUNS_FAILED)
    } else {
        ExitCode::SUCCESS
    }
}

fn cmd_reproduce(a: ReproduceArgs) -> ExitCode {
    match run::reproduce::reproduce(&a.run, a.tolerance, a.project.as_deref()) {
        Ok(r) => {
            print!("{}", r.render());
            if r.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_RUNS_FAILED)
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_RUNS_FAILED)
        }
    }
}

fn cmd_predict(a: PredictArgs) -> ExitCode {
    let predictor = match (&a.run, &a.model, &a.weights) {
        (Some(run), _, _) => crate::predict::Predictor::from_run(run),
        (None, Some(model), Some(weights)) => crate::models::Arch::from_name(model)
            .map(|arch| crate::predict::Predictor::pretrained(arch, weights.clone()))
            .map_err(|e| e.to_string()),
        _ => Err("give --model and --weights, or --run".to_string()),
    };
    match predictor.and_then(|p| p.predict(&a.images, a.top)) {
        Ok(preds) => {
            println!("{}", crate::predict::render(&preds));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_RUNS_FAILED)
        }
    }
}

fn cmd_bench(a: BenchArgs) -> ExitCode {
    let opts = crate::bench::BenchOptions {
        quick: a.quick,
        images: a.images,
        torch: std::env::var("BENCH_TORCH").ok().filter(|s| !s.is_empty()),
    };
    match crate::bench::run(&opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
