//! A linear layer whose input and output sizes are known only at run time (the class count
//! comes from the dataset), visible to dfdx optimizers, `ResetParams` and safetensors.

use std::mem::MaybeUninit;

use dfdx::prelude::*;
use rand::distributions::Uniform;

type Dev = Cpu;

/// `TensorOptions` for a tensor whose shape has runtime dimensions.
///
/// dfdx 0.13 only offers constructors for compile-time shapes (`S: ConstShape`) and marks the
/// struct `#[non_exhaustive]`, although its three fields are public and nothing in it depends on
/// the shape being constant (`shape` is only read by `BuildModule`, which runtime-shaped modules
/// never go through). We initialise each public field in place. dfdx is pinned to `=0.13.0` in
/// Cargo.toml and the size check below fails the build if the struct ever gains a field.
pub fn runtime_options<S: Shape + Default>(
    reset: fn(&mut Tensor<S, f32, Dev>) -> Result<(), CpuError>,
) -> TensorOptions<S, f32, Dev> {
    const _: () = assert!(
        std::mem::size_of::<TensorOptions<(usize, usize), f32, Dev>>()
            == std::mem::size_of::<Mirror<(usize, usize)>>()
    );
    let mut o = MaybeUninit::<TensorOptions<S, f32, Dev>>::uninit();
    let p = o.as_mut_ptr();
    // SAFETY: every field of the struct (checked by the size assertion) is written before
    // `assume_init`; the pointers come from `addr_of_mut!`, so no reference to uninitialised
    // memory is created.
    unsafe {
        std::ptr::addr_of_mut!((*p).do_gradient_update).write(true);
        std::ptr::addr_of_mut!((*p).reset).write(reset);
        std::ptr::addr_of_mut!((*p).shape).write(S::default());
        o.assume_init()
    }
}

/// The fields of dfdx 0.13's `TensorOptions`, for the size check above.
#[allow(dead_code)]
struct Mirror<S: Shape> {
    do_gradient_update: bool,
    reset: fn(&mut Tensor<S, f32, Dev>) -> Result<(), CpuError>,
    shape: S,
}

/// `y = x·Wᵀ + b` with runtime input and output sizes; PyTorch's `nn.Linear` init.
#[derive(Debug, Clone)]
pub struct DynLinear {
    pub weight: Tensor<(usize, usize), f32, Dev>,
    pub bias: Tensor<(usize,), f32, Dev>,
}

impl DynLinear {
    pub fn new(dev: &Dev, inputs: usize, outputs: usize) -> Self {
        let mut l = Self { weight: dev.zeros_like(&(outputs, inputs)), bias: dev.zeros_like(&(outputs,)) };
        l.init_like_pytorch();
        l
    }

    pub fn inputs(&self) -> usize {
        self.weight.shape().1
    }

    pub fn outputs(&self) -> usize {
        self.weight.shape().0
    }

    pub fn forward<T: Tape<f32, Dev>>(
        &self,
        x: Tensor<(usize, usize), f32, Dev, T>,
    ) -> Tensor<(usize, usize), f32, Dev, T> {
        let shape = (x.shape().0, self.outputs());
        let y = x.matmul(self.weight.retaped::<T>().permute());
        y + self.bias.retaped::<T>().broadcast_like::<_, Axis<0>>(&shape)
    }
}

fn uniform_fan_in<S: Shape>(t: &mut Tensor<S, f32, Dev>, fan_in: usize) -> Result<(), CpuError> {
    let b = 1.0 / (fan_in.max(1) as f32).sqrt();
    t.try_fill_with_distr(Uniform::new(-b, b))
}

impl TensorCollection<f32, Dev> for DynLinear {
    type To<E2: Dtype, D2: Device<E2>> = DynLinear;

    fn iter_tensors<V: ModuleVisitor<Self, f32, Dev>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::tensor(
                    "weight",
                    |s| &s.weight,
                    |s| &mut s.weight,
                    runtime_options::<(usize, usize)>(|t| {
                        let fan_in = t.shape().1;
                        uniform_fan_in(t, fan_in)
                    }),
                ),
                // PyTorch bounds the bias by the weight's fan-in, which the bias alone does not
                // know: `ResetParams` zeroes it, `DynLinear::new` uses PyTorch's bound.
                Self::tensor(
                    "bias",
                    |s| &s.bias,
                    |s| &mut s.bias,
                    runtime_options(|t| t.try_fill_with_zeros()),
                ),
            ),
            // Only reachable for visitors that rebuild the module (dtype/device moves), which this
            // CPU-f32 project does not use with other types.
            |(weight, bias)| unreachable_conversion(weight, bias),
        )
    }
}

fn unreachable_conversion<A, B>(_: A, _: B) -> DynLinear {
    unreachable!("DynLinear only lives on the CPU in f32")
}

impl DynLinear {
    fn init_like_pytorch(&mut self) {
        let fan_in = self.inputs();
        uniform_fan_in(&mut self.weight, fan_in).unwrap();
        uniform_fan_in(&mut self.bias, fan_in).unwrap();
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_head_works_with_optimizers_reset_and_safetensors() {
        let dev = Dev::seed_from_u64(0);
        let mut l = DynLinear::new(&dev, 3, 5);
        assert_eq!((l.inputs(), l.outputs()), (3, 5));
        assert_eq!(l.num_trainable_params(), 3 * 5 + 5);
        let x = dev.tensor_from_vec(vec![1.0, 2.0, 3.0, -1.0, 0.0, 1.0], (2usize, 3usize));
        let mut opt = dfdx::optim::Sgd::new(&l, SgdConfig { lr: 0.1, momentum: None, weight_decay: None });
        let before = l.weight.as_vec();
        let loss = l.forward(x.traced(l.alloc_grads())).square().mean();
        let grads = loss.backward();
        opt.update(&mut l, &grads).unwrap();
        assert_ne!(before, l.weight.as_vec());

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("head.safetensors");
        l.save_safetensors(&path).unwrap();
        let mut m = DynLinear::new(&dev, 3, 5);
        m.load_safetensors(&path).unwrap();
        assert_eq!(m.weight.as_vec(), l.weight.as_vec());
        assert_eq!(m.bias.as_vec(), l.bias.as_vec());

        m.reset_params();
        assert_ne!(m.weight.as_vec(), l.weight.as_vec());
        assert!(m.bias.as_vec().iter().all(|&b| b == 0.0));
    }
}
