//! The register-blocked inner loops of [`super::padded`], written once over a small vector
//! trait and instantiated for AVX-512 (16 lanes), AVX2+FMA (8), SSE with FMA (4, for the
//! narrow planes on AVX2/AVX-512 machines) and plain scalar code (any CPU), each inside a
//! `#[target_feature]` function chosen at run time.

use super::phased::Phased;

/// The widest vector unit of this CPU.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Isa {
    Avx512,
    Avx2,
    Base,
}

/// One register block: which vector type and how many vectors along a row.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Block {
    Zmm(usize),
    Ymm(usize),
    Xmm,
    Scalar,
}

impl Block {
    pub fn lanes(self) -> usize {
        match self {
            Block::Zmm(n) => 16 * n,
            Block::Ymm(n) => 8 * n,
            Block::Xmm | Block::Scalar => 4,
        }
    }
}

/// The block for rows `ow` wide: at most 4 accumulators per row (two rows are computed at once,
/// so up to 8 independent FMA chains), and no more than one partly used vector.
pub(super) fn block(isa: Isa, ow: usize) -> Block {
    match isa {
        Isa::Avx512 if ow > 16 => Block::Zmm(2),
        Isa::Avx512 if ow > 8 => Block::Zmm(1),
        Isa::Avx2 if ow > 16 => Block::Ymm(4),
        Isa::Avx2 if ow > 8 => Block::Ymm(2),
        Isa::Avx512 | Isa::Avx2 if ow > 4 => Block::Ymm(1),
        Isa::Avx512 | Isa::Avx2 => Block::Xmm,
        Isa::Base => Block::Scalar,
    }
}

/// The operations the loops need; all unchecked (callers bound every pointer).
trait Vector: Copy {
    const W: usize;
    unsafe fn zero() -> Self;
    unsafe fn splat(v: f32) -> Self;
    unsafe fn load(p: *const f32) -> Self;
    unsafe fn store(self, p: *mut f32);
    /// self + a·b
    unsafe fn fma(self, a: Self, b: Self) -> Self;
    unsafe fn sum(self) -> f32;
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::Vector;
    use std::arch::x86_64::*;

    #[derive(Clone, Copy)]
    pub struct Zmm(__m512);
    #[derive(Clone, Copy)]
    pub struct Ymm(__m256);
    #[derive(Clone, Copy)]
    pub struct Xmm(__m128);

    impl Vector for Zmm {
        const W: usize = 16;
        #[inline(always)]
        unsafe fn zero() -> Self {
            Zmm(_mm512_setzero_ps())
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            Zmm(_mm512_set1_ps(v))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Zmm(_mm512_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm512_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn fma(self, a: Self, b: Self) -> Self {
            Zmm(_mm512_fmadd_ps(a.0, b.0, self.0))
        }
        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            _mm512_reduce_add_ps(self.0)
        }
    }

    impl Vector for Ymm {
        const W: usize = 8;
        #[inline(always)]
        unsafe fn zero() -> Self {
            Ymm(_mm256_setzero_ps())
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            Ymm(_mm256_set1_ps(v))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Ymm(_mm256_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm256_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn fma(self, a: Self, b: Self) -> Self {
            Ymm(_mm256_fmadd_ps(a.0, b.0, self.0))
        }
        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            let mut v = [0.0f32; 8];
            _mm256_storeu_ps(v.as_mut_ptr(), self.0);
            v.iter().sum()
        }
    }

