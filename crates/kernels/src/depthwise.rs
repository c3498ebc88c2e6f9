//! Depthwise convolution (groups = in = out channels): each channel plane is convolved with its
//! own k×k filter. A gemm per channel would be a 1-row matrix product, all overhead; the kernels
//! in [`padded`] work on zero-padded copies of each plane with register-blocked rows and runtime
//! SIMD dispatch. The row-wise direct loops here are the reference in the tests.

mod padded;
mod phased;
mod simd;

use rayon::prelude::*;

#[cfg(test)]
use crate::geometry::valid_range;
use crate::geometry::Conv2dGeom;

#[cfg(test)]
/// Calls `f(oy, iy, ox_lo, ox_hi, ix0)` for every output row of tap (ky, kx) that reads real
/// input (not padding); output columns `ox_lo..ox_hi` read input columns `ix0 + j·stride`.
#[inline]
fn for_each_tap_row(
    g: &Conv2dGeom,
    ky: usize,
    kx: usize,
    mut f: impl FnMut(usize, usize, usize, usize, usize),
) {
    let s = g.stride;
    let (oy_lo, oy_hi) = valid_range(g.oh, g.h, s, ky as isize - g.pad_top as isize);
    let off_x = kx as isize - g.pad_left as isize;
    let (ox_lo, ox_hi) = valid_range(g.ow, g.w, s, off_x);
    if ox_lo >= ox_hi {
        return;
    }
    let ix0 = (ox_lo as isize * s as isize + off_x) as usize;
    for oy in oy_lo..oy_hi {
        f(oy, oy * s + ky - g.pad_top, ox_lo, ox_hi, ix0);
    }
}

/// Row-wise direct loops (see the module docs).
#[cfg(test)]
fn direct_forward(g: &Conv2dGeom, x: &[f32], w: &[f32], out: &mut [f32]) {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    out.par_chunks_mut(ohw)
        .zip(x.par_chunks(hw))
        .enumerate()
        .for_each(|(bc, (o, xp))| {
            let c = bc % g.c_in;
            let wc = &w[c * kk..(c + 1) * kk];
            for ky in 0..g.k {
                for kx in 0..g.k {
                    let wv = wc[ky * g.k + kx];
                    for_each_tap_row(g, ky, kx, |oy, iy, lo, hi, ix0| {
                        let dst = &mut o[oy * g.ow + lo..oy * g.ow + hi];
                        let src = &xp[iy * g.w..(iy + 1) * g.w];
                        if g.stride == 1 {
                            for (d, v) in dst.iter_mut().zip(&src[ix0..ix0 + (hi - lo)]) {
                                *d += wv * v;
                            }
                        } else {
                            for (j, d) in dst.iter_mut().enumerate() {
                                *d += wv * src[ix0 + j * g.stride];
                            }
                        }
                    });
                }
            }
        });
}

#[cfg(test)]
fn direct_backward_input(g: &Conv2dGeom, w: &[f32], gout: &[f32], dx: &mut [f32]) {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    dx.par_chunks_mut(hw)
        .zip(gout.par_chunks(ohw))
        .enumerate()
        .for_each(|(bc, (dxp, go))| {
            let c = bc % g.c_in;
            let wc = &w[c * kk..(c + 1) * kk];
            for ky in 0..g.k {
                for kx in 0..g.k {
                    let wv = wc[ky * g.k + kx];
                    for_each_tap_row(g, ky, kx, |oy, iy, lo, hi, ix0| {
                        let src = &go[oy * g.ow + lo..oy * g.ow + hi];
                        let dst = &mut dxp[iy * g.w..(iy + 1) * g.w];
                        if g.stride == 1 {
                            for (d, v) in dst[ix0..ix0 + (hi - lo)].iter_mut().zip(src) {
                                *d += wv * v;
                            }
                        } else {
                            for (j, v) in src.iter().enumerate() {
                                dst[ix0 + j * g.stride] += wv * v;
                            }
                        }
                    });
                }
            }
        });
}

#[cfg(test)]
fn direct_backward_weight(g: &Conv2dGeom, x: &[f32], gout: &[f32], dw: &mut [f32]) {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    // Parallel over channels: each channel's filter gradient sums over the batch.
    dw.par_chunks_mut(kk).enumerate().for_each(|(c, dwc)| {
        for b in 0..g.batch {
            let xp = &x[(b * g.c_in + c) * hw..][..hw];
            let go = &gout[(b * g.c_in + c) * ohw..][..ohw];
            for ky in 0..g.k {
                for kx in 0..g.k {
                    let mut acc = 0.0f32;
                    for_each_tap_row(g, ky, kx, |oy, iy, lo, hi, ix0| {
                        let gr = &go[oy * g.ow + lo..oy * g.ow + hi];
                        let src = &xp[iy * g.w..(iy + 1) * g.w];
                        if g.stride == 1 {
                            acc += gr
                                .iter()
                                .zip(&src[ix0..ix0 + (hi - lo)])
                                .map(|(a, b)| a * b)
                                .sum::<f32>();
                        } else {
                            acc += gr
                                .iter()
                                .enumerate()
                                .map(|(j, a)| a * src[ix0 + j * g.stride])
                                .sum::<f32>();
                        }
                    });
                    dwc[ky * g.k + kx] += acc;
                }
            }
        }
    });
}

