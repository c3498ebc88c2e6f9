//! `runner compare`, `plot`, `report`, `status` and `export`: the commands that read results
//! trees. Each turns its arguments into the plain options of `crate::views` or `crate::export`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Failure;
use crate::views::compare::{BestBy, CompareOptions, Format};
use crate::views::report::ReportOptions;

#[derive(Debug, Args)]
pub(super) struct CompareArgs {
    /// Results folders, run folders, metrics.parquet files or (quoted) glob patterns.
    #[arg(required = true)]
    inputs: Vec<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
    /// Which epoch of a run is its best.
    #[arg(long, value_enum, default_value_t = BestBy::ValLoss)]
    by: BestBy,
    /// Sort by this column (a short name matches a dotted key's last part); add `:desc`, or
    /// start with `-` (`--sort=-val_acc@best`), for descending.
    #[arg(long)]
    sort: Option<String>,
    /// Keep runs where COLUMN OP VALUE holds, e.g. `lambda>=1e-3`, `status=done` (ops: >=, <=,
    /// >, <, =, !=). Repeat to combine with "and".
    #[arg(long)]
    filter: Vec<String>,
    /// Also show per-class accuracy, precision, recall and the confusion matrix of each run.
    #[arg(long)]
    per_class: bool,
}

#[derive(Debug, Args)]
pub(super) struct PlotArgs {
    /// A results folder, an experiment folder or a run folder; plots go to each experiment's
    /// `plots/` folder.
    results: PathBuf,
}

#[derive(Debug, Args)]
pub(super) struct ReportArgs {
    /// An experiment's results folder (`results/<experiment>`).
    experiment: PathBuf,
    /// Output file (default: `<experiment folder>/report.html`).
    #[arg(short, long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Which epoch of a run is its best (for the table, and which runs the charts of a big
    /// sweep draw).
    #[arg(long, value_enum, default_value_t = BestBy::ValLoss)]
    by: BestBy,
    /// Initial order of the table, as `runner compare --sort` (click a header to re-sort).
    #[arg(long)]
    sort: Option<String>,
    /// Per-epoch charts draw a line for at most this many runs (the best by `--by`) and a
    /// min–max band for all of them.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    top: u32,
    /// The project folder the runs' relative dataset paths refer to, for the preview (default:
    /// found from the run folder, else the current folder).
    #[arg(long, value_name = "DIR")]
    project: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    /// An experiment's results folder: `<results>/<experiment>`.
    experiment: PathBuf,
    #[arg(long, value_enum, default_value_t = crate::views::status::Format::Table)]
    format: crate::views::status::Format,
}

#[derive(Debug, Subcommand)]
pub(super) enum ExportCmd {
    /// Runs, params, tags and per-epoch metric histories as an MLflow file store
    /// (`MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri DIR` shows them).
    Mlflow(MlflowArgs),
    /// A finished run's kept model as an ONNX graph (opset 17, dynamic batch, class names in
    /// the metadata), for onnxruntime and other runtimes.
    Onnx(OnnxArgs),
}

#[derive(Debug, Args)]
pub(super) struct OnnxArgs {
    /// A finished run's folder (`results/<experiment>/<run_id>`).
    run: PathBuf,
    /// The .onnx file to write.
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
    /// Put the normalisation ((x − mean) / std) in the graph: the input is then RGB in [0, 1]
    /// after resize and crop.
    #[arg(long)]
    with_preprocessing: bool,
}

#[derive(Debug, Args)]
pub(super) struct MlflowArgs {
    /// Results: an experiment folder (`results/<experiment>`), a results folder or run folders.
    #[arg(required = true)]
    results: Vec<String>,
    /// The MLflow file store to write into (created if missing; `mlruns` is MLflow's default).
    #[arg(long, value_name = "DIR")]
    to: PathBuf,
}

