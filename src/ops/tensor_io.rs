//! Moving data between dfdx CPU tensors and plain vectors. dfdx 0.13 exposes a CPU tensor's
//! buffer only through copies (`copy_into`) and a gradient only through
//! `Gradients::get_or_alloc_mut`, so the ops copy their inputs once and build outputs with
//! `tensor_from_vec` (which takes the vector without copying).

use dfdx::shapes::{HasShape, Shape};
use dfdx::tensor::{Cpu, Storage, Tensor};

use runner_kernels::scratch::Scratch;

/// The logical contents of a contiguous tensor. Callers make tensors contiguous first
/// (`try_contiguous` is free when they already are) because `copy_into` copies the physical
/// buffer, which differs from the logical one for broadcast or permuted views.
pub(crate) fn read<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> Vec<f32> {
    let mut v = vec![0.0; t.shape().num_elements()];
    t.copy_into(&mut v);
    v
}

/// A zeroed buffer for an op's output, taken from dfdx's tensor cache when the program enabled
/// it (`dev.enable_cache()`). Outputs end up in that cache when their tensors drop; allocating
/// them elsewhere would let the cache grow by every output of every step.
///
/// The cache only hands out its buffers wrapped in its own vector type, which gives them back
/// on drop; the buffer is moved out first, so the wrapper returns an empty vector: no memory,
/// but dfdx files it as a zero-length entry (8 bytes of bookkeeping per call while the cache
/// is enabled; `empty_cache` clears them).
pub(crate) fn alloc_output(dev: &Cpu, len: usize) -> Vec<f32> {
    let mut cached = Storage::<f32>::try_alloc_len(dev, len).expect("allocation failed");
    std::mem::take::<Vec<f32>>(&mut cached)
}

/// Like [`read`] into a pooled scratch buffer, for copies that only live during one call
/// (large fresh allocations cost page faults on every call).
pub(crate) fn read_scratch<S: Shape, T>(t: &Tensor<S, f32, Cpu, T>) -> Scratch {
    let mut v = Scratch::new(t.shape().num_elements());
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
