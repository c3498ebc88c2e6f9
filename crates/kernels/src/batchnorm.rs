//! Fused 2D batch normalisation over NCHW tensors. dfdx's BatchNorm2D runs about ten separate
//! single-threaded tensor ops (and keeps as many intermediate tensors for backward); this does
//! two parallel passes forward and two backward, keeping only per-channel statistics.
//!
//! Semantics follow PyTorch: batch statistics use the biased variance for normalising, the
//! running variance is updated with the unbiased one, `running = (1 − momentum)·running +
//! momentum·batch`.
//!
//! An activation that follows the BatchNorm (ReLU in ResNet, ReLU6 in EfficientNet) can be fused
//! in ([`Act`]): dfdx's own activations are separate single-threaded passes with a tensor
//! allocation each, while here the forward applies it to each plane while it is in cache and the
//! backward recomputes the pre-activation from the input it reads anyway, so nothing extra is
//! kept.

use rayon::prelude::*;

use crate::scratch::Scratch;

/// Per-channel sums over the N planes of each channel, in f64 (activations can be large and
/// planes long; f32 accumulation would lose digits the golden tests care about).
pub fn per_channel<F: Fn(usize, &[f32]) -> f64 + Sync>(
    n: usize,
    c: usize,
    hw: usize,
    x: &[f32],
    f: F,
) -> Vec<f64> {
    (0..c)
        .into_par_iter()
        .map(|ch| (0..n).map(|b| f(ch, &x[(b * c + ch) * hw..][..hw])).sum())
        .collect()
}

/// An activation applied to the normalised value p, with dfdx's derivative conventions so fused
/// and unfused networks agree bit for bit: ReLU passes the gradient where p > 0, ReLU6 (dfdx's
/// `clamp(0, 6)`) where 0 ≤ p ≤ 6.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Identity,
    Relu,
    Relu6,
}

impl Act {
    fn apply(self, plane: &mut [f32]) {
        match self {
            Act::Identity => {}
            Act::Relu => plane.iter_mut().for_each(|v| *v = v.max(0.0)),
            Act::Relu6 => plane
                .iter_mut()
                .for_each(|v| *v = num_traits::clamp(*v, 0.0, 6.0)),
        }
    }
    #[inline(always)]
    fn passes(self, p: f32) -> bool {
        match self {
            Act::Identity => true,
            Act::Relu => p > 0.0,
            Act::Relu6 => (0.0..=6.0).contains(&p),
        }
    }
}

/// The output gradient through the activation: `gout` where the pre-activation
/// `x·a_c + b_c (+ r)` passes, 0 elsewhere (recomputed exactly as the forward pass computed it).
#[expect(
    clippy::too_many_arguments,
    reason = "the slices and per-channel vectors of one fused BatchNorm pass"
)]
pub fn act_backward(
    act: Act,
    c: usize,
    hw: usize,
    x: &[f32],
    r: Option<&[f32]>,
    a: &[f32],
    b: &[f32],
    gout: &[f32],
) -> Scratch {
    let mut g = Scratch::new(gout.len());
    g.par_chunks_mut(hw)
        .zip(gout.par_chunks(hw).zip(x.par_chunks(hw)))
        .enumerate()
        .for_each(|(p, (gp, (op, xp)))| {
            let (a, b) = (a[p % c], b[p % c]);
            match r {
                None => {
                    for ((g, o), x) in gp.iter_mut().zip(op).zip(xp) {
                        *g = if act.passes(x * a + b) { *o } else { 0.0 };
                    }
                }
                Some(r) => {
                    let rp = &r[p * hw..][..hw];
                    for (((g, o), x), r) in gp.iter_mut().zip(op).zip(xp).zip(rp) {
                        *g = if act.passes((x * a + b) + r) { *o } else { 0.0 };
                    }
                }
            }
        });
    g
}

/// Train-mode affine coefficients a = γ·σ⁻¹, b = β − μ·γ·σ⁻¹ (f64 math, rounded to f32).
pub fn train_coefficients(
    gamma: &[f32],
    beta: &[f32],
    mean: &[f64],
    inv_std: &[f64],
) -> (Vec<f32>, Vec<f32>) {
    let a = (0..gamma.len())
        .map(|ch| (gamma[ch] as f64 * inv_std[ch]) as f32)
        .collect();
    let b = (0..gamma.len())
        .map(|ch| (beta[ch] as f64 - mean[ch] * gamma[ch] as f64 * inv_std[ch]) as f32)
        .collect();
    (a, b)
}

/// Train-mode statistics and output: returns (y, mean, inv_std, biased var).
#[expect(
    clippy::too_many_arguments,
    reason = "the slices and per-channel vectors of one fused BatchNorm pass"
)]
pub fn train_forward(
    n: usize,
    c: usize,
    hw: usize,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
    r: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let m = (n * hw) as f64;
    let mean: Vec<f64> = per_channel(n, c, hw, x, |_, p| p.iter().map(|v| *v as f64).sum::<f64>())
        .into_iter()
        .map(|s| s / m)
        .collect();
    let var: Vec<f64> = per_channel(n, c, hw, x, |ch, p| {
        p.iter()
            .map(|v| (*v as f64 - mean[ch]).powi(2))
            .sum::<f64>()
    })
    .into_iter()
    .map(|s| s / m)
    .collect();
    let inv_std: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let (a, b) = train_coefficients(gamma, beta, &mean, &inv_std);
    affine(c, hw, x, &a, &b, r, act, y);
    (mean, inv_std, var)
}

