//! Command-line arguments as the user wrote them, and the dispatch to each command.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use clap::{Args, Parser, Subcommand};

use crate::results::plan::{ExperimentPlan, PlannedPoint};
use crate::results::store::Status;
use crate::run::{self, Identities, RunOptions};
use crate::spec::expand;
use crate::spec::{self, LoadOptions};

pub mod sweep_table;

/// Why a command did not succeed. This is the one place that decides exit codes: every
/// command returns `Result<(), Failure>` and [`main`] maps it.
#[derive(Debug)]
pub enum Failure {
    /// The spec, or a file or value it names, is wrong; nothing was written. The message is
    /// already rendered (spec diagnostics carry file:line:col).
    Spec(String),
    /// The command line is wrong in a way clap cannot see (clap itself exits 2 as well).
    Usage(String),
    /// The work ran and some of it failed: a run failed or diverged, a reproduction deviated,
    /// results could not be read or written. `None` when the output already said why.
    Failed(Option<String>),
    /// Ctrl-C stopped the work; what was interrupted resumes on the next invocation.
    Interrupted,
}

impl Failure {
    /// 78 = sysexits' EX_CONFIG, 2 = usage (as clap), 1 = the work failed.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::Spec(_) => 78,
            Failure::Usage(_) => 2,
            Failure::Failed(_) => 1,
            Failure::Interrupted => crate::train::interrupt::EXIT_INTERRUPTED,
        }
    }

    fn failed(e: impl std::fmt::Display) -> Self {
        Failure::Failed(Some(e.to_string()))
    }
}

impl From<spec::SpecError> for Failure {
    fn from(e: spec::SpecError) -> Self {
        Failure::Spec(e.to_string())
    }
}

/// Prints a failure's message (once, on stderr) and turns the outcome into the exit status.
fn exit_status(outcome: Result<(), Failure>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            match &f {
                // spec errors are rendered diagnostics that begin with their own `error:`
                Failure::Spec(msg) => eprintln!("{msg}"),
                Failure::Usage(msg) | Failure::Failed(Some(msg)) => eprintln!("error: {msg}"),
                Failure::Failed(None) | Failure::Interrupted => {}
            }
            ExitCode::from(f.exit_code())
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "runner",
    version,
    about = "Turns TOML experiment specs into trained models and comparable results"
)]
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
    /// Per-layer table of a model (output shapes, parameters, multiply-adds), or the arithmetic
    /// of one layer.
    Summary(SummaryArgs),
    /// One row per run across results folders or globs: swept values, best epoch, status.
    Compare(crate::views::compare::CompareArgs),
    /// Learning curves and sweep plots (PNG and SVG) next to the results.
    Plot(crate::views::plot::PlotArgs),
    /// A captioned grid of transformed training images (PNG).
    Preview(PreviewCmd),
    /// One self-contained HTML page about an experiment: table, curves, images, every run.
    Report(crate::views::report::ReportArgs),
    /// Write results into another tool's format.
    #[command(subcommand)]
    Export(ExportCmd),
    /// Throughput of models, conv layers, matmul and image loading (vs PyTorch with BENCH_TORCH).
    Bench(BenchArgs),
    /// Write (and with --submit, submit) a Slurm job array: one task per sweep point.
    Slurm(SlurmArgs),
    /// Where every planned point of an experiment stands: pending, running, done, failed,
    /// diverged or stale, with epochs, last writer and last update (from the files alone).
    Status(crate::views::status::StatusArgs),
}

#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  runner slurm experiments/lambda_sweep.toml --max-parallel 4 --submit\n  \
    runner slurm experiments/lambda_sweep.toml --only unfinished --submit\n  \
    runner slurm experiments/lambda_sweep.toml --submit -- --qos=low --account=lab"
)]
struct SlurmArgs {
    #[command(flatten)]
    spec: SpecArgs,
    /// Where results go (the script goes to `<DIR>/<experiment>/slurm/`).
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
    #[command(flatten)]
    opts: crate::slurm::SlurmOptions,
}

