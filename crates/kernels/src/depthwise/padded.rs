//! Depthwise convolution on zero-padded, stride-phased copies of each plane, vectorised along
//! output rows with runtime CPU detection (AVX-512, AVX2+FMA, else the baseline).
//!
//! Each plane is first copied into a zero-padded buffer split into `stride` column phases
//! (phase p holds padded columns p, p+s, p+2s, …), so that tap (ky, kx) of output row oy reads
//! the contiguous run `phase[kx % s][oy·s + ky][ox + kx / s ..]` for every stride: no bounds
//! checks or padding tests in the inner loop, and strided layers vectorise like stride-1 ones.
//! The output row is processed in blocks of `L` lanes held in registers across all k·k taps
//! (one load and one FMA per tap and block, instead of the load/FMA/store of a row-wise axpy).
//! Rows are padded to a multiple of `L`; `L` is picked per call (see [`simd::block`]) so that
//! the 3×3 and 6×6 planes of small inputs do not compute mostly padding.

use super::simd::{self, Isa};
use crate::geometry::Conv2dGeom;

/// A plane copied with zero padding into `s` column phases of `pw` floats per row.
pub(super) struct Phased {
    pub data: Vec<f32>,
    /// Rows of the padded plane.
    pub rows: usize,
    /// Floats per row of one phase.
    pub pw: usize,
    pub s: usize,
}

impl Phased {
    /// Room for `out_h × out_w` outputs (out_w already rounded to the lane block) of a k×k
    /// window at stride `s`.
    pub fn new(out_h: usize, out_w: usize, k: usize, s: usize, min_rows: usize) -> Phased {
        let rows = ((out_h.max(1) - 1) * s + k).max(min_rows);
        // Column ox + kx/s of a phase for ox < out_w, kx < k.
        let pw = out_w + k.div_ceil(s);
        Phased {
            data: vec![0.0; s * rows * pw],
            rows,
            pw,
            s,
        }
    }

    /// Clears the buffer and copies the `h × w` plane `src` with its top-left at padded
    /// position (top, left).
    pub fn fill(&mut self, src: &[f32], h: usize, w: usize, top: usize, left: usize) {
        self.data.fill(0.0);
        let s = self.s;
        for y in 0..h {
            let row = &src[y * w..(y + 1) * w];
            let py = y + top;
            if s == 1 {
                let base = py * self.pw + left;
                self.data[base..base + w].copy_from_slice(row);
            } else if s == 2 {
                // Pairs of padded columns (2j, 2j+1) split into the two phases; an odd `left`
                // puts the first input column alone into phase 1.
                let (even, odd) = self.data.split_at_mut(self.rows * self.pw);
                let (even, odd) = (&mut even[py * self.pw..], &mut odd[py * self.pw..]);
                let (first, j0) = if left % 2 == 1 {
                    odd[left / 2] = row[0];
                    (1, left / 2 + 1)
                } else {
                    (0, left / 2)
                };
                let pairs = row[first..].chunks_exact(2);
                let rest = pairs.remainder();
                let n = (row.len() - first) / 2;
                for ((e, o), pair) in even[j0..j0 + n]
                    .iter_mut()
                    .zip(&mut odd[j0..j0 + n])
                    .zip(pairs)
                {
                    *e = pair[0];
                    *o = pair[1];
                }
                if let [last] = rest {
                    even[j0 + n] = *last;
                }
            } else {
                // Phase p holds padded columns j·s + p, i.e. input columns j·s + p − left.
                for p in 0..s {
                    let base = (p * self.rows + py) * self.pw;
                    // First j with j·s + p ≥ left, and the input column it reads.
                    let j0 = (left.saturating_sub(p)).div_ceil(s);
                    let x0 = j0 * s + p - left;
                    for (j, v) in row.iter().skip(x0).step_by(s).enumerate() {
                        self.data[base + j0 + j] = *v;
                    }
                }
            }
        }
    }

    /// Adjoint of [`Phased::fill`]: adds the `h × w` region at padded (top, left) into `dst`.
    pub fn add_region_to(&self, dst: &mut [f32], h: usize, w: usize, top: usize, left: usize) {
        let s = self.s;
        for y in 0..h {
            let row = &mut dst[y * w..(y + 1) * w];
            let py = y + top;
            for p in 0..s {
                let base = (p * self.rows + py) * self.pw;
                let j0 = (left.saturating_sub(p)).div_ceil(s);
                let x0 = j0 * s + p - left;
                for (j, d) in row.iter_mut().skip(x0).step_by(s).enumerate() {
                    *d += self.data[base + j0 + j];
                }
            }
        }
    }

