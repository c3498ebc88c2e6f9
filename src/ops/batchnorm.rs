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

use dfdx::prelude::*;
use rayon::prelude::*;

use super::scratch::Scratch;
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
#[allow(clippy::too_many_arguments)]
fn act_backward(
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

/// Adds the gradient `g` of `act(bn(x) + r)`'s pre-activation into the residual's gradient.
fn residual_backward<const C: usize>(
    grads: &mut Gradients<f32, Cpu>,
    r: &Residual<C>,
    g: &[f32],
) -> Result<(), CpuError> {
    let dr = grads.get_or_alloc_mut(&r.id)?;
    dr.par_chunks_mut(1 << 14)
        .zip(g.par_chunks(1 << 14))
        .for_each(|(d, g)| d.iter_mut().zip(g).for_each(|(d, g)| *d += g));
    Ok(())
}

/// Train-mode affine coefficients a = γ·σ⁻¹, b = β − μ·γ·σ⁻¹ (f64 math, rounded to f32).
fn train_coefficients(
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
#[allow(clippy::too_many_arguments)]
fn train_forward(
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

/// y = act(x·a_c + b_c (+ r)), plane by plane.
#[allow(clippy::too_many_arguments)]
fn affine(
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

type Img<const C: usize, T> = Tensor<(usize, Const<C>, usize, usize), f32, Cpu, T>;
type Vector<const C: usize> = Tensor<Rank1<C>, f32, Cpu>;

/// The residual as the backward pass keeps it: a contiguous handle to read its values from, and
/// the tensor itself (same id), whose gradient receives the residual's share. Both are
/// reference-counted handles on buffers that the network keeps alive anyway.
struct Residual<const C: usize> {
    values: Img<C, NoneTape>,
    id: Img<C, NoneTape>,
}

fn check_residual<const C: usize>(
    r: &Img<C, NoneTape>,
    shape: &(usize, Const<C>, usize, usize),
) -> Residual<C> {
    assert_eq!(r.shape(), shape, "residual shape");
    Residual {
        values: r.clone().contiguous(),
        id: r.clone(),
    }
}

/// Train mode: normalises with batch statistics and updates the running statistics.
pub fn batchnorm2d_train<const C: usize, T: Tape<f32, Cpu>>(
    x: Img<C, T>,
    scale: &Vector<C>,
    bias: &Vector<C>,
    running_mean: &mut Vector<C>,
    running_var: &mut Vector<C>,
    epsilon: f64,
    momentum: f64,
) -> Img<C, T> {
    let (rm, rv) = (running_mean, running_var);
    batchnorm2d_train_act(
        x,
        scale,
        bias,
        rm,
        rv,
        epsilon,
        momentum,
        None,
        Act::Identity,
    )
}

/// `act(batchnorm2d_train(x) + residual)`, fused. The residual's gradient is accumulated by
/// tensor id, like dfdx's `+` does for a tape-less operand (ResNet's shortcut).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm2d_train_act<const C: usize, T: Tape<f32, Cpu>>(
    x: Img<C, T>,
    scale: &Vector<C>,
    bias: &Vector<C>,
    running_mean: &mut Vector<C>,
    running_var: &mut Vector<C>,
    epsilon: f64,
    momentum: f64,
    residual: Option<&Img<C, NoneTape>>,
    act: Act,
) -> Img<C, T> {
    let (n, _, h, w) = *x.shape();
    let hw = h * w;
    let x = x.contiguous();
    let (x, mut tape) = x.split_tape();
    let xd = read_scratch(&x);
    let (gamma, beta) = (read(scale), read(bias));
    let mut y = alloc_output(x.device(), xd.len());
    let residual = residual.map(|r| check_residual(r, x.shape()));
    let rd = residual.as_ref().map(|r| read_scratch(&r.values));
    let (mean, inv_std, var) = train_forward(
        n,
        C,
        hw,
        &xd,
        &gamma,
        &beta,
        epsilon,
        rd.as_deref(),
        act,
        &mut y,
    );
    drop((xd, rd));

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
            let gout_act = take_grad!(grads, &out_ghost);
            let xd = read_scratch(&x);
            // The gradient at the BatchNorm's own output, before the activation.
            let masked;
            let gout: &[f32] = if act == Act::Identity {
                &gout_act
            } else {
                let (a, b) = train_coefficients(&gamma, &beta, &mean, &inv_std);
                let rd = residual.as_ref().map(|r| read_scratch(&r.values));
                masked = act_backward(act, C, hw, &xd, rd.as_deref(), &a, &b, &gout_act);
                &masked
            };
            if let Some(r) = &residual {
                residual_backward(grads, r, gout)?;
            }
            // dβ = Σ dy, dγ = Σ dy·x̂ per channel.
            let dbeta = per_channel(n, C, hw, gout, |_, p| {
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
            put_grad!(grads, &out_ghost, gout_act);
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
    let (rm, rv) = (running_mean, running_var);
    batchnorm2d_eval_act(x, scale, bias, rm, rv, epsilon, None, Act::Identity)
}

/// `act(batchnorm2d_eval(x) + residual)`, fused (see [`batchnorm2d_train_act`]).
#[allow(clippy::too_many_arguments)]
pub fn batchnorm2d_eval_act<const C: usize, T: Tape<f32, Cpu>>(
    x: Img<C, T>,
    scale: &Vector<C>,
    bias: &Vector<C>,
    running_mean: &Vector<C>,
    running_var: &Vector<C>,
    epsilon: f64,
    residual: Option<&Img<C, NoneTape>>,
    act: Act,
) -> Img<C, T> {
    let (n, _, h, w) = *x.shape();
    let hw = h * w;
    let x = x.contiguous();
    let (x, mut tape) = x.split_tape();
    let (rm, rv) = (read(running_mean), read(running_var));
    let (a, b) = eval_coefficients(&read(scale), &read(bias), &rm, &rv, epsilon);
    let xd = read_scratch(&x);
    let mut y = alloc_output(x.device(), xd.len());
    let residual = residual.map(|r| check_residual(r, x.shape()));
    let rd = residual.as_ref().map(|r| read_scratch(&r.values));
    affine(C, hw, &xd, &a, &b, rd.as_deref(), act, &mut y);
    drop((xd, rd));
    let out = x.device().tensor_from_vec(y, (n, Const::<C>, h, w));
    if T::OWNS_TAPE {
        let (x_ghost, s_ghost, b_ghost, out_ghost) =
            (x.ghost(), scale.ghost(), bias.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let gout_act = take_grad!(grads, &out_ghost);
            let xd = read_scratch(&x);
            let masked;
            let gout: &[f32] = if act == Act::Identity {
                &gout_act
            } else {
                let rd = residual.as_ref().map(|r| read_scratch(&r.values));
                masked = act_backward(act, C, hw, &xd, rd.as_deref(), &a, &b, &gout_act);
                &masked
            };
            if let Some(r) = &residual {
                residual_backward(grads, r, gout)?;
            }
            let dbeta = per_channel(n, C, hw, gout, |_, p| {
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
            put_grad!(grads, &out_ghost, gout_act);
            Ok(())
        });
    }
    out.put_tape(tape)
}
