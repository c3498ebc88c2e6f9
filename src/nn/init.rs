//! Parameter initialisation, and tensor options for tensors whose shape is only known at run
//! time.

use std::cell::Cell;

use dfdx::nn::tensor_collection::TensorOptions;
use dfdx::prelude::*;
use num_traits::FromPrimitive;
use rand::distributions::Distribution;
use rand::Rng;

thread_local! {
    /// Set by [`DrawsOnly`]: the initialisers below draw from the generator without computing.
    static DRAWS_ONLY: Cell<bool> = const { Cell::new(false) };
}

/// While alive, the initialisers of this module ([`kaiming_normal_fan_out`], [`linear_uniform`]:
/// those of every backbone) leave their tensors as they are (zeros, as built) but draw exactly
/// the numbers they would have drawn. For a model whose
/// every tensor is about to be replaced by a checkpoint's: building it costs no Box–Muller
/// transforms (most of the time of building an initialised EfficientNet or ResNet), and
/// whatever is drawn after it (a new head) is the same as without the guard.
pub(crate) struct DrawsOnly {
    before: bool,
}

impl DrawsOnly {
    pub(crate) fn start() -> Self {
        DrawsOnly {
            before: DRAWS_ONLY.with(|d| d.replace(true)),
        }
    }
}

impl Drop for DrawsOnly {
    fn drop(&mut self) {
        DRAWS_ONLY.with(|d| d.set(self.before));
    }
}

fn draws_only() -> bool {
    DRAWS_ONLY.with(Cell::get)
}

/// Draws, from `t`'s device generator, what filling `t` with a distribution that takes
/// `u64s` values per element draws, without filling it. The generator hands out 32-bit words
/// in order, a `u64` being two of them, and `fill_bytes` takes them in the same order: so a
/// few bulk `fill_bytes` leave it exactly where the per-element draws would.
fn skip_draws<S: Shape, E: Dtype, D: Device<E>>(
    t: &Tensor<S, E, D>,
    u64s: usize,
) -> Result<(), D::Err> {
    let bytes = t.shape().num_elements() * u64s * 8;
    let (chunks, rest) = (bytes / SKIP_CHUNK, bytes % SKIP_CHUNK);
    let dev = t.device();
    if chunks > 0 {
        let mut scratch: Tensor<(usize,), E, D> = dev.try_zeros_like(&(chunks,))?;
        scratch.try_fill_with_distr(Skip { bytes: SKIP_CHUNK })?;
    }
    if rest > 0 {
        let mut scratch: Tensor<(usize,), E, D> = dev.try_zeros_like(&(1,))?;
        scratch.try_fill_with_distr(Skip { bytes: rest })?;
    }
    Ok(())
}

/// Bytes of generator output one [`Skip`] sample takes (a multiple of 8).
const SKIP_CHUNK: usize = 4096;

/// Takes `bytes` of generator output (a multiple of 4) and yields 0.
struct Skip {
    bytes: usize,
}

impl<E: FromPrimitive> Distribution<E> for Skip {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> E {
        let mut buf = [0u8; SKIP_CHUNK];
        rng.fill_bytes(&mut buf[..self.bytes]);
        E::from_f64(0.0).unwrap()
    }
}

/// Normal distribution N(0, std²) by Box–Muller (rand_distr is not a dependency).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Normal {
    pub std: f64,
}

impl<E: FromPrimitive> Distribution<E> for Normal {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> E {
        let u1: f64 = 1.0 - rng.gen::<f64>(); // (0, 1]: ln is finite
        let u2: f64 = rng.gen();
        let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        E::from_f64(z * self.std).unwrap()
    }
}

/// Uniform on [−bound, bound].
#[derive(Clone, Copy, Debug)]
pub struct Symmetric {
    pub bound: f64,
}

impl<E: FromPrimitive> Distribution<E> for Symmetric {
    fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> E {
        E::from_f64((2.0 * rng.gen::<f64>() - 1.0) * self.bound).unwrap()
    }
}

/// torchvision's conv init: Kaiming normal, mode `fan_out`, gain √2 (ReLU):
/// std = √(2 / (out_channels · k · k)). `shape.0` is the output channel count.
pub(crate) fn kaiming_normal_fan_out<S: Shape, E: Dtype, D: Device<E>>(
    t: &mut Tensor<S, E, D>,
) -> Result<(), D::Err> {
    let dims = t.shape().concrete();
    let fan_out = dims
        .into_iter()
        .enumerate()
        .filter(|(i, _)| *i != 1)
        .map(|(_, d)| d)
        .product::<usize>();
    if draws_only() {
        // a Box–Muller sample draws two `f64`s
        return skip_draws(t, 2);
    }
    t.try_fill_with_distr(Normal {
        std: (2.0 / fan_out.max(1) as f64).sqrt(),
    })
}

