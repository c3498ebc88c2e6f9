//! A head trained on a frozen backbone's features. The backbone's pretrained weights are read
//! only when something needs their values: features that are not in the cache yet, features
//! computed every epoch (random train transforms), or an experiment whose store of frozen
//! backbones does not hold this one. A run of a sweep whose features are cached costs its
//! head's training and the recording of its files; it keeps the head, and the experiment
//! keeps the backbone once for all its runs (`models::shared_backbone`).

use std::time::Instant;

use dfdx::nn::ResetParams;

use super::cache::{self, FeatureCache, Lookup};
use super::pretrained::{load_pretrained, save_error, tensors_of};
use super::resume::Fitting;
use super::sources::image_source;
use super::sources::{FeatureSet, FeatureSource};
use crate::data::{BadImagePolicy, ImageFolder, Loader, Transform};
use crate::models::feature_head::FeatureHead;
use crate::models::fold::FrozenFeatures;
use crate::models::shared_backbone;
use crate::models::weights::replaces_head;
use crate::models::{Backbone, Classifier};
use crate::setup::ResolvedRun;
use crate::spec::Precision;
use crate::train::{BatchSource, Dev, Inputs, Outcome, TrainError};

/// Trains the head of `model` (built, not yet loaded) on the frozen backbone's pooled
/// features; the classifier is kept as its trained head plus the shared backbone.
pub(super) fn train_head<B: Backbone>(
    run: &ResolvedRun,
    fingerprint: &str,
    cache: &mut FeatureCache,
    fitting: &mut Fitting,
    dev: &Dev,
    mut model: Classifier<B>,
) -> Result<Outcome, TrainError> {
    let spec = run.spec();
    let classes = run.dataset.folder.num_classes();
    if let Some(weights) = &run.weights {
        // Loading the checkpoint into this classifier re-initialises its head when the
        // checkpoint's has another class count: draw that now, as a load here always did, so
        // the trained head below starts from the same numbers whether or not the checkpoint
        // is ever read.
        let file = tensors_of(weights)?;
        if replaces_head(&model, file, spec.head.replace) {
            model.head.reset_params();
        }
    }
    let mut backbone = Frozen {
        run,
        classes,
        loaded: run.weights.is_none(),
        seconds: 0.0,
    };
    let head = FeatureHead::new(dev, B::FEATURES, classes, &run.head);
    let mut source = feature_source(run, fingerprint, cache, fitting, &mut backbone, &mut model)?;
    let (outcome, head) = fitting.fit(dev, head, &mut *source)?;
    // kept as one classifier (its trained head with PyTorch names) on the shared backbone
    model.hidden = head.hidden;
    model.head = head.fc;
    if matches!(outcome, Outcome::Done | Outcome::Stopped(_)) {
        let file = shared_backbone::file_name(B::NAME, &backbone_source(run));
        let stored = fitting.paths.backbones.join(&file);
        let known = shared_backbone::stored_checksum(&stored);
        if known.is_none() {
            // the experiment does not store this backbone yet: this run writes it
            backbone.load(&mut model)?;
        }
        let t = Instant::now();
        let sha = match known {
            Some(sha) => sha,
            None => shared_backbone::store_backbone(&model, &stored).map_err(save_error)?,
        };
        shared_backbone::save_head(&model, fitting.paths.model, &file, &sha).map_err(save_error)?;
        fitting.rec.stage("save model", t.elapsed().as_secs_f64());
    }
    if backbone.seconds > 0.0 {
        fitting.rec.stage("load weights", backbone.seconds);
    }
    Ok(outcome)
}

/// What the backbone's values come from, for the names of its cached features and its stored
/// file: the content hash of its weights file, or the seed of its random initialisation.
fn backbone_source(run: &ResolvedRun) -> String {
    match &run.weights {
        Some(w) => w.sha256.clone(),
        None => format!("random-init seed {}", run.spec().experiment.seed),
    }
}

/// The frozen backbone's pretrained weights, read into the classifier on first need.
struct Frozen<'a> {
    run: &'a ResolvedRun<'a>,
    classes: usize,
    loaded: bool,
    /// Time spent reading them and readying the frozen network.
    seconds: f64,
}