/// The table of the readable runs on stdout; the unreadable ones, each with its error, on
/// stderr (and exit status 1: the comparison is incomplete).
pub(super) fn cmd_compare(a: CompareArgs) -> Result<(), Failure> {
    let opts = CompareOptions {
        inputs: a.inputs,
        format: a.format,
        by: a.by,
        sort: a.sort,
        filter: a.filter,
        per_class: a.per_class,
    };
    let (out, unreadable) =
        crate::views::compare::compare_readable(&opts).map_err(Failure::view)?;
    print!("{out}");
    left_out(unreadable)
}

/// After the output of the readable runs: the unreadable ones, each with its error, on stderr,
/// and exit status 1 (the output is incomplete).
fn left_out(unreadable: Vec<crate::views::ViewError>) -> Result<(), Failure> {
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

pub(super) fn cmd_plot(a: PlotArgs) -> Result<(), Failure> {
    let (written, unreadable) = crate::views::plot::plot(&a.results).map_err(Failure::view)?;
    for p in written {
        println!("{}", p.display());
    }
    left_out(unreadable)
}

pub(super) fn cmd_report(a: ReportArgs) -> Result<(), Failure> {
    if let Some(project) = &a.project {
        super::failure::given_folder(project, "--project folder")?;
    }
    let opts = ReportOptions {
        experiment: a.experiment,
        out: a.out,
        by: a.by,
        sort: a.sort,
        top: a.top as usize,
        project: a.project,
    };
    let (path, unreadable) = crate::views::report::report(&opts).map_err(Failure::view)?;
    println!("{}", path.display());
    left_out(unreadable)
}

pub(super) fn cmd_status(a: StatusArgs) -> Result<(), Failure> {
    use crate::views::status::{render, statuses, State};
    let (plan, points) = statuses(&a.experiment).map_err(Failure::view)?;
    print!("{}", render(&plan, &points, a.format));
    let damaged: Vec<_> = points
        .iter()
        .filter(|p| p.state == State::Damaged)
        .collect();
    if damaged.is_empty() {
        return Ok(());
    }
    let n = damaged.len();
    let mut msg = format!(
        "{n} run{} started but {} record cannot be read (rerun {} to train {} again):",
        if n == 1 { "" } else { "s" },
        if n == 1 { "its" } else { "their" },
        if n == 1 { "its point" } else { "those points" },
        if n == 1 { "it" } else { "them" },
    );
    for p in damaged {
        msg += &format!("\n  {}", p.detail.as_deref().unwrap_or_default());
    }
    Err(Failure::Failed(Some(msg)))
}

pub(super) fn cmd_export(a: ExportCmd) -> Result<(), Failure> {
    let a = match a {
        ExportCmd::Mlflow(a) => a,
        ExportCmd::Onnx(a) => return cmd_export_onnx(a),
    };
    let (exported, unreadable) =
        crate::export::mlflow::export(&a.results, &a.to).map_err(Failure::view)?;
    for e in exported {
        println!(
            "{}: {} run(s) to MLflow experiment {} ({}) in {}",
            e.name,
            e.runs,
            e.experiment_id,
            if e.created { "new" } else { "updated" },
            e.dir.display()
        );
    }
    left_out(unreadable)
}

fn cmd_export_onnx(a: OnnxArgs) -> Result<(), Failure> {
    use crate::export::onnx::{export, OnnxError, OnnxOptions};
    super::failure::given_folder(&a.run, "run folder")?;
    let opts = OnnxOptions {
        run: a.run,
        to: a.to,
        with_preprocessing: a.with_preprocessing,
    };
    let done = export(&opts).map_err(|e| match e {
        OnnxError::Input(msg) => Failure::Input(msg),
        other => Failure::failed(other),
    })?;
    println!(
        "{}: {} nodes, input (batch, 3, {}, {}), classes {}",
        done.path.display(),
        done.nodes,
        done.input.0,
        done.input.1,
        done.classes.join(", ")
    );
    Ok(())
}
