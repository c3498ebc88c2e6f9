//! 2D convolution (stride, padding incl. TF "SAME", groups, optional bias) on NCHW tensors.
//!
//! Dense and grouped convolutions use im2col + gemm; a 1×1 stride-1 unpadded convolution skips
//! im2col (the image already is the column matrix). Depthwise convolutions (one input and one
//! output channel per group) use the direct loops in [`super::depthwise`], where a gemm per
//! channel would be all overhead. Work is spread over images with rayon; when there are fewer
//! images than threads, the gemm itself runs multi-threaded instead.
//!
//! The backward pass recomputes im2col instead of keeping the column matrices from the forward
//! pass: it costs a little time but keeps the memory of training at the size of the activations.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::depthwise;
use super::gemm::{inner_parallelism, matmul, Mat};
use super::geometry::{valid_range, window_1d, Padding};
use super::tensor_io::{put_grad, read, take_grad};

/// Everything the kernels need to know about one convolution call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2dGeom {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub groups: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub oh: usize,
    pub ow: usize,
}

impl Conv2dGeom {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        batch: usize,
        c_in: usize,
        h: usize,
        w: usize,
        c_out: usize,
        k: usize,
        stride: usize,
        padding: Padding,
        groups: usize,
    ) -> Self {
        assert!(groups >= 1 && c_in % groups == 0 && c_out % groups == 0, "channels {c_in}->{c_out} not divisible by {groups} groups");
        let (oh, pad_top) = window_1d(h, k, stride, padding);
        let (ow, pad_left) = window_1d(w, k, stride, padding);
        Conv2dGeom { batch, c_in, h, w, c_out, k, stride, groups, pad_top, pad_left, oh, ow }
    }
    pub fn cin_g(&self) -> usize {
        self.c_in / self.groups
    }
    pub fn cout_g(&self) -> usize {
        self.c_out / self.groups
    }
    /// Rows of the column matrix of one group: `cin_g · k · k`.
    fn col_rows(&self) -> usize {
        self.cin_g() * self.k * self.k
    }
    fn in_img(&self) -> usize {
        self.c_in * self.h * self.w
    }
    fn out_plane(&self) -> usize {
        self.oh * self.ow
    }
    fn out_img(&self) -> usize {
        self.c_out * self.out_plane()
    }
    pub fn weight_len(&self) -> usize {
        self.c_out * self.col_rows()
    }
    /// 1×1, stride 1, no padding: the input image is its own column matrix.
    fn is_pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad_top == 0 && self.pad_left == 0
    }
    fn is_depthwise(&self) -> bool {
        self.groups == self.c_in && self.groups == self.c_out
    }
    /// Multiply-adds of the forward pass (for throughput reports).
    pub fn macs(&self) -> usize {
        self.batch * self.out_img() * self.col_rows()
    }
}