#[derive(Debug, Subcommand)]
enum ExportCmd {
    /// Runs, params, tags and per-epoch metric histories as an MLflow file store
    /// (`MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri DIR` shows them).
    Mlflow(crate::export::mlflow::MlflowArgs),
}

#[derive(Debug, Args)]
struct PreviewCmd {
    #[command(flatten)]
    args: crate::inspect::preview::PreviewArgs,
    /// Override a key of the spec: `--set transforms.hflip=1` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
    /// Where results go (the grid is written to `<DIR>/<experiment>/preview.png` by default).
    #[arg(long, default_value = "results", value_name = "DIR")]
    results: PathBuf,
}

#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  runner summary experiments/resnet.toml\n  \
    runner summary --model resnet18 --input 3,224,224 --classes 1000\n  \
    runner summary --layer conv --in 10,48,64 --out-channels 20 --kernel 3")]
struct SummaryArgs {
    /// An experiment spec: its backbone, input size (transforms' crop/resize), class count and
    /// `backbone.freeze`.
    #[arg(conflicts_with_all = ["model", "layer"])]
    spec: Option<PathBuf>,
    /// Override a key of the spec: `--set backbone.name=resnet34` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE", requires = "spec")]
    overrides: Vec<String>,
    /// The folder of presets named in `use` (default: the nearest `pipeline/` above the spec).
    #[arg(long, value_name = "DIR", requires = "spec")]
    pipeline: Option<PathBuf>,
    /// A backbone instead of a spec: resnet18, resnet34, efficientnet_lite0, small_cnn.
    #[arg(long, conflicts_with = "layer")]
    model: Option<String>,
    /// Input size for `--model`.
    #[arg(long, value_name = "C,H,W", default_value = "3,224,224", value_parser = parse_chw)]
    input: crate::nn::describe::Chw,
    /// Classes of the head for `--model`.
    #[arg(long, default_value_t = 1000)]
    classes: usize,
    /// Frozen part for `--model`, as in a spec: false, true or until:<block>.
    #[arg(long, default_value = "false", value_parser = parse_freeze)]
    freeze: spec::Freeze,
    /// One layer on its own instead of a model.
    #[arg(long, value_enum, requires_all = ["layer_in", "out_channels", "kernel"])]
    layer: Option<LayerKind>,
    /// Input of `--layer`.
    #[arg(long = "in", value_name = "C,H,W", value_parser = parse_chw, requires = "layer")]
    layer_in: Option<crate::nn::describe::Chw>,
    #[arg(long, requires = "layer")]
    out_channels: Option<usize>,
    #[arg(long, requires = "layer")]
    kernel: Option<usize>,
    #[arg(long, default_value_t = 1, requires = "layer")]
    stride: usize,
    /// Zeros on each side, or `same` (TensorFlow's SAME).
    #[arg(long, default_value = "0", value_parser = parse_padding, requires = "layer")]
    padding: crate::ops::Padding,
    #[arg(long, default_value_t = 1, requires = "layer")]
    groups: usize,
    /// A convolution without bias (the backbones' convolutions have none: BatchNorm follows).
    #[arg(long, requires = "layer")]
    no_bias: bool,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum LayerKind {
    Conv,
}

fn parse_chw(s: &str) -> Result<crate::nn::describe::Chw, String> {
    let v: Vec<usize> = s
        .split(',')
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    match v[..] {
        [c, h, w] => Ok(crate::nn::describe::Chw::new(c, h, w)),
        _ => Err(format!("expected C,H,W (three numbers), found `{s}`")),
    }
}

fn parse_padding(s: &str) -> Result<crate::ops::Padding, String> {
    match s.trim() {
        "same" => Ok(crate::ops::Padding::Same),
        n => n
            .parse()
            .map(crate::ops::Padding::Symmetric)
            .map_err(|_| format!("expected a number or `same`, found `{s}`")),
    }
}

fn parse_freeze(s: &str) -> Result<spec::Freeze, String> {
    match s.trim() {
        "false" => Ok(spec::Freeze::No),
        "true" => Ok(spec::Freeze::All),
        other => match other.strip_prefix("until:") {
            Some(block) if !block.trim().is_empty() => {
                Ok(spec::Freeze::Until(block.trim().to_string()))
            }
            _ => Err(format!(
                "expected false, true or until:<block>, found `{s}`"
            )),
        },
    }
}

#[derive(Debug, Args)]
// Without the `bench` feature the command only explains how to get it.
#[cfg_attr(not(feature = "bench"), allow(dead_code))]
struct BenchArgs {
    /// Two timed iterations per row instead of five (the whole run in a couple of minutes).
    #[arg(long)]
    quick: bool,
    /// Images for the loading benchmark.
    #[arg(long, default_value = "pipeline/data/catdog-photos")]
    images: PathBuf,
    /// Image-folder dataset for the model rows (the first files of each class are copied).
    #[arg(long, default_value = "pipeline/data/animal-mnist-catdog")]
    data: PathBuf,
    /// EfficientNet-Lite0 weights for the frozen-feature rows.
    #[arg(
        long,
        default_value = "pipeline/weights/efficientnet_lite0_imagenet.safetensors"
    )]
    lite0_weights: PathBuf,
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
    /// Train only sweep point I (numbered from 1, as `runner plan` prints), or `env`: the index
    /// from SLURM_ARRAY_TASK_ID, else JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs, from 0).
    #[arg(long, value_name = "I|env", conflicts_with = "shard")]
    index: Option<spec::select::Selection>,
    /// Train every N-th sweep point starting at I (`--shard 2/4`: points 2, 6, 10, …).
    #[arg(long, value_name = "I/N", value_parser = spec::select::parse_shard)]
    shard: Option<spec::select::Selection>,
}

