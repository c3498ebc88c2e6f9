//! Backbones (ResNet-18/34/50 in torchvision's layout, EfficientNet-Lite0 in efficientnet_pytorch's,
//! a small CNN), the classifier that puts a run-time-sized linear head on them, loading of
//! pretrained safetensors by torchvision names, and ImageNet class names.
//!
//! Every model's `TensorCollection` names its tensors like the PyTorch state dict (dfdx's
//! BatchNorm calls γ `scale` where PyTorch says `weight`; [`weights`] maps that), so saved
//! weights and pretrained checkpoints line up.

use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection};
use dfdx::prelude::*;

pub mod arch;
pub mod bottleneck;
pub mod checkpoint;
pub mod describe;
pub mod efficientnet;
pub mod feature_head;
pub mod fold;
pub mod freeze;
pub mod imagenet;
pub mod pixels;
pub mod resnet;
pub mod shared_backbone;
pub mod small_cnn;
pub mod trainable;
pub mod weights;
pub mod weights_check;
pub mod weights_file;

pub use arch::{Arch, ArchVisitor, UnknownArch};
pub use efficientnet::EfficientNetLite0;
pub use imagenet::{imagenet_class_name, IMAGENET_CLASSES};
pub use resnet::{ResNet18, ResNet34, ResNet50};
pub use small_cnn::SmallCnn;
pub use trainable::PartlyFrozen;
pub use weights::{
    load_torchvision_file, load_torchvision_weights, save_torchvision_weights, LoadReport,
    Mismatch, WeightsError,
};

use crate::nn::init::DrawsOnly;
use crate::nn::{HiddenLayers, HiddenLayout, LinearHead};

/// The device every model runs on.
pub type Dev = Cpu;
/// The tape of a training forward pass.
pub(crate) type TrainTape = OwnedTape<f32, Dev>;
/// A batch of `C`-channel images: (batch, C, height, width), sizes other than C at run time.
pub type Images<const C: usize, T = NoneTape> =
    Tensor<(usize, Const<C>, usize, usize), f32, Dev, T>;
/// Pooled features or logits: (batch, features or classes).
pub(crate) type Rows<T = NoneTape> = Tensor<(usize, usize), f32, Dev, T>;

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
    /// Length of the pooled feature vector (512 for ResNet-18/34, 2048 for ResNet-50, 1280 for
    /// EfficientNet-Lite0).
    const FEATURES: usize;
    /// Architecture name as written in specs (`resnet18`, …).
    const NAME: &'static str;
    /// Named top-level blocks in forward order, head last (for per-layer summaries and freezing).
    const BLOCKS: &'static [&'static str];

    /// Random initialisation like torchvision (Kaiming normal fan-out convs, BatchNorm γ=1 β=0),
    /// global average pooling.
    fn build(dev: &Dev) -> Self;
    /// The global pooling before the head (`head.pool`).
    fn set_pool(&mut self, pool: crate::nn::head_kinds::Pool);
    /// Eval mode: BatchNorm on running statistics, no tape.
    fn forward_eval(&self, x: Images<3>) -> Rows;
    /// The backbone up to its global pooling as folded layers (BatchNorm folded into the
    /// convolutions, activations and residual adds fused) for frozen feature extraction, when
    /// it has them; the features equal [`Backbone::forward_eval`]'s within float rounding.
    fn frozen_layers(&self) -> Option<Vec<crate::ops::frozen::Layer>> {
        None
    }
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

/// Global pooling to `(batch, C)` rows with a run-time feature dimension: the mean of each
/// map, or its maximum. The maximum goes through the project's max-pool kernel (one window the
/// size of the map) where the map is square, so the gradient goes to a single arg-max like
/// PyTorch's `AdaptiveMaxPool2d` (dfdx's `max` would give it to every tied element, and ReLU6
/// maps tie at 6); other maps use dfdx's reduction.
pub(crate) fn pool_features<const C: usize, T: Tape<f32, Dev>>(
    x: Images<C, T>,
    pool: crate::nn::head_kinds::Pool,
) -> Rows<T> {
    let (n, _, h, w) = *x.shape();
    match pool {
        crate::nn::head_kinds::Pool::Avg => x.mean::<(usize, Const<C>), Axes2<2, 3>>(),
        crate::nn::head_kinds::Pool::Max if h == w => {
            crate::ops::max_pool2d(x, h, 1, crate::ops::Padding::Symmetric(0))
                .reshape_like(&(n, Const::<C>))
        }
        crate::nn::head_kinds::Pool::Max => x.max::<(usize, Const<C>), Axes2<2, 3>>(),
    }
    .reshape_like(&(n, C))
}

/// Backbone + head with a run-time class count: the hidden layers of an MLP head (none for a
/// linear head), then the last linear layer.
#[derive(Debug, Clone)]
pub struct Classifier<B, E: Dtype = f32, D: Storage<E> = Cpu> {
    pub backbone: B,
    pub hidden: HiddenLayers<E, D>,
    /// The head's last linear layer (a linear head's only one).
    pub head: LinearHead<E, D>,
}

/// The head a run declares (`[head]`) and the pooling before it, with the seed of its dropout
/// masks.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HeadConfig {
    /// Hidden widths; empty for a linear head.
    pub widths: Vec<usize>,
    pub activation: crate::nn::head_kinds::Activation,
    pub dropout: f64,
    pub batch_norm: bool,
    pub pool: crate::nn::head_kinds::Pool,
    pub seed: u64,
}