    /// `self[kx % s][oy·s + ky][ox + kx/s] += w[ky·k + kx] · g[oy][ox]` for every tap and
    /// output: the scatter form of a strided layer's input gradient, contiguous along rows.
    pub fn scatter_taps(&mut self, g: &[f32], w: &[f32], k: usize, oh: usize, ow: usize) {
        let s = self.s;
        for oy in 0..oh {
            let grow = &g[oy * ow..(oy + 1) * ow];
            for ky in 0..k {
                for kx in 0..k {
                    let wv = w[ky * k + kx];
                    let at = ((kx % s) * self.rows + oy * s + ky) * self.pw + kx / s;
                    for (d, v) in self.data[at..at + ow].iter_mut().zip(grow) {
                        *d += wv * v;
                    }
                }
            }
        }
    }
}

/// Output columns per register block for rows `ow` wide on this CPU.
pub(super) fn lanes_for(ow: usize) -> usize {
    simd::block(isa(), ow).lanes()
}

/// Rounds `ow` up to the lane block.
pub(super) fn round_up(ow: usize) -> usize {
    ow.div_ceil(lanes_for(ow)) * lanes_for(ow)
}

/// The widest vector unit of this CPU, detected once.
fn isa() -> Isa {
    static ISA: std::sync::OnceLock<Isa> = std::sync::OnceLock::new();
    *ISA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Base
    })
}

/// Offsets of every tap (ky, kx) from the start of output row 0 in `p`: row ky of phase
/// kx % s, column kx / s.
fn tap_offsets(p: &Phased, k: usize) -> Vec<usize> {
    let mut v = Vec::with_capacity(k * k);
    for ky in 0..k {
        for kx in 0..k {
            v.push(((kx % p.s) * p.rows + ky) * p.pw + kx / p.s);
        }
    }
    v
}

/// `out[oy·ow + ox] = Σ_ky,kx w[ky·k + kx] · p[kx % s][oy·s + ky][ox + kx/s]` for
/// `oy < oh`, `ox < ow` (overwrites `out`). `p` must have been sized for (oh, ow, k).
pub(super) fn correlate(p: &Phased, w: &[f32], k: usize, oh: usize, ow: usize, out: &mut [f32]) {
    assert!(w.len() >= k * k && out.len() >= oh * ow);
    let lanes = lanes_for(ow);
    assert!(p.pw >= ow.div_ceil(lanes) * lanes + k.div_ceil(p.s) && p.rows >= (oh - 1) * p.s + k);
    let taps = tap_offsets(p, k);
    let args = simd::Correlate {
        p,
        w,
        taps: &taps,
        oh,
        ow,
        out,
    };
    // SAFETY: the asserts above bound every load and store of the kernel; `block` only picks
    // instruction sets that `isa` detected.
    unsafe { simd::correlate(simd::block(isa(), ow), args) }
}

/// `dw[ky·k + kx] += Σ_oy,ox g[oy][ox] · p[kx % s][oy·s + ky][ox + kx/s]`, with `g` given as
/// `oh` rows of `gw` floats (zero beyond the real width, `gw` = `round_up(ow)`).
pub(super) fn weight_grad(p: &Phased, g: &[f32], gw: usize, k: usize, oh: usize, dw: &mut [f32]) {
    let blk = simd::block(isa(), gw);
    assert!(gw.is_multiple_of(blk.lanes()) && g.len() >= oh * gw && dw.len() >= k * k);
    assert!(p.pw >= gw + k.div_ceil(p.s) && p.rows >= (oh - 1) * p.s + k);
    let taps = tap_offsets(p, k);
    let args = simd::WeightGrad {
        p,
        g,
        gw,
        k,
        oh,
        taps: &taps,
        dw,
    };
    // SAFETY: as in `correlate`.
    unsafe { simd::weight_grad(blk, args) }
}

/// The padded buffer for one input plane of `g`.
pub(super) fn input_buffer(g: &Conv2dGeom) -> Phased {
    Phased::new(g.oh, round_up(g.ow), g.k, g.stride, g.h + g.pad_top)
}

/// The padded buffer for the input gradient of a stride-1 layer: the output gradient placed at
/// (k−1−pad_top, k−1−pad_left) and correlated with the flipped filter gives ∂L/∂x over h × w.
pub(super) fn transposed_buffer(g: &Conv2dGeom) -> Phased {
    Phased::new(g.h, round_up(g.w), g.k, 1, 0)
}
