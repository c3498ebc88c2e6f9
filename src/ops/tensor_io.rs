//! Moving data between dfdx CPU tensors and plain vectors. dfdx 0.13 exposes a CPU tensor's
//! buffer only through copies (`copy_into`) and a gradient only through
//! `Gradients::get_or_alloc_mut`, so the ops copy their inputs once and build outputs with
//! `tensor_from_vec` (which takes the vector without copying).

use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Cpu, Tensor};

/// The logical contents of a contiguous tensor. Callers make tensors contiguous first
/// (`try_contiguous` is free when they already are) because `copy_into` copies the physical
/// buffer, which differs from the logical one for broadcast or permuted views.
pub(crate) fn read<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> Vec<f32> {
    let mut v = vec![0.0; t.shape().num_elements()];
    t.copy_into(&mut v);
    v
}

/// Takes the gradient buffer of `$t` out of `$grads` (leaving an empty vector) so that it can be
/// read while other gradients are written; put it back with [`put_grad!`].
macro_rules! take_grad {
    ($grads:expr, $t:expr) => {{
        let g = $grads.get_or_alloc_mut($t)?;
        std::mem::take::<Vec<f32>>(&mut *g)
    }};
}

/// Puts a buffer taken with [`take_grad!`] back, so a caller inspecting gradients of
/// intermediate tensors (`Gradients::leaky`) still finds them.
macro_rules! put_grad {
    ($grads:expr, $t:expr, $v:expr) => {{
        let g = $grads.get_or_alloc_mut($t)?;
        let slot: &mut Vec<f32> = &mut *g;
        *slot = $v;
    }};
}

pub(crate) use put_grad;
pub(crate) use take_grad;