    impl Vector for Xmm {
        const W: usize = 4;
        #[inline(always)]
        unsafe fn zero() -> Self {
            Xmm(_mm_setzero_ps())
        }
        #[inline(always)]
        unsafe fn splat(v: f32) -> Self {
            Xmm(_mm_set1_ps(v))
        }
        #[inline(always)]
        unsafe fn load(p: *const f32) -> Self {
            Xmm(_mm_loadu_ps(p))
        }
        #[inline(always)]
        unsafe fn store(self, p: *mut f32) {
            _mm_storeu_ps(p, self.0)
        }
        #[inline(always)]
        unsafe fn fma(self, a: Self, b: Self) -> Self {
            Xmm(_mm_fmadd_ps(a.0, b.0, self.0))
        }
        #[inline(always)]
        unsafe fn sum(self) -> f32 {
            let mut v = [0.0f32; 4];
            _mm_storeu_ps(v.as_mut_ptr(), self.0);
            v.iter().sum()
        }
    }
}

/// Any CPU: one float per "vector" (4 per block, so the loops keep four chains in flight).
#[derive(Clone, Copy)]
struct Scalar(f32);

impl Vector for Scalar {
    const W: usize = 1;
    #[inline(always)]
    unsafe fn zero() -> Self {
        Scalar(0.0)
    }
    #[inline(always)]
    unsafe fn splat(v: f32) -> Self {
        Scalar(v)
    }
    #[inline(always)]
    unsafe fn load(p: *const f32) -> Self {
        Scalar(*p)
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut f32) {
        *p = self.0
    }
    #[inline(always)]
    unsafe fn fma(self, a: Self, b: Self) -> Self {
        Scalar(self.0 + a.0 * b.0)
    }
    #[inline(always)]
    unsafe fn sum(self) -> f32 {
        self.0
    }
}

pub(super) struct Correlate<'a> {
    pub p: &'a Phased,
    pub w: &'a [f32],
    pub taps: &'a [usize],
    pub oh: usize,
    pub ow: usize,
    pub out: &'a mut [f32],
}

/// R output rows × N vectors per block, every tap loaded once per row and vector.
#[inline(always)]
unsafe fn correlate_rows<V: Vector, const N: usize, const R: usize>(a: &mut Correlate, oy: usize) {
    let lanes = V::W * N;
    let step = a.p.s * a.p.pw;
    let base = a.p.data.as_ptr().add(oy * step);
    let out = a.out.as_mut_ptr();
    let mut ox = 0;
    while ox < a.ow {
        let mut acc = [[V::zero(); N]; R];
        for (t, &off) in a.taps.iter().enumerate() {
            let wv = V::splat(*a.w.get_unchecked(t));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let src = base.add(r * step + off + ox);
                for (v, acc_v) in acc_r.iter_mut().enumerate() {
                    *acc_v = acc_v.fma(wv, V::load(src.add(v * V::W)));
                }
            }
        }
        let n = lanes.min(a.ow - ox);
        for (r, acc_r) in acc.iter().enumerate() {
            let dst = out.add((oy + r) * a.ow + ox);
            if n == lanes {
                for (v, acc_v) in acc_r.iter().enumerate() {
                    acc_v.store(dst.add(v * V::W));
                }
            } else {
                let mut tmp = [0.0f32; 64];
                for (v, acc_v) in acc_r.iter().enumerate() {
                    acc_v.store(tmp.as_mut_ptr().add(v * V::W));
                }
                std::ptr::copy_nonoverlapping(tmp.as_ptr(), dst, n);
            }
        }
        ox += lanes;
    }
}

#[inline(always)]
unsafe fn correlate_body<V: Vector, const N: usize>(mut a: Correlate) {
    let mut oy = 0;
    while oy + 2 <= a.oh {
        correlate_rows::<V, N, 2>(&mut a, oy);
        oy += 2;
    }
    if oy < a.oh {
        correlate_rows::<V, N, 1>(&mut a, oy);
    }
}

pub(super) struct WeightGrad<'a> {
    pub p: &'a Phased,
    pub g: &'a [f32],
    pub gw: usize,
    pub k: usize,
    pub oh: usize,
    pub taps: &'a [usize],
    pub dw: &'a mut [f32],
}

/// For one filter row ky, the K taps kx share each loaded gradient vector: K + 1 loads per K
/// FMAs, K accumulator chains.
#[inline(always)]
unsafe fn weight_row<V: Vector, const K: usize>(a: &mut WeightGrad, ky: usize) {
    let step = a.p.s * a.p.pw;
    let base = a.p.data.as_ptr();
    let g = a.g.as_ptr();
    let mut acc = [V::zero(); K];
    for oy in 0..a.oh {
        let grow = g.add(oy * a.gw);
        let prow = base.add(oy * step);
        let mut ox = 0;
        while ox < a.gw {
            let gv = V::load(grow.add(ox));
            for (kx, acc_k) in acc.iter_mut().enumerate() {
                let off = *a.taps.get_unchecked(ky * K + kx);
                *acc_k = acc_k.fma(gv, V::load(prow.add(off + ox)));
            }
            ox += V::W;
        }
    }
    for (kx, acc_k) in acc.iter().enumerate() {
        *a.dw.get_unchecked_mut(ky * K + kx) += acc_k.sum();
    }
}

