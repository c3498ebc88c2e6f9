//! Scoring the model a run kept on a labelled image split: the run's held-out test split once
//! after training (`dataset.test_dir`), and `runner evaluate RUN_DIR --data DIR` later. Both go
//! through [`KeptWeights::score`], so they give the same numbers on the same folder.

mod command;
mod render;

use std::path::PathBuf;

use crate::data::{load_image, BadImagePolicy, Loader, Split, Transform};
use crate::durable::tensor_file::TensorFile;
use crate::models::pixels::{LinearModel, MlpModel, MLP_HIDDEN};
use crate::models::{load_torchvision_file, ArchVisitor, Backbone, Classifier, HeadConfig};
use crate::results::store::KeptModel;
use crate::spec::{BackboneName, RunSpec};
use crate::train::early_stopping::StopState;
use crate::train::{checkpoint, evaluate, BatchSource, Batches, Dev, Inputs, Net, Phase};
use crate::train::{EarlyStopping, EpochMetrics, Evaluation, TrainError};

pub use command::write_tables;
pub use command::{evaluate_run, open_run, EvaluateError, EvaluateOptions, Evaluated};
pub use render::Format;

/// Which weights a finished run keeps: under `early_stopping.restore_best` the best epoch by
/// its metric (the same rule, replayed over the recorded epochs), else the last epoch.
pub(crate) fn kept_model(
    early: Option<&EarlyStopping>,
    rows: &[EpochMetrics],
) -> (usize, KeptModel) {
    let last = rows.last().map_or(0, |r| r.epoch);
    match early {
        Some(es) if es.restore_best => {
            let mut state = StopState::default();
            for r in rows {
                es.observe(r.epoch, r.val_loss, r.val_acc, &mut state);
            }
            (state.best_epoch, KeptModel::Best)
        }
        _ => (last, KeptModel::Final),
    }
}

/// A run's trained weights and what scoring them needs from its spec.
#[derive(Debug, Clone)]
pub struct KeptWeights {
    pub backbone: BackboneName,
    pub head: HeadConfig,
    pub classes: Vec<String>,
    /// The validation-side transforms (resize and center crop, no random parts).
    pub transform: Transform,
    pub weights: PathBuf,
    pub batch_size: usize,
    pub bad_images: BadImagePolicy,
}

/// A model's loss, accuracy and confusion matrix on a split.
#[derive(Debug, Clone, PartialEq)]
pub struct Score {
    pub loss: f64,
    pub acc: f64,
    /// `confusion[true][predicted]`.
    pub confusion: Vec<Vec<u64>>,
    /// Images scored (undecodable ones skipped under `on_bad_image = "skip"` are not).
    pub images: usize,
    pub skipped: usize,
}

impl KeptWeights {
    /// The weights file of a run trained from `spec` on `classes`.
    pub(crate) fn of_spec(spec: &RunSpec, classes: Vec<String>, weights: PathBuf) -> Self {
        Self {
            backbone: spec.backbone.name,
            head: crate::setup::head_config(&spec.head, spec.experiment.seed),
            classes,
            transform: crate::setup::transform(spec).deterministic(),
            weights,
            batch_size: spec.train.batch_size,
            bad_images: crate::setup::bad_image_policy(spec),
        }
    }

    /// One eval-mode pass over `split` (its labels index [`Self::classes`]).
    pub fn score(&self, split: &Split) -> Result<Score, TrainError> {
        let loader = Loader::new(
            split.clone(),
            self.transform.clone(),
            self.batch_size,
            0,
            false,
            self.bad_images,
        );
        let mut source = SplitSource { loader: &loader };
        let dev = Dev::default();
        let classes = self.classes.len();
        let eval = match self.backbone.arch() {
            Some(arch) => arch.dispatch(ScoreConv {
                kept: self,
                dev: &dev,
                source: &mut source,
            })?,
            None => {
                let inputs = pixel_inputs(split, &self.transform, self.bad_images)?;
                if self.backbone == BackboneName::Linear {
                    let model = LinearModel::new(&dev, inputs, classes);
                    self.score_loaded(&dev, model, &mut source)?
                } else {
                    let model = MlpModel::new(&dev, inputs, MLP_HIDDEN, classes);
                    self.score_loaded(&dev, model, &mut source)?
                }
            }
        };
        let Evaluation {
            loss,
            acc,
            confusion,
        } = eval;
        Ok(Score {
            loss,
            acc,
            images: confusion.iter().flatten().sum::<u64>() as usize,
            confusion,
            skipped: loader.take_skipped(),
        })
    }

