//! A finished run folder opened for reuse (`runner evaluate`, `runner export onnx`): its
//! manifest, the spec it was trained with, its kept model file and its project.

use std::path::{Path, PathBuf};

use crate::results::store::{self, Manifest, Status};
use crate::spec::{display_path, RunSpec};

pub struct FinishedRun {
    pub manifest: Manifest,
    pub spec: RunSpec,
    /// `model.safetensors`: the model the run kept.
    pub weights: PathBuf,
    /// The project folder (the one with `pipeline/defaults.toml`) the run belongs to.
    pub project: PathBuf,
}

impl FinishedRun {
    /// Why not, as a sentence naming the folder, when `run` is not a finished run of a project.
    pub fn open(run: &Path) -> Result<FinishedRun, String> {
        let path = run.join("manifest.json");
        let manifest = store::read_manifest(&path).map_err(|e| match path.is_file() {
            // a run folder whose record is damaged: the error names the file and the fault
            true => e.to_string(),
            false => format!("{} is not a run folder: {e}", display_path(run)),
        })?;
        let weights = run.join("model.safetensors");
        if manifest.status != Status::Done || !weights.is_file() {
            return Err(format!(
                "{} has no trained model (status {}; a run keeps model.safetensors once it is done)",
                display_path(run),
                manifest.status
            ));
        }
        let project = store::project_of(run).ok_or_else(|| {
            format!(
                "{} is not inside a project (no pipeline/defaults.toml above it)",
                display_path(run)
            )
        })?;
        let spec = crate::spec::load_run_spec(run, &project)?.base;
        Ok(FinishedRun {
            manifest,
            spec,
            weights,
            project,
        })
    }
}
