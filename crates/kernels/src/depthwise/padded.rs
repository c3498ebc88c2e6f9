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

use super::phased::Phased;
use super::simd::{self, Isa};
use crate::geometry::Conv2dGeom;

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
