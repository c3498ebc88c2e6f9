//! Inverted dropout whose masks are a pure function of (seed, epoch, batch, layer): nothing is
//! drawn from a stateful generator, so a resumed or reproduced run sees exactly the masks of
//! the original, whatever ran before.

use dfdx::prelude::*;

/// Which training step a mask belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    pub seed: u64,
    /// 1-based, as the training loop counts.
    pub epoch: usize,
    /// 0-based index of the batch within the epoch.
    pub batch: usize,
}

/// SplitMix64's finaliser: a bijective 64-bit mix.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The multipliers of dropout layer `layer` at `step`: element j keeps its value, scaled by
/// 1/(1 − p), when u_j ≥ p and is zeroed otherwise, with
/// u_j = mix(key + j) / 2⁶⁴ (top 53 bits) and key = mix(mix(mix(seed) ⊕ epoch) ⊕ batch) ⊕ layer.
/// `tests/golden/mlp_head.py` implements the same function.
pub(crate) fn mask(step: Step, layer: usize, len: usize, p: f64) -> Vec<f32> {
    let key = mix(mix(mix(step.seed) ^ step.epoch as u64) ^ step.batch as u64) ^ layer as u64;
    let keep = (1.0 / (1.0 - p)) as f32;
    (0..len)
        .map(|j| {
            let u = (mix(key.wrapping_add(j as u64)) >> 11) as f64 / (1u64 << 53) as f64;
            if u >= p {
                keep
            } else {
                0.0
            }
        })
        .collect()
}

/// `x · mask` for dropout layer `layer` of a training step; the identity for p = 0.
pub fn dropout<T: Tape<f32, Cpu>>(
    x: Tensor<(usize, usize), f32, Cpu, T>,
    step: Step,
    layer: usize,
    p: f64,
) -> Tensor<(usize, usize), f32, Cpu, T> {
    if p <= 0.0 {
        return x;
    }
    let shape = *x.shape();
    let m = mask(step, layer, shape.0 * shape.1, p);
    let m = x.device().tensor_from_vec(m, shape);
    x * m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_reproducible_and_drop_about_p() {
        let s = Step {
            seed: 7,
            epoch: 3,
            batch: 5,
        };
        let a = mask(s, 1, 10_000, 0.2);
        assert_eq!(a, mask(s, 1, 10_000, 0.2));
        assert_ne!(a, mask(Step { batch: 6, ..s }, 1, 10_000, 0.2));
        assert_ne!(a, mask(s, 2, 10_000, 0.2));
        let dropped = a.iter().filter(|v| **v == 0.0).count();
        assert!((1800..2200).contains(&dropped), "{dropped}");
        assert!(a.iter().all(|v| *v == 0.0 || (*v - 1.25).abs() < 1e-6));
    }
}