/// y = x·a_c + b_c with a = γ/√(running_var + ε), b = β − running_mean·a.
pub fn eval_coefficients(
    gamma: &[f32],
    beta: &[f32],
    rm: &[f32],
    rv: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>) {
    let a: Vec<f64> = gamma
        .iter()
        .zip(rv)
        .map(|(g, v)| *g as f64 / (*v as f64 + eps).sqrt())
        .collect();
    let b: Vec<f32> = beta
        .iter()
        .zip(rm)
        .zip(&a)
        .map(|((b, m), a)| (*b as f64 - *m as f64 * a) as f32)
        .collect();
    (a.into_iter().map(|v| v as f32).collect(), b)
}

/// y = act(x·a_c + b_c (+ r)), plane by plane.
#[expect(
    clippy::too_many_arguments,
    reason = "the slices and per-channel vectors of one fused BatchNorm pass"
)]
pub fn affine(
    c: usize,
    hw: usize,
    x: &[f32],
    a: &[f32],
    b: &[f32],
    r: Option<&[f32]>,
    act: Act,
    y: &mut [f32],
) {
    y.par_chunks_mut(hw)
        .zip(x.par_chunks(hw))
        .enumerate()
        .for_each(|(p, (yp, xp))| {
            let (a, b) = (a[p % c], b[p % c]);
            yp.iter_mut().zip(xp).for_each(|(y, x)| *y = x * a + b);
            if let Some(r) = r {
                yp.iter_mut()
                    .zip(&r[p * hw..][..hw])
                    .for_each(|(y, r)| *y += r);
            }
            act.apply(yp);
        });
}

/// dst += src, in parallel chunks (the residual's share of the gradient).
pub fn add_into(dst: &mut [f32], src: &[f32]) {
    dst.par_chunks_mut(1 << 14)
        .zip(src.par_chunks(1 << 14))
        .for_each(|(d, g)| d.iter_mut().zip(g).for_each(|(d, g)| *d += g));
}

/// Train mode, backward: (dβ, dγ) per channel, dβ = Σ dy, dγ = Σ dy·x̂.
pub fn train_param_grads(
    n: usize,
    c: usize,
    hw: usize,
    gout: &[f32],
    xd: &[f32],
    mean: &[f64],
    inv_std: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let dbeta = per_channel(n, c, hw, gout, |_, p| {
        p.iter().map(|v| *v as f64).sum::<f64>()
    });
    let dgamma: Vec<f64> = (0..c)
        .into_par_iter()
        .map(|ch| {
            (0..n)
                .map(|b| {
                    let (gp, xp) = (
                        &gout[(b * c + ch) * hw..][..hw],
                        &xd[(b * c + ch) * hw..][..hw],
                    );
                    gp.iter()
                        .zip(xp)
                        .map(|(g, x)| *g as f64 * (*x as f64 - mean[ch]))
                        .sum::<f64>()
                })
                .sum::<f64>()
                * inv_std[ch]
        })
        .collect();
    (dbeta, dgamma)
}

/// Train mode, backward: dx += γ·σ⁻¹/M · (M·dy − dβ − x̂·dγ).
#[expect(
    clippy::too_many_arguments,
    reason = "the slices and per-channel vectors of one fused BatchNorm pass"
)]
pub fn train_input_grad(
    c: usize,
    hw: usize,
    m: f64,
    gout: &[f32],
    xd: &[f32],
    gamma: &[f32],
    mean: &[f64],
    inv_std: &[f64],
    dbeta: &[f64],
    dgamma: &[f64],
    dx: &mut [f32],
) {
    dx.par_chunks_mut(hw).enumerate().for_each(|(p, dxp)| {
        let ch = p % c;
        let (gp, xp) = (&gout[p * hw..][..hw], &xd[p * hw..][..hw]);
        let k = gamma[ch] as f64 * inv_std[ch] / m;
        let (db, dg, mu, is) = (dbeta[ch], dgamma[ch], mean[ch], inv_std[ch]);
        for ((d, g), x) in dxp.iter_mut().zip(gp).zip(xp) {
            let xhat = (*x as f64 - mu) * is;
            *d += (k * (m * *g as f64 - db - xhat * dg)) as f32;
        }
    });
}

/// Eval mode, backward: (dβ, dγ) per channel with the running statistics.
#[expect(
    clippy::too_many_arguments,
    reason = "the slices and per-channel vectors of one fused BatchNorm pass"
)]
pub fn eval_param_grads(
    n: usize,
    c: usize,
    hw: usize,
    gout: &[f32],
    xd: &[f32],
    rm: &[f32],
    rv: &[f32],
    epsilon: f64,
) -> (Vec<f64>, Vec<f64>) {
    let dbeta = per_channel(n, c, hw, gout, |_, p| {
        p.iter().map(|v| *v as f64).sum::<f64>()
    });
    let dgamma: Vec<f64> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let is = 1.0 / (rv[ch] as f64 + epsilon).sqrt();
            (0..n)
                .map(|bi| {
                    let (gp, xp) = (
                        &gout[(bi * c + ch) * hw..][..hw],
                        &xd[(bi * c + ch) * hw..][..hw],
                    );
                    gp.iter()
                        .zip(xp)
                        .map(|(g, x)| *g as f64 * (*x as f64 - rm[ch] as f64))
                        .sum::<f64>()
                })
                .sum::<f64>()
                * is
        })
        .collect();
    (dbeta, dgamma)
}

/// Eval mode, backward: dx += dy·a_c.
pub fn eval_input_grad(c: usize, hw: usize, gout: &[f32], a: &[f32], dx: &mut [f32]) {
    dx.par_chunks_mut(hw)
        .zip(gout.par_chunks(hw))
        .enumerate()
        .for_each(|(p, (d, g))| {
            let a = a[p % c];
            d.iter_mut().zip(g).for_each(|(d, g)| *d += g * a);
        });
}
