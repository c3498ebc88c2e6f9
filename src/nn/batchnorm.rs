//! `BatchNorm2D` on the fused kernels of [`crate::ops::batchnorm`]. Same fields, tensor names
//! (`scale`, `bias`, `running_mean`, `running_var`, scalars `epsilon`, `momentum`) and mode rule
//! as dfdx's: `forward` without a tape = eval (running statistics), `forward_mut` with a tape =
//! train (batch statistics, running statistics updated). [`BatchNorm2D::forward_frozen`] adds
//! what dfdx lacks: running statistics under a tape, for frozen layers inside a trained network.

use dfdx::nn::tensor_collection::{ModuleVisitor, ScalarOptions, TensorCollection, TensorOptions};
use dfdx::prelude::*;

use crate::ops::batchnorm::{batchnorm2d_eval_act, batchnorm2d_train_act, Act};
use crate::ops::{batchnorm2d_eval, batchnorm2d_train};

#[derive(Debug, Clone)]
pub struct BatchNorm2D<const C: usize, E: Dtype = f32, D: Storage<E> = Cpu> {
    /// γ (PyTorch's `weight`).
    pub scale: Tensor<Rank1<C>, E, D>,
    /// β.
    pub bias: Tensor<Rank1<C>, E, D>,
    pub running_mean: Tensor<Rank1<C>, E, D>,
    pub running_var: Tensor<Rank1<C>, E, D>,
    pub epsilon: f64,
    pub momentum: f64,
}

pub mod builder {
    /// Builder for [`super::BatchNorm2D`] with `dev.build_module::<BatchNorm2D<C>, f32>()`.
    #[derive(Debug, Clone, Copy)]
    pub struct BatchNorm2D<const C: usize>;
}

impl<const C: usize, E: Dtype, D: Device<E>> BuildOnDevice<D, E> for builder::BatchNorm2D<C> {
    type Built = BatchNorm2D<C, E, D>;
}

impl<const C: usize, E: Dtype, D: Device<E>> TensorCollection<E, D> for BatchNorm2D<C, E, D> {
    type To<E2: Dtype, D2: Device<E2>> = BatchNorm2D<C, E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        v: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        v.visit_fields(
            (
                Self::tensor(
                    "scale",
                    |s| &s.scale,
                    |s| &mut s.scale,
                    TensorOptions::reset_to_ones(),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    TensorOptions::reset_to_zeros(),
                ),
                Self::tensor(
                    "running_mean",
                    |s| &s.running_mean,
                    |s| &mut s.running_mean,
                    TensorOptions::detached(|t| t.try_fill_with_zeros()),
                ),
                Self::tensor(
                    "running_var",
                    |s| &s.running_var,
                    |s| &mut s.running_var,
                    TensorOptions::detached(|t| t.try_fill_with_ones()),
                ),
                Self::scalar(
                    "epsilon",
                    |s| &s.epsilon,
                    |s| &mut s.epsilon,
                    ScalarOptions::from_default(1e-5),
                ),
                Self::scalar(
                    "momentum",
                    |s| &s.momentum,
                    |s| &mut s.momentum,
                    ScalarOptions::from_default(0.1),
                ),
            ),
            |(scale, bias, running_mean, running_var, epsilon, momentum)| BatchNorm2D {
                scale,
                bias,
                running_mean,
                running_var,
                epsilon,
                momentum,
            },
        )
    }
}

type Img<const C: usize, T> = Tensor<(usize, Const<C>, usize, usize), f32, Cpu, T>;

impl<const C: usize> BatchNorm2D<C, f32, Cpu> {
    /// Running statistics, differentiable in x, γ and β when `x` has a tape.
    pub(crate) fn forward_frozen<T: Tape<f32, Cpu>>(&self, x: Img<C, T>) -> Img<C, T> {
        batchnorm2d_eval(
            x,
            &self.scale,
            &self.bias,
            &self.running_mean,
            &self.running_var,
            self.epsilon,
        )
    }
    /// `act(forward(x) + residual)` in eval mode (running statistics), fused into one pass.
    pub(crate) fn forward_act<T: Tape<f32, Cpu>>(
        &self,
        x: Img<C, T>,
        residual: Option<&Img<C, NoneTape>>,
        act: Act,
    ) -> Img<C, T> {
        let (rm, rv) = (&self.running_mean, &self.running_var);
        batchnorm2d_eval_act(
            x,
            &self.scale,
            &self.bias,
            rm,
            rv,
            self.epsilon,
            residual,
            act,
        )
    }
    /// `act(forward_mut(x) + residual)` in train mode (batch statistics, running statistics
    /// updated), fused into one pass.
    pub(crate) fn forward_mut_act<T: Tape<f32, Cpu>>(
        &mut self,
        x: Img<C, T>,
        residual: Option<&Img<C, NoneTape>>,
        act: Act,
    ) -> Img<C, T> {
        let (eps, momentum) = (self.epsilon, self.momentum);
        let (rm, rv) = (&mut self.running_mean, &mut self.running_var);
        batchnorm2d_train_act(
            x,
            &self.scale,
            &self.bias,
            rm,
            rv,
            eps,
            momentum,
            residual,
            act,
        )
    }
    /// Batch statistics; updates the running statistics.
    pub fn forward_train<T: Tape<f32, Cpu>>(&mut self, x: Img<C, T>) -> Img<C, T> {
        batchnorm2d_train(
            x,
            &self.scale,
            &self.bias,
            &mut self.running_mean,
            &mut self.running_var,
            self.epsilon,
            self.momentum,
        )
    }
}

impl<const C: usize> Module<Img<C, NoneTape>> for BatchNorm2D<C, f32, Cpu> {
    type Output = Img<C, NoneTape>;
    type Error = CpuError;
    fn try_forward(&self, x: Img<C, NoneTape>) -> Result<Self::Output, CpuError> {
        Ok(self.forward_frozen(x))
    }
}

impl<const C: usize> ModuleMut<Img<C, OwnedTape<f32, Cpu>>> for BatchNorm2D<C, f32, Cpu> {
    type Output = Img<C, OwnedTape<f32, Cpu>>;
    type Error = CpuError;
    fn try_forward_mut(
        &mut self,
        x: Img<C, OwnedTape<f32, Cpu>>,
    ) -> Result<Self::Output, CpuError> {
        Ok(self.forward_train(x))
    }
}
