//! The data stage: an ImageFolder on disk → transformed, batched f32 tensors.
//!
//! `folder` finds the images and their classes, `transform` turns one decoded image into a
//! normalised CHW tensor, `loader` decodes and batches in parallel with seeded randomness.

mod augment;
mod folder;
mod loader;
mod transform;

pub use augment::{Augment, ColorJitter, CropBox, RandomResizedCrop};
pub use folder::{
    fingerprint, scan_classes, split_fingerprint, ClassFiles, DataError, ImageFolder, Sample,
    Split, IMAGE_EXTENSIONS,
};
pub use loader::{epoch_order, load_image, BadImagePolicy, Batch, BatchIter, Loader};
pub use transform::{Transform, IMAGENET_MEAN, IMAGENET_STD};
