//! Experiment specs: TOML files layered over presets and defaults, checked, and ready to expand
//! into runs (see [`crate::spec::expand`]).
//!
//! Layers, each overriding the one before it key by key:
//! embedded `pipeline/defaults.toml` ← each `use` preset in order ← the experiment file ←
//! `--set key=value` overrides ← the sweep point. Every layer is read through the same strict
//! serde types (`raw.rs`) and every resolved run through the same checks (`validate.rs`).

mod augment;
mod axes;
mod canonical;
mod error;
pub mod expand;
mod halving;
mod halving_check;
mod head;
mod layer;
mod locate;
mod overrides;
mod presets;
mod random_search;
mod random_space;
mod raw;
mod resolved;
mod schedule;
pub mod select;
mod sites;
mod sweep;
mod sweep_lists;
mod update;
mod validate;
mod values;

use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use error::{
    display_path, found_instead_of_folder, Diagnostic, Severity, Snippet, Source, SourceKind,
    SpecError,
};
pub use halving::{Goal, Halving, HalvingMetric, HalvingMode};
pub use head::{Activation, HeadKind, Pool};
pub use locate::Locator;
pub use raw::{names_a_weights_cache, HF_WEIGHTS_PREFIX, TORCHVISION_WEIGHTS};
pub use resolved::{
    Backbone, Cache, Dataset, DatasetSplit, ExperimentInfo, Head, Loss, Optimizer, Regularization,
    RunSpec, Train, Transforms,
};
// issue #14: schedules, early stopping, augmentation
pub use resolved::{ColorJitter, EarlyStopping, Metric, RandomResizedCrop, Schedule, ScheduleKind};
pub use sweep::{Axis, Sweep, SweptKey};
pub use values::{
    ApplyTo, BackboneName, Device, Freeze, LossKind, OnBadImage, OptimizerKind, Precision,
    RegularizationKind,
};

use layer::Layer;
use raw::RawSpec;
use sites::Sites;
use update::Update;

/// The single source of defaults, documented key by key.
pub const DEFAULTS_TOML: &str = include_str!("../../pipeline/defaults.toml");

#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// `--set` arguments, `key=value`, applied in order after the experiment file.
    pub overrides: Vec<String>,
    /// `--pipeline DIR`; else the first `pipeline/` folder above the spec.
    pub pipeline_dir: Option<PathBuf>,
}

/// A loaded experiment: its base run, what its sweep varies, and every run of the sweep, resolved
/// and checked once by [`load`] (through [`crate::spec::expand::expand`]).
#[derive(Debug, Clone)]
pub struct Experiment {
    pub name: String,
    /// The experiment file, absolute.
    pub source: PathBuf,
    /// The folder presets are looked up in, if one was found.
    pub pipeline_dir: Option<PathBuf>,
    /// The folder holding `pipeline/` (else the experiment's folder).
    pub project_dir: PathBuf,
    /// Preset and experiment files in the order they were applied.
    pub files: Vec<PathBuf>,
    /// The run with every layer but the sweep applied.
    pub base: RunSpec,
    pub sweep: Sweep,
    /// Every run of the sweep, in plan order.
    pub runs: Vec<expand::PlannedRun>,
    /// Warnings about the base run, rendered.
    pub warnings: Vec<String>,
    /// Merged layers and where each key came from, for resolving sweep points.
    raw: RawSpec,
    sites: Sites,
    file: Arc<Source>,
}

/// Reads an experiment, applies its layers and checks the base run and every sweep point.
pub fn load(path: &Path, opts: &LoadOptions) -> Result<Experiment, SpecError> {
    let path = raw::normalize(path);
    let spec_dir = path.parent().unwrap_or(Path::new("/"));
    let pipeline_dir = match &opts.pipeline_dir {
        Some(dir) => Some(raw::normalize(dir)),
        None => presets::find_pipeline_dir(spec_dir),
    };
    let project_dir = pipeline_dir
        .as_deref()
        .and_then(Path::parent)
        .unwrap_or(spec_dir)
        .to_path_buf();

    let file_layer = presets::read_layer(&path)?;
    let file = file_layer.source.clone();
    let mut layers = Vec::new();
    presets::with_presets(file_layer, pipeline_dir.as_deref(), &mut layers)?;
    for arg in &opts.overrides {
        layers.push(overrides::parse(arg)?);
    }
    assemble(path, pipeline_dir, project_dir, file, layers)
}

/// [`load_stored`] of a run's stored spec (`results::layout::RunDir::spec`), for a command that
/// reopens a run: the error as one message to print after `error: ` (the rendered diagnostics,
/// which name the file and line, without their own leading `error: `).
pub(crate) fn load_run_spec(stored: &Path, project: &Path) -> Result<Experiment, String> {
    load_stored(stored, project).map_err(|e| stored_spec_error(&e))
}

/// Why a run's stored spec does not load, as one message to print after `error: `.
pub(crate) fn stored_spec_error(e: &SpecError) -> String {
    let text = e.to_string();
    format!(
        "cannot load the spec the run was trained with: {}",
        text.strip_prefix("error: ").unwrap_or(&text)
    )
}

