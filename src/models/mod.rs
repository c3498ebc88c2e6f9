//! Backbones (ResNet-18/34 in torchvision's layout, EfficientNet-Lite0 in efficientnet_pytorch's,
//! a small CNN), the classifier that puts a run-time-sized linear head on them, loading of
//! pretrained safetensors by torchvision names, and ImageNet class names.
//!
//! Every model's `TensorCollection` names its tensors like the PyTorch state dict (dfdx's
//! BatchNorm calls γ `scale` where PyTorch says `weight`; [`weights`] maps that), so saved
//! weights and pretrained checkpoints line up.

use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection};
use dfdx::prelude::*;

pub mod arch;
pub mod describe;
pub mod efficientnet;
pub mod freeze;
pub mod imagenet;
pub mod pixels;
pub mod resnet;
pub mod small_cnn;
pub mod trainable;
pub mod weights;

pub use arch::{Arch, ArchVisitor, UnknownArch};
pub use efficientnet::EfficientNetLite0;
pub use imagenet::imagenet_class_name;
pub use resnet::{ResNet18, ResNet34};
pub use small_cnn::SmallCnn;
pub use trainable::PartlyFrozen;
pub use weights::{
    load_torchvision_weights, save_torchvision_weights, LoadReport, Mismatch, WeightsError,
};

use crate::nn::LinearHead;

/// The device every model runs on.
pub type Dev = Cpu;
/// The tape of a training forward pass.
pub type TrainTape = OwnedTape<f32, Dev>;
/// A batch of `C`-channel images: (batch, C, height, width), sizes other than C at run time.
pub type Images<const C: usize, T = NoneTape> =
    Tensor<(usize, Const<C>, usize, usize), f32, Dev, T>;
/// Pooled features or logits: (batch, features or classes).
pub type Rows<T = NoneTape> = Tensor<(usize, usize), f32, Dev, T>;

/// Implemented by every backbone: images in, pooled features out.
pub trait Backbone:
    TensorCollection<f32, Dev, To<f32, Dev> = Self>
    + HeadName
    + crate::nn::describe::Describe
    + Clone
    + Send
    + Sync
    + 'static
{
    /// Length of the pooled feature vector (512 for ResNets, 1280 for EfficientNet-Lite0).
    const FEATURES: usize;
    /// Architecture name as written in specs (`resnet18`, …).
    const NAME: &'static str;
    /// Named top-level blocks in forward order, head last (for per-layer summaries and freezing).
    const BLOCKS: &'static [&'static str];

    /// Random initialisation like torchvision (Kaiming normal fan-out convs, BatchNorm γ=1 β=0).
    fn build(dev: &Dev) -> Self;
    /// Eval mode: BatchNorm on running statistics, no tape.
    fn forward_eval(&self, x: Images<3>) -> Rows;
    /// Train mode: BatchNorm on batch statistics, running statistics updated.
    fn forward_train(&mut self, x: Images<3, TrainTape>) -> Rows<TrainTape>;
    /// The first `frozen` entries of [`Backbone::BLOCKS`] run in eval mode without a tape (no
    /// gradients, BatchNorm statistics untouched), the rest in train mode on a tape started
    /// from `grads`. `frozen = 0` is [`Backbone::forward_train`]; `frozen` at least the number
    /// of backbone blocks gives eval-mode features on a fresh tape.
    fn forward_train_frozen(
        &mut self,
        x: Images<3>,
        frozen: usize,
        grads: Gradients<f32, Dev>,
    ) -> Rows<TrainTape>;

    /// How many leading blocks `freeze = "until:<block>"` freezes: up to and including `block`
    /// (a backbone entry of [`Backbone::BLOCKS`]; the head cannot be frozen this way).
    fn frozen_blocks(until: &str) -> Option<usize> {
        let backbone = &Self::BLOCKS[..Self::BLOCKS.len() - 1];
        backbone.iter().position(|b| *b == until).map(|i| i + 1)
    }
}

/// Global average pooling to `(batch, C)` rows with a run-time feature dimension.
pub(crate) fn pool_features<const C: usize, T: Tape<f32, Dev>>(x: Images<C, T>) -> Rows<T> {
    let n = x.shape().0;
    x.mean::<(usize, Const<C>), Axes2<2, 3>>()
        .reshape_like(&(n, C))
}

/// Backbone + linear head with a run-time class count.
#[derive(Debug, Clone)]
pub struct Classifier<B, E: Dtype = f32, D: Storage<E> = Cpu> {
    pub backbone: B,
    pub head: LinearHead<E, D>,
}

/// Names the head inside a [`Classifier`]'s tensor collection; implemented for every backbone
/// type whatever its dtype/device, so conversions (`to_device`, building) keep the names.
pub trait HeadName {
    /// Name of the classification head in the PyTorch state dict (`fc`, `_fc`).
    const HEAD: &'static str;
}

impl<B: Backbone> Classifier<B> {
    /// A randomly initialised backbone with a `classes`-way head.
    pub fn new(dev: &Dev, classes: usize) -> Self {
        Classifier {
            backbone: B::build(dev),
            head: LinearHead::new(dev, B::FEATURES, classes),
        }
    }
    pub fn classes(&self) -> usize {
        self.head.classes()
    }
    /// Logits in eval mode.
    pub fn forward_eval(&self, x: Images<3>) -> Rows {
        self.head.forward(self.backbone.forward_eval(x))
    }
    /// Logits in train mode (BatchNorm batch statistics, running statistics updated).
    pub fn forward_train(&mut self, x: Images<3, TrainTape>) -> Rows<TrainTape> {
        self.head.forward(self.backbone.forward_train(x))
    }
    /// Logits with the first `frozen` backbone blocks frozen (see
    /// [`Backbone::forward_train_frozen`]); the head always trains.
    pub fn forward_train_frozen(
        &mut self,
        x: Images<3>,
        frozen: usize,
        grads: Gradients<f32, Dev>,
    ) -> Rows<TrainTape> {
        self.head
            .forward(self.backbone.forward_train_frozen(x, frozen, grads))
    }
}

