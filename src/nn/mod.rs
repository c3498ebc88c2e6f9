//! dfdx modules around the project's ops: they compose in dfdx architecture tuples
//! (`(Conv2D<3, 16, 3>, BatchNorm2D<16>, ReLU)`), and their `TensorCollection` impls make them
//! visible to optimizers, `alloc_grads`, `ResetParams` and safetensors save/load.
//!
//! Each module has a zero-sized builder in [`builder`] for `dev.build_module::<M, f32>()`, the
//! way dfdx's own modules do.

pub mod activations;
pub mod batchnorm;
pub mod batchnorm1d;
pub mod conv;
pub mod describe;
pub mod dropout;
pub mod head;
pub mod head_kinds;
pub mod init;
pub mod mlp_head;
pub mod pool;
pub mod tensors;

pub use activations::ReLU6;
pub use batchnorm::BatchNorm2D;
pub use conv::{Conv2D, SAME};
pub use head::LinearHead;
pub use mlp_head::{HiddenLayers, HiddenLayout};
pub use pool::{AvgPool2D, MaxPool2D};

/// A tensor's values in order. dfdx 0.13's `as_vec` reads one element of an empty tensor
/// (its index iterator always yields the first index), and a linear head's hidden-layer
/// buffers ([`HiddenLayers`]) are empty: walkers over whole models read values through this.
pub fn values<S: dfdx::shapes::Shape>(
    t: &dfdx::tensor::Tensor<S, f32, dfdx::tensor::Cpu>,
) -> Vec<f32> {
    use dfdx::shapes::HasShape;
    if t.shape().num_elements() == 0 {
        Vec::new()
    } else {
        t.as_vec()
    }
}

/// Zero-sized builders: `dev.build_module::<builder::Conv2D<3, 8, 3>, f32>()`.
pub mod builder {
    pub use super::batchnorm::builder::BatchNorm2D;
    pub use super::conv::builder::Conv2D;
    pub use super::pool::{AvgPool2D, MaxPool2D};
    pub use super::ReLU6;
}
