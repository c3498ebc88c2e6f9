//! ReLU6 = min(max(x, 0), 6) (dfdx 0.13 has no ReLU6). Built on dfdx's `clamp`, whose
//! derivative is 1 on [0, 6] and 0 outside — the same as PyTorch's except exactly at the
//! kinks, which has measure zero.

use dfdx::prelude::*;

pub fn relu6<S: Shape, T: Tape<f32, Cpu>>(x: Tensor<S, f32, Cpu, T>) -> Tensor<S, f32, Cpu, T> {
    x.clamp(0.0, 6.0)
}
