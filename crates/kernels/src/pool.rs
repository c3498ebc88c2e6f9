//! Max and average pooling over k×k windows of NCHW tensors (any channel dimension type).
//!
//! Max pooling ignores padding (as PyTorch, it pads with −∞) and remembers each output's argmax,
//! so its backward pass is a scatter. Average pooling divides by k·k including padded positions
//! (PyTorch's default `count_include_pad=True`).

use rayon::prelude::*;

use crate::geometry::{window_1d, Padding};

/// Geometry of one pooling call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeom {
    pub planes: usize,
    pub h: usize,
    pub w: usize,
    pub k: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
}

impl PoolGeom {
    pub fn new(
        planes: usize,
        h: usize,
        w: usize,
        k: usize,
        stride: usize,
        padding: Padding,
    ) -> Self {
        let (oh, pad_top) = window_1d(h, k, stride, padding);
        let (ow, pad_left) = window_1d(w, k, stride, padding);
        PoolGeom {
            planes,
            h,
            w,
            k,
            stride,
            pad_top,
            pad_left,
            oh,
            ow,
        }
    }
    /// Input rows (or columns) covered by output row `o`, clipped to the image.
    #[inline]
    fn span(o: usize, stride: usize, pad: usize, k: usize, len: usize) -> (usize, usize) {
        let start = (o * stride) as isize - pad as isize;
        let lo = start.max(0) as usize;
        let hi = ((start + k as isize).max(0) as usize).min(len);
        (lo, hi.max(lo))
    }
}

/// Forward max pooling; returns the outputs and, per output, the index of its maximum within
/// the input plane (`u32::MAX` for a window that only covers padding).
pub fn max_pool_forward(g: &PoolGeom, x: &[f32]) -> (Vec<f32>, Vec<u32>) {
    let mut out = vec![0.0f32; g.planes * g.oh * g.ow];
    let arg = max_pool_forward_into(g, x, &mut out);
    (out, arg)
}

/// [`max_pool_forward`] writing the outputs into `out`; returns the argmax indices.
pub fn max_pool_forward_into(g: &PoolGeom, x: &[f32], out: &mut [f32]) -> Vec<u32> {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let mut arg = vec![u32::MAX; g.planes * ohw];
    out.par_chunks_mut(ohw)
        .zip(arg.par_chunks_mut(ohw))
        .zip(x.par_chunks(hw))
        .for_each(|((o, a), xp)| {
            for oy in 0..g.oh {
                let (y0, y1) = PoolGeom::span(oy, g.stride, g.pad_top, g.k, g.h);
                for ox in 0..g.ow {
                    let (x0, x1) = PoolGeom::span(ox, g.stride, g.pad_left, g.k, g.w);
                    let mut best = f32::NEG_INFINITY;
                    let mut best_i = u32::MAX;
                    for iy in y0..y1 {
                        for ix in x0..x1 {
                            let v = xp[iy * g.w + ix];
                            // NaN wins too, so NaNs propagate as in PyTorch.
                            if best_i == u32::MAX || v > best || v.is_nan() {
                                best = v;
                                best_i = (iy * g.w + ix) as u32;
                            }
                        }
                    }
                    o[oy * g.ow + ox] = if best_i == u32::MAX { 0.0 } else { best };
                    a[oy * g.ow + ox] = best_i;
                }
            }
        });
    arg
}

pub fn max_pool_backward(g: &PoolGeom, arg: &[u32], gout: &[f32], dx: &mut [f32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    dx.par_chunks_mut(hw)
        .zip(gout.par_chunks(ohw))
        .zip(arg.par_chunks(ohw))
        .for_each(|((d, go), a)| {
            for (v, &i) in go.iter().zip(a) {
                if i != u32::MAX {
                    d[i as usize] += v;
                }
            }
        });
}

pub fn avg_pool_forward(g: &PoolGeom, x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; g.planes * g.oh * g.ow];
    avg_pool_forward_into(g, x, &mut out);
    out
}

/// [`avg_pool_forward`] into `out`.
pub fn avg_pool_forward_into(g: &PoolGeom, x: &[f32], out: &mut [f32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let scale = 1.0 / (g.k * g.k) as f32;
    out.par_chunks_mut(ohw)
        .zip(x.par_chunks(hw))
        .for_each(|(o, xp)| {
            for oy in 0..g.oh {
                let (y0, y1) = PoolGeom::span(oy, g.stride, g.pad_top, g.k, g.h);
                for ox in 0..g.ow {
                    let (x0, x1) = PoolGeom::span(ox, g.stride, g.pad_left, g.k, g.w);
                    let mut acc = 0.0f32;
                    for iy in y0..y1 {
                        acc += xp[iy * g.w + x0..iy * g.w + x1].iter().sum::<f32>();
                    }
                    o[oy * g.ow + ox] = acc * scale;
                }
            }
        });
}

pub fn avg_pool_backward(g: &PoolGeom, gout: &[f32], dx: &mut [f32]) {
    let (hw, ohw) = (g.h * g.w, g.oh * g.ow);
    let scale = 1.0 / (g.k * g.k) as f32;
    dx.par_chunks_mut(hw)
        .zip(gout.par_chunks(ohw))
        .for_each(|(d, go)| {
            for oy in 0..g.oh {
                let (y0, y1) = PoolGeom::span(oy, g.stride, g.pad_top, g.k, g.h);
                for ox in 0..g.ow {
                    let (x0, x1) = PoolGeom::span(ox, g.stride, g.pad_left, g.k, g.w);
                    let v = go[oy * g.ow + ox] * scale;
                    for iy in y0..y1 {
                        d[iy * g.w + x0..iy * g.w + x1]
                            .iter_mut()
                            .for_each(|e| *e += v);
                    }
                }
            }
        });
}