pub fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse_from(with_default_command(std::env::args_os().collect()));
    exit_status(match cli.command {
        Command::Run(a) => cmd_run(a),
        Command::Check(a) => cmd_check(a),
        Command::Plan(a) => cmd_plan(a),
        Command::Reproduce(a) => cmd_reproduce(a),
        Command::Predict(a) => cmd_predict(a),
        Command::Summary(a) => cmd_summary(a),
        Command::Compare(a) => cmd_compare(a),
        Command::Plot(a) => crate::views::plot::plot(&a.results)
            .map(|paths| {
                for p in paths {
                    println!("{}", p.display());
                }
            })
            .map_err(Failure::failed),
        Command::Preview(a) => cmd_preview(a),
        Command::Report(a) => crate::views::report::report(&a)
            .map(|path| println!("{}", path.display()))
            .map_err(Failure::failed),
        Command::Export(ExportCmd::Mlflow(a)) => crate::export::mlflow::export(&a)
            .map(|done| {
                for e in done {
                    println!(
                        "{}: {} run(s) to MLflow experiment {} ({}) in {}",
                        e.name,
                        e.runs,
                        e.experiment_id,
                        if e.created { "new" } else { "updated" },
                        e.dir.display()
                    );
                }
            })
            .map_err(Failure::failed),
        Command::Bench(a) => cmd_bench(a),
        Command::Slurm(a) => cmd_slurm(a),
        Command::Status(a) => crate::views::status::status(&a)
            .map(|out| print!("{out}"))
            .map_err(Failure::failed),
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

fn load(a: &SpecArgs) -> Result<spec::Experiment, Failure> {
    let opts = LoadOptions {
        overrides: a.overrides.clone(),
        pipeline_dir: a.pipeline.clone(),
    };
    match spec::load(&a.spec, &opts) {
        Ok(exp) => {
            // a base warning repeats in every run: print each once
            let mut seen = std::collections::HashSet::new();
            for w in exp
                .warnings
                .iter()
                .chain(exp.runs.iter().flat_map(|r| &r.warnings))
            {
                if seen.insert(w) {
                    eprintln!("{w}");
                }
            }
            Ok(exp)
        }
        Err(e) => Err(e.into()),
    }
}

fn run_ids(runs: &[expand::PlannedRun]) -> Result<Vec<String>, Failure> {
    let mut ids = Identities::default();
    runs.iter()
        .map(|r| ids.run_id(&r.spec))
        .collect::<Result<_, _>>()
        .map_err(|e| Failure::Spec(format!("error: {e}")))
}

fn cmd_check(a: SpecArgs) -> Result<(), Failure> {
    let runs = load(&a)?.runs;
    println!(
        "{}: ok ({} run{})",
        a.spec.display(),
        runs.len(),
        if runs.len() == 1 { "" } else { "s" }
    );
    Ok(())
}

fn cmd_plan(a: SpecArgs) -> Result<(), Failure> {
    let exp = load(&a)?;
    let ids = run_ids(&exp.runs)?;
    print!("{}", expand::render(&exp, &exp.runs, &ids));
    Ok(())
}

/// The sweep as planned into a results folder, for `runner status`.
fn experiment_plan(exp: &spec::Experiment, ids: &[String], a: &SpecArgs) -> ExperimentPlan {
    ExperimentPlan {
        experiment: exp.name.clone(),
        spec: exp.source.clone(),
        overrides: a.overrides.clone(),
        planned_at: crate::results::timestamp::now_utc(),
        points: exp
            .runs
            .iter()
            .zip(ids)
            .map(|(r, id)| PlannedPoint {
                number: r.index + 1,
                run_id: id.clone(),
                swept: run::swept_values(r)
                    .into_iter()
                    .map(|(k, v)| (k, v.to_string()))
                    .collect(),
                epochs: r.spec.train.epochs as usize,
            })
            .collect(),
    }
}

/// Loads the spec, computes every run id and records the plan under `results`.
fn load_and_plan(
    a: &SpecArgs,
    results: &Path,
    ids: &mut Identities,
) -> Result<(spec::Experiment, ExperimentPlan), Failure> {
    let exp = load(a)?;
    let run_ids = exp
        .runs
        .iter()
        .map(|r| ids.run_id(&r.spec))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::Spec(format!("error: {e}")))?;
    let plan = experiment_plan(&exp, &run_ids, a);
    plan.write(results).map_err(Failure::failed)?;
    Ok((exp, plan))
}

fn cmd_run(a: RunArgs) -> Result<(), Failure> {
    let start = Instant::now();
    let mut ids = Identities::default();
    let (exp, _) = load_and_plan(&a.spec, &a.results, &mut ids)?;
    let mut runs = exp.runs.clone();
    if let Some(sel) = a.index.as_ref().or(a.shard.as_ref()) {
        let (picked, said) = spec::select::resolve(sel, runs.len(), |k| std::env::var(k).ok())
            .map_err(Failure::Usage)?;
        if let Some(said) = said {
            tracing::info!("{said}");
        }
        runs.retain(|r| picked.contains(&r.index));
    }
    tracing::info!(
        "{}: {} run(s), results in {}",
        exp.name,
        runs.len(),
        a.results.join(&exp.name).display()
    );
    let opts = RunOptions {
        results: a.results,
        rerun: a.rerun,
        progress: std::io::stderr().is_terminal(),
    };
    if let Err(e) = crate::train::interrupt::install() {
        tracing::warn!("cannot handle Ctrl-C ({e}): it stops the runner at once");
    }
    let reports = run::run_sweep_with(&exp, &runs, &opts, &mut ids);
    println!("{}", sweep_table::render(&reports));
    let count = |status: Status| reports.iter().filter(|r| r.status == status).count();
    let (done, failed, diverged) = (
        count(Status::Done),
        count(Status::Failed),
        count(Status::Diverged),
    );
    // `Running` here means another process holds the run: neither done nor failed by us
    let mut also = String::new();
    for (n, what) in [
        (count(Status::Running), "held by another process"),
        (count(Status::Interrupted), "interrupted"),
        (exp.runs.len() - reports.len(), "not started"),
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

fn cmd_reproduce(a: ReproduceArgs) -> Result<(), Failure> {
    let r = run::reproduce::reproduce(&a.run, a.tolerance, a.project.as_deref())
        .map_err(Failure::failed)?;
    print!("{}", r.render());
    if r.passed() {
        Ok(())
    } else {
        Err(Failure::Failed(None))
    }
}

fn cmd_predict(a: PredictArgs) -> Result<(), Failure> {
    let predictor = match (&a.run, &a.model, &a.weights) {
        (Some(run), _, _) => crate::inspect::predict::Predictor::from_run(run),
        (None, Some(model), Some(weights)) => crate::models::Arch::from_name(model)
            .map(|arch| crate::inspect::predict::Predictor::pretrained(arch, weights.clone()))
            .map_err(|e| e.to_string()),
        _ => Err("give --model and --weights, or --run".to_string()),
    };
    let preds = predictor
        .and_then(|p| p.predict(&a.images, a.top))
        .map_err(Failure::failed)?;
    println!("{}", crate::inspect::predict::render(&preds));
    Ok(())
}

fn cmd_summary(a: SummaryArgs) -> Result<(), Failure> {
    use crate::inspect::summary::{explain_conv, for_spec, ModelSummary};
    let text = if let Some(LayerKind::Conv) = a.layer {
        let layer = crate::nn::describe::ConvLayer {
            input: a.layer_in.expect("clap requires --in"),
            out_channels: a.out_channels.expect("clap requires --out-channels"),
            kernel: a.kernel.expect("clap requires --kernel"),
            stride: a.stride,
            padding: a.padding,
            groups: a.groups,
            bias: !a.no_bias,
        };
        explain_conv(&layer)
    } else if let Some(model) = &a.model {
        crate::models::Arch::from_name(model)
            .map_err(|e| e.to_string())
            .and_then(|arch| ModelSummary::of(arch, a.input, a.classes, &a.freeze))
            .map(|s| s.render())
    } else if let Some(path) = &a.spec {
        let opts = LoadOptions {
            overrides: a.overrides.clone(),
            pipeline_dir: a.pipeline.clone(),
        };
        for_spec(path, &opts).map(|all| {
            let many = all.len() > 1;
            all.iter()
                .map(|(runs, s)| {
                    let runs: Vec<String> = runs.iter().map(|r| r.to_string()).collect();
                    let head = if many {
                        format!(
                            "run{} {}: ",
                            if runs.len() > 1 { "s" } else { "" },
                            runs.join(", ")
                        )
                    } else {
                        String::new()
                    };
                    format!("{head}{}", s.render())
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
    } else {
        Err("give a spec, --model NAME, or --layer conv".to_string())
    };
    print!(
        "{}",
        text.map_err(|e| Failure::Spec(format!("error: {e}")))?
    );
    Ok(())
}

/// The table of the readable runs on stdout; the unreadable ones, each with its error, on
/// stderr (and exit status 1: the comparison is incomplete).
fn cmd_compare(a: crate::views::compare::CompareArgs) -> Result<(), Failure> {
    let (out, unreadable) = crate::views::compare::compare_readable(&a).map_err(Failure::failed)?;
    print!("{out}");
    if unreadable.is_empty() {
        return Ok(());
    }
    let n = unreadable.len();
    let mut msg = format!(
        "{n} run{} could not be read and {} left out:",
        if n == 1 { "" } else { "s" },
        if n == 1 { "is" } else { "are" }
    );
    for e in unreadable {
        msg += &format!("\n  {e}");
    }
    Err(Failure::Failed(Some(msg)))
}

fn cmd_preview(a: PreviewCmd) -> Result<(), Failure> {
    let p = &a.args;
    let spec_args = SpecArgs {
        spec: p.spec.clone(),
        overrides: a.overrides.clone(),
        pipeline: None,
    };
    let exp = load(&spec_args)?;
    let spec = &exp.base;
    let d = &spec.dataset;
    let folder = crate::data::ImageFolder::open(
        &d.root,
        &d.train_dir,
        &d.val_dir,
        d.train_per_class,
        d.val_per_class,
    )
    .map_err(|e| Failure::Spec(format!("error: {e}")))?;
    let out = p
        .out
        .clone()
        .unwrap_or_else(|| a.results.join(&exp.name).join("preview.png"));
    if let Some(dir) = out.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let seed = p.seed.unwrap_or(spec.experiment.seed);
    let path =
        crate::inspect::preview::preview(&folder, &crate::setup::transform(spec), p.n, seed, &out)
            .map_err(Failure::failed)?;
    println!("{}", path.display());
    Ok(())
}

#[cfg(not(feature = "bench"))]
fn cmd_bench(_: BenchArgs) -> Result<(), Failure> {
    Err(Failure::Usage(
        "this runner was built without `runner bench` (benchmark code stays out of normal builds)\n\
         build it with the `bench` feature, e.g.:\n    \
         cargo build --release --features bench && target/release/runner bench"
            .into(),
    ))
}

#[cfg(feature = "bench")]
fn cmd_bench(a: BenchArgs) -> Result<(), Failure> {
    let opts = crate::bench::BenchOptions {
        quick: a.quick,
        images: a.images,
        data: a.data,
        lite0_weights: a.lite0_weights,
        torch: std::env::var("BENCH_TORCH").ok().filter(|s| !s.is_empty()),
    };
    crate::bench::run(&opts).map_err(Failure::failed)
}

fn cmd_slurm(a: SlurmArgs) -> Result<(), Failure> {
    let mut ids = Identities::default();
    let (exp, plan) = load_and_plan(&a.spec, &a.results, &mut ids)?;
    let exp_dir = a.results.join(&exp.name);
    let points: Vec<usize> = match a.opts.only {
        None => plan.points.iter().map(|p| p.number).collect(),
        Some(crate::slurm::Only::Unfinished) => plan
            .points
            .iter()
            .map(|p| crate::views::status::point_status(&exp_dir, p))
            .filter(|s| s.state != crate::views::status::State::Done)
            .map(|s| s.point.number)
            .collect(),
    };
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
    let written_at = crate::results::timestamp::now_utc();
    let job = crate::slurm::Job {
        experiment: &exp.name,
        runner: &runner,
        project: &project,
        spec: &a.spec.spec,
        overrides: &a.spec.overrides,
        pipeline: a.spec.pipeline.as_deref(),
        results: &a.results,
        points: &points,
        opts: &a.opts,
        written_at: &written_at,
    };
    let script = crate::slurm::write_script(&job).map_err(Failure::failed)?;
    let command: Vec<String> = std::iter::once("sbatch".to_string())
        .chain(crate::slurm::sbatch_args(&script, &a.opts.extra))
        .map(|w| crate::slurm::shell_quote(&w))
        .collect();
    println!(
        "{}: {} of {} points as array {}, script {}",
        exp.name,
        points.len(),
        plan.points.len(),
        crate::slurm::array_ranges(&points),
        script.display()
    );
    if !a.opts.submit {
        println!("submit with: {}", command.join(" "));
        return Ok(());
    }
    println!("{}", command.join(" "));
    let id = crate::slurm::submit(&script, &a.opts.extra).map_err(Failure::failed)?;
    println!("submitted job {id}");
    println!(
        "follow with: squeue -j {id}; runner status {}",
        exp_dir.display()
    );
    Ok(())
}
