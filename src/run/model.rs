//! Chooses the model and the batch source a run's spec asks for, and hands them to the one
//! generic training loop.

use std::path::Path;
use std::time::Instant;

use super::cache::FeatureCache;
use super::pretrained::{load_pretrained, save_error};
use super::resume::Fitting;
use super::sources::image_source;
use crate::data::{load_image, BadImagePolicy, ImageFolder, Transform};
use crate::models::freeze::not_a_block;
use crate::models::pixels::{LinearModel, MlpModel, MLP_HIDDEN};
use crate::models::{save_torchvision_weights, ArchVisitor, Backbone, Classifier, PartlyFrozen};
use crate::setup::ResolvedRun;
use crate::spec::{BackboneName, Freeze};
use crate::train::{checkpoint, Dev, FitConfig, Frozen, Outcome, TrainError};

/// Trains the run's model through `fitting` (which resumes it from its checkpoint); the trained
/// weights are saved to `fitting.paths.model` when it completes. `fingerprint` is the dataset's
/// content hash (a feature-cache key part).
pub(super) fn train(
    run: &ResolvedRun,
    fingerprint: &str,
    cache: &mut FeatureCache,
    fitting: &mut Fitting,
) -> Result<Outcome, TrainError> {
    let (spec, folder) = (run.spec(), &run.dataset.folder);
    let paths = fitting.paths;
    let dev = Dev::seed_from_u64(spec.experiment.seed);
    let classes = folder.num_classes();
    let Some(arch) = spec.backbone.name.arch() else {
        let (h, w) = sample_size(folder, &run.transform, run.bad_images)?;
        let inputs = 3 * h * w;
        let mut source = image_source(run);
        // the pixel models (linear, mlp) have no convolutional architecture
        return if spec.backbone.name == BackboneName::Linear {
            let model = LinearModel::new(&dev, inputs, classes);
            let (outcome, model) = fitting.fit(&dev, model, &mut source)?;
            finish(outcome, || checkpoint::save_weights(paths.model, &model))
        } else {
            let model = MlpModel::new(&dev, inputs, MLP_HIDDEN, classes);
            let (outcome, model) = fitting.fit(&dev, model, &mut source)?;
            finish(outcome, || checkpoint::save_weights(paths.model, &model))
        };
    };
    arch.dispatch(WithBackbone {
        run,
        fingerprint,
        cache,
        fitting,
        dev,
    })
}

/// Everything a convolutional run needs, carried to the code generic over its backbone type.
struct WithBackbone<'a, 'f> {
    run: &'a ResolvedRun<'a>,
    fingerprint: &'a str,
    cache: &'a mut FeatureCache,
    fitting: &'a mut Fitting<'f>,
    dev: Dev,
}

impl ArchVisitor for WithBackbone<'_, '_> {
    type Output = Result<Outcome, TrainError>;

    fn visit<B: Backbone>(self) -> Self::Output {
        let WithBackbone {
            run,
            fingerprint,
            cache,
            fitting,
            dev,
        } = self;
        let paths = fitting.paths;
        let (spec, folder, cfg) = (run.spec(), &run.dataset.folder, &run.fit);
        let classes = folder.num_classes();
        let head_config = &run.head;
        let t = Instant::now();
        let mut model = match &run.weights {
            Some(_) => Classifier::<B>::with_head_for_pretrained(&dev, classes, head_config),
            None => Classifier::<B>::with_head(&dev, classes, head_config),
        };
        fitting.rec.stage("build model", t.elapsed().as_secs_f64());
        if spec.backbone.freeze == Freeze::All {
            return super::frozen::train_head(run, fingerprint, cache, fitting, &dev, model);
        }
        if let Some(weights) = &run.weights {
            let t = Instant::now();
            load_pretrained(&mut model, weights, spec.head.replace)?;
            fitting.rec.stage("load weights", t.elapsed().as_secs_f64());
        }
        match &spec.backbone.freeze {
            Freeze::No | Freeze::All => {
                let mut source = image_source(run);
                let (outcome, model) = fitting.fit(&dev, model, &mut source)?;
                finish(outcome, || save_classifier(&model, paths.model))
            }
            Freeze::Until(block) => {
                // The blocks up to `block` run in eval mode without a tape; the optimizer and the
                // penalties skip their tensors by name.
                let frozen = B::frozen_blocks(block).ok_or_else(|| {
                    TrainError::Input(format!(
                        "backbone.freeze: {}",
                        not_a_block(B::NAME, B::BLOCKS, block)
                    ))
                })?;
                let names = B::BLOCKS[..frozen].iter().map(|b| b.to_string()).collect();
                let cfg = FitConfig {
                    frozen: Frozen(names),
                    ..cfg.clone()
                };
                let mut source = image_source(run);
                let net = PartlyFrozen { model, frozen };
                let (outcome, net) = fitting.fit_with(&cfg, &dev, net, &mut source)?;
                finish(outcome, || save_classifier(&net.model, paths.model))
            }
        }
    }
}

fn save_classifier<B: Backbone>(model: &Classifier<B>, path: &Path) -> Result<(), TrainError> {
    save_torchvision_weights(model, path).map_err(save_error)
}

/// After a completed run: save the final weights. The checkpoint stays until the run's tables
/// and its `done` manifest are written (the caller drops it then), so a kill or a full disk at
/// any point before leaves a resumable run.
fn finish(
    outcome: Outcome,
    save: impl FnOnce() -> Result<(), TrainError>,
) -> Result<Outcome, TrainError> {
    if matches!(outcome, Outcome::Done | Outcome::Stopped(_)) {
        save()?;
    }
    Ok(outcome)
}

/// (height, width) after the transforms of the first training image that decodes, under the
/// run's bad-image policy: with `skip`, an undecodable image is passed over here as the loader
/// will pass over it (and report it) in training.
fn sample_size(
    folder: &ImageFolder,
    transform: &Transform,
    policy: BadImagePolicy,
) -> Result<(usize, usize), TrainError> {
    let mut last = None;
    for sample in &folder.train.samples {
        match load_image(&sample.path) {
            Ok(img) => {
                let (h, w) = transform.output_size(img.width(), img.height());
                return Ok((h as usize, w as usize));
            }
            Err(e) if policy == BadImagePolicy::Skip => last = Some(e),
            Err(e) => return Err(e.into()),
        }
    }
    Err(match last {
        Some(e) => e.into(),
        None => TrainError::Input("no training images".into()),
    })
}
