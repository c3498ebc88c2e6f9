//! 2D convolution kernels (stride, padding incl. TF "SAME", groups, optional bias) on NCHW
//! `f32` slices.
//!
//! Dense and grouped convolutions use im2col + gemm over a chunk of images at once: the column
//! matrices of the chunk's images sit side by side, so each group is one large gemm (run
//! multi-threaded by the gemm crate) even when the spatial size is small. im2col, col2im and
//! the NCHW packing run in parallel over channels with rayon. Depthwise convolutions (one input
//! and one output channel per group) use the direct loops in [`super::depthwise`], where a gemm
//! per channel would be all overhead.
//!
//! The backward pass recomputes im2col instead of keeping the column matrices from the forward
//! pass: it costs a little time but keeps the memory of training at the size of the activations.

use rayon::prelude::*;

use crate::depthwise;
use crate::gemm::{matmul, Mat, Parallelism};
use crate::geometry::valid_range;
pub use crate::geometry::Conv2dGeom;
use crate::scratch::Scratch;

/// Floats per column-matrix chunk (64 MiB): the batch is processed in chunks of images whose
/// column matrices fit, so a large batch at high resolution does not allocate gigabytes.
const COL_BUDGET: usize = 1 << 24;

/// An input plane as the im2col loops read it: rows of `pw` floats in `s` column phases (phase p
/// holds columns p, p+s, …), so that the columns a strided tap reads are contiguous and each
/// row of the column matrix is a copy (for stride 1 the plane itself, one phase).
#[derive(Clone, Copy)]
struct PlaneView<'a> {
    data: &'a [f32],
    h: usize,
    pw: usize,
    s: usize,
}

impl PlaneView<'_> {
    /// The `n` input columns `ix0, ix0 + s, …` of input row `iy`.
    #[inline]
    fn run(&self, iy: usize, ix0: usize, n: usize) -> &[f32] {
        let at = ((ix0 % self.s) * self.h + iy) * self.pw + ix0 / self.s;
        &self.data[at..at + n]
    }
}

/// Floats of one phased plane of `g`'s input.
fn phased_len(g: &Conv2dGeom) -> usize {
    g.stride * g.h * g.w.div_ceil(g.stride)
}

/// Splits `plane` (h × w) into `g.stride` column phases in `out` (`phased_len` floats).
fn split_phases(g: &Conv2dGeom, plane: &[f32], out: &mut [f32]) {
    let (s, pw) = (g.stride, g.w.div_ceil(g.stride));
    for iy in 0..g.h {
        let row = &plane[iy * g.w..(iy + 1) * g.w];
        for p in 0..s {
            let dst = &mut out[(p * g.h + iy) * pw..][..pw];
            for (d, v) in dst.iter_mut().zip(row.iter().skip(p).step_by(s)) {
                *d = *v;
            }
        }
    }
}

/// Fills `row` (oh·ow floats) with tap (ky, kx) of the plane: the row of the column matrix that
/// multiplies filter element (ky, kx); padding reads as zero.
fn unfold_tap(g: &Conv2dGeom, plane: PlaneView, ky: usize, kx: usize, row: &mut [f32]) {
    let s = g.stride;
    let (oy_lo, oy_hi) = valid_range(g.oh, g.h, s, ky as isize - g.pad_top as isize);
    let off_x = kx as isize - g.pad_left as isize;
    let (ox_lo, ox_hi) = valid_range(g.ow, g.w, s, off_x);
    row[..oy_lo * g.ow].fill(0.0);
    row[oy_hi * g.ow..].fill(0.0);
    for oy in oy_lo..oy_hi {
        let iy = oy * s + ky - g.pad_top;
        let dst = &mut row[oy * g.ow..(oy + 1) * g.ow];
        dst[..ox_lo].fill(0.0);
        dst[ox_hi..].fill(0.0);
        if ox_lo < ox_hi {
            let ix0 = (ox_lo as isize * s as isize + off_x) as usize;
            dst[ox_lo..ox_hi].copy_from_slice(plane.run(iy, ix0, ox_hi - ox_lo));
        }
    }
}

