//! Max and average pooling over k×k windows of NCHW tensors (any channel dimension type).
//!
//! Max pooling ignores padding (as PyTorch, it pads with −∞) and remembers each output's argmax,
//! so its backward pass is a scatter. Average pooling divides by k·k including padded positions
//! (PyTorch's default `count_include_pad=True`).

use dfdx::prelude::*;
use rayon::prelude::*;

use super::geometry::{window_1d, Padding};
use super::tensor_io::{alloc_output, put_grad, read_scratch, take_grad};

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

/// Which pooling a call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Max,
    Avg,
}

fn pool2d<C: Dim, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, C, usize, usize), f32, Cpu, T>,
    kind: Kind,
    kernel: usize,
    stride: usize,
    padding: Padding,
) -> Tensor<(usize, C, usize, usize), f32, Cpu, T> {
    let (n, c, h, w) = *x.shape();
    let geom = PoolGeom::new(n * c.size(), h, w, kernel, stride, padding);
    let x = x.contiguous();
    let (x, mut tape) = x.split_tape();
    let data = read_scratch(&x);
    let mut out = alloc_output(x.device(), geom.planes * geom.oh * geom.ow);
    let arg = match kind {
        Kind::Max => Some(max_pool_forward_into(&geom, &data, &mut out)),
        Kind::Avg => {
            avg_pool_forward_into(&geom, &data, &mut out);
            None
        }
    };
    drop(data);
    let out = x.device().tensor_from_vec(out, (n, c, geom.oh, geom.ow));
    if T::OWNS_TAPE {
        let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let gout = take_grad!(grads, &out_ghost);
            let dx = grads.get_or_alloc_mut(&x_ghost)?;
            match &arg {
                Some(a) => max_pool_backward(&geom, a, &gout, dx),
                None => avg_pool_backward(&geom, &gout, dx),
            }
            put_grad!(grads, &out_ghost, gout);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// Max pooling over `kernel`×`kernel` windows.
pub fn max_pool2d<C: Dim, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, C, usize, usize), f32, Cpu, T>,
    kernel: usize,
    stride: usize,
    padding: Padding,
) -> Tensor<(usize, C, usize, usize), f32, Cpu, T> {
    pool2d(x, Kind::Max, kernel, stride, padding)
}

/// Average pooling over `kernel`×`kernel` windows (divisor k·k, padding counted).
pub fn avg_pool2d<C: Dim, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, C, usize, usize), f32, Cpu, T>,
    kernel: usize,
    stride: usize,
    padding: Padding,
) -> Tensor<(usize, C, usize, usize), f32, Cpu, T> {
    pool2d(x, Kind::Avg, kernel, stride, padding)
}