    /// `images` through the validation transforms, as one batch: values, n, height, width.
    pub fn batch(&self, images: &[PathBuf]) -> Result<(Vec<f32>, usize, usize, usize), TrainError> {
        let mut x = Vec::new();
        let mut size = (0, 0);
        for path in images {
            let img = load_image(path)?;
            let (h, w) = self.transform.output_size(img.width(), img.height());
            size = (h as usize, w as usize);
            let mut one = vec![0.0; 3 * size.0 * size.1];
            // deterministic transforms: the generator is never drawn from
            let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0);
            self.transform
                .apply(&img, &mut rng, &mut one)
                .map_err(|e| TrainError::Input(format!("{}: {e}", path.display())))?;
            x.extend(one);
        }
        Ok((x, images.len(), size.0, size.1))
    }

    /// The model's logits (batch × classes, row-major) for `x`, a batch of `n` transformed
    /// images of `h` × `w`: the forward pass scoring uses, for comparing with other runtimes.
    pub fn logits(
        &self,
        x: Vec<f32>,
        n: usize,
        h: usize,
        w: usize,
    ) -> Result<Vec<f32>, TrainError> {
        let dev = Dev::default();
        let classes = self.classes.len();
        let inputs = Inputs::Images { x, n, h, w };
        match self.backbone.arch() {
            Some(arch) => arch.dispatch(LogitsConv {
                kept: self,
                dev: &dev,
                inputs,
            }),
            None => {
                let pixels = 3 * h * w;
                if self.backbone == BackboneName::Linear {
                    let model = LinearModel::new(&dev, pixels, classes);
                    self.logits_loaded(&dev, model, inputs)
                } else {
                    let model = MlpModel::new(&dev, pixels, MLP_HIDDEN, classes);
                    self.logits_loaded(&dev, model, inputs)
                }
            }
        }
    }

    fn logits_loaded<M: Net>(
        &self,
        dev: &Dev,
        mut model: M,
        x: Inputs,
    ) -> Result<Vec<f32>, TrainError> {
        self.load_pixel_model(&mut model)?;
        Ok(model.logits(dev, x)?.as_vec())
    }

    /// A pixel model: its weights are stored with the runner's own names.
    fn score_loaded<M: Net>(
        &self,
        dev: &Dev,
        mut model: M,
        source: &mut SplitSource,
    ) -> Result<Evaluation, TrainError> {
        self.load_pixel_model(&mut model)?;
        evaluate(dev, &model, source, self.classes.len())
    }

    /// The weights file, read and checked: a damaged one is named as such.
    fn read_weights(&self) -> Result<TensorFile, TrainError> {
        Ok(crate::setup::kept_model::read(&self.weights)?)
    }

    fn load_pixel_model<M: Net>(&self, model: &mut M) -> Result<(), TrainError> {
        checkpoint::load_weights_from(&self.read_weights()?, model)
            .map_err(|why| TrainError::Input(format!("{}: {why}", self.weights.display())))
    }

    /// A convolutional classifier with this run's head and weights.
    fn conv_model<B: Backbone>(&self, dev: &Dev) -> Result<Classifier<B>, TrainError> {
        let mut model = Classifier::<B>::to_load(dev, self.classes.len(), &self.head);
        load_torchvision_file(&mut model, &self.weights, &self.read_weights()?, false)
            .map_err(|e| TrainError::Input(e.to_string()))?;
        Ok(model)
    }
}

struct ScoreConv<'a> {
    kept: &'a KeptWeights,
    dev: &'a Dev,
    source: &'a mut SplitSource<'a>,
}

impl ArchVisitor for ScoreConv<'_> {
    type Output = Result<Evaluation, TrainError>;

    fn visit<B: Backbone>(self) -> Self::Output {
        let model = self.kept.conv_model::<B>(self.dev)?;
        evaluate(self.dev, &model, self.source, self.kept.classes.len())
    }
}

struct LogitsConv<'a> {
    kept: &'a KeptWeights,
    dev: &'a Dev,
    inputs: Inputs,
}

impl ArchVisitor for LogitsConv<'_> {
    type Output = Result<Vec<f32>, TrainError>;

    fn visit<B: Backbone>(self) -> Self::Output {
        let model = self.kept.conv_model::<B>(self.dev)?;
        Ok(model.logits(self.dev, self.inputs)?.as_vec())
    }
}

/// A split's images through the transforms, the same batches whatever the phase.
struct SplitSource<'a> {
    loader: &'a Loader,
}

impl BatchSource for SplitSource<'_> {
    fn batches(&mut self, _phase: Phase, _epoch: usize) -> Batches<'_> {
        Box::new(self.loader.epoch(0).map(|b| {
            let b = b?;
            let x = Inputs::Images {
                x: b.x,
                n: b.n,
                h: b.height,
                w: b.width,
            };
            Ok((x, b.labels))
        }))
    }
}

/// Values per image of a pixel model: 3 × height × width of the first image that decodes.
fn pixel_inputs(
    split: &Split,
    transform: &Transform,
    policy: BadImagePolicy,
) -> Result<usize, TrainError> {
    for sample in &split.samples {
        match load_image(&sample.path) {
            Ok(img) => {
                let (h, w) = transform.output_size(img.width(), img.height());
                return Ok(3 * h as usize * w as usize);
            }
            Err(_) if policy == BadImagePolicy::Skip => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(TrainError::Input("no image to score decodes".into()))
}