/// Adjoint of [`unfold_tap`] for all taps of one plane: adds the plane's k·k rows of a
/// column-matrix gradient (`rows`, row stride `stride`, this image's columns at `offset`) into
/// the phased plane gradient `dx` (zero-initialised by the caller).
fn fold_plane_add(g: &Conv2dGeom, rows: &[f32], stride: usize, offset: usize, dx: &mut [f32]) {
    let (k, s, pw) = (g.k, g.stride, g.w.div_ceil(g.stride));
    for ky in 0..k {
        let (oy_lo, oy_hi) = valid_range(g.oh, g.h, s, ky as isize - g.pad_top as isize);
        for kx in 0..k {
            let off_x = kx as isize - g.pad_left as isize;
            let (ox_lo, ox_hi) = valid_range(g.ow, g.w, s, off_x);
            if ox_lo >= ox_hi {
                continue;
            }
            let row = &rows[(ky * k + kx) * stride + offset..][..g.oh * g.ow];
            let ix0 = (ox_lo as isize * s as isize + off_x) as usize;
            for oy in oy_lo..oy_hi {
                let iy = oy * s + ky - g.pad_top;
                let at = ((ix0 % s) * g.h + iy) * pw + ix0 / s;
                let src = &row[oy * g.ow + ox_lo..oy * g.ow + ox_hi];
                for (d, v) in dx[at..at + src.len()].iter_mut().zip(src) {
                    *d += v;
                }
            }
        }
    }
}

/// A run of `n` images starting at `first`, processed together: their column matrices sit side
/// by side (`cols` = n·oh·ow columns), so each group is one large gemm even when the spatial
/// size is small (ResNet's last stage at 64×64 input has 2×2 outputs).
#[derive(Clone, Copy)]
struct Chunk {
    first: usize,
    n: usize,
    cols: usize,
}

fn chunks(g: &Conv2dGeom) -> impl Iterator<Item = Chunk> {
    let per = (COL_BUDGET / (g.col_rows() * g.out_plane()).max(1)).clamp(1, g.batch.max(1));
    let (batch, ohw) = (g.batch, g.out_plane());
    (0..batch).step_by(per).map(move |first| {
        let n = per.min(batch - first);
        Chunk {
            first,
            n,
            cols: n * ohw,
        }
    })
}

/// Column matrix (cin_g·k·k × chunk columns) of group `gi` for the chunk's images, in parallel
/// over its rows (one per input channel and tap: 147 for ResNet's 3-channel stem, where
/// channels alone would leave a core idle).
fn im2col(g: &Conv2dGeom, gi: usize, c: Chunk, x: &[f32], col: &mut [f32]) {
    let (hw, kk, cin_g, ohw) = (g.h * g.w, g.k * g.k, g.cin_g(), g.out_plane());
    let plane_index = |j: usize, ci: usize| (c.first + j) * g.c_in + gi * cin_g + ci;
    let phased;
    let (src, plane_len, pw): (&[f32], usize, usize) = if g.stride == 1 {
        (x, hw, g.w)
    } else {
        let len = phased_len(g);
        let mut buf = Scratch::new(c.n * cin_g * len);
        buf.par_chunks_mut(len).enumerate().for_each(|(p, out)| {
            let plane = &x[plane_index(p / cin_g, p % cin_g) * hw..][..hw];
            split_phases(g, plane, out);
        });
        phased = buf;
        (&phased[..], len, g.w.div_ceil(g.stride))
    };
    col[..cin_g * kk * c.cols]
        .par_chunks_mut(c.cols)
        .enumerate()
        .for_each(|(r, row)| {
            let (ci, tap) = (r / kk, r % kk);
            for j in 0..c.n {
                let at = if g.stride == 1 {
                    plane_index(j, ci)
                } else {
                    j * cin_g + ci
                };
                let plane = PlaneView {
                    data: &src[at * plane_len..][..plane_len],
                    h: g.h,
                    pw,
                    s: g.stride,
                };
                unfold_tap(g, plane, tap / g.k, tap % g.k, &mut row[j * ohw..][..ohw]);
            }
        });
}

