use dfdx::optim::{Adam, Momentum, Optimizer, Sgd};
use dfdx::prelude::*;

use super::Dev;

/// The optimizer of a run. Weight penalties are not configured here: they live in
/// [`super::Regularization`], because dfdx's built-in weight decay applies to every tensor
/// (biases and BatchNorm included) and uses λ·w, not the 2λ·w of a λ‖w‖² penalty.
#[derive(Debug, Clone, PartialEq)]
pub enum OptimizerConfig {
    Sgd { lr: f64, momentum: f64, nesterov: bool },
    Adam { lr: f64, betas: [f64; 2], eps: f64 },
}

impl OptimizerConfig {
    pub fn lr(&self) -> f64 {
        match self {
            Self::Sgd { lr, .. } | Self::Adam { lr, .. } => *lr,
        }
    }

    pub(crate) fn build<M: TensorCollection<f32, Dev> + 'static>(
        &self,
        model: &M,
    ) -> Box<dyn Optimizer<M, Dev, f32>> {
        match *self {
            Self::Sgd { lr, momentum, nesterov } => {
                let momentum = match (momentum, nesterov) {
                    (m, _) if m == 0.0 => None,
                    (m, false) => Some(Momentum::Classic(m)),
                    (m, true) => Some(Momentum::Nesterov(m)),
                };
                Box::new(Sgd::new(model, SgdConfig { lr, momentum, weight_decay: None }))
            }
            Self::Adam { lr, betas, eps } => {
                Box::new(Adam::new(model, AdamConfig { lr, betas, eps, weight_decay: None }))
            }
        }
    }
}