/// Unfolds the `cin` channels of one image (`x`: cin·h·w) into `col` (cin·k·k rows × oh·ow).
fn im2col(g: &Conv2dGeom, cin: usize, x: &[f32], col: &mut [f32]) {
    let (k, s, ohw) = (g.k, g.stride, g.out_plane());
    for c in 0..cin {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..k {
            let (oy_lo, oy_hi) = valid_range(g.oh, g.h, s, ky as isize - g.pad_top as isize);
            for kx in 0..k {
                let off_x = kx as isize - g.pad_left as isize;
                let (ox_lo, ox_hi) = valid_range(g.ow, g.w, s, off_x);
                let row = &mut col[((c * k + ky) * k + kx) * ohw..][..ohw];
                row[..oy_lo * g.ow].fill(0.0);
                row[oy_hi * g.ow..].fill(0.0);
                for oy in oy_lo..oy_hi {
                    let iy = oy * s + ky - g.pad_top;
                    let src = &plane[iy * g.w..(iy + 1) * g.w];
                    let dst = &mut row[oy * g.ow..(oy + 1) * g.ow];
                    dst[..ox_lo].fill(0.0);
                    dst[ox_hi..].fill(0.0);
                    if ox_lo < ox_hi {
                        let ix0 = (ox_lo as isize * s as isize + off_x) as usize;
                        if s == 1 {
                            dst[ox_lo..ox_hi].copy_from_slice(&src[ix0..ix0 + (ox_hi - ox_lo)]);
                        } else {
                            for (j, d) in dst[ox_lo..ox_hi].iter_mut().enumerate() {
                                *d = src[ix0 + j * s];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Adjoint of [`im2col`]: adds the column-matrix gradient `col` into the image gradient `dx`.
fn col2im_add(g: &Conv2dGeom, cin: usize, col: &[f32], dx: &mut [f32]) {
    let (k, s, ohw) = (g.k, g.stride, g.out_plane());
    for c in 0..cin {
        let plane = &mut dx[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ky in 0..k {
            let (oy_lo, oy_hi) = valid_range(g.oh, g.h, s, ky as isize - g.pad_top as isize);
            for kx in 0..k {
                let off_x = kx as isize - g.pad_left as isize;
                let (ox_lo, ox_hi) = valid_range(g.ow, g.w, s, off_x);
                if ox_lo >= ox_hi {
                    continue;
                }
                let row = &col[((c * k + ky) * k + kx) * ohw..][..ohw];
                for oy in oy_lo..oy_hi {
                    let iy = oy * s + ky - g.pad_top;
                    let dst = &mut plane[iy * g.w..(iy + 1) * g.w];
                    let src = &row[oy * g.ow + ox_lo..oy * g.ow + ox_hi];
                    let ix0 = (ox_lo as isize * s as isize + off_x) as usize;
                    if s == 1 {
                        for (d, v) in dst[ix0..ix0 + src.len()].iter_mut().zip(src) {
                            *d += v;
                        }
                    } else {
                        for (j, v) in src.iter().enumerate() {
                            dst[ix0 + j * s] += v;
                        }
                    }
                }
            }
        }
    }
}

/// Forward pass: `x` is batch·c_in·h·w, `w` is c_out·(c_in/groups)·k·k (OIHW), the result
/// batch·c_out·oh·ow.
pub fn conv2d_forward(g: &Conv2dGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    assert_eq!(x.len(), g.batch * g.in_img(), "input size");
    assert_eq!(w.len(), g.weight_len(), "weight size");
    let mut out = vec![0.0f32; g.batch * g.out_img()];
    if g.batch == 0 {
        return out;
    }
    if g.is_depthwise() {
        depthwise::forward(g, x, w, &mut out);
    } else {
        let par = inner_parallelism(g.batch);
        let (cin_g, cout_g, rows, ohw) = (g.cin_g(), g.cout_g(), g.col_rows(), g.out_plane());
        out.par_chunks_mut(g.out_img()).zip(x.par_chunks(g.in_img())).for_each_init(
            || if g.is_pointwise() { Vec::new() } else { vec![0.0f32; rows * ohw] },
            |col, (out_b, x_b)| {
                for gi in 0..g.groups {
                    let x_g = &x_b[gi * cin_g * g.h * g.w..(gi + 1) * cin_g * g.h * g.w];
                    let cols: &[f32] = if g.is_pointwise() {
                        x_g
                    } else {
                        im2col(g, cin_g, x_g, col);
                        col
                    };
                    let w_g = &w[gi * cout_g * rows..(gi + 1) * cout_g * rows];
                    let out_g = &mut out_b[gi * cout_g * ohw..(gi + 1) * cout_g * ohw];
                    matmul(cout_g, ohw, rows, out_g, false, Mat::row_major(w_g, rows), Mat::row_major(cols, ohw), par);
                }
            },
        );
    }
    if let Some(b) = bias {
        assert_eq!(b.len(), g.c_out, "bias size");
        let ohw = g.out_plane();
        out.par_chunks_mut(g.out_img()).for_each(|o| {
            for (plane, bv) in o.chunks_mut(ohw).zip(b) {
                plane.iter_mut().for_each(|v| *v += bv);
            }
        });
    }
    out
}

/// Adds ∂L/∂x for the output gradient `gout` into `dx`.
pub fn conv2d_backward_input(g: &Conv2dGeom, w: &[f32], gout: &[f32], dx: &mut [f32]) {
    if g.batch == 0 {
        return;
    }
    if g.is_depthwise() {
        return depthwise::backward_input(g, w, gout, dx);
    }
    let par = inner_parallelism(g.batch);
    let (cin_g, cout_g, rows, ohw) = (g.cin_g(), g.cout_g(), g.col_rows(), g.out_plane());
    let plane_in = cin_g * g.h * g.w;
    dx.par_chunks_mut(g.in_img()).zip(gout.par_chunks(g.out_img())).for_each_init(
        || if g.is_pointwise() { Vec::new() } else { vec![0.0f32; rows * ohw] },
        |dcol, (dx_b, go_b)| {
            for gi in 0..g.groups {
                let w_g = &w[gi * cout_g * rows..(gi + 1) * cout_g * rows];
                let go_g = &go_b[gi * cout_g * ohw..(gi + 1) * cout_g * ohw];
                let dx_g = &mut dx_b[gi * plane_in..(gi + 1) * plane_in];
                // dcol = W_gᵀ · gout_g
                let wt = Mat::transposed(w_g, rows);
                if g.is_pointwise() {
                    matmul(rows, ohw, cout_g, dx_g, true, wt, Mat::row_major(go_g, ohw), par);
                } else {
                    matmul(rows, ohw, cout_g, dcol, false, wt, Mat::row_major(go_g, ohw), par);
                    col2im_add(g, cin_g, dcol, dx_g);
                }
            }
        },
    );
}

/// Adds ∂L/∂w (and ∂L/∂bias when given) for the output gradient `gout` into `dw` (`db`).
pub fn conv2d_backward_weight(g: &Conv2dGeom, x: &[f32], gout: &[f32], dw: &mut [f32], db: Option<&mut [f32]>) {
    let ohw = g.out_plane();
    if let Some(db) = db {
        for go_b in gout.chunks(g.out_img()) {
            for (d, plane) in db.iter_mut().zip(go_b.chunks(ohw)) {
                *d += plane.iter().sum::<f32>();
            }
        }
    }
    if g.batch == 0 {
        return;
    }
    if g.is_depthwise() {
        return depthwise::backward_weight(g, x, gout, dw);
    }
    let par = inner_parallelism(g.batch);
    let (cin_g, cout_g, rows) = (g.cin_g(), g.cout_g(), g.col_rows());
    let plane_in = cin_g * g.h * g.w;
    // One partial weight gradient per rayon split, summed at the end: images are independent
    // but all of them add into the same dw.
    let partial = x
        .par_chunks(g.in_img())
        .zip(gout.par_chunks(g.out_img()))
        .fold(
            || (vec![0.0f32; g.weight_len()], if g.is_pointwise() { Vec::new() } else { vec![0.0f32; rows * ohw] }),
            |(mut acc, mut col), (x_b, go_b)| {
                for gi in 0..g.groups {
                    let x_g = &x_b[gi * plane_in..(gi + 1) * plane_in];
                    let cols: &[f32] = if g.is_pointwise() {
                        x_g
                    } else {
                        im2col(g, cin_g, x_g, &mut col);
                        &col
                    };
                    let go_g = &go_b[gi * cout_g * ohw..(gi + 1) * cout_g * ohw];
                    let acc_g = &mut acc[gi * cout_g * rows..(gi + 1) * cout_g * rows];
                    // dw_g += gout_g · colsᵀ
                    matmul(cout_g, rows, ohw, acc_g, true, Mat::row_major(go_g, ohw), Mat::transposed(cols, ohw), par);
                }
                (acc, col)
            },
        )
        .map(|(acc, _)| acc)
        .reduce_with(|mut a, b| {
            a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
            a
        });
    if let Some(p) = partial {
        dw.iter_mut().zip(&p).for_each(|(d, v)| *d += v);
    }
}

/// Convolution of `x` (N, I, H, W) with `weight` (O, I/groups, K, K) and an optional `bias` (O),
/// with a backward pass for x, weight and bias when `x` carries a tape.
///
/// Panics if `I` or `O` is not divisible by `groups`, or if the weight's second dimension is
/// not `I / groups`.
pub fn conv2d<const I: usize, const O: usize, const K: usize, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, Const<I>, usize, usize), f32, Cpu, T>,
    weight: &Tensor<(Const<O>, usize, Const<K>, Const<K>), f32, Cpu>,
    bias: Option<&Tensor<(Const<O>,), f32, Cpu>>,
    stride: usize,
    padding: Padding,
    groups: usize,
) -> Tensor<(usize, Const<O>, usize, usize), f32, Cpu, T> {
    let (n, _, h, w) = *x.shape();
    let geom = Conv2dGeom::new(n, I, h, w, O, K, stride, padding, groups);
    assert_eq!(weight.shape().1, geom.cin_g(), "weight has {} input channels per group, expected {}", weight.shape().1, geom.cin_g());
    let x = x.contiguous();
    let (x, mut tape) = x.split_tape();
    let x_data = read(&x);
    let w_data = read(weight);
    let b_data = bias.map(read);
    let out = conv2d_forward(&geom, &x_data, &w_data, b_data.as_deref());
    drop(x_data);
    let dev = x.device().clone();
    let out = dev.tensor_from_vec(out, (n, Const::<O>, geom.oh, geom.ow));
    if T::OWNS_TAPE {
        let (x_ghost, w_ghost, out_ghost) = (x.ghost(), weight.ghost(), out.ghost());
        let b_ghost = bias.map(|b| b.ghost());
        // Keep the input tensor (a reference-counted handle, usually alive for other ops anyway)
        // rather than a copy of its data; the backward pass copies it out again.
        let x_keep = x;
        tape.add_backward_op(move |grads| {
            let gout = take_grad!(grads, &out_ghost);
            let x_data = read(&x_keep);
            {
                let mut db = match &b_ghost {
                    Some(b) => Some(take_grad!(grads, b)),
                    None => None,
                };
                let dw = grads.get_or_alloc_mut(&w_ghost)?;
                conv2d_backward_weight(&geom, &x_data, &gout, dw, db.as_deref_mut());
                if let (Some(b), Some(db)) = (b_ghost.as_ref(), db) {
                    put_grad!(grads, b, db);
                }
            }
            drop(x_data);
            let dx = grads.get_or_alloc_mut(&x_ghost)?;
            conv2d_backward_input(&geom, &w_data, &gout, dx);
            put_grad!(grads, &out_ghost, gout);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// Straightforward f64 convolution used as the reference in tests.
#[cfg(test)]
pub(crate) fn conv2d_reference(g: &Conv2dGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f64> {
    let mut out = vec![0.0f64; g.batch * g.out_img()];
    let (cin_g, cout_g, k) = (g.cin_g(), g.cout_g(), g.k);
    for b in 0..g.batch {
        for o in 0..g.c_out {
            let gi = o / cout_g;
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut acc = bias.map_or(0.0, |b| b[o] as f64);
                    for ci in 0..cin_g {
                        let c = gi * cin_g + ci;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * g.stride + ky) as isize - g.pad_top as isize;
                                let ix = (ox * g.stride + kx) as isize - g.pad_left as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let xv = x[((b * g.c_in + c) * g.h + iy as usize) * g.w + ix as usize] as f64;
                                let wv = w[((o * cin_g + ci) * k + ky) * k + kx] as f64;
                                acc += xv * wv;
                            }
                        }
                    }
                    out[((b * g.c_out + o) * g.oh + oy) * g.ow + ox] = acc;
                }
            }
        }
    }
    out
}