/// Adds the column-matrix gradient of group `gi` back into the chunk's input gradient.
fn col2im_add(g: &Conv2dGeom, gi: usize, c: Chunk, dcol: &[f32], dx: &mut [f32]) {
    let (hw, kk, cin_g, ohw) = (g.h * g.w, g.k * g.k, g.cin_g(), g.out_plane());
    let (s, pw) = (g.stride, g.w.div_ceil(g.stride));
    dx[c.first * g.in_img()..(c.first + c.n) * g.in_img()]
        .par_chunks_mut(hw)
        .enumerate()
        .for_each_init(
            || vec![0.0f32; if s == 1 { 0 } else { phased_len(g) }],
            |phased, (p, plane)| {
                let (j, ch) = (p / g.c_in, p % g.c_in);
                if ch / cin_g != gi {
                    return;
                }
                let rows = &dcol[(ch % cin_g) * kk * c.cols..][..kk * c.cols];
                if s == 1 {
                    return fold_plane_add(g, rows, c.cols, j * ohw, plane);
                }
                // Strided: accumulate contiguously in the phased layout, then scatter once.
                phased.fill(0.0);
                fold_plane_add(g, rows, c.cols, j * ohw, phased);
                for iy in 0..g.h {
                    let row = &mut plane[iy * g.w..(iy + 1) * g.w];
                    for ph in 0..s {
                        let src = &phased[(ph * g.h + iy) * pw..][..pw];
                        for (d, v) in row.iter_mut().skip(ph).step_by(s).zip(src) {
                            *d += v;
                        }
                    }
                }
            },
        );
}

/// Gathers the output-gradient planes of group `gi` into `packed` (cout_g × chunk columns).
fn pack_out(g: &Conv2dGeom, gi: usize, c: Chunk, gout: &[f32], packed: &mut [f32]) {
    let (ohw, cout_g) = (g.out_plane(), g.cout_g());
    packed[..cout_g * c.cols]
        .par_chunks_mut(c.cols)
        .enumerate()
        .for_each(|(o, row)| {
            for j in 0..c.n {
                let src = &gout[((c.first + j) * g.c_out + gi * cout_g + o) * ohw..][..ohw];
                row[j * ohw..(j + 1) * ohw].copy_from_slice(src);
            }
        });
}

/// Scatters a packed result (cout_g × chunk columns) of group `gi` into the NCHW output.
fn unpack_out(g: &Conv2dGeom, gi: usize, c: Chunk, packed: &[f32], out: &mut [f32]) {
    let (ohw, cout_g) = (g.out_plane(), g.cout_g());
    out[c.first * g.out_img()..(c.first + c.n) * g.out_img()]
        .par_chunks_mut(ohw)
        .enumerate()
        .for_each(|(p, plane)| {
            let (j, o) = (p / g.c_out, p % g.c_out);
            if o / cout_g == gi {
                plane.copy_from_slice(&packed[(o % cout_g) * c.cols + j * ohw..][..ohw]);
            }
        });
}

