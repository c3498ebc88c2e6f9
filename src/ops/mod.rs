//! Convolution, pooling and activation ops that dfdx 0.13 only ships behind its broken `nightly`
//! feature, written on dfdx's public API (custom backward passes via `Tape::add_backward_op`).
//!
//! Each op has two layers: a non-generic kernel on plain `f32` slices, in the `runner-kernels`
//! crate (compiled once at opt-level 3 in every profile, whatever the const channel counts of
//! the caller), and a thin generic wrapper here that moves data in and out of dfdx tensors and
//! records the backward pass on the tape.

pub mod activations;
pub mod batchnorm;
pub mod conv;
pub mod engine;
pub mod frozen;
pub mod gelu;
pub mod pool;
mod tensor_io;

pub use runner_kernels::{depthwise, gemm, geometry};

pub use activations::relu6;
pub use batchnorm::{batchnorm2d_eval, batchnorm2d_train};
pub use conv::conv2d;
pub use gelu::gelu;
pub use geometry::{Conv2dGeom, Padding};
pub use pool::{avg_pool2d, max_pool2d};
