//! Weight penalties applied by hand, so that λ means exactly what the spec says.
//!
//! * `L2`: the loss gets λ‖w‖², so the gradient gets 2λw and one plain SGD step is
//!   w ← (1 − 2αλ)·w − α·∂L/∂w.
//! * `L1`: the loss gets λ‖w‖₁, the gradient λ·sign(w).
//! * `Decoupled`: w ← (1 − αλ)·w before the optimizer step (AdamW's decay).
//!
//! "Weights" are the conv and linear weights (tensors named `weight` of rank ≥ 2); biases,
//! BatchNorm scales and running statistics are left alone unless `apply_to_all`. Tensors in
//! frozen blocks ([`Frozen`]) are never penalised, decayed or counted in the norm.

use std::convert::Infallible;

use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::*;

use super::{Dev, Frozen};
use crate::nn::tensors;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegularizationKind {
    None,
    L2,
    L1,
    Decoupled,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Penalty {
    pub kind: RegularizationKind,
    pub lambda: f64,
    /// Every trainable tensor instead of only conv/linear weights.
    pub apply_to_all: bool,
}

impl Penalty {
    /// Adds the penalty's gradient to `grads` (L2 and L1; nothing for the others).
    pub fn add_gradients<M: TensorCollection<f32, Dev>>(
        &self,
        model: &mut M,
        grads: &mut Gradients<f32, Dev>,
    ) {
        self.add_gradients_except(model, grads, &Frozen::none())
    }

    /// [`Self::add_gradients`] for the tensors outside the `frozen` blocks.
    pub fn add_gradients_except<M: TensorCollection<f32, Dev>>(
        &self,
        model: &mut M,
        grads: &mut Gradients<f32, Dev>,
        frozen: &Frozen,
    ) {
        let action = match self.kind {
            RegularizationKind::L2 => Action::L2Grad(grads, 2.0 * self.lambda as f32),
            RegularizationKind::L1 => Action::L1Grad(grads, self.lambda as f32),
            _ => return,
        };
        walk(model, self.apply_to_all, frozen, action);
    }

    /// Shrinks the weights by (1 − lr·λ) for decoupled weight decay; nothing for the others.
    pub fn decay<M: TensorCollection<f32, Dev>>(&self, model: &mut M, lr: f64) {
        self.decay_except(model, lr, &Frozen::none())
    }

    /// [`Self::decay`] for the tensors outside the `frozen` blocks.
    pub fn decay_except<M: TensorCollection<f32, Dev>>(
        &self,
        model: &mut M,
        lr: f64,
        frozen: &Frozen,
    ) {
        if self.kind == RegularizationKind::Decoupled && self.lambda > 0.0 {
            walk(
                model,
                self.apply_to_all,
                frozen,
                Action::Scale((1.0 - lr * self.lambda) as f32),
            );
        }
    }
}

impl Penalty {
    /// Whether the penalty touches the trainable tensor `name` (outside frozen blocks): conv
    /// and linear weights, or every tensor with `apply_to_all`.
    pub(crate) fn applies_to(&self, name: &str, dims: &[usize]) -> bool {
        self.kind != RegularizationKind::None && penalised(self.apply_to_all, name, dims)
    }

    /// The penalty's part of one tensor's optimizer step, as the separate passes compute it
    /// ([`Self::add_gradients`], [`Self::decay`]): the L2/L1 gradient into `g`, the decoupled
    /// decay of `w`. The optimizer applies it while it holds the tensor's values, which saves
    /// the separate passes their copies of every weight.
    pub(crate) fn fold_into_step(&self, w: &mut [f32], g: &mut [f32], lr: f64) {
        match self.kind {
            RegularizationKind::L2 => {
                runner_kernels::optim::add_scaled(g, 2.0 * self.lambda as f32, w)
            }
            RegularizationKind::L1 => {
                let k = self.lambda as f32;
                for (g, w) in g.iter_mut().zip(w.iter()) {
                    *g += k * sign(*w);
                }
            }
            RegularizationKind::Decoupled if self.lambda > 0.0 => {
                let k = (1.0 - lr * self.lambda) as f32;
                w.iter_mut().for_each(|w| *w *= k);
            }
            RegularizationKind::Decoupled | RegularizationKind::None => {}
        }
    }
}

/// Whether a penalty applies to tensor `name`: a conv or linear weight (named `weight`, rank
/// ≥ 2), or any tensor when `all`.
fn penalised(all: bool, name: &str, dims: &[usize]) -> bool {
    let is_weight = dims.len() >= 2 && (name == "weight" || name.ends_with(".weight"));
    all || is_weight
}

/// ‖w‖₂ over the tensors a penalty applies to.
pub fn penalised_norm<M: TensorCollection<f32, Dev>>(model: &mut M, apply_to_all: bool) -> f64 {
    penalised_norm_except(model, apply_to_all, &Frozen::none())
}

/// ‖w‖₂ over the tensors a penalty applies to, outside the `frozen` blocks.
pub fn penalised_norm_except<M: TensorCollection<f32, Dev>>(
    model: &mut M,
    apply_to_all: bool,
    frozen: &Frozen,
) -> f64 {
    let mut sum = 0.0f64;
    walk(model, apply_to_all, frozen, Action::SquaredNorm(&mut sum));
    sum.sqrt()
}

enum Action<'a> {
    L2Grad(&'a mut Gradients<f32, Dev>, f32),
    L1Grad(&'a mut Gradients<f32, Dev>, f32),
    Scale(f32),
    SquaredNorm(&'a mut f64),
}

/// Applies `action` to every penalised tensor: trainable, outside `frozen`, and a conv or
/// linear weight unless `all`.
fn walk<M: TensorCollection<f32, Dev>>(
    model: &mut M,
    all: bool,
    frozen: &Frozen,
    mut action: Action<'_>,
) {
    let _ = tensors::for_each_mut(model, |t| -> Result<(), Infallible> {
        let name = t.name();
        if !t.trainable() || !penalised(all, name, t.dims()) || frozen.holds(name) {
            return Ok(());
        }
        let w = t.values();
        match &mut action {
            Action::L2Grad(grads, k) => {
                runner_kernels::optim::add_scaled(t.grad_mut(grads), *k, &w)
            }
            Action::L1Grad(grads, k) => {
                for (g, w) in t.grad_mut(grads).iter_mut().zip(&w) {
                    *g += *k * sign(*w);
                }
            }
            Action::Scale(k) => {
                let scaled: Vec<f32> = w.iter().map(|w| w * *k).collect();
                t.set_values(&scaled);
            }
            Action::SquaredNorm(sum) => {
                **sum += w.iter().map(|&w| (w as f64) * (w as f64)).sum::<f64>()
            }
        }
        Ok(())
    });
}

fn sign(w: f32) -> f32 {
    if w > 0.0 {
        1.0
    } else if w < 0.0 {
        -1.0
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::pixels::LinearModel;
    use crate::train::{OptimizerConfig, OptimizerState};

    /// One plain SGD step under an L2 penalty is exactly w ← (1 − 2αλ)·w − α·∂L/∂w.
    #[test]
    fn l2_sgd_step_matches_the_closed_form() {
        let dev = Dev::seed_from_u64(3);
        let mut model = LinearModel::new(&dev, 4, 3);
        let (alpha, lambda) = (0.1, 0.05);
        let w0 = model.fc.weight.as_vec();
        let b0 = model.fc.bias.as_vec();
        let x = dev.tensor_from_vec(
            vec![0.5, -1.0, 2.0, 0.25, 1.5, 0.0, -0.5, 1.0],
            (2usize, 4usize),
        );
        let target = dev.tensor_from_vec(vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0], (2usize, 3usize));

        // the data gradient alone
        let g = model.alloc_grads();
        let loss =
            cross_entropy_with_logits_loss(model.fc.forward(x.clone().traced(g)), target.clone());
        let data_grads = loss.backward();
        let dw = data_grads.get(&model.fc.weight).as_vec();
        let db = data_grads.get(&model.fc.bias).as_vec();

        let reg = Penalty {
            kind: RegularizationKind::L2,
            lambda,
            apply_to_all: false,
        };
        let mut opt = OptimizerState::new(OptimizerConfig::Sgd {
            lr: alpha,
            momentum: 0.0,
            nesterov: false,
        });
        let g = model.alloc_grads();
        let loss = cross_entropy_with_logits_loss(model.fc.forward(x.traced(g)), target);
        let mut grads = loss.backward();
        reg.add_gradients(&mut model, &mut grads);
        opt.update(&mut model, &mut grads);

        let k = 1.0 - 2.0 * alpha * lambda;
        for ((w1, w0), dw) in model.fc.weight.as_vec().iter().zip(&w0).zip(&dw) {
            let expect = k * *w0 as f64 - alpha * *dw as f64;
            assert!((*w1 as f64 - expect).abs() < 1e-6, "{w1} vs {expect}");
        }
        // the bias is not a weight: a plain step
        for ((b1, b0), db) in model.fc.bias.as_vec().iter().zip(&b0).zip(&db) {
            assert!((*b1 as f64 - (*b0 as f64 - alpha * *db as f64)).abs() < 1e-6);
        }
    }

    /// The optimizer's fused pass gives bit for bit what the separate penalty passes and the
    /// plain step give, for every penalty kind and both optimizers.
    #[test]
    fn penalty_folded_into_the_step_equals_the_separate_passes() {
        let kinds = [
            RegularizationKind::L2,
            RegularizationKind::L1,
            RegularizationKind::Decoupled,
            RegularizationKind::None,
        ];
        let opts = [
            OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
            },
            OptimizerConfig::Adam {
                lr: 0.01,
                betas: [0.9, 0.999],
                eps: 1e-8,
            },
        ];
        for kind in kinds {
            for cfg in &opts {
                for all in [false, true] {
                    let reg = Penalty {
                        kind,
                        lambda: 0.05,
                        apply_to_all: all,
                    };
                    let run = |fused: bool| {
                        let dev = Dev::seed_from_u64(7);
                        let mut model = LinearModel::new(&dev, 4, 3);
                        let mut opt = OptimizerState::new(cfg.clone());
                        for step in 0..3 {
                            let x = dev.tensor_from_vec(
                                vec![0.5, -1.0, 2.0, 0.25, 1.5, 0.0, -0.5, step as f32],
                                (2usize, 4usize),
                            );
                            let target = dev.tensor_from_vec(
                                vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0],
                                (2usize, 3usize),
                            );
                            let g = model.alloc_grads();
                            let logits = model.fc.forward(x.traced(g));
                            let mut grads =
                                cross_entropy_with_logits_loss(logits, target).backward();
                            let none = Frozen::none();
                            if fused {
                                opt.update_with_penalty(&mut model, &mut grads, &none, &reg);
                            } else {
                                reg.add_gradients(&mut model, &mut grads);
                                reg.decay(&mut model, opt.lr);
                                opt.update(&mut model, &mut grads);
                            }
                        }
                        [model.fc.weight.as_vec(), model.fc.bias.as_vec()].concat()
                    };
                    assert_eq!(run(true), run(false), "{kind:?} {cfg:?} all={all}");
                }
            }
        }
    }

    #[test]
    fn decoupled_decay_and_norm() {
        let dev = Dev::seed_from_u64(1);
        let mut model = LinearModel::new(&dev, 5, 2);
        model.fc.bias.copy_from(&[0.5, -0.25]);
        let n0 = penalised_norm(&mut model, false);
        let expect = model
            .fc
            .weight
            .as_vec()
            .iter()
            .map(|&w| (w as f64).powi(2))
            .sum::<f64>()
            .sqrt();
        assert!((n0 - expect).abs() < 1e-9);
        let with_bias = penalised_norm(&mut model, true);
        assert!(with_bias > n0);
        let reg = Penalty {
            kind: RegularizationKind::Decoupled,
            lambda: 0.5,
            apply_to_all: false,
        };
        reg.decay(&mut model, 0.2);
        assert!((penalised_norm(&mut model, false) - 0.9 * n0).abs() < 1e-6);
    }
}
