//! Chooses the model and the batch source a run's spec asks for, and hands them to the one
//! generic training loop.

use std::path::Path;
use std::time::Instant;

use super::cache::{self, FeatureCache, Lookup};
use super::resume::Fitting;
use super::sources::{Extractor, FeatureSet, FeatureSource, ImageSource};
use crate::data::{load_image, BadImagePolicy, ImageFolder, Loader, Transform};
use crate::durable::StoreError;
use crate::models::feature_head::FeatureHead;
use crate::models::fold::FrozenFeatures;
use crate::models::freeze::not_a_block;
use crate::models::pixels::{LinearModel, MlpModel, MLP_HIDDEN};
use crate::models::WeightsError;
use crate::models::{
    load_torchvision_file, save_torchvision_weights, ArchVisitor, Backbone, Classifier,
    PartlyFrozen,
};
use crate::setup::{ResolvedRun, Weights};
use crate::spec::{BackboneName, Freeze};
use crate::train::{checkpoint, BatchSource, Dev, FitConfig, Frozen, Inputs, Outcome, TrainError};

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
        let mut model = Classifier::<B>::with_head(&dev, classes, head_config);
        if let Some(weights) = &run.weights {
            let t = Instant::now();
            load_pretrained(&mut model, weights, spec.head.replace)?;
            fitting.rec.stage("load weights", t.elapsed().as_secs_f64());
        }
        match &spec.backbone.freeze {
            Freeze::No => {
                let mut source = image_source(run);
                let (outcome, model) = fitting.fit(&dev, model, &mut source)?;
                finish(outcome, || save_classifier(&model, paths.model))
            }
            Freeze::All => {
                // The frozen backbone runs without a tape, in eval mode (BatchNorm running
                // statistics untouched), through its folded layers where it has them; only the
                // head on its pooled features trains.
                let frozen = FrozenFeatures::new(model.backbone.clone(), head_config.pool);
                let d = dev.clone();
                let extract = move |x: Inputs| -> Result<Inputs, TrainError> {
                    let n = x.len();
                    let Inputs::Images { x, h, w, .. } = x else {
                        return Err(TrainError::Input("a backbone reads images".into()));
                    };
                    Ok(Inputs::Features {
                        x: frozen.features(&d, x, n, h, w),
                        n,
                        f: B::FEATURES,
                    })
                };
                let head = FeatureHead::new(&dev, B::FEATURES, classes, head_config);
                let mut source =
                    feature_source(run, fingerprint, cache, fitting, B::NAME, Box::new(extract))?;
                let (outcome, head) = fitting.fit(&dev, head, &mut *source)?;
                // stored as one classifier, backbone and trained head, with PyTorch names
                model.hidden = head.hidden;
                model.head = head.fc;
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

/// The batches of a frozen backbone's features: from the feature cache when the train transforms
/// are deterministic and `cache.features` is on, else `extract`ed from the images every epoch.
fn feature_source(
    run: &ResolvedRun,
    fingerprint: &str,
    cache: &mut FeatureCache,
    fitting: &mut Fitting,
    backbone: &str,
    extract: Extractor,
) -> Result<Box<dyn BatchSource>, TrainError> {
    let (spec, transform) = (run.spec(), &run.transform);
    if spec.cache.features && transform.is_deterministic() {
        let t = Instant::now();
        let source = cached_features(run, fingerprint, cache, backbone, &extract)?;
        fitting.rec.stage("features", t.elapsed().as_secs_f64());
        return Ok(Box::new(source));
    }
    if spec.cache.features {
        tracing::info!(
            "feature cache skipped: the train transforms are random ({}), so features are computed every epoch",
            transform.random_parts().join(", ")
        );
    } else {
        tracing::info!(
            "feature cache off (cache.features = false): features are computed every epoch"
        );
    }
    let mut source = image_source(run);
    source.extractor = Some(extract);
    Ok(Box::new(source))
}

/// Loads the run's pretrained weights into `model` and logs what it loaded.
fn load_pretrained<B: Backbone>(
    model: &mut Classifier<B>,
    weights: &Weights,
    replace_head: bool,
) -> Result<(), TrainError> {
    let t = Instant::now();
    let classes = model.classes();
    let w = &weights.path;
    let file = weights
        .file
        .as_ref()
        .map_err(|e| TrainError::Input(format!("weights file {}: {e}", w.display())))?;
    let report = load_torchvision_file(model, w, file, replace_head)
        .map_err(|e| TrainError::Input(e.to_string()))?;
    tracing::info!(
        "loaded {} tensors of {} from {}{} in {:.2}s{}",
        report.tensors_loaded,
        B::NAME,
        w.display(),
        weights
            .origin
            .as_ref()
            .map_or(String::new(), |o| format!(" ({o})")),
        t.elapsed().as_secs_f64(),
        if report.head_replaced {
            format!(
                "; its {}-class head was replaced by a new {classes}-class head (head.replace = true)",
                report.checkpoint_classes.unwrap_or(0)
            )
        } else {
            String::new()
        }
    );
    Ok(())
}

fn save_classifier<B: Backbone>(model: &Classifier<B>, path: &Path) -> Result<(), TrainError> {
    save_torchvision_weights(model, path).map_err(|e| match e {
        WeightsError::Write { path, source } => StoreError::Io { path, source }.into(),
        other => TrainError::Input(other.to_string()),
    })
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

fn image_source(run: &ResolvedRun) -> ImageSource {
    let (spec, folder, transform) = (run.spec(), &run.dataset.folder, &run.transform);
    let policy = run.bad_images;
    let (bs, seed) = (spec.train.batch_size, spec.experiment.seed);
    ImageSource {
        train: Loader::new(
            folder.train.clone(),
            transform.clone(),
            bs,
            seed,
            true,
            policy,
        ),
        val: Loader::new(
            folder.val.clone(),
            transform.deterministic(),
            bs,
            seed,
            false,
            policy,
        ),
        extractor: None,
    }
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

/// Images per feature-extraction batch: larger than the usual training batch (the frozen
/// network has no gradients to keep, and fewer, larger calls keep the engine's cores busy).
const EXTRACT_BATCH: usize = 32;

/// Features of every train and val image through `extract`, in file order. The next batch is
/// decoded on a thread of its own while `extract` computes the current one (sequentially, so
/// that no second thread pool competes with the engine's).
pub(super) fn extract_all(
    folder: &ImageFolder,
    transform: &Transform,
    policy: BadImagePolicy,
    extract: &dyn Fn(crate::train::Inputs) -> Result<crate::train::Inputs, TrainError>,
) -> Result<(FeatureSet, FeatureSet), TrainError> {
    let one = |split: &crate::data::Split| -> Result<FeatureSet, TrainError> {
        let loader = Loader::new(
            split.clone(),
            transform.deterministic(),
            EXTRACT_BATCH,
            0,
            false,
            policy,
        );
        let mut set = FeatureSet {
            x: Vec::new(),
            width: 0,
            labels: Vec::new(),
            skipped: 0,
        };
        let order = loader.order(0);
        std::thread::scope(|scope| -> Result<(), TrainError> {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let loader = &loader;
            let order = &order;
            scope.spawn(move || {
                for idx in order.chunks(EXTRACT_BATCH) {
                    // a closed channel: the consumer stopped on an error
                    if tx.send(loader.batch_sequential(0, idx)).is_err() {
                        break;
                    }
                }
            });
            for b in rx {
                let b = b?;
                set.skipped += b.skipped;
                if b.n == 0 {
                    continue;
                }
                let x = crate::train::Inputs::Images {
                    x: b.x,
                    n: b.n,
                    h: b.height,
                    w: b.width,
                };
                match extract(x)? {
                    crate::train::Inputs::Features { x, f, .. } => {
                        set.width = f;
                        set.x.extend_from_slice(&x);
                    }
                    crate::train::Inputs::Images { .. } => {
                        unreachable!("extractors return features")
                    }
                }
                set.labels.extend(b.labels);
            }
            Ok(())
        })?;
        Ok(set)
    };
    Ok((one(&folder.train)?, one(&folder.val)?))
}

/// Features of the frozen backbone from the cache, built on a miss. The key holds everything
/// they depend on: the data's content, the (deterministic) transforms, the backbone and the
/// hash of its weights and the global pooling.
fn cached_features(
    run: &ResolvedRun,
    fingerprint: &str,
    cache: &mut FeatureCache,
    backbone: &str,
    extract: &dyn Fn(crate::train::Inputs) -> Result<crate::train::Inputs, TrainError>,
) -> Result<FeatureSource, TrainError> {
    let spec = run.spec();
    let t = run.transform.deterministic();
    let weights = match &run.weights {
        Some(w) => w.sha256.clone(),
        None => format!("random-init seed {}", spec.experiment.seed),
    };
    let key = cache::key(&[
        ("dataset", fingerprint.to_string()),
        (
            "transforms",
            format!("{:?}/{:?}/{:?}/{:?}", t.resize, t.crop, t.mean, t.std),
        ),
        ("backbone", backbone.to_string()),
        ("weights", weights),
        ("pool", format!("{:?}", spec.head.pool)),
    ]);
    let t = Instant::now();
    let (f, lookup) = cache.get_or_build(&key, || {
        extract_all(&run.dataset.folder, &run.transform, run.bad_images, extract)
    })?;
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
