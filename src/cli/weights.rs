//! `runner weights inspect|convert`: pretrained weights files, looked at and converted.

use std::path::PathBuf;

use clap::{Args, Subcommand};

use super::Failure;
use crate::inspect::weights::{convert_weights, inspect_weights};

#[derive(Debug, Subcommand)]
pub(super) enum WeightsCmd {
    /// List a weights file's tensors (name, dtype, shape, count), the backbone it matches and
    /// what a run would load from it. Reads safetensors and PyTorch checkpoints (.pth/.pt).
    Inspect(InspectArgs),
    /// Write a PyTorch checkpoint's state dict as the safetensors file runs read.
    Convert(ConvertArgs),
}

#[derive(Debug, Args)]
pub(super) struct InspectArgs {
    /// A safetensors file or a PyTorch checkpoint.
    file: PathBuf,
}

#[derive(Debug, Args)]
pub(super) struct ConvertArgs {
    /// A PyTorch checkpoint (.pth/.pt, zip or legacy format).
    file: PathBuf,
    /// The safetensors file to write (replaced whole, never half-written).
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
}

pub(super) fn cmd_weights(cmd: WeightsCmd) -> Result<(), Failure> {
    match cmd {
        WeightsCmd::Inspect(a) => {
            super::failure::given(&a.file, "weights file")?;
            print!("{}", inspect_weights(&a.file).map_err(Failure::Input)?);
        }
        WeightsCmd::Convert(a) => {
            super::failure::given(&a.file, "weights file")?;
            let done = convert_weights(&a.file, &a.to).map_err(Failure::Input)?;
            println!(
                "wrote {} tensors of {} ({}) to {}",
                done.tensors,
                a.file.display(),
                done.origin,
                a.to.display()
            );
        }
    }
    Ok(())
}
