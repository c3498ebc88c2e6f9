//! Max / average pooling modules: `K`×`K` windows, stride `S`, padding `P` (or `SAME`).

use dfdx::prelude::*;

use super::conv::padding_of;
use crate::ops::{avg_pool2d, max_pool2d};

macro_rules! pool_module {
    ($name:ident, $op:ident, $doc:literal) => {
        #[doc = $doc]
        #[derive(Debug, Default, Clone, Copy)]
        pub struct $name<const K: usize, const S: usize = 1, const P: usize = 0>;

        impl<const K: usize, const S: usize, const P: usize> ZeroSizedModule for $name<K, S, P> {}
        impl<const K: usize, const S: usize, const P: usize> NonMutableModule for $name<K, S, P> {}

        impl<const K: usize, const S: usize, const P: usize, C: Dim, T: Tape<f32, Cpu>>
            Module<Tensor<(usize, C, usize, usize), f32, Cpu, T>> for $name<K, S, P>
        {
            type Output = Tensor<(usize, C, usize, usize), f32, Cpu, T>;
            type Error = CpuError;

            fn try_forward(
                &self,
                x: Tensor<(usize, C, usize, usize), f32, Cpu, T>,
            ) -> Result<Self::Output, CpuError> {
                Ok($op(x, K, S, padding_of(P)))
            }
        }
    };
}

pool_module!(
    MaxPool2D,
    max_pool2d,
    "Max pooling (padding never wins the max)."
);
pool_module!(
    AvgPool2D,
    avg_pool2d,
    "Average pooling (divides by K·K, padding included)."
);
