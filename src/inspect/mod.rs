//! Looking at a model and its inputs without training it: the per-layer summary of a model,
//! the preview grid of transformed training images, and predictions of trained or pretrained
//! weights. Each builds a model or runs the loader, unlike the readers of results in `views`.

pub mod predict;
pub mod preview;
pub mod summary;
pub mod weights;