impl HeadConfig {
    /// The hidden layers on `features` inputs.
    pub fn layout(&self, features: usize) -> HiddenLayout {
        HiddenLayout {
            features,
            widths: self.widths.clone(),
            activation: self.activation,
            dropout: self.dropout,
            batch_norm: self.batch_norm,
            seed: self.seed,
        }
    }
}

/// Names the head inside a [`Classifier`]'s tensor collection; implemented for every backbone
/// type whatever its dtype/device, so conversions (`to_device`, building) keep the names.
pub trait HeadName {
    /// Name of the classification head in the PyTorch state dict (`fc`, `_fc`).
    const HEAD: &'static str;
}

impl<B: Backbone> Classifier<B> {
    /// A randomly initialised backbone with a `classes`-way linear head.
    pub fn new(dev: &Dev, classes: usize) -> Self {
        Self::with_head(dev, classes, &HeadConfig::default())
    }
    /// A randomly initialised backbone with the declared head. The generator is drawn in
    /// the order backbone, hidden layers, last layer (a linear head draws what it always did).
    pub(crate) fn with_head(dev: &Dev, classes: usize, head: &HeadConfig) -> Self {
        Self::on_backbone(B::build(dev), dev, classes, head)
    }
    /// `backbone` (just built from `dev`) with the declared head drawn after it.
    fn on_backbone(mut backbone: B, dev: &Dev, classes: usize, head: &HeadConfig) -> Self {
        backbone.set_pool(head.pool);
        let hidden = HiddenLayers::new(dev, head.layout(B::FEATURES));
        let last = LinearHead::new(dev, hidden.layout.output(), classes);
        Classifier {
            backbone,
            hidden,
            head: last,
        }
    }
    /// [`Self::with_head`] for a backbone about to be replaced by pretrained weights: its
    /// initialisation draws what it would draw without computing it ([`DrawsOnly`]), so the
    /// head, and whatever is drawn after, is the same as with [`Self::with_head`].
    pub(crate) fn with_head_for_pretrained(dev: &Dev, classes: usize, head: &HeadConfig) -> Self {
        let backbone = {
            let _draws = DrawsOnly::start();
            B::build(dev)
        };
        Self::on_backbone(backbone, dev, classes, head)
    }
    /// A classifier every tensor of which is about to be loaded from a file (a kept model to
    /// score or export, a file to check): zeros where [`Self::with_head`] computes random
    /// values, the same numbers drawn.
    pub(crate) fn to_load(dev: &Dev, classes: usize, head: &HeadConfig) -> Self {
        let _draws = DrawsOnly::start();
        Self::with_head(dev, classes, head)
    }
    /// The next training forward pass is batch `batch` (0-based) of `epoch` (its dropout masks).
    pub(crate) fn begin_batch(&mut self, epoch: usize, batch: usize) {
        self.hidden.step = Some((epoch, batch));
    }
    pub fn classes(&self) -> usize {
        self.head.classes()
    }
    /// Logits in eval mode.
    pub fn forward_eval(&self, x: Images<3>) -> Rows {
        self.head
            .forward(self.hidden.forward_eval(self.backbone.forward_eval(x)))
    }
    /// Logits in train mode (BatchNorm batch statistics, running statistics updated).
    pub fn forward_train(&mut self, x: Images<3, TrainTape>) -> Rows<TrainTape> {
        let f = self.backbone.forward_train(x);
        self.head.forward(self.hidden.forward_train(f))
    }
    /// Logits with the first `frozen` backbone blocks frozen (see
    /// [`Backbone::forward_train_frozen`]); the head always trains.
    pub fn forward_train_frozen(
        &mut self,
        x: Images<3>,
        frozen: usize,
        grads: Gradients<f32, Dev>,
    ) -> Rows<TrainTape> {
        let f = self.backbone.forward_train_frozen(x, frozen, grads);
        self.head.forward(self.hidden.forward_train(f))
    }
}

impl<B: TensorCollection<E, D> + HeadName, E: Dtype, D: Device<E>> TensorCollection<E, D>
    for Classifier<B, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Classifier<B::To<E2, D2>, E2, D2>;

    /// The backbone's tensors sit at the top level (`conv1.weight`), the head's last layer
    /// under the backbone's head name (`fc.weight`), as in the PyTorch state dict; an MLP
    /// head's hidden buffers under `fc.hidden` (see [`HiddenLayers`] for their PyTorch names,
    /// which `weights` writes and reads).
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        let hidden = hidden_prefix(B::HEAD);
        visitor.visit_fields(
            (
                Self::module("", |s| &s.backbone, |s| &mut s.backbone),
                Self::module(&hidden, |s| &s.hidden, |s| &mut s.hidden),
                Self::module(B::HEAD, |s| &s.head, |s| &mut s.head),
            ),
            |(backbone, hidden, head)| Classifier {
                backbone,
                hidden,
                head,
            },
        )
    }
}

/// Where a head's hidden buffers sit among the model's tensor names: `fc.hidden`.
pub(crate) fn hidden_prefix(head: &str) -> String {
    format!("{head}.hidden")
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
