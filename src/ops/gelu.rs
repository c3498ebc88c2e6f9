//! PyTorch's default GELU, the exact x·Φ(x) = ½·x·(1 + erf(x/√2)), with its derivative
//! Φ(x) + x·φ(x). dfdx 0.13's `accurate_gelu` computes the same forward value but its backward
//! drops the 1/√2 of the chain rule through erf(x/√2) (its x·φ term is √2 too large), so the
//! gradient is wrong; this op records the right one. Computed in f64, like the golden data.

use dfdx::prelude::*;

use super::tensor_io::{alloc_output, put_grad, read, take_grad};

fn forward(x: f64) -> f64 {
    0.5 * x * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2))
}

fn derivative(x: f64) -> f64 {
    let cdf = 0.5 * (1.0 + libm::erf(x * std::f64::consts::FRAC_1_SQRT_2));
    let pdf = (-0.5 * x * x).exp() / (2.0 * std::f64::consts::PI).sqrt();
    cdf + x * pdf
}

pub fn gelu<S: Shape, T: Tape<f32, Cpu>>(x: Tensor<S, f32, Cpu, T>) -> Tensor<S, f32, Cpu, T> {
    let x = x.contiguous();
    let (x, mut tape) = x.split_tape();
    let input = read(&x);
    let mut out = alloc_output(x.device(), input.len());
    for (o, v) in out.iter_mut().zip(&input) {
        *o = forward(*v as f64) as f32;
    }
    let out = x.device().tensor_from_vec(out, *x.shape());
    if T::OWNS_TAPE {
        let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let gout = take_grad!(grads, &out_ghost);
            let dx = grads.get_or_alloc_mut(&x_ghost)?;
            for ((d, g), v) in dx.iter_mut().zip(&gout).zip(&input) {
                *d += (*g as f64 * derivative(*v as f64)) as f32;
            }
            put_grad!(grads, &out_ghost, gout);
            Ok(())
        });
    }
    out.put_tape(tape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_derivative() {
        // torch.nn.functional.gelu(torch.tensor([-1., 0.5, 2.], dtype=torch.float64))
        for (x, y) in [
            (-1.0, -0.15865525393145707),
            (0.5, 0.34573123063700656),
            (2.0, 1.9544997361036416),
        ] {
            assert!((forward(x) - y).abs() < 1e-12, "{x}");
        }
        for x in [-2.0, -0.3, 0.0, 0.7, 3.0] {
            let fd = (forward(x + 1e-6) - forward(x - 1e-6)) / 2e-6;
            assert!(
                (derivative(x) - fd).abs() < 1e-8,
                "{x}: {} vs {fd}",
                derivative(x)
            );
        }
    }
}
