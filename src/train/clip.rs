//! Gradient clipping by the global L2 norm, as `torch.nn.utils.clip_grad_norm_`: with
//! total = ‖(every trainable gradient)‖₂, the gradients are multiplied by
//! min(1, max_norm / (total + 1e-6)). Frozen tensors are not counted and not touched.

use std::convert::Infallible;

use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::*;

use super::{Dev, Frozen};
use crate::nn::tensors;

/// Clips the gradients in `grads` of `model`'s trainable tensors to a global norm of
/// `max_norm`; returns the norm before clipping.
pub fn clip_grad_norm<M: TensorCollection<f32, Dev>>(
    model: &mut M,
    grads: &mut Gradients<f32, Dev>,
    frozen: &Frozen,
    max_norm: f64,
) -> f64 {
    // the same tensors the optimizer updates
    let mut each = |f: &mut dyn FnMut(&mut [f32])| {
        let _ = tensors::for_each_mut(model, |t| -> Result<(), Infallible> {
            if t.trainable() && !frozen.holds(t.name()) {
                f(t.grad_mut(grads));
            }
            Ok(())
        });
    };
    let mut sum = 0.0f64;
    each(&mut |g| sum += g.iter().map(|&v| v as f64 * v as f64).sum::<f64>());
    let total = sum.sqrt();
    let coef = max_norm / (total + 1e-6);
    if coef < 1.0 {
        each(&mut |g| g.iter_mut().for_each(|v| *v *= coef as f32));
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::LinearHead;

    /// torch's case: gradients [3, 4] and [0, 12] (global norm 13), here the weight and bias of
    /// a 2→2 linear layer whose other weight gradients are zero.
    #[test]
    fn matches_torch_clip_grad_norm() {
        let dev = Dev::seed_from_u64(0);
        for (max_norm, expected) in [(5.0, CLIP_5), (20.0, CLIP_20)] {
            let mut l = LinearHead::new(&dev, 2, 2);
            let mut grads = l.alloc_grads();
            // weight [[3, 4], [0, 0]], bias [0, 12]: the global norm is 13 like torch's example
            grads
                .get_or_alloc_mut(&l.weight)
                .unwrap()
                .copy_from_slice(&[3.0, 4.0, 0.0, 0.0]);
            grads
                .get_or_alloc_mut(&l.bias)
                .unwrap()
                .copy_from_slice(&[0.0, 12.0]);
            let total = clip_grad_norm(&mut l, &mut grads, &Frozen::none(), max_norm);
            assert!((total - 13.0).abs() < 1e-9);
            let w = grads.get(&l.weight).as_vec();
            let b = grads.get(&l.bias).as_vec();
            let ours = [w[0], w[1], b[0], b[1]];
            for (a, e) in ours.iter().zip(expected) {
                assert!((*a as f64 - e).abs() < 1e-6, "{ours:?} vs {expected:?}");
            }
            assert_eq!((w[2], w[3]), (0.0, 0.0));
        }
    }

    // torch.nn.utils.clip_grad_norm_ of grads [3, 4] and [0, 12] (tests/golden/torch_reference.py)
    const CLIP_5: [f64; 4] = [
        1.1538460650887643,
        1.5384614201183524,
        0.0,
        4.615384260355057,
    ];
    const CLIP_20: [f64; 4] = [3.0, 4.0, 0.0, 12.0];
}