#[inline(always)]
unsafe fn weight_body<V: Vector>(mut a: WeightGrad) {
    for ky in 0..a.k {
        match a.k {
            1 => weight_row::<V, 1>(&mut a, ky),
            3 => weight_row::<V, 3>(&mut a, ky),
            5 => weight_row::<V, 5>(&mut a, ky),
            7 => weight_row::<V, 7>(&mut a, ky),
            _ => weight_any::<V>(&mut a, ky),
        }
    }
}

/// Other kernel sizes: one tap at a time.
#[inline(always)]
unsafe fn weight_any<V: Vector>(a: &mut WeightGrad, ky: usize) {
    let step = a.p.s * a.p.pw;
    for kx in 0..a.k {
        let off = a.taps[ky * a.k + kx];
        let mut acc = V::zero();
        for oy in 0..a.oh {
            let (grow, prow) = (
                a.g.as_ptr().add(oy * a.gw),
                a.p.data.as_ptr().add(oy * step),
            );
            let mut ox = 0;
            while ox < a.gw {
                acc = acc.fma(V::load(grow.add(ox)), V::load(prow.add(off + ox)));
                ox += V::W;
            }
        }
        a.dw[ky * a.k + kx] += acc.sum();
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn correlate_avx512(blk: Block, a: Correlate) {
    match blk {
        Block::Zmm(2) => correlate_body::<x86::Zmm, 2>(a),
        Block::Zmm(_) => correlate_body::<x86::Zmm, 1>(a),
        Block::Ymm(_) => correlate_body::<x86::Ymm, 1>(a),
        _ => correlate_body::<x86::Xmm, 1>(a),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn correlate_avx2(blk: Block, a: Correlate) {
    match blk {
        Block::Ymm(4) => correlate_body::<x86::Ymm, 4>(a),
        Block::Ymm(2) => correlate_body::<x86::Ymm, 2>(a),
        Block::Ymm(_) => correlate_body::<x86::Ymm, 1>(a),
        _ => correlate_body::<x86::Xmm, 1>(a),
    }
}

/// # Safety
/// `blk` comes from [`block`] with the detected ISA, and every access the kernel makes is in
/// bounds (checked by the caller in `padded`).
pub(super) unsafe fn correlate(blk: Block, a: Correlate) {
    match blk {
        #[cfg(target_arch = "x86_64")]
        Block::Zmm(_) => correlate_avx512(blk, a),
        #[cfg(target_arch = "x86_64")]
        Block::Ymm(_) | Block::Xmm => {
            if std::is_x86_feature_detected!("avx512f") {
                correlate_avx512(blk, a)
            } else {
                correlate_avx2(blk, a)
            }
        }
        _ => correlate_body::<Scalar, 4>(a),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn weight_avx512(blk: Block, a: WeightGrad) {
    match blk {
        Block::Zmm(_) => weight_body::<x86::Zmm>(a),
        Block::Ymm(_) => weight_body::<x86::Ymm>(a),
        _ => weight_body::<x86::Xmm>(a),
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn weight_avx2(blk: Block, a: WeightGrad) {
    match blk {
        Block::Ymm(_) => weight_body::<x86::Ymm>(a),
        _ => weight_body::<x86::Xmm>(a),
    }
}

/// # Safety
/// As [`correlate`]; `a.gw` is a multiple of the block's lanes.
pub(super) unsafe fn weight_grad(blk: Block, a: WeightGrad) {
    match blk {
        #[cfg(target_arch = "x86_64")]
        Block::Zmm(_) => weight_avx512(blk, a),
        #[cfg(target_arch = "x86_64")]
        Block::Ymm(_) | Block::Xmm => {
            if std::is_x86_feature_detected!("avx512f") {
                weight_avx512(blk, a)
            } else {
                weight_avx2(blk, a)
            }
        }
        _ => weight_body::<Scalar>(a),
    }
}
