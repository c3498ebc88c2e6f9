//! `Conv2D` module: weight OIHW `[O, I/G, K, K]`, no bias (every architecture here follows each
//! convolution with BatchNorm; add dfdx's `Bias2D` after it when a bias is wanted).

use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection};
use dfdx::prelude::*;

use super::init::{kaiming_normal_fan_out, runtime_options};
use crate::ops::{conv2d, Padding};

/// Value of the padding parameter `P` that selects TensorFlow "SAME" padding.
pub const SAME: usize = usize::MAX;

/// The padding a const parameter `P` stands for.
pub const fn padding_of(p: usize) -> Padding {
    if p == SAME {
        Padding::Same
    } else {
        Padding::Symmetric(p)
    }
}

/// 2D convolution with `I` input and `O` output channels, a `K`×`K` kernel, stride `S`, padding
/// `P` (a number of zeros on each side, or [`SAME`]) and `G` groups (`G = I = O`: depthwise).
///
/// The weight's second dimension (`I / G`) is a run-time `usize` because stable Rust cannot
/// compute `I / G` in a type; it is fixed when the module is built.
#[derive(Debug, Clone)]
pub struct Conv2D<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize = 1,
    const P: usize = 0,
    const G: usize = 1,
    E: Dtype = f32,
    D: Storage<E> = Cpu,
> {
    pub weight: Tensor<(Const<O>, usize, Const<K>, Const<K>), E, D>,
}

pub mod builder {
    /// Builder for [`super::Conv2D`] with `dev.build_module::<Conv2D<..>, f32>()`.
    #[derive(Debug, Clone, Copy)]
    pub struct Conv2D<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize = 1,
        const P: usize = 0,
        const G: usize = 1,
    >;
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        const P: usize,
        const G: usize,
        E: Dtype,
        D: Device<E>,
    > BuildOnDevice<D, E> for builder::Conv2D<I, O, K, S, P, G>
{
    type Built = Conv2D<I, O, K, S, P, G, E, D>;
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        const P: usize,
        const G: usize,
        E: Dtype,
        D: Device<E>,
    > TensorCollection<E, D> for Conv2D<I, O, K, S, P, G, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Conv2D<I, O, K, S, P, G, E2, D2>;

    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        assert!(
            G >= 1 && I.is_multiple_of(G) && O.is_multiple_of(G),
            "Conv2D<{I}, {O}>: channels not divisible by {G} groups"
        );
        visitor.visit_fields(
            Self::tensor(
                "weight",
                |s| &s.weight,
                |s| &mut s.weight,
                runtime_options((Const, I / G, Const, Const), true, kaiming_normal_fan_out),
            ),
            |weight| Conv2D { weight },
        )
    }
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        const P: usize,
        const G: usize,
        T: Tape<f32, Cpu>,
    > Module<Tensor<(usize, Const<I>, usize, usize), f32, Cpu, T>>
    for Conv2D<I, O, K, S, P, G, f32, Cpu>
{
    type Output = Tensor<(usize, Const<O>, usize, usize), f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(
        &self,
        x: Tensor<(usize, Const<I>, usize, usize), f32, Cpu, T>,
    ) -> Result<Self::Output, CpuError> {
        Ok(conv2d(x, &self.weight, None, S, padding_of(P), G))
    }
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        const P: usize,
        const G: usize,
    > NonMutableModule for Conv2D<I, O, K, S, P, G, f32, Cpu>
{
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        const P: usize,
        const G: usize,
    > Conv2D<I, O, K, S, P, G, f32, Cpu>
{
    /// The forward pass of a network's first layer: its input (the images) gets no gradient
    /// (see [`crate::ops::conv::conv2d_first_layer`]).
    pub(crate) fn forward_first<T: Tape<f32, Cpu>>(
        &self,
        x: Tensor<(usize, Const<I>, usize, usize), f32, Cpu, T>,
    ) -> Tensor<(usize, Const<O>, usize, usize), f32, Cpu, T> {
        crate::ops::conv::conv2d_first_layer(x, &self.weight, None, S, padding_of(P), G)
    }
}
