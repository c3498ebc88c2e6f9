//! 2D convolution (stride, padding incl. TF "SAME", groups, optional bias) on NCHW tensors.
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

use dfdx::prelude::*;
use rayon::prelude::*;

use super::depthwise;
use super::gemm::{matmul, Mat, Parallelism};
use super::geometry::{valid_range, Conv2dGeom, Padding};
use super::scratch::Scratch;
use super::tensor_io::{alloc_output, put_grad, read, read_scratch, take_grad};

/// Floats per column-matrix chunk (64 MiB): the batch is processed in chunks of images whose
/// column matrices fit, so a large batch at high resolution does not allocate gigabytes.
const COL_BUDGET: usize = 1 << 24;

/// Unfolds one input plane into its k·k rows of a column matrix: `rows` holds the k·k rows of
/// this channel, each `stride` floats long; the image's columns start at `offset`.
fn unfold_plane(g: &Conv2dGeom, plane: &[f32], rows: &mut [f32], stride: usize, offset: usize) {
    let (k, s) = (g.k, g.stride);
    for ky in 0..k {
        let (oy_lo, oy_hi) = valid_range(g.oh, g.h, s, ky as isize - g.pad_top as isize);
        for kx in 0..k {
            let off_x = kx as isize - g.pad_left as isize;
            let (ox_lo, ox_hi) = valid_range(g.ow, g.w, s, off_x);
            let row = &mut rows[(ky * k + kx) * stride + offset..][..g.oh * g.ow];
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

/// Adjoint of [`unfold_plane`]: adds the plane's rows of a column-matrix gradient into `dx`.
fn fold_plane_add(g: &Conv2dGeom, rows: &[f32], stride: usize, offset: usize, dx: &mut [f32]) {
    let (k, s) = (g.k, g.stride);
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
                let dst = &mut dx[iy * g.w..(iy + 1) * g.w];
                let src = &row[oy * g.ow + ox_lo..oy * g.ow + ox_hi];
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

/// Column matrix (cin_g·k·k × chunk columns) of group `gi` for the chunk's images.
fn im2col(g: &Conv2dGeom, gi: usize, c: Chunk, x: &[f32], col: &mut [f32]) {
    let (hw, kk, cin_g, ohw) = (g.h * g.w, g.k * g.k, g.cin_g(), g.out_plane());
    col[..cin_g * kk * c.cols]
        .par_chunks_mut(kk * c.cols)
        .enumerate()
        .for_each(|(ci, rows)| {
            for j in 0..c.n {
                let plane = &x[((c.first + j) * g.c_in + gi * cin_g + ci) * hw..][..hw];
                unfold_plane(g, plane, rows, c.cols, j * ohw);
            }
        });
}

/// Adds the column-matrix gradient of group `gi` back into the chunk's input gradient.
fn col2im_add(g: &Conv2dGeom, gi: usize, c: Chunk, dcol: &[f32], dx: &mut [f32]) {
    let (hw, kk, cin_g, ohw) = (g.h * g.w, g.k * g.k, g.cin_g(), g.out_plane());
    dx[c.first * g.in_img()..(c.first + c.n) * g.in_img()]
        .par_chunks_mut(hw)
        .enumerate()
        .for_each(|(p, plane)| {
            let (j, ch) = (p / g.c_in, p % g.c_in);
            if ch / cin_g == gi {
                let ci = ch % cin_g;
                fold_plane_add(
                    g,
                    &dcol[ci * kk * c.cols..(ci + 1) * kk * c.cols],
                    c.cols,
                    j * ohw,
                    plane,
                );
            }
        });
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
    assert_eq!(
        weight.shape().1,
        geom.cin_g(),
        "weight has {} input channels per group, expected {}",
        weight.shape().1,
        geom.cin_g()
    );
    let x = x.contiguous();
    let (x, mut tape) = x.split_tape();
    let x_data = read_scratch(&x);
    let w_data = read(weight);
    let b_data = bias.map(read);
    let dev = x.device().clone();
    let mut out = alloc_output(&dev, n * O * geom.oh * geom.ow);
    conv2d_forward_into(&geom, &x_data, &w_data, b_data.as_deref(), &mut out);
    drop(x_data);
    let out = dev.tensor_from_vec(out, (n, Const::<O>, geom.oh, geom.ow));
    if T::OWNS_TAPE {
        let (x_ghost, w_ghost, out_ghost) = (x.ghost(), weight.ghost(), out.ghost());
        let b_ghost = bias.map(|b| b.ghost());
        // Keep the input tensor (a reference-counted handle, usually alive for other ops anyway)
        // rather than a copy of its data; the backward pass copies it out again.
        let x_keep = x;
        tape.add_backward_op(move |grads| {
            let gout = take_grad!(grads, &out_ghost);
            let mut dw = take_grad!(grads, &w_ghost);
            let mut db = match &b_ghost {
                Some(b) => Some(take_grad!(grads, b)),
                None => None,
            };
            let x_data = read_scratch(&x_keep);
            let dx = grads.get_or_alloc_mut(&x_ghost)?;
            conv2d_backward(
                &geom,
                &x_data,
                &w_data,
                &gout,
                Some(dx),
                Some(&mut dw),
                db.as_deref_mut(),
            );
            put_grad!(grads, &w_ghost, dw);
            if let (Some(b), Some(db)) = (b_ghost.as_ref(), db) {
                put_grad!(grads, b, db);
            }
            put_grad!(grads, &out_ghost, gout);
            Ok(())
        });
    }
    out.put_tape(tape)
}
