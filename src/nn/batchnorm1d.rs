//! BatchNorm1d over `(batch, features)` rows with a run-time width, as PyTorch defines it:
//! train mode normalises with the batch mean and biased variance and moves the running
//! statistics by `running = (1 − momentum)·running + momentum·batch` (the running variance takes
//! the unbiased batch variance); eval mode normalises with the running statistics.
//!
//! Built from dfdx tensor ops (the widths are small next to the backbone, so no fused kernel is
//! needed), which gives the backward pass for free.

use dfdx::prelude::*;

/// PyTorch's defaults for `nn.BatchNorm1d`.
pub(crate) const EPS: f64 = 1e-5;
pub(crate) const MOMENTUM: f64 = 0.1;

type Rows<T> = Tensor<(usize, usize), f32, Cpu, T>;
type Vector<T> = Tensor<(usize,), f32, Cpu, T>;

/// Train mode: batch statistics; `running_mean` / `running_var` (plain values) are updated.
/// A batch of one has no unbiased variance; like PyTorch refuses it we keep the running
/// variance then (and normalise to β).
pub fn batchnorm1d_train<T: Tape<f32, Cpu>>(
    x: Rows<T>,
    gamma: Vector<T>,
    beta: Vector<T>,
    running_mean: &mut [f32],
    running_var: &mut [f32],
) -> Rows<T> {
    let shape = *x.shape();
    let n = shape.0 as f64;
    let mean = x.retaped::<T>().mean::<(usize,), Axis<0>>();
    let batch_mean = mean.as_vec();
    // the mean keeps its tape: the gradient flows through it to x
    let centered = x - mean.broadcast_like::<_, Axis<0>>(&shape);
    let var = centered.retaped::<T>().square().mean::<(usize,), Axis<0>>();
    for (r, m) in running_mean.iter_mut().zip(batch_mean) {
        *r = ((1.0 - MOMENTUM) * *r as f64 + MOMENTUM * m as f64) as f32;
    }
    if shape.0 > 1 {
        for (r, v) in running_var.iter_mut().zip(var.as_vec()) {
            let unbiased = v as f64 * n / (n - 1.0);
            *r = ((1.0 - MOMENTUM) * *r as f64 + MOMENTUM * unbiased) as f32;
        }
    }
    let std = (var + EPS as f32).sqrt();
    let scale = (gamma / std).broadcast_like::<_, Axis<0>>(&shape);
    centered * scale + beta.broadcast_like::<_, Axis<0>>(&shape)
}

/// Eval mode: `(x − running_mean) / √(running_var + ε) · γ + β`.
pub fn batchnorm1d_eval<T: Tape<f32, Cpu>>(
    x: Rows<T>,
    gamma: Vector<T>,
    beta: Vector<T>,
    running_mean: &[f32],
    running_var: &[f32],
) -> Rows<T> {
    let shape = *x.shape();
    let dev = x.device().clone();
    let width = shape.1;
    let mean = dev.tensor_from_vec(running_mean.to_vec(), (width,));
    let inv_std: Vec<f32> = running_var
        .iter()
        .map(|v| (1.0 / (*v as f64 + EPS).sqrt()) as f32)
        .collect();
    let inv_std = dev.tensor_from_vec(inv_std, (width,));
    let scale = (gamma * inv_std).broadcast_like::<_, Axis<0>>(&shape);
    (x - mean.broadcast_like::<_, Axis<0>>(&shape)) * scale
        + beta.broadcast_like::<_, Axis<0>>(&shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn train_mode_normalises_and_moves_the_running_statistics() {
        let dev = Cpu::default();
        let x = dev.tensor_from_vec(vec![1.0, 10.0, 3.0, 20.0, 5.0, 60.0], (3usize, 2usize));
        let g = dev.tensor_from_vec(vec![1.0, 2.0], (2usize,));
        let b = dev.tensor_from_vec(vec![0.0, 0.5], (2usize,));
        let (mut rm, mut rv) = (vec![0.0; 2], vec![1.0; 2]);
        let y = batchnorm1d_train(x, g, b, &mut rm, &mut rv).as_vec();
        // column 0: mean 3, biased var 8/3, unbiased 4
        let s = (8.0f64 / 3.0 + EPS).sqrt();
        assert!((y[0] as f64 - (-2.0 / s)).abs() < 1e-5, "{y:?}");
        assert!((y[2] as f64).abs() < 1e-6);
        assert!((rm[0] - 0.3).abs() < 1e-6 && (rv[0] - (0.9 + 0.4)).abs() < 1e-6);
        // column 1 has γ = 2, β = 0.5: its outputs average 0.5
        assert!(((y[1] + y[3] + y[5]) / 3.0 - 0.5).abs() < 1e-5);
    }
}
