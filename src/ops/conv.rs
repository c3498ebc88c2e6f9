//! 2D convolution on dfdx tensors: the tape glue around the slice kernels of
//! [`runner_kernels::conv`] (which has the layouts and algorithms).

use dfdx::prelude::*;

pub use runner_kernels::conv::*;

use super::engine;
use super::geometry::Padding;
use super::tensor_io::{alloc_output, put_grad, read, read_scratch, take_grad};

/// Convolution of `x` (N, I, H, W) with `weight` (O, I/groups, K, K) and an optional `bias` (O),
/// with a backward pass for x, weight and bias when `x` carries a tape.
///
/// Panics if `I` or `O` is not divisible by `groups`, or if the weight's second dimension is
/// not `I / groups`.
pub fn conv2d<const I: usize, const O: usize, const K: usize, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, Const<I>, usize, usize), f32, Cpu, T>,
    weight: &Tensor<(Const<O>, usize, Const<K>, Const<K>), f32, Cpu>,
    bias: Option<&Tensor<(Const<O>,), f32, Cpu>>,
    stride: usize,
    padding: Padding,
    groups: usize,
) -> Tensor<(usize, Const<O>, usize, usize), f32, Cpu, T> {
    conv2d_grads(x, weight, bias, stride, padding, groups, true)
}

/// [`conv2d`] for a network's first layer, whose input (the images) needs no gradient: the
/// backward pass computes the weight and bias gradients only (the input gradient of a stem is
/// a third of its backward work).
pub fn conv2d_first_layer<const I: usize, const O: usize, const K: usize, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, Const<I>, usize, usize), f32, Cpu, T>,
    weight: &Tensor<(Const<O>, usize, Const<K>, Const<K>), f32, Cpu>,
    bias: Option<&Tensor<(Const<O>,), f32, Cpu>>,
    stride: usize,
    padding: Padding,
    groups: usize,
) -> Tensor<(usize, Const<O>, usize, usize), f32, Cpu, T> {
    conv2d_grads(x, weight, bias, stride, padding, groups, false)
}

fn conv2d_grads<const I: usize, const O: usize, const K: usize, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, Const<I>, usize, usize), f32, Cpu, T>,
    weight: &Tensor<(Const<O>, usize, Const<K>, Const<K>), f32, Cpu>,
    bias: Option<&Tensor<(Const<O>,), f32, Cpu>>,
    stride: usize,
    padding: Padding,
    groups: usize,
    input_grad: bool,
) -> Tensor<(usize, Const<O>, usize, usize), f32, Cpu, T> {
    let (n, _, h, w) = *x.shape();
    let geom = Conv2dGeom::new(n, I, h, w, O, K, stride, padding, groups);
    assert_eq!(
        weight.shape().1,
        geom.cin_g(),
        "weight has {} input channels per group, expected {}",
        weight.shape().1,
        geom.cin_g()
    );
    let x = x.contiguous();
    let (x, mut tape) = x.split_tape();
    let x_data = read_scratch(&x);
    let w_data = read(weight);
    let b_data = bias.map(read);
    let dev = x.device().clone();
    let mut out = alloc_output(&dev, n * O * geom.oh * geom.ow);
    let saved = engine::conv_forward(
        &geom,
        &x_data,
        &w_data,
        b_data.as_deref(),
        &mut out,
        T::OWNS_TAPE,
    );
    drop(x_data);
    let out = dev.tensor_from_vec(out, (n, Const::<O>, geom.oh, geom.ow));
    if T::OWNS_TAPE {
        let (x_ghost, w_ghost, out_ghost) = (x.ghost(), weight.ghost(), out.ghost());
        let b_ghost = bias.map(|b| b.ghost());
        // Keep the input tensor (a reference-counted handle, usually alive for other ops anyway)
        // rather than a copy of its data; the backward pass copies it out again if the engine
        // did not keep it.
        let x_keep = x;
        tape.add_backward_op(move |grads| {
            let gout = take_grad!(grads, &out_ghost);
            let mut dw = take_grad!(grads, &w_ghost);
            let mut db = match &b_ghost {
                Some(b) => Some(take_grad!(grads, b)),
                None => None,
            };
            // the engine may have kept its own copy of the input (in its layout)
            let x_data = saved.needs_input().then(|| read_scratch(&x_keep));
            let dx = match input_grad {
                true => Some(grads.get_or_alloc_mut(&x_ghost)?),
                false => None,
            };
            engine::conv_backward(
                &geom,
                &saved,
                x_data.as_deref().unwrap_or(&[]),
                &w_data,
                &gout,
                dx.map(|d| &mut d[..]),
                Some(&mut dw),
                db.as_deref_mut(),
            );
            put_grad!(grads, &w_ghost, dw);
            if let (Some(b), Some(db)) = (b_ghost.as_ref(), db) {
                put_grad!(grads, b, db);
            }
            put_grad!(grads, &out_ghost, gout);
            Ok(())
        });
    }
    out.put_tape(tape)
}
