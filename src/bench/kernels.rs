//! Kernel-level workloads: representative conv layers (forward, and backward to input and
//! weight together) and the plain matmul the conv layers are measured against.

use dfdx::prelude::*;

use super::busy::timed;
use super::Measure;
use crate::models::Dev;
use crate::ops::engine;
use crate::ops::gemm::{matmul, Mat, Parallelism};
use crate::ops::Conv2dGeom;
use crate::ops::Padding;

/// A conv layer at batch 4: (name, c_in, c_out, k, stride, groups, input size). The PyTorch
/// script receives this list, so both sides run the same shapes.
pub(super) type ConvLayer = (&'static str, usize, usize, usize, usize, usize, usize);

pub(super) const CONV_LAYERS: &[ConvLayer] = &[
    ("resnet stem 7x7/2 @224", 3, 64, 7, 2, 1, 224),
    ("resnet layer1 3x3 @56", 64, 64, 3, 1, 1, 56),
    ("resnet layer2 3x3 @28", 128, 128, 3, 1, 1, 28),
    ("resnet layer3 3x3 @14", 256, 256, 3, 1, 1, 14),
    ("resnet layer4 3x3 @7", 512, 512, 3, 1, 1, 7),
    ("lite0 expand 1x1 @56", 24, 144, 1, 1, 1, 56),
    ("lite0 dw 5x5 @28", 240, 240, 5, 1, 240, 28),
];

/// Forward and backward GFLOP/s of one layer (backward = ∂x and ∂w, twice the forward FLOPs).
pub(super) fn conv_layer(l: &ConvLayer, iters: usize) -> (Measure, Measure) {
    let &(_, ci, co, k, s, g, hw) = l;
    // Symmetric k/2 padding, as in the PyTorch script (same shapes as SAME at stride 1).
    let geom = Conv2dGeom::new(4, ci, hw, hw, co, k, s, Padding::Symmetric(k / 2), g);
    let x: Vec<f32> = (0..4 * ci * hw * hw)
        .map(|i| (i % 17) as f32 * 0.1 - 0.8)
        .collect();
    let w: Vec<f32> = (0..geom.weight_len())
        .map(|i| (i % 13) as f32 * 0.01 - 0.06)
        .collect();
    let mut out = vec![0.0f32; 4 * co * geom.oh * geom.ow];
    let (mut dx, mut dw) = (vec![0.0f32; x.len()], vec![0.0f32; w.len()]);
    let flop = 2.0 * geom.macs() as f64;
    // through the engine the product uses (oneDNN or built-in, see the table's header)
    let (fwd, busy_f) = timed(1, iters, || {
        engine::conv_forward(&geom, &x, &w, None, &mut out, false);
    });
    let saved = engine::conv_forward(&geom, &x, &w, None, &mut out, true);
    let (bwd, busy_b) = timed(1, iters, || {
        dx.fill(0.0);
        dw.fill(0.0);
        let (dx, dw) = (Some(&mut dx[..]), Some(&mut dw[..]));
        engine::conv_backward(&geom, &saved, &x, &w, &out, dx, dw, None);
    });
    (
        Measure::new(flop / fwd / 1e9, busy_f),
        Measure::new(2.0 * flop / bwd / 1e9, busy_b),
    )
}

const MATMUL_N: usize = 2048;

/// GFLOP/s of a 2048² matmul through the conv ops' gemm (0.19, AVX-512 where available).
pub(super) fn matmul_conv_gemm(iters: usize) -> Measure {
    let n = MATMUL_N;
    let a: Vec<f32> = (0..n * n).map(|i| (i % 7) as f32 * 0.1).collect();
    let b: Vec<f32> = (0..n * n).map(|i| (i % 5) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; n * n];
    let par = match rayon::current_num_threads() {
        0 | 1 => Parallelism::None,
        t => Parallelism::Rayon(t),
    };
    let (s, busy) = timed(1, iters, || {
        let (a, b) = (Mat::row_major(&a, n), Mat::row_major(&b, n));
        matmul(n, n, n, &mut c, false, a, b, par);
    });
    Measure::new(2.0 * (n as f64).powi(3) / s / 1e9, busy)
}

/// GFLOP/s of a 2048² matmul through dfdx's tensor matmul (gemm 0.15, AVX2).
pub(super) fn matmul_dfdx(iters: usize) -> Measure {
    let dev = Dev::seed_from_u64(0);
    let n = MATMUL_N;
    let a: Tensor<(usize, usize), f32, Dev> = dev.sample_normal_like(&(n, n));
    let b: Tensor<(usize, usize), f32, Dev> = dev.sample_normal_like(&(n, n));
    let (s, busy) = timed(1, iters, || {
        let _ = a.clone().matmul(b.clone());
    });
    Measure::new(2.0 * (n as f64).powi(3) / s / 1e9, busy)
}