impl<B: TensorCollection<E, D> + HeadName, E: Dtype, D: Device<E>> TensorCollection<E, D>
    for Classifier<B, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Classifier<B::To<E2, D2>, E2, D2>;

    /// The backbone's tensors sit at the top level (`conv1.weight`), the head under the
    /// backbone's head name (`fc.weight`), as in the PyTorch state dict.
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("", |s| &s.backbone, |s| &mut s.backbone),
                Self::module(B::HEAD, |s| &s.head, |s| &mut s.head),
            ),
            |(backbone, head)| Classifier { backbone, head },
        )
    }
}

impl<B: Backbone> Module<Images<3>> for Classifier<B> {
    type Output = Rows;
    type Error = CpuError;
    fn try_forward(&self, x: Images<3>) -> Result<Rows, CpuError> {
        Ok(self.forward_eval(x))
    }
}

impl<B: Backbone> ModuleMut<Images<3, TrainTape>> for Classifier<B> {
    type Output = Rows<TrainTape>;
    type Error = CpuError;
    fn try_forward_mut(&mut self, x: Images<3, TrainTape>) -> Result<Rows<TrainTape>, CpuError> {
        Ok(self.forward_train(x))
    }
}

/// BatchNorm in eval mode (`forward`, no tape) or train mode (`forward_mut`, tape): the block
/// bodies below are written once as macros and expanded with each method name.
macro_rules! eval_and_train {
    ([$($gen:tt)*] $ty:ty, $inp:ty => $out:ty, $body:ident) => {
        impl<$($gen)*> Module<Tensor<$inp, f32, Cpu, NoneTape>> for $ty {
            type Output = Tensor<$out, f32, Cpu, NoneTape>;
            type Error = CpuError;
            fn try_forward(&self, x: Tensor<$inp, f32, Cpu, NoneTape>) -> Result<Self::Output, CpuError> {
                Ok($body!(self, x, forward))
            }
        }
        impl<$($gen)*> ModuleMut<Tensor<$inp, f32, Cpu, OwnedTape<f32, Cpu>>> for $ty {
            type Output = Tensor<$out, f32, Cpu, OwnedTape<f32, Cpu>>;
            type Error = CpuError;
            fn try_forward_mut(&mut self, x: Tensor<$inp, f32, Cpu, OwnedTape<f32, Cpu>>) -> Result<Self::Output, CpuError> {
                Ok($body!(self, x, forward_mut))
            }
        }
    };
}
pub(crate) use eval_and_train;

/// `bn` followed by an activation, fused into one pass: `bn_act!(bn, forward | forward_mut, x,
/// Act::Relu)` (inside the `eval_and_train!` bodies, whose `$f` picks eval or train mode), or
/// `act(bn(x) + r)` with `bn_act!(bn, $f, x, Act::Relu, residual = &r)` for a tape-less `r`.
macro_rules! bn_act {
    (@r) => {
        None
    };
    (@r $r:expr) => {
        Some($r)
    };
    ($bn:expr, forward, $x:expr, $act:expr $(, residual = $r:expr)?) => {
        $bn.forward_act($x, bn_act!(@r $($r)?), $act)
    };
    ($bn:expr, forward_mut, $x:expr, $act:expr $(, residual = $r:expr)?) => {
        $bn.forward_mut_act($x, bn_act!(@r $($r)?), $act)
    };
}
pub(crate) use bn_act;

/// Runs stages (macros `stage!(self, x, forward | forward_mut)`) with the first `frozen` of them
/// in eval mode without a tape and the rest in train mode; the tape starts at the first trained
/// stage, so frozen parameters get no gradient and their BatchNorm statistics stay put.
/// Expands one code path per boundary (the tensor types change where the tape starts).
macro_rules! staged {
    ($s:ident, $x:expr, $frozen:expr, $grads:expr, $i:expr; $first:ident $(, $rest:ident)*) => {{
        if $frozen <= $i {
            let t = $x.traced($grads);
            train_chain!($s, t; $first $(, $rest)*)
        } else {
            let y = $first!($s, $x, forward);
            staged!($s, y, $frozen, $grads, $i + 1; $($rest),*)
        }
    }};
    ($s:ident, $x:expr, $frozen:expr, $grads:expr, $i:expr; ) => {{
        $x.traced($grads)
    }};
}
pub(crate) use staged;

macro_rules! train_chain {
    ($s:ident, $x:expr; $first:ident $(, $rest:ident)*) => {{
        let y = $first!($s, $x, forward_mut);
        train_chain!($s, y; $($rest),*)
    }};
    ($s:ident, $x:expr; ) => {
        $x
    };
}
pub(crate) use train_chain;

/// Sets every BatchNorm's ε and momentum in a model (dfdx builds them with PyTorch's defaults,
/// 1e-5 and 0.1; EfficientNet uses 1e-3 and 0.01).
pub(crate) fn set_batchnorm_hyper<M: TensorCollection<f32, Dev>>(
    model: &mut M,
    epsilon: f64,
    momentum: f64,
) {
    crate::nn::tensors::for_each_scalar(model, |name, value| {
        if name.ends_with("epsilon") {
            *value = epsilon;
        } else if name.ends_with("momentum") {
            *value = momentum;
        }
    });
}
