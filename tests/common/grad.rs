//! What the finite-difference gradient checks and the golden comparisons share.

use rand::Rng;
use rand_chacha::ChaCha8Rng;

/// `n` values uniform in [-1, 1).
pub(crate) fn random(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    (0..n).map(|_| rng.gen_range(-1.0f32..1.0)).collect()
}

/// ‖a − b‖ / ‖b‖ in f64, with ‖b‖ floored at `floor` so that exact zeros compare absolutely
/// (`b` in f64 from a reference computation, or in f32 from a golden file).
pub(crate) fn rel_err<B: Copy + Into<f64>>(a: &[f32], b: &[B], floor: f64) -> f64 {
    assert_eq!(a.len(), b.len());
    let num: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - (*y).into()).powi(2))
        .sum::<f64>()
        .sqrt();
    let den: f64 = b
        .iter()
        .map(|y| {
            let y: f64 = (*y).into();
            y * y
        })
        .sum::<f64>()
        .sqrt();
    num / den.max(floor)
}

/// Central differences of `loss` w.r.t. every element of `v`, in f64 around f32 (or f64)
/// inputs.
pub(crate) fn finite_diff<T>(v: &[T], eps: T, mut loss: impl FnMut(&[T]) -> f64) -> Vec<f64>
where
    T: Copy + std::ops::Add<Output = T> + std::ops::Sub<Output = T> + Into<f64>,
{
    let mut p = v.to_vec();
    (0..v.len())
        .map(|i| {
            p[i] = v[i] + eps;
            let up = loss(&p);
            p[i] = v[i] - eps;
            let down = loss(&p);
            p[i] = v[i];
            (up - down) / (2.0 * eps.into())
        })
        .collect()
}

/// Σ aᵢ·rᵢ in f64: the scalar loss a check differentiates.
pub(crate) fn dot(a: &[f32], r: &[f32]) -> f64 {
    a.iter().zip(r).map(|(x, y)| *x as f64 * *y as f64).sum()
}
