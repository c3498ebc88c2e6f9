//! Safe-ish wrapper over `gemm::gemm` for row/column strided f32 matrices, so the conv kernels
//! can multiply transposed views without copies.
//!
//! This is the gemm 0.15 that dfdx's own matmul uses, AVX2 and FMA kernels picked at run time.
//! gemm 0.19 has AVX-512 kernels too, but it brought ten more crates to every build for the
//! built-in engine alone, which runs only where oneDNN is not installed: on a Zen 4 it took
//! 6% less CPU time over the main job (measured), and oneDNN, the engine where it is installed,
//! takes AVX-512 and bf16 anyway.

pub use gemm::Parallelism;

/// The widest kernel family gemm dispatches to on this CPU, for benchmark reports.
pub fn simd_level() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            return "avx2+fma";
        }
    }
    "scalar/other"
}

/// A read-only matrix view: element (r, c) is `data[r * rs + c * cs]`.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: usize,
    pub cs: usize,
}

impl<'a> Mat<'a> {
    pub fn row_major(data: &'a [f32], cols: usize) -> Self {
        Mat {
            data,
            rs: cols,
            cs: 1,
        }
    }
    /// The transpose of a row-major `rows × cols` matrix stored in `data`.
    pub fn transposed(data: &'a [f32], cols_of_stored: usize) -> Self {
        Mat {
            data,
            rs: 1,
            cs: cols_of_stored,
        }
    }
    fn check(&self, rows: usize, cols: usize) {
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * self.rs + (cols - 1) * self.cs;
            assert!(last < self.data.len(), "matrix view out of bounds");
        }
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "BLAS-style: the three sizes, the destination, the accumulate flag, both operands and the thread policy"
)]
/// `dst[m×n] (+)= a[m×k] · b[k×n]`, `dst` row-major with row stride `n`.
/// With `accumulate` the product is added to `dst`, otherwise it overwrites it.
pub fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    a: Mat,
    b: Mat,
    par: Parallelism,
) {
    assert!(dst.len() >= m * n, "destination too small");
    a.check(m, k);
    b.check(k, n);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(0.0);
        }
        return;
    }
    // SAFETY: the bounds of all three views were checked above; `dst` is borrowed mutably and
    // cannot alias `a` or `b`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            a.data.as_ptr(),
            a.cs as isize,
            a.rs as isize,
            b.data.as_ptr(),
            b.cs as isize,
            b.rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            par,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matmul_with_transposed_views() {
        // a: 2x3, b stored as 2x3 used transposed (3x2).
        let a = [1., 2., 3., 4., 5., 6.];
        let b = [1., 0., -1., 2., 1., 0.];
        let mut c = [10.0f32; 4];
        matmul(
            2,
            2,
            3,
            &mut c,
            true,
            Mat::row_major(&a, 3),
            Mat::transposed(&b, 3),
            Parallelism::None,
        );
        // a · bᵀ = [[1-3, 2+2], [4-6, 8+5]]
        assert_eq!(c, [8., 14., 8., 23.]);
    }
}
