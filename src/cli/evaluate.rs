//! `runner evaluate`: a recorded run's model scored on another labelled folder or manifest.

use std::path::PathBuf;

use clap::Args;

use super::Failure;
use crate::data::Part;
use crate::evaluate::{evaluate_run, EvaluateError, EvaluateOptions, Format};

#[derive(Debug, Args)]
pub(super) struct EvaluateArgs {
    /// A finished run's folder (`results/<experiment>/<run_id>`).
    run: PathBuf,
    /// A folder with one sub-folder of images per class (the run's classes, by name), or a
    /// manifest (.csv, .parquet) of image paths and labels, read with the run's column names.
    #[arg(long, value_name = "DIR|MANIFEST")]
    data: PathBuf,
    /// A manifest's split to score: train, val or test (default: test where the manifest has
    /// test rows, else every row).
    #[arg(long, value_name = "NAME")]
    split: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// The table on stdout; where the tables were written on stderr.
pub(super) fn cmd_evaluate(a: EvaluateArgs) -> Result<(), Failure> {
    super::failure::given_folder(&a.run, "run folder")?;
    let is_manifest = |p: &std::path::Path| {
        p.extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("csv") || e.eq_ignore_ascii_case("parquet"))
    };
    let what = if is_manifest(&a.data) {
        "--data manifest"
    } else {
        "--data folder"
    };
    super::failure::given(&a.data, what)?;
    if !a.data.is_dir() && !is_manifest(&a.data) {
        return Err(Failure::Usage(format!(
            "--data {} is a file, not a folder or a manifest (.csv, .parquet)",
            a.data.display()
        )));
    }
    let split = match a.split.as_deref() {
        None => None,
        Some(_) if a.data.is_dir() => {
            return Err(Failure::Usage(
                "--split takes a manifest's rows; --data is a folder".to_owned(),
            ))
        }
        Some(name) => Some(Part::parse(name).ok_or_else(|| {
            Failure::Usage(format!("--split {name}: expected train, val or test"))
        })?),
    };
    let opts = EvaluateOptions {
        run: a.run,
        data: a.data,
        split,
        format: a.format,
    };
    let done = evaluate_run(&opts).map_err(|e| match e {
        EvaluateError::Input(msg) => Failure::Input(msg),
        EvaluateError::Failed(msg) => Failure::Failed(Some(msg)),
        EvaluateError::Manifest(msg) => Failure::Spec(msg),
    })?;
    print!("{}", done.text);
    tracing::info!("wrote the tables to {}", done.dir.display());
    Ok(())
}