fn parallelism() -> Parallelism {
    match rayon::current_num_threads() {
        0 | 1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// Forward pass: `x` is batch·c_in·h·w, `w` is c_out·(c_in/groups)·k·k (OIHW), the result
/// batch·c_out·oh·ow.
pub fn conv2d_forward(g: &Conv2dGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let mut out = vec![0.0f32; g.batch * g.out_img()];
    conv2d_forward_into(g, x, w, bias, &mut out);
    out
}

/// [`conv2d_forward`] into a zeroed `out` of batch·c_out·oh·ow floats.
pub fn conv2d_forward_into(
    g: &Conv2dGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
) {
    assert_eq!(x.len(), g.batch * g.in_img(), "input size");
    assert_eq!(w.len(), g.weight_len(), "weight size");
    assert_eq!(out.len(), g.batch * g.out_img(), "output size");
    if g.batch == 0 {
        return;
    }
    if g.is_depthwise() {
        depthwise::forward(g, x, w, out);
    } else if g.is_pointwise() {
        let hw = g.out_plane();
        for (x_b, out_b) in x.chunks(g.in_img()).zip(out.chunks_mut(g.out_img())) {
            matmul(
                g.c_out,
                hw,
                g.c_in,
                out_b,
                false,
                Mat::row_major(w, g.c_in),
                Mat::row_major(x_b, hw),
                parallelism(),
            );
        }
    } else {
        let (cout_g, rows) = (g.cout_g(), g.col_rows());
        for c in chunks(g) {
            let mut col = Scratch::new(rows * c.cols);
            let mut res = Scratch::new(cout_g * c.cols);
            for gi in 0..g.groups {
                im2col(g, gi, c, x, &mut col);
                let w_g = &w[gi * cout_g * rows..(gi + 1) * cout_g * rows];
                matmul(
                    cout_g,
                    c.cols,
                    rows,
                    &mut res,
                    false,
                    Mat::row_major(w_g, rows),
                    Mat::row_major(&col, c.cols),
                    parallelism(),
                );
                unpack_out(g, gi, c, &res, out);
            }
        }
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
}

/// Backward pass: adds ∂L/∂x into `dx`, ∂L/∂w into `dw` and ∂L/∂bias into `db`, for those
/// given. `x` is needed for `dw`, `w` for `dx`. The packed output gradient is shared by both.
pub fn conv2d_backward(
    g: &Conv2dGeom,
    x: &[f32],
    w: &[f32],
    gout: &[f32],
    mut dx: Option<&mut [f32]>,
    mut dw: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) {
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
        if let Some(dx) = dx {
            depthwise::backward_input(g, w, gout, dx);
        }
        if let Some(dw) = dw {
            depthwise::backward_weight(g, x, gout, dw);
        }
        return;
    }
    if g.is_pointwise() {
        let (hw, ci, co) = (g.out_plane(), g.c_in, g.c_out);
        for b in 0..g.batch {
            let go_b = &gout[b * g.out_img()..(b + 1) * g.out_img()];
            if let Some(dw) = dw.as_deref_mut() {
                // dw += gout_b · x_bᵀ
                let x_b = &x[b * g.in_img()..(b + 1) * g.in_img()];
                matmul(
                    co,
                    ci,
                    hw,
                    dw,
                    true,
                    Mat::row_major(go_b, hw),
                    Mat::transposed(x_b, hw),
                    parallelism(),
                );
            }
            if let Some(dx) = dx.as_deref_mut() {
                // dx_b += Wᵀ · gout_b
                let dx_b = &mut dx[b * g.in_img()..(b + 1) * g.in_img()];
                matmul(
                    ci,
                    hw,
                    co,
                    dx_b,
                    true,
                    Mat::transposed(w, ci),
                    Mat::row_major(go_b, hw),
                    parallelism(),
                );
            }
        }
        return;
    }
    let (cout_g, rows) = (g.cout_g(), g.col_rows());
    for c in chunks(g) {
        let mut packed = Scratch::new(cout_g * c.cols);
        let mut col = Scratch::new(rows * c.cols);
        for gi in 0..g.groups {
            pack_out(g, gi, c, gout, &mut packed);
            if let Some(dw) = dw.as_deref_mut() {
                // dw_g += gout_g · colsᵀ
                im2col(g, gi, c, x, &mut col);
                let dw_g = &mut dw[gi * cout_g * rows..(gi + 1) * cout_g * rows];
                matmul(
                    cout_g,
                    rows,
                    c.cols,
                    dw_g,
                    true,
                    Mat::row_major(&packed, c.cols),
                    Mat::transposed(&col, c.cols),
                    parallelism(),
                );
            }
            if let Some(dx) = dx.as_deref_mut() {
                // dcol = W_gᵀ · gout_g, folded back onto the input planes.
                let w_g = &w[gi * cout_g * rows..(gi + 1) * cout_g * rows];
                matmul(
                    rows,
                    c.cols,
                    cout_g,
                    &mut col,
                    false,
                    Mat::transposed(w_g, rows),
                    Mat::row_major(&packed, c.cols),
                    parallelism(),
                );
                col2im_add(g, gi, c, &col, dx);
            }
        }
    }
}

/// Adds ∂L/∂x for the output gradient `gout` into `dx`.
pub fn conv2d_backward_input(g: &Conv2dGeom, w: &[f32], gout: &[f32], dx: &mut [f32]) {
    conv2d_backward(g, &[], w, gout, Some(dx), None, None)
}

/// Adds ∂L/∂w (and ∂L/∂bias when given) for the output gradient `gout` into `dw` (`db`).
pub fn conv2d_backward_weight(
    g: &Conv2dGeom,
    x: &[f32],
    gout: &[f32],
    dw: &mut [f32],
    db: Option<&mut [f32]>,
) {
    conv2d_backward(g, x, &[], gout, None, Some(dw), db)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Padding;

    fn data(n: usize, seed: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (((i * 7919 + seed * 104729) % 1000) as f32) / 500.0 - 1.0)
            .collect()
    }

    /// out, dx, dw of a naive 7-loop convolution (dx, dw for output gradient `go`).
    fn naive(g: &Conv2dGeom, x: &[f32], w: &[f32], go: &[f32]) -> [Vec<f32>; 3] {
        let (cin_g, cout_g) = (g.cin_g(), g.cout_g());
        let mut out = vec![0.0f32; g.batch * g.c_out * g.oh * g.ow];
        let (mut dx, mut dw) = (vec![0.0f32; x.len()], vec![0.0f32; w.len()]);
        for b in 0..g.batch {
            for o in 0..g.c_out {
                let gi = o / cout_g;
                for oy in 0..g.oh {
                    for ox in 0..g.ow {
                        let oi = ((b * g.c_out + o) * g.oh + oy) * g.ow + ox;
                        for ci in 0..cin_g {
                            let c = gi * cin_g + ci;
                            for ky in 0..g.k {
                                for kx in 0..g.k {
                                    let iy = (oy * g.stride + ky) as isize - g.pad_top as isize;
                                    let ix = (ox * g.stride + kx) as isize - g.pad_left as isize;
                                    if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xi =
                                        ((b * g.c_in + c) * g.h + iy as usize) * g.w + ix as usize;
                                    let wi = ((o * cin_g + ci) * g.k + ky) * g.k + kx;
                                    out[oi] += w[wi] * x[xi];
                                    dx[xi] += w[wi] * go[oi];
                                    dw[wi] += x[xi] * go[oi];
                                }
                            }
                        }
                    }
                }
            }
        }
        [out, dx, dw]
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + x.abs().max(y.abs())),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// im2col + gemm (with the phased planes of strided layers) against the naive loops.
    #[test]
    fn dense_and_grouped_match_naive() {
        let cases = [
            (2, 3, 11, 9, 4, 7, 2, Padding::Symmetric(3), 1),
            (2, 3, 10, 10, 4, 3, 2, Padding::Same, 1),
            (1, 4, 9, 8, 6, 3, 1, Padding::Symmetric(1), 2),
            (3, 2, 7, 7, 5, 3, 3, Padding::Same, 1),
            (2, 4, 8, 8, 4, 1, 2, Padding::Symmetric(0), 1),
        ];
        for (b, ci, h, w, co, k, s, pad, groups) in cases {
            let g = Conv2dGeom::new(b, ci, h, w, co, k, s, pad, groups);
            let what = format!("{g:?}");
            let x = data(b * ci * h * w, 1);
            let wt = data(g.weight_len(), 2);
            let go = data(b * co * g.oh * g.ow, 3);
            let [out, dx, dw] = naive(&g, &x, &wt, &go);
            close(
                &conv2d_forward(&g, &x, &wt, None),
                &out,
                &format!("out {what}"),
            );
            let (mut dx2, mut dw2) = (vec![0.0; x.len()], vec![0.0; wt.len()]);
            conv2d_backward(&g, &x, &wt, &go, Some(&mut dx2), Some(&mut dw2), None);
            close(&dx2, &dx, &format!("dx {what}"));
            close(&dw2, &dw, &format!("dw {what}"));
        }
    }
}
