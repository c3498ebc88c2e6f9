//! Decoding and batching. Decoding runs in parallel (rayon); every random choice is seeded from
//! (seed, epoch, sample) so batches are identical whatever the thread count or scheduling.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use image::RgbImage;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::{DataError, Split, Transform};

/// What to do with an image that cannot be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadImagePolicy {
    Error,
    /// Log it once, count it, and leave it out of the batch.
    Skip,
}

/// A batch of images as NCHW f32 values, with class labels.
#[derive(Debug, Clone)]
pub struct Batch {
    pub x: Vec<f32>,
    pub n: usize,
    pub height: usize,
    pub width: usize,
    pub labels: Vec<usize>,
    /// Images of this batch left out under `BadImagePolicy::Skip`.
    pub skipped: usize,
}

/// Decodes any supported file to RGB (grayscale and RGBA become RGB, alpha dropped like PIL).
pub fn load_image(path: &Path) -> Result<RgbImage, DataError> {
    let bad = |reason: String| DataError::BadImage {
        path: path.to_path_buf(),
        reason,
    };
    let reader = image::ImageReader::open(path)
        .map_err(|e| bad(e.to_string()))?
        .with_guessed_format()
        .map_err(|e| bad(e.to_string()))?;
    Ok(reader.decode().map_err(|e| bad(e.to_string()))?.to_rgb8())
}

/// Produces the batches of one split.
pub struct Loader {
    split: Split,
    transform: Transform,
    batch_size: usize,
    seed: u64,
    shuffle: bool,
    policy: BadImagePolicy,
    reported: Mutex<HashSet<PathBuf>>,
    /// Images left out under `BadImagePolicy::Skip` since the last [`Loader::take_skipped`].
    skipped: AtomicUsize,
}

impl Loader {
    pub fn new(
        split: Split,
        transform: Transform,
        batch_size: usize,
        seed: u64,
        shuffle: bool,
        policy: BadImagePolicy,
    ) -> Self {
        assert!(batch_size > 0);
        Self {
            split,
            transform,
            batch_size,
            seed,
            shuffle,
            policy,
            reported: Mutex::default(),
            skipped: AtomicUsize::new(0),
        }
    }

    pub fn len(&self) -> usize {
        self.split.len()
    }

    pub fn is_empty(&self) -> bool {
        self.split.is_empty()
    }

    /// How many images were skipped since the last call (per epoch, for the metrics).
    pub(crate) fn take_skipped(&self) -> usize {
        self.skipped.swap(0, Ordering::Relaxed)
    }

    /// The sample order of an epoch (1-based): a seeded permutation when shuffling.
    pub fn order(&self, epoch: usize) -> Vec<usize> {
        epoch_order(self.split.len(), self.seed, epoch, self.shuffle)
    }

    /// The batches of an epoch, in order.
    pub fn epoch(&self, epoch: usize) -> BatchIter<'_> {
        BatchIter {
            loader: self,
            order: self.order(epoch),
            pos: 0,
            epoch,
        }
    }

    /// Decodes and transforms the given samples into one batch (in parallel on rayon's pool).
    pub fn batch(&self, epoch: usize, indices: &[usize]) -> Result<Batch, DataError> {
        let decoded = indices.par_iter().map(|&i| self.decode(epoch, i)).collect();
        self.assemble(decoded, indices)
    }

    /// [`Self::batch`] on the calling thread alone: for decoding the next batch while the
    /// engine computes on the current one, without a second thread pool competing with the
    /// engine's.
    pub(crate) fn batch_sequential(
        &self,
        epoch: usize,
        indices: &[usize],
    ) -> Result<Batch, DataError> {
        let decoded = indices.iter().map(|&i| self.decode(epoch, i)).collect();
        self.assemble(decoded, indices)
    }

    /// Sample `i`'s pixels, (height, width) and label, or None when it is skipped.
    fn decode(&self, epoch: usize, i: usize) -> Result<Decoded, DataError> {
        let s = &self.split.samples[i];
        let img = match load_image(&s.path) {
            Ok(img) => img,
            Err(e) if self.policy == BadImagePolicy::Skip => {
                if self.reported.lock().unwrap().insert(s.path.clone()) {
                    tracing::warn!("skipping bad image: {e}");
                }
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let size = self.transform.output_size(img.width(), img.height());
        let mut out = vec![0.0; 3 * size.0 as usize * size.1 as usize];
        let mut rng = ChaCha8Rng::seed_from_u64(mix(self.seed, epoch as u64, i as u64));
        self.transform
            .apply(&img, &mut rng, &mut out)
            .map_err(|reason| DataError::BadImage {
                path: s.path.clone(),
                reason,
            })?;
        Ok(Some((out, size, s.label)))
    }

    fn assemble(
        &self,
        decoded: Vec<Result<Decoded, DataError>>,
        indices: &[usize],
    ) -> Result<Batch, DataError> {
        let mut batch = Batch {
            x: Vec::new(),
            n: 0,
            height: 0,
            width: 0,
            labels: Vec::new(),
            skipped: 0,
        };
        for (item, &i) in decoded.into_iter().zip(indices) {
            let Some((values, (h, w), label)) = item? else {
                batch.skipped += 1;
                self.skipped.fetch_add(1, Ordering::Relaxed);
                continue;
            };
            if batch.n == 0 {
                (batch.height, batch.width) = (h as usize, w as usize);
                batch.x.reserve(values.len() * indices.len());
            } else if (h as usize, w as usize) != (batch.height, batch.width) {
                return Err(DataError::WrongSize {
                    path: self.split.samples[i].path.clone(),
                    size: (h, w),
                    batch: (batch.height, batch.width),
                });
            }
            batch.x.extend_from_slice(&values);
            batch.labels.push(label);
            batch.n += 1;
        }
        Ok(batch)
    }
}

/// A decoded sample: its pixels, (height, width) and label, or None when it was skipped.
type Decoded = Option<(Vec<f32>, (u32, u32), usize)>;

/// Walks an epoch's batches.
pub struct BatchIter<'a> {
    loader: &'a Loader,
    order: Vec<usize>,
    pos: usize,
    epoch: usize,
}