pub fn forward(g: &Conv2dGeom, x: &[f32], w: &[f32], out: &mut [f32]) {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    out.par_chunks_mut(ohw)
        .zip(x.par_chunks(hw))
        .enumerate()
        .for_each_init(
            || padded::input_buffer(g),
            |buf, (bc, (o, xp))| {
                let c = bc % g.c_in;
                buf.fill(xp, g.h, g.w, g.pad_top, g.pad_left);
                padded::correlate(buf, &w[c * kk..(c + 1) * kk], g.k, g.oh, g.ow, o);
            },
        );
}

pub fn backward_input(g: &Conv2dGeom, w: &[f32], gout: &[f32], dx: &mut [f32]) {
    if g.stride != 1 {
        return strided_backward_input(g, w, gout, dx);
    }
    let (hw, ohw, kk, k) = (g.h * g.w, g.oh * g.ow, g.k * g.k, g.k);
    dx.par_chunks_mut(hw)
        .zip(gout.par_chunks(ohw))
        .enumerate()
        .for_each_init(
            || {
                (
                    padded::transposed_buffer(g),
                    vec![0.0f32; kk],
                    vec![0.0f32; hw],
                )
            },
            |(buf, flipped, tmp), (bc, (dxp, go))| {
                let c = bc % g.c_in;
                for (f, v) in flipped.iter_mut().zip(w[c * kk..(c + 1) * kk].iter().rev()) {
                    *f = *v;
                }
                buf.fill(go, g.oh, g.ow, k - 1 - g.pad_top, k - 1 - g.pad_left);
                padded::correlate(buf, flipped, k, g.h, g.w, tmp);
                dxp.iter_mut().zip(tmp.iter()).for_each(|(d, v)| *d += v);
            },
        );
}

/// Input gradient of a strided layer: scattered into the padded, phased layout of the forward
/// pass (contiguous rows), then added back onto the plane once.
fn strided_backward_input(g: &Conv2dGeom, w: &[f32], gout: &[f32], dx: &mut [f32]) {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    dx.par_chunks_mut(hw)
        .zip(gout.par_chunks(ohw))
        .enumerate()
        .for_each_init(
            || padded::input_buffer(g),
            |buf, (bc, (dxp, go))| {
                let c = bc % g.c_in;
                buf.data.fill(0.0);
                buf.scatter_taps(go, &w[c * kk..(c + 1) * kk], g.k, g.oh, g.ow);
                buf.add_region_to(dxp, g.h, g.w, g.pad_top, g.pad_left);
            },
        );
}

pub fn backward_weight(g: &Conv2dGeom, x: &[f32], gout: &[f32], dw: &mut [f32]) {
    let (hw, ohw, kk) = (g.h * g.w, g.oh * g.ow, g.k * g.k);
    let gw = padded::round_up(g.ow);
    // Parallel over channels: each channel's filter gradient sums over the batch.
    dw.par_chunks_mut(kk).enumerate().for_each_init(
        || (padded::input_buffer(g), vec![0.0f32; g.oh * gw]),
        |(buf, grows), (c, dwc)| {
            for b in 0..g.batch {
                let xp = &x[(b * g.c_in + c) * hw..][..hw];
                let go = &gout[(b * g.c_in + c) * ohw..][..ohw];
                buf.fill(xp, g.h, g.w, g.pad_top, g.pad_left);
                for (dst, src) in grows.chunks_mut(gw).zip(go.chunks(g.ow)) {
                    dst[..g.ow].copy_from_slice(src);
                }
                padded::weight_grad(buf, grows, gw, g.k, g.oh, dwc);
            }
        },
    );
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

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + x.abs().max(y.abs())),
                "{what}[{i}]: {x} vs {y}"
            );
        }
    }

    /// The padded kernels against the direct loops on every stride/padding/size combination
    /// the models use, and odd ones (planes narrower than the lane blocks, k > w).
    #[test]
    fn padded_matches_direct() {
        let mut cases = vec![];
        for &(h, w) in &[(28, 28), (7, 7), (3, 3), (1, 1), (5, 13), (17, 6), (2, 40)] {
            for &k in &[1, 3, 5] {
                for &s in &[1, 2] {
                    cases.push((h, w, k, s, Padding::Same));
                    cases.push((h, w, k, s, Padding::Symmetric(k / 2)));
                }
            }
        }
        for (h, w, k, s, pad) in cases {
            if let Padding::Symmetric(p) = pad {
                if h + 2 * p < k || w + 2 * p < k {
                    continue;
                }
            }
            let (b, c) = (2, 3);
            let g = Conv2dGeom::new(b, c, h, w, c, k, s, pad, c);
            let x = data(b * c * h * w, 1);
            let wt = data(c * k * k, 2);
            let go = data(b * c * g.oh * g.ow, 3);
            let what = format!("{h}x{w} k{k} s{s} {pad:?}");
            let (mut o1, mut o2) = (vec![0.0; go.len()], vec![0.0; go.len()]);
            direct_forward(&g, &x, &wt, &mut o1);
            forward(&g, &x, &wt, &mut o2);
            close(&o1, &o2, &format!("forward {what}"));
            // Accumulating into non-zero gradients, as the tape does.
            let (mut d1, mut d2) = (data(x.len(), 4), data(x.len(), 4));
            direct_backward_input(&g, &wt, &go, &mut d1);
            backward_input(&g, &wt, &go, &mut d2);
            close(&d1, &d2, &format!("dx {what}"));
            let (mut w1, mut w2) = (data(wt.len(), 5), data(wt.len(), 5));
            direct_backward_weight(&g, &x, &go, &mut w1);
            backward_weight(&g, &x, &go, &mut w2);
            close(&w1, &w2, &format!("dw {what}"));
        }
    }
}
