//! The one walk over a model's named tensors. dfdx exposes a model's tensors through
//! `TensorCollection` and a visitor generic over each tensor's shape; everything this crate does
//! per tensor (optimizer steps, weight penalties, checkpoints, loading and saving weights,
//! setting BatchNorm hyper-parameters) only needs a tensor's dotted name, its dimensions and its
//! values, so the shape-generic visitor lives here once and hands out a shape-erased view.
//!
//! The visitors take their callback as `&mut dyn FnMut`, not as a type parameter: dfdx's walker
//! is instantiated for every (model type, visitor type) pair, and with a closure type in the
//! visitor every call site of [`for_each_mut`] compiled the whole recursive walk over every
//! model again — 60% of this crate's LLVM IR (`cargo llvm-lines`) and most of its build time.

use dfdx::nn::tensor_collection::{
    RecursiveWalker, ScalarOptions, TensorCollection, TensorOptions, TensorVisitor, ViewTensorMut,
    ViewTensorName, ViewTensorRef,
};
use dfdx::prelude::*;

type Dev = Cpu;

/// One tensor of a model, seen through [`for_each_mut`].
pub trait TensorMut {
    /// Dotted path in the model (`layer1.0.conv1.weight`; dfdx names BatchNorm's γ `scale`).
    fn name(&self) -> &str;
    fn dims(&self) -> &[usize];
    /// Whether the optimizer updates it (false for BatchNorm running statistics).
    fn trainable(&self) -> bool;
    fn values(&self) -> Vec<f32>;
    /// Replaces the values; `values` has the tensor's length.
    fn set_values(&mut self, values: &[f32]);
    /// Replaces the tensor by one holding `values` (the tensor's length), moved in without a
    /// copy. The tensor gets a new id: gradients allocated for the old one no longer apply.
    fn replace_values(&mut self, values: Vec<f32>);
    /// The tensor's gradient in `grads`, allocated as zeros when it has none yet.
    fn grad_mut<'g>(&self, grads: &'g mut Gradients<f32, Dev>) -> &'g mut [f32];
}

/// One tensor of a model, seen through [`for_each`].
#[derive(Debug, Clone, PartialEq)]
pub struct NamedTensor {
    pub name: String,
    pub dims: Vec<usize>,
    pub trainable: bool,
    pub values: Vec<f32>,
}

struct View<'t, S: Shape> {
    tensor: &'t mut Tensor<S, f32, Dev>,
    name: String,
    dims: Vec<usize>,
    trainable: bool,
}

impl<S: Shape> TensorMut for View<'_, S> {
    fn name(&self) -> &str {
        &self.name
    }
    fn dims(&self) -> &[usize] {
        &self.dims
    }
    fn trainable(&self) -> bool {
        self.trainable
    }
    fn values(&self) -> Vec<f32> {
        // A model's tensors are contiguous: their physical buffer is their logical contents,
        // and `copy_into` is one memcpy where `as_vec` walks the strides element by element.
        let mut v = vec![0.0; self.tensor.shape().num_elements()];
        self.tensor.copy_into(&mut v);
        v
    }
    fn set_values(&mut self, values: &[f32]) {
        self.tensor.copy_from(values);
    }
    fn replace_values(&mut self, values: Vec<f32>) {
        assert_eq!(
            values.len(),
            self.tensor.shape().num_elements(),
            "{}",
            self.name
        );
        let shape = *self.tensor.shape();
        *self.tensor = self.tensor.device().tensor_from_vec(values, shape);
    }
    fn grad_mut<'g>(&self, grads: &'g mut Gradients<f32, Dev>) -> &'g mut [f32] {
        grads
            .get_or_alloc_mut(self.tensor)
            .expect("allocating a gradient on the CPU")
    }
}

/// A walk stopped by its callback, whose error the caller keeps.
struct Stop;

struct Mutating<'f>(&'f mut dyn FnMut(&mut dyn TensorMut) -> Result<(), Stop>);

impl TensorVisitor<f32, Dev> for Mutating<'_> {
    type Viewer = (ViewTensorMut, ViewTensorName);
    type Err = Stop;
    type E2 = f32;
    type D2 = Dev;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, Dev>,
        (tensor, name): (&mut Tensor<S, f32, Dev>, String),
    ) -> Result<Option<Tensor<S, f32, Dev>>, Stop> {
        let dims = tensor.shape().concrete().into_iter().collect();
        let mut view = View {
            tensor,
            name,
            dims,
            trainable: opts.do_gradient_update,
        };
        (self.0)(&mut view)?;
        Ok(None)
    }

    fn visit_scalar<N: num_traits::NumCast>(
        &mut self,
        _: ScalarOptions<N>,
        _: (&mut N, String),
    ) -> Result<Option<N>, Stop> {
        Ok(None)
    }
}