impl Iterator for BatchIter<'_> {
    type Item = Result<Batch, DataError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.loader.batch_size).min(self.order.len());
        let idx = &self.order[self.pos..end];
        self.pos = end;
        Some(self.loader.batch(self.epoch, idx))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = (self.order.len() - self.pos).div_ceil(self.loader.batch_size);
        (left, Some(left))
    }
}

/// The order in which an epoch (1-based) visits `n` samples: a permutation seeded from
/// (seed, epoch) when shuffling, else 0..n. Shared by image and cached-feature sources so both
/// see the same order for the same seed.
pub fn epoch_order(n: usize, seed: u64, epoch: usize, shuffle: bool) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).collect();
    if shuffle {
        idx.shuffle(&mut ChaCha8Rng::seed_from_u64(mix(
            seed,
            epoch as u64,
            u64::MAX,
        )));
    }
    idx
}

/// SplitMix64-style mixing of (seed, epoch, item) into one RNG seed.
fn mix(seed: u64, epoch: u64, item: u64) -> u64 {
    let mut z =
        seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ item.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ImageFolder, IMAGENET_MEAN, IMAGENET_STD};

    fn root() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
    }

    fn t(resize: Option<u32>, crop: Option<u32>, random: bool, hflip: f32) -> Transform {
        Transform {
            resize,
            crop,
            random_crop: random,
            hflip,
            mean: IMAGENET_MEAN,
            std: IMAGENET_STD,
            augment: Default::default(),
        }
    }

    #[test]
    fn batches_real_images_with_shapes_and_ranges() {
        let f = ImageFolder::open(
            &root().join("tests/fixtures/catdog-tiny"),
            "train",
            "val",
            0,
            0,
        )
        .unwrap();
        let l = Loader::new(
            f.train,
            t(Some(64), Some(56), true, 0.5),
            5,
            7,
            true,
            BadImagePolicy::Error,
        );
        let batches: Vec<Batch> = l.epoch(1).collect::<Result<_, _>>().unwrap();
        assert_eq!(
            batches.iter().map(|b| b.n).collect::<Vec<_>>(),
            vec![5, 5, 5, 1]
        );
        let b = &batches[0];
        assert_eq!((b.height, b.width, b.x.len()), (56, 56, 5 * 3 * 56 * 56));
        // grayscale silhouettes in [0, 255] normalise into [(0-m)/s, (1-m)/s]
        let lo = (0.0 - 0.485) / 0.229 - 1e-4;
        let hi = (1.0 - 0.406) / 0.225 + 1e-4;
        assert!(b.x.iter().all(|v| (lo..=hi).contains(v)));
        assert!(b.x.iter().any(|&v| v > 1.0) && b.x.iter().any(|&v| v < -1.0));
        // every sample once per epoch; the same seed gives the same batches, another epoch another order
        let mut labels: Vec<usize> = batches.iter().flat_map(|b| b.labels.clone()).collect();
        labels.sort();
        assert_eq!(labels, [vec![0; 8], vec![1; 8]].concat());
        let again: Vec<Batch> = l.epoch(1).collect::<Result<_, _>>().unwrap();
        assert_eq!(again[0].x, batches[0].x);
        assert_ne!(l.order(1), l.order(2));
    }

    #[test]
    fn decodes_mixed_real_photos_to_rgb() {
        let f = ImageFolder::open(
            &root().join("pipeline/data/catdog-photos"),
            "train",
            "val",
            0,
            0,
        )
        .unwrap();
        let l = Loader::new(
            f.val,
            t(Some(256), Some(224), false, 0.0),
            4,
            0,
            false,
            BadImagePolicy::Error,
        );
        let b = l.batch(1, &[0, 1, 2]).unwrap();
        assert_eq!((b.n, b.height, b.width), (3, 224, 224));
        assert_eq!(b.labels, vec![0, 1, 1]);
    }

    #[test]
    fn corrupt_image_is_an_error_naming_the_file_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let good = root().join("tests/fixtures/catdog-tiny/train/cat/cat_02000.png");
        for class in ["cat", "dog"] {
            for split in ["train", "val"] {
                let d = dir.path().join(split).join(class);
                std::fs::create_dir_all(&d).unwrap();
                std::fs::copy(&good, d.join("a.png")).unwrap();
            }
        }
        let bad = dir.path().join("train/dog/b.png");
        std::fs::write(&bad, b"\x89PNG not really").unwrap();
        let f = ImageFolder::open(dir.path(), "train", "val", 0, 0).unwrap();
        let strict = Loader::new(
            f.train.clone(),
            t(None, None, false, 0.0),
            4,
            0,
            false,
            BadImagePolicy::Error,
        );
        let err = strict.batch(1, &[0, 1, 2]).unwrap_err().to_string();
        assert!(
            err.starts_with(&format!("cannot decode image {}", bad.display())),
            "{err}"
        );
        let lenient = Loader::new(
            f.train,
            t(None, None, false, 0.0),
            4,
            0,
            false,
            BadImagePolicy::Skip,
        );
        let b = lenient.batch(1, &[0, 1, 2]).unwrap();
        assert_eq!((b.n, b.skipped, b.labels.clone()), (2, 1, vec![0, 1]));
    }
}
