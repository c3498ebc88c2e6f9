//! Chooses the model and the batch source a run's spec asks for, and hands them to the one
//! generic training loop.

use std::path::Path;
use std::time::Instant;


use super::cache::{self, FeatureCache, Lookup};
use super::sources::{FeatureSet, FeatureSource, ImageSource};
use super::{bad_image_policy, transforms, Progress};
use crate::data::{load_image, ImageFolder, Loader, Transform};
use crate::models::pixels::{LinearModel, MlpModel};
use crate::spec::{BackboneName, RunSpec};
use crate::train::{checkpoint, fit, Dev, EpochMetrics, FitConfig, Net, Outcome, Source, Start, TrainError};

/// What the generic part reports back to the run's bookkeeping.
pub trait Recorder {
    /// Training resumes after this completed epoch; rows after it are to be dropped.
    fn resumed(&mut self, epoch: usize);
    /// An epoch ended: record its metrics (before the checkpoint is written).
    fn epoch(&mut self, m: &EpochMetrics) -> Result<(), TrainError>;
    /// Epochs already recorded by an interrupted invocation of this run.
    fn recorded(&self) -> usize;
}

/// Where a run keeps its checkpoint and final weights.
pub struct Paths<'a> {
    pub checkpoint: &'a Path,
    pub model: &'a Path,
}

/// Hidden width of the `mlp` pixel model.
const MLP_HIDDEN: usize = 256;

/// Trains the run's model; the trained weights are saved to `model_path` when it completes.
pub fn train(
    spec: &RunSpec,
    folder: &ImageFolder,
    cfg: &FitConfig,
    _cache: &mut FeatureCache,
    progress: &Progress,
    paths: &Paths,
    rec: &mut dyn Recorder,
) -> Result<Outcome, TrainError> {
    let dev = Dev::seed_from_u64(spec.experiment.seed);
    let transform = transforms(spec);
    let classes = folder.num_classes();
    match spec.backbone.name {
        BackboneName::Linear | BackboneName::Mlp => {
            let (h, w) = sample_size(folder, &transform)?;
            let inputs = 3 * h * w;
            let mut source = image_source(spec, folder, &transform);
            if spec.backbone.name == BackboneName::Linear {
                run(&dev, LinearModel::new(&dev, inputs, classes), &mut source, cfg, progress, paths, rec)
            } else {
                run(&dev, MlpModel::new(&dev, inputs, MLP_HIDDEN, classes), &mut source, cfg, progress, paths, rec)
            }
        }
        other => Err(TrainError::Input(format!("backbone {other:?} is not available in this build"))),
    }
}

/// The generic part: resume from the checkpoint when there is a usable one, fit with a
/// checkpoint after every epoch, then save the final weights.
fn run<M: Net>(
    dev: &Dev,
    mut model: M,
    source: &mut dyn Source,
    cfg: &FitConfig,
    progress: &Progress,
    paths: &Paths,
    rec: &mut dyn Recorder,
) -> Result<Outcome, TrainError> {
    let mut start = Start::Fresh;
    if paths.checkpoint.exists() {
        match checkpoint::load(paths.checkpoint, &mut model, &cfg.optimizer) {
            Ok((epoch, optimizer)) if epoch <= rec.recorded() => {
                tracing::info!("resuming after epoch {epoch} from {}", paths.checkpoint.display());
                rec.resumed(epoch);
                start = Start::Resume { epoch, optimizer };
            }
            Ok((epoch, _)) => tracing::warn!(
                "checkpoint {} is at epoch {epoch} but only {} epochs are recorded: starting over",
                paths.checkpoint.display(),
                rec.recorded()
            ),
            Err(why) => tracing::warn!("checkpoint {} is unusable ({why}): starting over", paths.checkpoint.display()),
        }
        if matches!(start, Start::Fresh) {
            rec.resumed(0);
        }
    }
    let batches = source.batches(crate::train::Split::Train, 1).size_hint().0;
    let outcome = fit(
        dev,
        &mut model,
        source,
        cfg,
        start,
        &mut |epoch, batch, loss| progress.batch(epoch, batch, batches, loss),
        &mut |m, model, opt| {
            rec.epoch(m)?;
            checkpoint::save(paths.checkpoint, model, opt, m.epoch)
        },
    )?;
    if outcome == Outcome::Done {
        checkpoint::save_weights(paths.model, &model)?;
        let _ = std::fs::remove_file(paths.checkpoint);
    }
    Ok(outcome)
}

fn image_source(spec: &RunSpec, folder: &ImageFolder, transform: &Transform) -> ImageSource {
    let policy = bad_image_policy(spec);
    let (bs, seed) = (spec.train.batch_size, spec.experiment.seed);
    ImageSource {
        train: Loader::new(folder.train.clone(), transform.clone(), bs, seed, true, policy),
        val: Loader::new(folder.val.clone(), transform.deterministic(), bs, seed, false, policy),
        extractor: None,
    }
}

/// (height, width) of the first training image after the transforms.
fn sample_size(folder: &ImageFolder, transform: &Transform) -> Result<(usize, usize), TrainError> {
    let first = &folder.train.samples[0];
    let img = load_image(&first.path)?;
    let (h, w) = transform.output_size(img.width(), img.height());
    Ok((h as usize, w as usize))
}

/// Features of every train and val image through `extract`, in file order.
pub fn extract_all(
    spec: &RunSpec,
    folder: &ImageFolder,
    transform: &Transform,
    extract: &dyn Fn(crate::train::Inputs) -> Result<crate::train::Inputs, TrainError>,
) -> Result<(FeatureSet, FeatureSet), TrainError> {
    let policy = bad_image_policy(spec);
    let one = |split: &crate::data::Split| -> Result<FeatureSet, TrainError> {
        let loader = Loader::new(split.clone(), transform.deterministic(), 32, 0, false, policy);
        let mut set = FeatureSet { x: Vec::new(), width: 0, labels: Vec::new() };
        for b in loader.epoch(0) {
            let b = b?;
            if b.n == 0 {
                continue;
            }
            let x = crate::train::Inputs::Images { x: b.x, n: b.n, h: b.height, w: b.width };
            match extract(x)? {
                crate::train::Inputs::Features { x, f, .. } => {
                    set.width = f;
                    set.x.extend_from_slice(&x);
                }
                crate::train::Inputs::Images { .. } => unreachable!("extractors return features"),
            }
            set.labels.extend(b.labels);
        }
        Ok(set)
    };
    Ok((one(&folder.train)?, one(&folder.val)?))
}

#[allow(dead_code)]
fn cached_features(
    spec: &RunSpec,
    folder: &ImageFolder,
    transform: &Transform,
    cache: &mut FeatureCache,
    key_parts: &[(&str, String)],
    extract: &dyn Fn(crate::train::Inputs) -> Result<crate::train::Inputs, TrainError>,
) -> Result<FeatureSource, TrainError> {
    let key = cache::key(key_parts);
    let t = Instant::now();
    let (f, lookup) = cache.get_or_build(&key, || extract_all(spec, folder, transform, extract))?;
    let what = match lookup {
        Lookup::Memory | Lookup::Disk => "hit",
        Lookup::Built => "miss (built)",
    };
    tracing::info!(
        "feature cache {what}: {} train + {} val in {:.2}s ({})",
        f.0.len(),
        f.1.len(),
        t.elapsed().as_secs_f64(),
        cache.path(&key).display()
    );
    Ok(FeatureSource {
        train: f.0.clone(),
        val: f.1.clone(),
        batch_size: spec.train.batch_size,
        seed: spec.experiment.seed,
    })
}
