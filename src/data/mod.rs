//! The data stage: an ImageFolder on disk → transformed, batched f32 tensors.
//!
//! `folder` finds the images and their classes, `manifest` and `listed` take them from a list
//! (with `split` making a seeded split where the list has none), `transform` turns one decoded image into a
//! normalised CHW tensor, `loader` decodes and batches in parallel with seeded randomness.

mod augment;
mod folder;
mod listed;
mod loader;
mod manifest;
mod split;
mod transform;

pub use augment::{Augment, ColorJitter, CropBox, RandomResizedCrop};
pub use folder::{
    fingerprint, scan_classes, split_fingerprint, ClassFiles, DataError, ImageFolder, Sample,
    Split, IMAGE_EXTENSIONS,
};
pub use listed::{open_listed, rows_of_classes, split_list, split_of_rows, Cut, Layout, Listed};
pub use loader::{epoch_order, load_image, BadImagePolicy, Batch, BatchIter, Loader};
pub use manifest::{
    is_parquet, read as read_manifest, Cells, Columns, Issue, ManifestFile, Row, Where,
};
pub use split::{assign as assign_split, Fractions, Part};
pub use transform::{Transform, IMAGENET_MEAN, IMAGENET_STD};
