//! Direct loops for depthwise convolution (groups = in = out channels): each channel plane is
//! convolved with its own k×k filter. A gemm per channel would be a 1-row matrix product, all
//! overhead; these loops run along contiguous rows so stride-1 layers vectorise.

use rayon::prelude::*;

use super::geometry::valid_range;
use super::geometry::Conv2dGeom;

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

pub(crate) fn forward(g: &Conv2dGeom, x: &[f32], w: &[f32], out: &mut [f32]) {
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

pub(crate) fn backward_input(g: &Conv2dGeom, w: &[f32], gout: &[f32], dx: &mut [f32]) {
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

pub(crate) fn backward_weight(g: &Conv2dGeom, x: &[f32], gout: &[f32], dw: &mut [f32]) {
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
