//! `runner evaluate`: a recorded run's model scored on another labelled folder.

use std::path::PathBuf;

use clap::Args;

use super::Failure;
use crate::evaluate::{evaluate_run, EvaluateError, EvaluateOptions, Format};

#[derive(Debug, Args)]
pub(super) struct EvaluateArgs {
    /// A finished run's folder (`results/<experiment>/<run_id>`).
    run: PathBuf,
    /// A folder with one sub-folder of images per class (the run's classes, by name).
    #[arg(long, value_name = "DIR")]
    data: PathBuf,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    format: Format,
}

/// The table on stdout; where the tables were written on stderr.
pub(super) fn cmd_evaluate(a: EvaluateArgs) -> Result<(), Failure> {
    super::failure::given_folder(&a.run, "run folder")?;
    super::failure::given_folder(&a.data, "--data folder")?;
    let opts = EvaluateOptions {
        run: a.run,
        data: a.data,
        format: a.format,
    };
    let done = evaluate_run(&opts).map_err(|e| match e {
        EvaluateError::Input(msg) => Failure::Input(msg),
        EvaluateError::Failed(msg) => Failure::Failed(Some(msg)),
    })?;
    print!("{}", done.text);
    tracing::info!("wrote the tables to {}", done.dir.display());
    Ok(())
}
