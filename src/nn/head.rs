//! Linear classification head whose class count is chosen at run time (it comes from the
//! dataset), with `TensorCollection` so optimizers and safetensors see it.

use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection};
use dfdx::prelude::*;

use super::init::{linear_uniform, runtime_options};

/// `y = x · weightᵀ + bias`, weight `[classes, features]` as in PyTorch's `nn.Linear`.
#[derive(Debug, Clone)]
pub struct LinearHead<E: Dtype = f32, D: Storage<E> = Cpu> {
    pub weight: Tensor<(usize, usize), E, D>,
    pub bias: Tensor<(usize,), E, D>,
}

fn zeros<S: Shape, E: Dtype, D: Device<E>>(t: &mut Tensor<S, E, D>) -> Result<(), D::Err> {
    t.try_fill_with_zeros()
}

impl LinearHead<f32, Cpu> {
    /// A head initialised like PyTorch's `nn.Linear` weight (U(±1/√features)), zero bias.
    pub fn new(dev: &Cpu, features: usize, classes: usize) -> Self {
        let mut head = LinearHead {
            weight: dev.zeros_like(&(classes, features)),
            bias: dev.zeros_like(&(classes,)),
        };
        head.reset_params();
        head
    }
    pub fn classes(&self) -> usize {
        self.weight.shape().0
    }
    pub fn features(&self) -> usize {
        self.weight.shape().1
    }
}

impl<E: Dtype, D: Device<E>> TensorCollection<E, D> for LinearHead<E, D> {
    type To<E2: Dtype, D2: Device<E2>> = LinearHead<E2, D2>;

    /// Built through `BuildModule` the head would be empty (its size is not in its type):
    /// construct it with [`LinearHead::new`].
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    runtime_options((0, 0), true, linear_uniform),
                ),
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    runtime_options((0,), true, zeros),
                ),
            ),
            |(weight, bias)| LinearHead { weight, bias },
        )
    }
}

impl<T: Tape<f32, Cpu>> Module<Tensor<(usize, usize), f32, Cpu, T>> for LinearHead<f32, Cpu> {
    type Output = Tensor<(usize, usize), f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(
        &self,
        x: Tensor<(usize, usize), f32, Cpu, T>,
    ) -> Result<Self::Output, CpuError> {
        let w = self
            .weight
            .retaped::<T>()
            .try_permute::<(usize, usize), Axes2<1, 0>>()?;
        let y = x.try_matmul(w)?;
        let shape = *y.shape();
        let b = self
            .bias
            .retaped::<T>()
            .try_broadcast_like::<_, Axis<0>>(&shape)?;
        y.try_add(b)
    }
}

impl NonMutableModule for LinearHead<f32, Cpu> {}
