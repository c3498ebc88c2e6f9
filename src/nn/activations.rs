//! `ReLU6` module (dfdx 0.13 has ReLU but not ReLU6).

use dfdx::prelude::*;

use crate::ops::relu6;

/// min(max(x, 0), 6).
#[derive(Debug, Default, Clone, Copy)]
pub struct ReLU6;

impl ZeroSizedModule for ReLU6 {}
impl NonMutableModule for ReLU6 {}

impl<S: Shape, T: Tape<f32, Cpu>> Module<Tensor<S, f32, Cpu, T>> for ReLU6 {
    type Output = Tensor<S, f32, Cpu, T>;
    type Error = CpuError;

    fn try_forward(&self, x: Tensor<S, f32, Cpu, T>) -> Result<Self::Output, CpuError> {
        Ok(relu6(x))
    }
}
