//! SGD (momentum, Nesterov) and Adam with PyTorch's update rules, applied tensor by tensor.
//!
//! dfdx has both, but keeps their state (velocities, moments) private, so a run could not be
//! checkpointed and resumed to the same numbers. Here the state is plain vectors, one per
//! trainable tensor in the model's visiting order, saved with the checkpoint.
//! Weight penalties are not configured here: they live in [`super::Penalty`], because
//! dfdx's weight decay applies to every tensor (biases and BatchNorm included) and uses λ·w,
//! not the 2λ·w of a λ‖w‖² penalty.

use std::convert::Infallible;

use dfdx::nn::tensor_collection::TensorCollection;
use dfdx::prelude::*;

use super::{Dev, Frozen};
use crate::nn::tensors::{self, TensorMut};

#[derive(Debug, Clone, PartialEq)]
pub enum OptimizerConfig {
    Sgd {
        lr: f64,
        momentum: f64,
        nesterov: bool,
    },
    Adam {
        lr: f64,
        betas: [f64; 2],
        eps: f64,
    },
}

impl OptimizerConfig {
    pub fn lr(&self) -> f64 {
        match self {
            Self::Sgd { lr, .. } | Self::Adam { lr, .. } => *lr,
        }
    }
}

/// An optimizer and its state.
#[derive(Debug, Clone, PartialEq)]
pub struct OptimizerState {
    pub cfg: OptimizerConfig,
    /// The rate of the current epoch (the schedule's; `cfg`'s lr is the base rate).
    pub lr: f64,
    /// Steps taken (Adam's bias correction needs it).
    pub step: u64,
    /// Per trainable tensor: SGD's velocity, or Adam's first moment.
    pub first: Vec<Vec<f32>>,
    /// Per trainable tensor: Adam's second moment (empty for SGD).
    pub second: Vec<Vec<f32>>,
}

impl OptimizerState {
    pub fn new(cfg: OptimizerConfig) -> Self {
        Self {
            lr: cfg.lr(),
            cfg,
            step: 0,
            first: Vec::new(),
            second: Vec::new(),
        }
    }

    /// One step on every trainable tensor of `model` with the gradients in `grads`.
    pub fn update<M: TensorCollection<f32, Dev>>(
        &mut self,
        model: &mut M,
        grads: &mut Gradients<f32, Dev>,
    ) {
        self.update_except(model, grads, &Frozen::none())
    }

    /// One step on every trainable tensor of `model` outside the `frozen` blocks; frozen
    /// tensors are left as they are and hold no optimizer state.
    pub fn update_except<M: TensorCollection<f32, Dev>>(
        &mut self,
        model: &mut M,
        grads: &mut Gradients<f32, Dev>,
        frozen: &Frozen,
    ) {
        self.step += 1;
        let mut index = 0;
        let _ = tensors::for_each_mut(model, |t| -> Result<(), Infallible> {
            if t.trainable() && !frozen.holds(t.name()) {
                self.step_tensor(index, t, grads);
                index += 1;
            }
            Ok(())
        });
    }

    /// [`Self::update_except`] with a weight penalty folded into each tensor's step: the
    /// results equal `penalty.add_gradients_except`, `penalty.decay_except` and then
    /// `update_except`, with one read of every weight instead of three and no copy back.
    /// Only valid when nothing between those passes needs the whole model's penalised
    /// gradients (gradient clipping does).
    pub(crate) fn update_with_penalty<M: TensorCollection<f32, Dev>>(
        &mut self,
        model: &mut M,
        grads: &mut Gradients<f32, Dev>,
        frozen: &Frozen,
        penalty: &super::Penalty,
    ) {
        self.step += 1;
        let mut index = 0;
        let lr = self.lr;
        let _ = tensors::for_each_mut(model, |t| -> Result<(), Infallible> {
            if t.trainable() && !frozen.holds(t.name()) {
                let mut w = t.values();
                let g = t.grad_mut(grads);
                if penalty.applies_to(t.name(), t.dims()) {
                    penalty.fold_into_step(&mut w, g, lr);
                }
                self.step_values(index, &mut w, g);
                t.replace_values(w);
                index += 1;
            }
            Ok(())
        });
    }

