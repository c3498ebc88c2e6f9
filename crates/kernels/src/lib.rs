//! runner's numeric kernels on plain `f32` slices: convolution (im2col + gemm, depthwise SIMD
//! loops), pooling, fused BatchNorm and the optimizers' per-element updates. Nothing here knows dfdx; the tape glue that moves tensors
//! in and out and records backward passes lives in runner's `ops` module.
//!
//! A crate of its own so that it is compiled at opt-level 3 in every profile (the workspace's
//! `[profile.dev.package.runner-kernels]`): the README's `cargo run` builds the dev profile, where
//! runner itself stays at opt-level 1 to keep the build short.

pub mod batchnorm;
pub mod conv;
pub mod depthwise;
pub mod gemm;
pub mod geometry;
pub mod optim;
pub mod pool;
pub mod scratch;
