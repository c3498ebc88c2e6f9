//! From a loaded spec to what the program runs, once per invocation (ripgrep's LowArgs → HiArgs):
//! [`Resolved`] opens each distinct dataset and reads, hashes and checks each distinct weights
//! file once, reports what is wrong with them at the spec line that named them, and gives every
//! run of the sweep its folder, fingerprint, weights, transforms, bad-image policy, training
//! configuration and head. `run`, `inspect`, `views` and `bench` take their runs from here, so a
//! spec key means the same thing in every command and nothing is read twice.
//!
//! `spec` checks values only and touches no file but the specs themselves; this module is where
//! the disk comes in.

mod build;
mod dataset;
mod finished_run;
pub mod kept_model;
mod listed;
mod weights;
mod weights_source;

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

pub use build::{augment, bad_image_policy, fit_config, head_config, transform};
pub use dataset::Dataset;
pub use finished_run::{FinishedRun, OpenError, Opening, ProjectFrom};
pub use listed::evaluation_rows;
pub use weights::Weights;

use crate::data::{BadImagePolicy, DataError, Transform};
use crate::models::HeadConfig;
use crate::spec::expand::{self, PlannedRun};
use crate::spec::{Experiment, Locator, RunSpec, SpecError};
use crate::train::FitConfig;

/// Every run of an experiment with what it needs on disk, checked.
pub struct Resolved<'a> {
    pub exp: &'a Experiment,
    pub runs: Vec<ResolvedRun<'a>>,
    /// Findings about the datasets and weights files that are not errors, rendered.
    pub warnings: Vec<String>,
}

/// One run of the sweep and everything it runs with.
pub struct ResolvedRun<'a> {
    pub planned: &'a PlannedRun,
    pub dataset: Arc<Dataset>,
    /// `None` for a randomly initialised backbone.
    pub weights: Option<Arc<Weights>>,
    /// The train transforms (`transform.deterministic()` for val).
    pub transform: Transform,
    pub bad_images: BadImagePolicy,
    pub fit: FitConfig,
    pub head: HeadConfig,
    run_id: OnceLock<String>,
}

impl<'a> Resolved<'a> {
    /// Opens and checks what the experiment's runs name: the base run's dataset and weights
    /// first (errors without a sweep note), then those of every sweep point not seen yet.
    pub fn new(exp: &'a Experiment) -> Result<Self, SpecError> {
        let mut scans = dataset::Scans::default();
        let mut files = weights::WeightsFiles::default();
        let mut datasets: HashMap<dataset::DatasetKey, Arc<Dataset>> = HashMap::new();
        let mut warnings = Vec::new();
        let mut open = |spec: &RunSpec,
                        at: &Locator,
                        warnings: &mut Vec<String>|
         -> Result<(Arc<Dataset>, Option<Arc<Weights>>), SpecError> {
            let key = dataset::key(&spec.dataset);
            let dataset = match datasets.get(&key) {
                Some(d) => d.clone(),
                None => {
                    let d = Arc::new(scans.open(&spec.dataset, at, warnings)?);
                    datasets.insert(key, d.clone());
                    d
                }
            };
            let weights = match &spec.backbone.weights {
                None => None,
                Some(path) => Some(
                    files
                        .check(
                            path,
                            spec.backbone.name.arch(),
                            dataset.folder.num_classes(),
                            spec.head.replace,
                            at,
                        )
                        .map_err(|e| at.rejected(vec![*e]))?,
                ),
            };
            Ok((dataset, weights))
        };
        open(&exp.base, &exp.locator(), &mut warnings)?;
        let mut runs = Vec::with_capacity(exp.runs.len());
        for planned in &exp.runs {
            let (dataset, weights) = open(&planned.spec, &planned.at, &mut warnings)?;
            let spec = &planned.spec;
            runs.push(ResolvedRun {
                planned,
                fit: fit_config(spec, dataset.folder.num_classes()),
                dataset,
                weights,
                transform: transform(spec),
                bad_images: bad_image_policy(spec),
                head: head_config(&spec.head, spec.experiment.seed),
                run_id: OnceLock::new(),
            });
        }
        Ok(Resolved {
            exp,
            runs,
            warnings,
        })
    }
}

/// The base run's dataset, opened and checked as [`Resolved::new`] does, without its weights:
/// for what needs the images alone (the report's preview builds no model).
pub(crate) fn base_dataset(exp: &Experiment) -> Result<Dataset, SpecError> {
    dataset::Scans::default().open(&exp.base.dataset, &exp.locator(), &mut Vec::new())
}

impl ResolvedRun<'_> {
    pub fn spec(&self) -> &RunSpec {
        &self.planned.spec
    }

    /// Position in the sweep, from 0.
    pub fn index(&self) -> usize {
        self.planned.index
    }

    /// The run id: a hash of the resolved spec, the dataset's content and the weights' hash.
    pub fn run_id(&self) -> Result<String, DataError> {
        if let Some(id) = self.run_id.get() {
            return Ok(id.clone());
        }
        let fp = self.dataset.fingerprint()?;
        let wh = self.weights.as_ref().map_or("", |w| w.sha256.as_str());
        let mut extra = format!("dataset={fp}\nweights={wh}");
        // only a run with a test split hashes it: the ids of runs without one stay as they were
        if let Some(test) = self.dataset.test_fingerprint()? {
            extra.push_str(&format!("\ntest={test}"));
        }
        if let Some(classes) = self.dataset.classes_salt() {
            extra.push_str(&format!("\nclasses={classes}"));
        }
        let id = expand::run_id(&self.dataset.identity_spec(self.spec()), &extra);
        Ok(self.run_id.get_or_init(|| id).clone())
    }
}