/// PyTorch's `nn.Linear` default: U(±1/√fan_in) for weight `[out, in]`.
pub(crate) fn linear_uniform<S: Shape, E: Dtype, D: Device<E>>(
    t: &mut Tensor<S, E, D>,
) -> Result<(), D::Err> {
    let dims = t.shape().concrete();
    let fan_in = dims.into_iter().last().unwrap_or(1).max(1);
    if draws_only() {
        return skip_draws(t, 1);
    }
    t.try_fill_with_distr(Symmetric {
        bound: 1.0 / (fan_in as f64).sqrt(),
    })
}

/// A tensor's reset function, as `TensorOptions` stores it.
pub(crate) type ResetFn<S, E, D> = fn(&mut Tensor<S, E, D>) -> Result<(), <D as HasErr>::Err>;

/// [`TensorOptions`] for a tensor with run-time dimensions.
///
/// dfdx 0.13 marks `TensorOptions` `#[non_exhaustive]` and only constructs it for compile-time
/// shapes (`ConstShape`), yet every visitor (optimizers, `alloc_grads`, safetensors, reset) works
/// on any `Shape`. The struct has exactly three public fields in 0.13.0 (`do_gradient_update`,
/// `reset`, `shape`, checked by the size test below), so writing all three into uninitialised
/// memory yields a fully initialised value.
pub(crate) fn runtime_options<S: Shape, E: Dtype, D: Device<E>>(
    shape: S,
    do_gradient_update: bool,
    reset: ResetFn<S, E, D>,
) -> TensorOptions<S, E, D> {
    let mut o = std::mem::MaybeUninit::<TensorOptions<S, E, D>>::uninit();
    let p = o.as_mut_ptr();
    // SAFETY: every field of `TensorOptions` (all public, see the doc comment) is written
    // before `assume_init`.
    unsafe {
        std::ptr::addr_of_mut!((*p).do_gradient_update).write(do_gradient_update);
        std::ptr::addr_of_mut!((*p).reset).write(reset);
        std::ptr::addr_of_mut!((*p).shape).write(shape);
        o.assume_init()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[expect(
        dead_code,
        reason = "only the struct's size is compared; its fields are never read"
    )]
    struct Mirror<S: Shape> {
        do_gradient_update: bool,
        reset: fn(&mut Tensor<S, f32, Cpu>) -> Result<(), CpuError>,
        shape: S,
    }

    /// A model built under [`DrawsOnly`] leaves the generator where a real build leaves it.
    #[test]
    fn draws_only_draws_what_the_initialisers_draw() {
        let draw_after = |guarded: bool| {
            let dev = Cpu::seed_from_u64(7);
            let mut t: Tensor<(usize, usize, usize, usize), f32, Cpu> =
                dev.zeros_like(&(64, 33, 3, 3));
            let mut l: Tensor<(usize, usize), f32, Cpu> = dev.zeros_like(&(5, 7));
            let guard = guarded.then(DrawsOnly::start);
            kaiming_normal_fan_out(&mut t).unwrap();
            linear_uniform(&mut l).unwrap();
            drop(guard);
            let next: Tensor<(usize,), f32, Cpu> = dev.sample_uniform_like(&(3,));
            (t.as_vec(), next.as_vec())
        };
        let (real, after_real) = draw_after(false);
        let (zeros, after_guarded) = draw_after(true);
        assert_eq!(after_real, after_guarded);
        assert!(zeros.iter().all(|&x| x == 0.0));
        assert!(real.iter().any(|&x| x != 0.0));
        assert!(!draws_only(), "the guard is undone when dropped");
    }

    /// Guards `runtime_options`: a hidden field added to `TensorOptions` would change its size.
    #[test]
    fn tensor_options_has_only_the_public_fields() {
        assert_eq!(
            std::mem::size_of::<TensorOptions<(usize, usize), f32, Cpu>>(),
            std::mem::size_of::<Mirror<(usize, usize)>>()
        );
        assert_eq!(
            std::mem::size_of::<TensorOptions<Rank1<3>, f32, Cpu>>(),
            std::mem::size_of::<Mirror<Rank1<3>>>()
        );
        let o = runtime_options::<(usize, usize), f32, Cpu>((2, 3), true, linear_uniform);
        assert_eq!(o.shape, (2, 3));
        assert!(o.do_gradient_update);
    }
}
