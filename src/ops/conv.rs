//! 2D convolution on dfdx tensors: the tape glue around the slice kernels of
//! [`runner_kernels::conv`] (which has the layouts and algorithms).

use dfdx::prelude::*;

pub use runner_kernels::conv::*;

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
    conv2d_forward_into(&geom, &x_data, &w_data, b_data.as_deref(), &mut out);
    drop(x_data);
    let out = dev.tensor_from_vec(out, (n, Const::<O>, geom.oh, geom.ow));
    if T::OWNS_TAPE {
        let (x_ghost, w_ghost, out_ghost) = (x.ghost(), weight.ghost(), out.ghost());
        let b_ghost = bias.map(|b| b.ghost());
        // Keep the input tensor (a reference-counted handle, usually alive for other ops anyway)
        // rather than a copy of its data; the backward pass copies it out again.
        let x_keep = x;
        tape.add_backward_op(move |grads| {
            let gout = take_grad!(grads, &out_ghost);
            let mut dw = take_grad!(grads, &w_ghost);
            let mut db = match &b_ghost {
                Some(b) => Some(take_grad!(grads, b)),
                None => None,
            };
            let x_data = read_scratch(&x_keep);
            let dx = grads.get_or_alloc_mut(&x_ghost)?;
            conv2d_backward(
                &geom,
                &x_data,
                &w_data,
                &gout,
                Some(dx),
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
