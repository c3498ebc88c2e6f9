//! Fused 2D batch normalisation on dfdx tensors: the tape glue around the slice kernels of
//! [`runner_kernels::batchnorm`] (which documents the semantics and the fused activations).

use dfdx::prelude::*;

pub use runner_kernels::batchnorm::*;

use super::tensor_io::{alloc_output, put_grad, read, read_scratch, take_grad};

/// Adds the gradient `g` of `act(bn(x) + r)`'s pre-activation into the residual's gradient.
fn residual_backward<const C: usize>(
    grads: &mut Gradients<f32, Cpu>,
    r: &Residual<C>,
    g: &[f32],
) -> Result<(), CpuError> {
    let dr = grads.get_or_alloc_mut(&r.id)?;
    add_into(dr, g);
    Ok(())
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
#[expect(
    clippy::too_many_arguments,
    reason = "a BatchNorm2D module's tensors and settings, passed as the module holds them, plus the fused residual and activation"
)]
// Long: the fused forward pass and the backward closure it puts on the tape (the slice kernels are
// in runner-kernels).
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
            let (dbeta, dgamma) = train_param_grads(n, C, hw, gout, &xd, &mean, &inv_std);
            let dx = grads.get_or_alloc_mut(&x_ghost)?;
            train_input_grad(
                C, hw, m, gout, &xd, &gamma, &mean, &inv_std, &dbeta, &dgamma, dx,
            );
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
#[expect(
    clippy::too_many_arguments,
    reason = "a BatchNorm2D module's tensors and settings, passed as the module holds them, plus the fused residual and activation"
)]
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
            let (dbeta, dgamma) = eval_param_grads(n, C, hw, gout, &xd, &rm, &rv, epsilon);
            let dx = grads.get_or_alloc_mut(&x_ghost)?;
            eval_input_grad(C, hw, gout, &a, dx);
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
