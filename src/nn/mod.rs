//! dfdx modules around the project's ops: they compose in dfdx architecture tuples
//! (`(Conv2D<3, 16, 3>, BatchNorm2D<16>, ReLU)`), and their `TensorCollection` impls make them
//! visible to optimizers, `alloc_grads`, `ResetParams` and safetensors save/load.
//!
//! Each module has a zero-sized builder in [`builder`] for `dev.build_module::<M, f32>()`, the
//! way dfdx's own modules do.

pub mod activations;
pub mod batchnorm;
pub mod conv;
pub mod describe;
pub mod head;
pub mod init;
pub mod pool;
pub mod tensors;

pub use activations::ReLU6;
pub use batchnorm::BatchNorm2D;
pub use conv::{Conv2D, SAME};
pub use head::LinearHead;
pub use pool::{AvgPool2D, MaxPool2D};

/// Zero-sized builders: `dev.build_module::<builder::Conv2D<3, 8, 3>, f32>()`.
pub mod builder {
    pub use super::batchnorm::builder::BatchNorm2D;
    pub use super::conv::builder::Conv2D;
    pub use super::pool::{AvgPool2D, MaxPool2D};
    pub use super::ReLU6;
}