    /// Updates the `i`-th trainable tensor (its optimizer state is kept under that index).
    fn step_tensor(&mut self, i: usize, t: &mut dyn TensorMut, grads: &mut Gradients<f32, Dev>) {
        let mut w = t.values();
        self.step_values(i, &mut w, t.grad_mut(grads));
        t.replace_values(w);
    }

    /// One step of the `i`-th trainable tensor's values `w` with gradient `g`.
    fn step_values(&mut self, i: usize, w: &mut [f32], g: &[f32]) {
        let opt = self;
        let lr = opt.lr;
        if opt.first.len() <= i {
            opt.first.resize(i + 1, Vec::new());
        }
        if opt.first[i].is_empty() {
            opt.first[i] = vec![0.0; w.len()];
        }
        match opt.cfg {
            OptimizerConfig::Sgd {
                momentum, nesterov, ..
            } => {
                let v = &mut opt.first[i];
                let first = opt.step == 1;
                let (lr, mu) = (lr as f32, momentum as f32);
                runner_kernels::optim::sgd_step(w, g, v, lr, mu, nesterov, first);
            }
            OptimizerConfig::Adam { betas, eps, .. } => {
                if opt.second.len() <= i {
                    opt.second.resize(i + 1, Vec::new());
                }
                if opt.second[i].is_empty() {
                    opt.second[i] = vec![0.0; w.len()];
                }
                let (b1, b2) = (betas[0] as f32, betas[1] as f32);
                let c1 = 1.0 - betas[0].powi(opt.step as i32);
                let c2 = 1.0 - betas[1].powi(opt.step as i32);
                let step = (lr / c1) as f32;
                let c2_sqrt = c2.sqrt() as f32;
                let (m, v) = (&mut opt.first[i], &mut opt.second[i]);
                let adam = runner_kernels::optim::Adam {
                    b1,
                    b2,
                    step,
                    c2_sqrt,
                    eps: eps as f32,
                };
                runner_kernels::optim::adam_step(w, g, m, v, &adam);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::LinearHead;

    /// Three steps on loss = ½(w·x + b)² from w = [1, 2], b = 0, x = [1, 0.5]; returns w then b.
    fn three_steps(cfg: OptimizerConfig) -> Vec<f32> {
        let dev = Dev::seed_from_u64(0);
        let mut l = LinearHead::new(&dev, 2, 1);
        l.weight.copy_from(&[1.0, 2.0]);
        l.bias.copy_from(&[0.0]);
        let mut opt = OptimizerState::new(cfg);
        for _ in 0..3 {
            let x = dev.tensor_from_vec(vec![1.0, 0.5], (1usize, 2usize));
            let loss = l.forward(x.traced(l.alloc_grads())).square().sum() * 0.5;
            let mut grads = loss.backward();
            opt.update(&mut l, &mut grads);
        }
        [l.weight.as_vec(), l.bias.as_vec()].concat()
    }

    fn assert_close(a: &[f32], b: &[f32]) {
        assert!(
            a.iter().zip(b).all(|(a, b)| (a - b).abs() < 1e-5),
            "{a:?} vs {b:?}"
        );
    }

    /// Expected values: torch.optim.SGD / Adam on the same problem
    /// (tests/fixtures/reference/optim_reference.py prints them).
    #[test]
    fn matches_torch_optim() {
        assert_close(
            &three_steps(OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                nesterov: false,
            }),
            &SGD_MOMENTUM,
        );
        assert_close(
            &three_steps(OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.9,
                nesterov: true,
            }),
            &SGD_NESTEROV,
        );
        assert_close(
            &three_steps(OptimizerConfig::Sgd {
                lr: 0.1,
                momentum: 0.0,
                nesterov: false,
            }),
            &SGD_PLAIN,
        );
        assert_close(
            &three_steps(OptimizerConfig::Adam {
                lr: 0.1,
                betas: [0.9, 0.999],
                eps: 1e-8,
            }),
            &ADAM,
        );
    }

    // printed by torch 2.15.0
    const SGD_MOMENTUM: [f32; 3] = [0.083875, 1.5419375, -0.916125];
    const SGD_NESTEROV: [f32; 3] = [-0.0533873, 1.4733063, -1.0533873];
    const SGD_PLAIN: [f32; 3] = [0.524875, 1.7624375, -0.475125];
    const ADAM: [f32; 3] = [0.7022201, 1.70222, -0.2977799];
}