/// Calls `f` on every tensor of `model`, in the model's order; the first error stops the walk.
pub fn for_each_mut<M, E>(
    model: &mut M,
    mut f: impl FnMut(&mut dyn TensorMut) -> Result<(), E>,
) -> Result<(), E>
where
    M: TensorCollection<f32, Dev>,
{
    let mut failed = None;
    walk_mut(model, &mut |t| {
        f(t).map_err(|e| {
            failed = Some(e);
            Stop
        })
    });
    failed.map_or(Ok(()), Err)
}

/// [`for_each_mut`]'s walk, compiled once per model type.
fn walk_mut<M: TensorCollection<f32, Dev>>(
    model: &mut M,
    f: &mut dyn FnMut(&mut dyn TensorMut) -> Result<(), Stop>,
) {
    let _ = M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut Mutating(f),
    });
}

struct Reading<'f>(&'f mut dyn FnMut(NamedTensor));

impl TensorVisitor<f32, Dev> for Reading<'_> {
    type Viewer = (ViewTensorRef, ViewTensorName);
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = Dev;

    fn visit<S: Shape>(
        &mut self,
        opts: TensorOptions<S, f32, Dev>,
        (tensor, name): (&Tensor<S, f32, Dev>, String),
    ) -> Result<Option<Tensor<S, f32, Dev>>, Self::Err> {
        (self.0)(NamedTensor {
            name,
            dims: tensor.shape().concrete().into_iter().collect(),
            trainable: opts.do_gradient_update,
            values: super::values(tensor),
        });
        Ok(None)
    }

    fn visit_scalar<N: num_traits::NumCast>(
        &mut self,
        _: ScalarOptions<N>,
        _: (&N, String),
    ) -> Result<Option<N>, Self::Err> {
        Ok(None)
    }
}

/// Every tensor of `model` with its name, dimensions and values, in the model's order.
pub fn collect<M: TensorCollection<f32, Dev>>(model: &M) -> Vec<NamedTensor> {
    let mut out = Vec::new();
    let Ok(_) = M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut Reading(&mut |t| out.push(t)),
    });
    out
}

struct Scalars<'f>(&'f mut dyn FnMut(&str, &mut f64));

impl TensorVisitor<f32, Dev> for Scalars<'_> {
    type Viewer = (ViewTensorMut, ViewTensorName);
    type Err = std::convert::Infallible;
    type E2 = f32;
    type D2 = Dev;

    fn visit<S: Shape>(
        &mut self,
        _: TensorOptions<S, f32, Dev>,
        _: (&mut Tensor<S, f32, Dev>, String),
    ) -> Result<Option<Tensor<S, f32, Dev>>, Self::Err> {
        Ok(None)
    }

    fn visit_scalar<N: num_traits::NumCast>(
        &mut self,
        _: ScalarOptions<N>,
        (n, name): (&mut N, String),
    ) -> Result<Option<N>, Self::Err> {
        let mut v = n.to_f64().expect("module scalars are numbers");
        (self.0)(&name, &mut v);
        *n = N::from(v).expect("the scalar's own type holds the value set");
        Ok(None)
    }
}

/// Calls `f` on every scalar hyper-parameter of `model` (BatchNorm's `epsilon`, `momentum`) by
/// its dotted name; what `f` leaves in the value is written back.
pub(crate) fn for_each_scalar<M: TensorCollection<f32, Dev>>(
    model: &mut M,
    mut f: impl FnMut(&str, &mut f64),
) {
    let Ok(_) = M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut Scalars(&mut f),
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::LinearHead;

    #[test]
    fn walks_name_shape_and_values_and_writes_back() {
        let dev = Dev::seed_from_u64(0);
        let mut l = LinearHead::new(&dev, 3, 2);
        let seen = collect(&l);
        let names: Vec<_> = seen
            .iter()
            .map(|t| (t.name.as_str(), t.dims.clone()))
            .collect();
        assert_eq!(names, vec![("weight", vec![2, 3]), ("bias", vec![2])]);
        for_each_mut(&mut l, |t| -> Result<(), ()> {
            let v: Vec<f32> = (0..t.dims().iter().product::<usize>())
                .map(|i| i as f32)
                .collect();
            t.set_values(&v);
            Ok(())
        })
        .unwrap();
        assert_eq!(l.bias.as_vec(), vec![0.0, 1.0]);
        let stopped = for_each_mut(&mut l, |t| {
            if t.name() == "weight" {
                Err(t.name().to_string())
            } else {
                Ok(())
            }
        });
        assert_eq!(stopped, Err("weight".to_string()));
    }
}