impl Frozen<'_> {
    /// Puts the pretrained backbone into `model` (once), leaving its head as it is: the
    /// checkpoint is loaded into a classifier of its own, whose head a load may re-initialise
    /// without touching the generator of the run.
    fn load<B: Backbone>(&mut self, model: &mut Classifier<B>) -> Result<(), TrainError> {
        let Some(weights) = self.run.weights.as_ref().filter(|_| !self.loaded) else {
            return Ok(());
        };
        let t = Instant::now();
        let mut loaded = Classifier::<B>::to_load(&Dev::default(), self.classes, &self.run.head);
        load_pretrained(&mut loaded, weights, self.run.spec().head.replace)?;
        model.backbone = loaded.backbone;
        self.loaded = true;
        self.seconds += t.elapsed().as_secs_f64();
        Ok(())
    }

    /// The feature extractor of the loaded backbone: tape-free, eval mode (BatchNorm running
    /// statistics untouched), through its folded layers where it has them.
    fn extractor<B: Backbone>(
        &mut self,
        model: &mut Classifier<B>,
    ) -> Result<super::sources::Extractor, TrainError> {
        self.load(model)?;
        // folding BatchNorm in and packing the weights readies the network once: counted with
        // reading the weights, so that "features" is the extraction alone, as before
        let t = Instant::now();
        let frozen = FrozenFeatures::new(model.backbone.clone(), self.run.head.pool);
        self.seconds += t.elapsed().as_secs_f64();
        let dev = Dev::default();
        Ok(Box::new(move |x: Inputs| -> Result<Inputs, TrainError> {
            let n = x.len();
            let Inputs::Images { x, h, w, .. } = x else {
                return Err(TrainError::Input("a backbone reads images".into()));
            };
            Ok(Inputs::Features {
                x: frozen.features(&dev, x, n, h, w),
                n,
                f: B::FEATURES,
            })
        }))
    }
}

/// The batches of a frozen backbone's features: from the feature cache when the train transforms
/// are deterministic and `cache.features` is on, else extracted from the images every epoch.
fn feature_source<B: Backbone>(
    run: &ResolvedRun,
    fingerprint: &str,
    cache: &mut FeatureCache,
    fitting: &mut Fitting,
    backbone: &mut Frozen,
    model: &mut Classifier<B>,
) -> Result<Box<dyn BatchSource>, TrainError> {
    let (spec, transform) = (run.spec(), &run.transform);
    if spec.cache.features && transform.is_deterministic() {
        let t = Instant::now();
        let source = cached_features(run, fingerprint, cache, backbone, model)?;
        let loading = backbone.seconds;
        fitting
            .rec
            .stage("features", t.elapsed().as_secs_f64() - loading);
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
    source.extractor = Some(backbone.extractor(model)?);
    Ok(Box::new(source))
}

/// Features of the frozen backbone from the cache, built on a miss. The key holds everything
/// they depend on: the data's content, the (deterministic) transforms, the backbone and the
/// hash of its weights, the global pooling and the precision.
fn cached_features<B: Backbone>(
    run: &ResolvedRun,
    fingerprint: &str,
    cache: &mut FeatureCache,
    backbone: &mut Frozen,
    model: &mut Classifier<B>,
) -> Result<FeatureSource, TrainError> {
    let spec = run.spec();
    let t = run.transform.deterministic();
    let mut parts = vec![
        ("dataset", fingerprint.to_string()),
        (
            "transforms",
            format!("{:?}/{:?}/{:?}/{:?}", t.resize, t.crop, t.mean, t.std),
        ),
        ("backbone", B::NAME.to_string()),
        ("weights", backbone_source(run)),
        ("pool", format!("{:?}", spec.head.pool)),
    ];
    // bf16 features differ from f32 ones; f32 keys stay what they were before precision existed
    if spec.train.precision != Precision::Full {
        parts.push(("precision", spec.train.precision.to_string()));
    }
    let key = cache::key(&parts);
    let t = Instant::now();
    let (f, lookup) = cache.get_or_build(&key, || {
        let extract = backbone.extractor(model)?;
        extract_all(
            &run.dataset.folder,
            &run.transform,
            run.bad_images,
            &extract,
        )
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

/// Images per feature-extraction batch. Measured on the main job (Lite0 @96, release, 2 cores):
/// 16 extracts as fast as 32 (0.83–0.96 s against 0.88–0.93 s for 600 images) and 64 is slower
/// (0.90–0.95 s), while the peak memory of the whole job grows with it: 188 MB at 16, 285 MB at
/// 32, 410 MB at 64.
const EXTRACT_BATCH: usize = 16;

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