/// A run's stored `spec.toml` (every key, paths relative to the project it ran in) read back as
/// a one-run experiment, with its paths resolved against `project`. Keys the defaults gained
/// after the run was recorded take their default values.
pub(crate) fn load_stored(path: &Path, project: &Path) -> Result<Experiment, SpecError> {
    let path = raw::normalize(path);
    let project = raw::normalize(project);
    let source = presets::read_source(&path)?;
    let layer = Layer::parse_in(source.clone(), &project)?;
    let pipeline_dir = Some(project.join("pipeline")).filter(|p| p.is_dir());
    assemble(path, pipeline_dir, project, source, vec![layer])
}

/// Applies `layers` over the embedded defaults, checks the base run, and expands and checks
/// every sweep point. `file` is the experiment file, for locating errors.
fn assemble(
    path: PathBuf,
    pipeline_dir: Option<PathBuf>,
    project_dir: PathBuf,
    file: Arc<Source>,
    layers: Vec<Layer>,
) -> Result<Experiment, SpecError> {
    let defaults = defaults_layer()?;
    let known_keys = sweepable_keys(&defaults.sites);

    let mut raw = RawSpec::default();
    let mut sites = Sites::default();
    let mut sweep_input = sweep::SweepInput::default();
    let mut files = Vec::new();
    for mut layer in std::iter::once(defaults).chain(layers) {
        tracing::debug!(source = %layer.source.name(), "applying spec layer");
        if let Some(sweep) = layer.raw.sweep.take() {
            sweep_input.update(&layer, sweep);
        }
        files.extend(layer.source.path.clone());
        raw.update(layer.raw);
        sites.update(layer.sites);
    }

    let base = RunSpec::from_raw(&raw, &project_dir)?;
    let warnings = validate::check(&base, &Locator::new(sites.clone(), file.clone(), &[]))?;
    let raw_halving = sweep_input.halving.take().unwrap_or_default();
    let mut sweep =
        sweep_input.build(&known_keys.iter().map(String::as_str).collect::<Vec<_>>())?;
    let base_at = Locator::new(sites.clone(), file.clone(), &[]);
    sweep.halving = halving_check::resolve(&raw_halving, &base, &sweep, &base_at)?;
    let mut exp = Experiment {
        name: base.experiment.name.clone(),
        source: path,
        pipeline_dir,
        project_dir,
        files,
        base,
        sweep,
        runs: Vec::new(),
        warnings: warnings.iter().map(ToString::to_string).collect(),
        raw,
        sites,
        file,
    };
    // Every sweep point is resolved and checked now, so that a bad one stops the experiment
    // before any run starts; the commands use these runs instead of expanding again.
    exp.runs = expand::expand(&exp)?;
    Ok(exp)
}

/// One sweep point resolved: the values it sets, its run spec and its warnings.
#[derive(Debug, Clone)]
pub struct Point {
    pub swept: Vec<(String, toml::Value)>,
    pub spec: RunSpec,
    pub warnings: Vec<String>,
    /// Where its keys were set.
    pub at: Locator,
}

impl Experiment {
    /// Where the base run's keys were set (every layer but the sweep).
    pub(crate) fn locator(&self) -> Locator {
        Locator::new(self.sites.clone(), self.file.clone(), &[])
    }

    /// Resolves the point that takes value `choice[i]` of axis `i`, and checks it.
    pub fn point(&self, choice: &[usize]) -> Result<Point, SpecError> {
        assert_eq!(
            choice.len(),
            self.sweep.axes.len(),
            "one choice per sweep axis"
        );
        let mut raw = self.raw.clone();
        let mut sites = self.sites.clone();
        let mut swept = Vec::new();
        for (axis, &i) in self.sweep.axes.iter().zip(choice) {
            for key in &axis.keys {
                raw.update(key.layers[i].raw.clone());
                sites.update(key.layers[i].sites.clone());
                swept.push((key.key.clone(), key.values[i].clone()));
            }
        }
        let spec = RunSpec::from_raw(&raw, &self.project_dir)?;
        let at = Locator::new(sites, self.file.clone(), &swept);
        let warnings = validate::check(&spec, &at)?;
        let warnings = warnings.iter().map(ToString::to_string).collect();
        Ok(Point {
            swept,
            spec,
            warnings,
            at,
        })
    }
}

/// The run the embedded defaults alone describe, for checks that compare against a default.
pub(crate) fn default_spec() -> &'static RunSpec {
    static DEFAULTS: std::sync::OnceLock<RunSpec> = std::sync::OnceLock::new();
    DEFAULTS.get_or_init(|| {
        let layer = defaults_layer().expect("the embedded defaults parse (tested)");
        RunSpec::from_raw(&layer.raw, Path::new(""))
            .expect("the embedded defaults set every key (tested)")
    })
}

fn defaults_layer() -> Result<Layer, SpecError> {
    Layer::parse(Source::defaults(DEFAULTS_TOML))
        .map_err(|e| SpecError::Internal(format!("pipeline/defaults.toml does not parse:\n{e}")))
}

/// Every `table.key` of the defaults but the sweep's own: what `[sweep]` may vary.
fn sweepable_keys(defaults: &Sites) -> Vec<String> {
    defaults
        .keys()
        .into_iter()
        .filter(|k| k.contains('.') && !k.starts_with("sweep."))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests;
