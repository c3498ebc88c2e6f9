//! Batch sources for the training loop: images through the transforms, images through a frozen
//! backbone, or features computed once and kept in memory.

use crate::data::{epoch_order, Loader};
use crate::train::{BatchSource, Inputs, Phase, TrainError};

type Batches<'a> = Box<dyn Iterator<Item = Result<(Inputs, Vec<usize>), TrainError>> + 'a>;

/// Turns a batch of images into model inputs (a frozen backbone's forward pass).
pub type Extractor = Box<dyn Fn(Inputs) -> Result<Inputs, TrainError>>;

/// Decoded, transformed images; with an extractor, its features instead.
pub struct ImageSource {
    pub train: Loader,
    pub val: Loader,
    pub extractor: Option<Extractor>,
}

impl BatchSource for ImageSource {
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
pub struct FeatureSet {
    pub x: Vec<f32>,
    pub width: usize,
    pub labels: Vec<usize>,
}

impl FeatureSet {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
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
pub struct FeatureSource {
    pub train: FeatureSet,
    pub val: FeatureSet,
    pub batch_size: usize,
    pub seed: u64,
}

impl BatchSource for FeatureSource {
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
