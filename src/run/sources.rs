//! Batch sources for the training loop: images through the transforms, images through a frozen
//! backbone, or features computed once and kept in memory.

use crate::data::{epoch_order, Loader};
use crate::setup::ResolvedRun;
use crate::train::{BatchSource, Batches, Inputs, Phase, TrainError};

/// Turns a batch of images into model inputs (a frozen backbone's forward pass).
pub(crate) type Extractor = Box<dyn Fn(Inputs) -> Result<Inputs, TrainError>>;

/// Decoded, transformed images; with an extractor, its features instead.
pub(crate) struct ImageSource {
    pub train: Loader,
    pub val: Loader,
    pub extractor: Option<Extractor>,
}

impl BatchSource for ImageSource {
    fn take_skipped(&mut self) -> usize {
        self.train.take_skipped() + self.val.take_skipped()
    }

    fn batches(&mut self, phase: Phase, epoch: usize) -> Batches<'_> {
        let (loader, epoch) = match phase {
            Phase::Train => (&self.train, epoch),
            // val is deterministic: the same batches every epoch
            Phase::Val => (&self.val, 0),
        };
        let extractor = self.extractor.as_ref();
        Box::new(loader.epoch(epoch).map(move |b| {
            let b = b?;
            let x = Inputs::Images {
                x: b.x,
                n: b.n,
                h: b.height,
                w: b.width,
            };
            let x = match extractor {
                Some(f) if b.n > 0 => f(x)?,
                _ => x,
            };
            Ok((x, b.labels))
        }))
    }
}

/// Feature vectors of one split, row-major `[n, width]`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FeatureSet {
    pub x: Vec<f32>,
    pub width: usize,
    pub labels: Vec<usize>,
    /// Images of the split left out (undecodable, `on_bad_image = "skip"`) when the features
    /// were computed: missing from every epoch.
    pub skipped: usize,
}

impl FeatureSet {
    pub(crate) fn len(&self) -> usize {
        self.labels.len()
    }

    fn rows(&self, idx: &[usize]) -> (Inputs, Vec<usize>) {
        let mut x = Vec::with_capacity(idx.len() * self.width);
        for &i in idx {
            x.extend_from_slice(&self.x[i * self.width..(i + 1) * self.width]);
        }
        let labels = idx.iter().map(|&i| self.labels[i]).collect();
        (
            Inputs::Features {
                x,
                n: idx.len(),
                f: self.width,
            },
            labels,
        )
    }
}

/// Precomputed features, batched in the same seeded order an image loader would use.
pub(crate) struct FeatureSource {
    pub train: FeatureSet,
    pub val: FeatureSet,
    pub batch_size: usize,
    pub seed: u64,
}

impl BatchSource for FeatureSource {
    fn take_skipped(&mut self) -> usize {
        self.train.skipped + self.val.skipped
    }

    fn batches(&mut self, phase: Phase, epoch: usize) -> Batches<'_> {
        let (set, order) = match phase {
            Phase::Train => (
                &self.train,
                epoch_order(self.train.len(), self.seed, epoch, true),
            ),
            Phase::Val => (&self.val, epoch_order(self.val.len(), self.seed, 0, false)),
        };
        let batches: Vec<Vec<usize>> = order
            .chunks(self.batch_size)
            .map(<[usize]>::to_vec)
            .collect();
        Box::new(batches.into_iter().map(move |idx| Ok(set.rows(&idx))))
    }
}

/// The run's train and val images through its transforms, batched.
pub(super) fn image_source(run: &ResolvedRun) -> ImageSource {
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
