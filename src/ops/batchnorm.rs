//! Fused 2D batch normalisation over NCHW tensors. dfdx's BatchNorm2D runs about ten separate
//! single-threaded tensor ops (and keeps as many intermediate tensors for backward); this does
//! two parallel passes forward and two backward, keeping only per-channel statistics.
//!
//! Semantics follow PyTorch: batch statistics use the biased variance for normalising, the
//! running variance is updated with the unbiased one, `running = (1 − momentum)·running +
//! momentum·batch`.

use dfdx::prelude::*;
use rayon::prelude::*;

use super::tensor_io::{alloc_output, put_grad, read, read_scratch, take_grad};

/// Per-channel sums over the N planes of each channel, in f64 (activations can be large and
/// planes long; f32 accumulation would lose digits the golden tests care about).
fn per_channel<F: Fn(usize, &[f32]) -> f64 + Sync>(
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

/// Train-mode statistics and output: returns (y, mean, inv_std, biased var).
#[allow(clippy::too_many_arguments)]
fn train_forward(
    n: usize,
    c: usize,
    hw: usize,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f64,
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
    y.par_chunks_mut(hw)
        .zip(x.par_chunks(hw))
        .enumerate()
        .for_each(|(p, (yp, xp))| {
            let ch = p % c;
            let a = (gamma[ch] as f64 * inv_std[ch]) as f32;
            let b = (beta[ch] as f64 - mean[ch] * gamma[ch] as f64 * inv_std[ch]) as f32;
            yp.iter_mut().zip(xp).for_each(|(y, x)| *y = x * a + b);
        });
    (mean, inv_std, var)
}

/// y = x·a_c + b_c with a = γ/√(running_var + ε), b = β − running_mean·a.
fn eval_coefficients(
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

fn affine(c: usize, hw: usize, x: &[f32], a: &[f32], b: &[f32], y: &mut [f32]) {
    y.par_chunks_mut(hw)
        .zip(x.par_chunks(hw))
        .enumerate()
        .for_each(|(p, (yp, xp))| {
            let (a, b) = (a[p % c], b[p % c]);
            yp.iter_mut().zip(xp).for_each(|(y, x)| *y = x * a + b);
        });
}

type Img<const C: usize, T> = Tensor<(usize, Const<C>, usize, usize), f32, Cpu, T>;
type Vector<const C: usize> = Tensor<Rank1<C>, f32, Cpu>;

/// Train mode: normalises with batch statistics and updates the running statistics.
#[allow(clippy::too_many_arguments)]
pub fn batchnorm2d_train<const C: usize, T: Tape<f32, Cpu>>(
    x: Img<C, T>,
    scale: &Vector<C>,
    bias: &Vector<C>,
    running_mean: &mut Vector<C>,
    running_var: &mut Vector<C>,
    epsilon: f64,
    momentum: f64,
) -> Img<C, T> {
    let (n, _, h, w) = *x.shape();
    let hw = h * w;
    let x = x.contiguous();
    let (x, mut tape) = x.split_tape();
    let xd = read_scratch(&x);
    let (gamma, beta) = (read(scale), read(bias));
    let mut y = alloc_output(x.device(), xd.len());
    let (mean, inv_std, var) = train_forward(n, C, hw, &xd, &gamma, &beta, epsilon, &mut y);
    drop(xd);

    let m = (n * hw) as f64;
    let unbias = if m > 1.0 { m / (m - 1.0) } else { 1.0 };
    let rm: Vec<f32> = read(running_mean)
        .iter()
        .zip(&mean)
        .map(|(r, b)| ((1.0 - momentum) * *r as f64 + momentum * b) as f32)
        .collect();
    let rv: Vec<f32> = read(running_var)
        .iter()
        .zip(&var)
        .map(|(r, v)| ((1.0 - momentum) * *r as f64 + momentum * v * unbias) as f32)
        .collect();
    running_mean.copy_from(&rm);
    running_var.copy_from(&rv);

    let out = x.device().tensor_from_vec(y, (n, Const::<C>, h, w));
    if T::OWNS_TAPE {
        let (x_ghost, s_ghost, b_ghost, out_ghost) =
            (x.ghost(), scale.ghost(), bias.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let gout = take_grad!(grads, &out_ghost);
            let xd = read_scratch(&x);
            // dβ = Σ dy, dγ = Σ dy·x̂ per channel.
            let dbeta = per_channel(n, C, hw, &gout, |_, p| {
                p.iter().map(|v| *v as f64).sum::<f64>()
            });
            let dgamma: Vec<f64> = (0..C)
                .into_par_iter()
                .map(|ch| {
                    (0..n)
                        .map(|b| {
                            let (gp, xp) = (
                                &gout[(b * C + ch) * hw..][..hw],
                                &xd[(b * C + ch) * hw..][..hw],
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
            {
                // dx = γ·σ⁻¹/M · (M·dy − dβ − x̂·dγ)
                let dx = grads.get_or_alloc_mut(&x_ghost)?;
                dx.par_chunks_mut(hw).enumerate().for_each(|(p, dxp)| {
                    let ch = p % C;
                    let (gp, xp) = (&gout[p * hw..][..hw], &xd[p * hw..][..hw]);
                    let k = gamma[ch] as f64 * inv_std[ch] / m;
                    let (db, dg, mu, is) = (dbeta[ch], dgamma[ch], mean[ch], inv_std[ch]);
                    for ((d, g), x) in dxp.iter_mut().zip(gp).zip(xp) {
                        let xhat = (*x as f64 - mu) * is;
                        *d += (k * (m * *g as f64 - db - xhat * dg)) as f32;
                    }
                });
            }
            let ds = grads.get_or_alloc_mut(&s_ghost)?;
            ds.iter_mut()
                .zip(&dgamma)
                .for_each(|(d, v)| *d += *v as f32);
            let dbias = grads.get_or_alloc_mut(&b_ghost)?;
            dbias
                .iter_mut()
                .zip(&dbeta)
                .for_each(|(d, v)| *d += *v as f32);
            put_grad!(grads, &out_ghost, gout);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// Eval mode: normalises with the running statistics. Differentiable in x, scale and bias when
/// `x` carries a tape (a frozen BatchNorm inside a trained network).
pub fn batchnorm2d_eval<const C: usize, T: Tape<f32, Cpu>>(
    x: Img<C, T>,
    scale: &Vector<C>,
    bias: &Vector<C>,
    running_mean: &Vector<C>,
    running_var: &Vector<C>,
    epsilon: f64,
) -> Img<C, T> {
    let (n, _, h, w) = *x.shape();
    let hw = h * w;
    let x = x.contiguous();
    let (x, mut tape) = x.split_tape();
    let (rm, rv) = (read(running_mean), read(running_var));
    let (a, b) = eval_coefficients(&read(scale), &read(bias), &rm, &rv, epsilon);
    let xd = read_scratch(&x);
    let mut y = alloc_output(x.device(), xd.len());
    affine(C, hw, &xd, &a, &b, &mut y);
    drop(xd);
    let out = x.device().tensor_from_vec(y, (n, Const::<C>, h, w));
    if T::OWNS_TAPE {
        let (x_ghost, s_ghost, b_ghost, out_ghost) =
            (x.ghost(), scale.ghost(), bias.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let gout = take_grad!(grads, &out_ghost);
            let xd = read_scratch(&x);
            let dbeta = per_channel(n, C, hw, &gout, |_, p| {
                p.iter().map(|v| *v as f64).sum::<f64>()
            });
            let dgamma: Vec<f64> = (0..C)
                .into_par_iter()
                .map(|ch| {
                    let is = 1.0 / (rv[ch] as f64 + epsilon).sqrt();
                    (0..n)
                        .map(|bi| {
                            let (gp, xp) = (
                                &gout[(bi * C + ch) * hw..][..hw],
                                &xd[(bi * C + ch) * hw..][..hw],
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
            {
                let dx = grads.get_or_alloc_mut(&x_ghost)?;
                dx.par_chunks_mut(hw)
                    .zip(gout.par_chunks(hw))
                    .enumerate()
                    .for_each(|(p, (d, g))| {
                        let a = a[p % C];
                        d.iter_mut().zip(g).for_each(|(d, g)| *d += g * a);
                    });
            }
            let ds = grads.get_or_alloc_mut(&s_ghost)?;
            ds.iter_mut()
                .zip(&dgamma)
                .for_each(|(d, v)| *d += *v as f32);
            let dbias = grads.get_or_alloc_mut(&b_ghost)?;
            dbias
                .iter_mut()
                .zip(&dbeta)
                .for_each(|(d, v)| *d += *v as f32);
            put_grad!(grads, &out_ghost, gout);
            Ok(())
        });
    }
    out.put_tape(tape)
}
