//! Max and average pooling on dfdx tensors: the tape glue around the slice kernels of
//! [`runner_kernels::pool`].

use dfdx::prelude::*;

pub use runner_kernels::pool::*;

use super::geometry::Padding;
use super::tensor_io::{alloc_output, put_grad, read_scratch, take_grad};

/// Which pooling a call does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Max,
    Avg,
}

fn pool2d<C: Dim, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, C, usize, usize), f32, Cpu, T>,
    kind: Kind,
    kernel: usize,
    stride: usize,
    padding: Padding,
) -> Tensor<(usize, C, usize, usize), f32, Cpu, T> {
    let (n, c, h, w) = *x.shape();
    let geom = PoolGeom::new(n * c.size(), h, w, kernel, stride, padding);
    let x = x.contiguous();
    let (x, mut tape) = x.split_tape();
    let data = read_scratch(&x);
    let mut out = alloc_output(x.device(), geom.planes * geom.oh * geom.ow);
    let arg = match kind {
        Kind::Max => Some(max_pool_forward_into(&geom, &data, &mut out)),
        Kind::Avg => {
            avg_pool_forward_into(&geom, &data, &mut out);
            None
        }
    };
    drop(data);
    let out = x.device().tensor_from_vec(out, (n, c, geom.oh, geom.ow));
    if T::OWNS_TAPE {
        let (x_ghost, out_ghost) = (x.ghost(), out.ghost());
        tape.add_backward_op(move |grads| {
            let gout = take_grad!(grads, &out_ghost);
            let dx = grads.get_or_alloc_mut(&x_ghost)?;
            match &arg {
                Some(a) => max_pool_backward(&geom, a, &gout, dx),
                None => avg_pool_backward(&geom, &gout, dx),
            }
            put_grad!(grads, &out_ghost, gout);
            Ok(())
        });
    }
    out.put_tape(tape)
}

/// Max pooling over `kernel`×`kernel` windows.
pub fn max_pool2d<C: Dim, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, C, usize, usize), f32, Cpu, T>,
    kernel: usize,
    stride: usize,
    padding: Padding,
) -> Tensor<(usize, C, usize, usize), f32, Cpu, T> {
    pool2d(x, Kind::Max, kernel, stride, padding)
}

/// Average pooling over `kernel`×`kernel` windows (divisor k·k, padding counted).
pub fn avg_pool2d<C: Dim, T: Tape<f32, Cpu>>(
    x: Tensor<(usize, C, usize, usize), f32, Cpu, T>,
    kernel: usize,
    stride: usize,
    padding: Padding,
) -> Tensor<(usize, C, usize, usize), f32, Cpu, T> {
    pool2d(x, Kind::Avg, kernel, stride, padding)
}
