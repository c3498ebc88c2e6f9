//! A recorded run folder opened for reuse: its manifest, the spec it was trained with (its paths
//! resolved against the project the run belongs to) and its kept model. The one opener of
//! `runner evaluate`, `runner export onnx`, `runner predict --run` and `runner reproduce`.

use std::path::{Path, PathBuf};

use crate::durable::StoreError;
use crate::results::layout::{self, NotInProject, RunDir};
use crate::results::store::{Manifest, Status};
use crate::spec::{display_path, Experiment, RunSpec, SpecError};

pub struct FinishedRun {
    pub dir: RunDir,
    pub manifest: Manifest,
    /// The stored spec as a one-run experiment.
    pub experiment: Experiment,
    /// The project folder (the one with `pipeline/defaults.toml`) the run's paths refer to.
    pub project: PathBuf,
}

/// Where the project of a run comes from.
#[derive(Debug, Clone, Copy)]
pub enum ProjectFrom<'a> {
    /// The nearest folder above the run with `pipeline/defaults.toml`.
    Run,
    /// The command's `--project`, if given; else as [`ProjectFrom::Run`].
    Flag(Option<&'a Path>),
}

/// What a command needs of the run it opens.
#[derive(Debug, Clone, Copy)]
pub struct Opening<'a> {
    pub project: ProjectFrom<'a>,
    /// The run must be done, with its model kept (`evaluate`, `export`).
    pub needs_model: bool,
}

impl Opening<'static> {
    /// A done run with its kept model, in the project above it (`evaluate`, `export`).
    pub const FINISHED: Opening<'static> = Opening {
        project: ProjectFrom::Run,
        needs_model: true,
    };
}

/// Why a folder cannot be opened as a finished run, checked in this order.
#[derive(Debug)]
pub enum OpenError {
    /// It has no readable manifest.
    Manifest {
        dir: PathBuf,
        source: StoreError,
    },
    /// It is not done, or its model file is missing ([`Opening::needs_model`]).
    NoModel {
        dir: PathBuf,
        status: Status,
    },
    NotInProject {
        dir: PathBuf,
        flag: bool,
    },
    /// Its stored spec does not load.
    Spec(SpecError),
}

impl OpenError {
    /// The sentence of the commands that show paths relative to the current folder and say what
    /// the folder is not (`evaluate`, `export`).
    pub(crate) fn explain(&self) -> String {
        match self {
            // a run folder whose record is damaged: the error names the file and the fault
            OpenError::Manifest { dir, source } if RunDir::at(dir).manifest().is_file() => {
                source.to_string()
            }
            OpenError::Manifest { dir, source } => {
                format!("{} is not a run folder: {source}", display_path(dir))
            }
            OpenError::NoModel { dir, status } => format!(
                "{} has no trained model (status {status}; a run keeps model.safetensors once it is done)",
                display_path(dir)
            ),
            OpenError::NotInProject { dir, flag } => NotInProject {
                dir: display_path(dir),
                searched_cwd: false,
                flag: *flag,
            }
            .to_string(),
            OpenError::Spec(e) => crate::spec::stored_spec_error(e),
        }
    }

    /// The sentence of the commands that show paths as given and a manifest's read error alone
    /// (`predict`, `reproduce`).
    pub(crate) fn brief(&self) -> String {
        match self {
            OpenError::Manifest { source, .. } => source.to_string(),
            OpenError::NotInProject { dir, flag } => NotInProject {
                dir: dir.display().to_string(),
                searched_cwd: false,
                flag: *flag,
            }
            .to_string(),
            other => other.explain(),
        }
    }
}

impl FinishedRun {
    /// Reads the manifest, checks the model when `how` needs it, finds the project and loads the
    /// stored spec.
    pub fn open(dir: &RunDir, how: Opening) -> Result<FinishedRun, OpenError> {
        let path = || dir.path().to_path_buf();
        let manifest = dir.read_manifest().map_err(|source| OpenError::Manifest {
            dir: path(),
            source,
        })?;
        if how.needs_model && (manifest.status != Status::Done || !dir.model().is_file()) {
            return Err(OpenError::NoModel {
                dir: path(),
                status: manifest.status,
            });
        }
        let (given, flag) = match how.project {
            ProjectFrom::Run => (None, false),
            ProjectFrom::Flag(given) => (given, true),
        };
        let project = given
            .map(Path::to_path_buf)
            .or_else(|| layout::project_of(dir.path()))
            .ok_or_else(|| OpenError::NotInProject { dir: path(), flag })?;
        let experiment =
            crate::spec::load_stored(&dir.spec(), &project).map_err(OpenError::Spec)?;
        Ok(FinishedRun {
            dir: dir.clone(),
            manifest,
            experiment,
            project,
        })
    }

    /// The run's resolved spec.
    pub fn spec(&self) -> &RunSpec {
        &self.experiment.base
    }

    /// `model.safetensors`: the model the run kept.
    pub fn weights(&self) -> PathBuf {
        self.dir.model()
    }
}
