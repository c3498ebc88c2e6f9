//! ResNet-18, ResNet-34 and ResNet-50 in torchvision's layout (`conv1`, `bn1`,
//! `layer1.0.conv1`, …, `layer2.0.downsample.{0,1}`), so torchvision checkpoints load by name.
//! ResNet-50's bottleneck blocks are in [`super::bottleneck`].

use crate::nn::BatchNorm2D;
use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection};
use dfdx::prelude::*;

use super::bottleneck::{Bottleneck, DownBottleneck};
use super::{
    bn_act, eval_and_train, pool_features, staged, train_chain, Backbone, Dev, HeadName, Images,
    Rows, TrainTape,
};
use crate::nn::head_kinds::Pool;
use crate::nn::Conv2D;
use crate::ops::batchnorm::Act;
use crate::ops::{max_pool2d, Padding};

/// Basic residual block keeping `C` channels and the resolution: identity shortcut.
#[derive(Debug, Clone)]
pub struct BasicBlock<const C: usize, E: Dtype = f32, D: Storage<E> = Cpu> {
    pub conv1: Conv2D<C, C, 3, 1, 1, 1, E, D>,
    pub bn1: BatchNorm2D<C, E, D>,
    pub conv2: Conv2D<C, C, 3, 1, 1, 1, E, D>,
    pub bn2: BatchNorm2D<C, E, D>,
}

/// First block of layers 2–4: stride 2, `I` → `O` channels, 1×1 stride-2 conv + BN shortcut.
#[derive(Debug, Clone)]
pub struct DownBlock<const I: usize, const O: usize, E: Dtype = f32, D: Storage<E> = Cpu> {
    pub conv1: Conv2D<I, O, 3, 2, 1, 1, E, D>,
    pub bn1: BatchNorm2D<O, E, D>,
    pub conv2: Conv2D<O, O, 3, 1, 1, 1, E, D>,
    pub bn2: BatchNorm2D<O, E, D>,
    pub downsample: (Conv2D<I, O, 1, 2, 0, 1, E, D>, BatchNorm2D<O, E, D>),
}

impl<const C: usize, E: Dtype, D: Device<E>> TensorCollection<E, D> for BasicBlock<C, E, D> {
    type To<E2: Dtype, D2: Device<E2>> = BasicBlock<C, E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        v: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        v.visit_fields(
            (
                Self::module("conv1", |s| &s.conv1, |s| &mut s.conv1),
                Self::module("bn1", |s| &s.bn1, |s| &mut s.bn1),
                Self::module("conv2", |s| &s.conv2, |s| &mut s.conv2),
                Self::module("bn2", |s| &s.bn2, |s| &mut s.bn2),
            ),
            |(conv1, bn1, conv2, bn2)| BasicBlock {
                conv1,
                bn1,
                conv2,
                bn2,
            },
        )
    }
}

impl<const I: usize, const O: usize, E: Dtype, D: Device<E>> TensorCollection<E, D>
    for DownBlock<I, O, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = DownBlock<I, O, E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        v: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        v.visit_fields(
            (
                Self::module("conv1", |s| &s.conv1, |s| &mut s.conv1),
                Self::module("bn1", |s| &s.bn1, |s| &mut s.bn1),
                Self::module("conv2", |s| &s.conv2, |s| &mut s.conv2),
                Self::module("bn2", |s| &s.bn2, |s| &mut s.bn2),
                Self::module("downsample", |s| &s.downsample, |s| &mut s.downsample),
            ),
            |(conv1, bn1, conv2, bn2, downsample)| DownBlock {
                conv1,
                bn1,
                conv2,
                bn2,
                downsample,
            },
        )
    }
}

// relu(bn2(conv2(relu(bn1(conv1(x))))) + x), the ReLUs and the add fused into the BatchNorms.
// The input is used twice: the tape follows the main branch and the shortcut's gradient joins
// it by tensor id in the final BatchNorm.
macro_rules! basic_body {
    ($s:ident, $x:ident, $f:ident) => {{
        let (x, tape) = $x.split_tape();
        let y = $s.conv1.$f(x.clone().put_tape(tape));
        let y = bn_act!($s.bn1, $f, y, Act::Relu);
        bn_act!($s.bn2, $f, $s.conv2.$f(y), Act::Relu, residual = &x)
    }};
}
eval_and_train!([const C: usize] BasicBlock<C, f32, Cpu>, (usize, Const<C>, usize, usize) => (usize, Const<C>, usize, usize), basic_body);

// The shortcut (1×1 conv + BN) runs before bn2 so that bn2 can add it, fused with the ReLU.
macro_rules! down_body {
    ($s:ident, $x:ident, $f:ident) => {{
        let (x, tape) = $x.split_tape();
        let y = $s.conv1.$f(x.clone().put_tape(tape));
        let y = bn_act!($s.bn1, $f, y, Act::Relu);
        let (y, tape) = $s.conv2.$f(y).split_tape();
        let (shortcut, tape) = $s.downsample.$f(x.put_tape(tape)).split_tape();
        bn_act!(
            $s.bn2,
            $f,
            y.put_tape(tape),
            Act::Relu,
            residual = &shortcut
        )
    }};
}
eval_and_train!([const I: usize, const O: usize] DownBlock<I, O, f32, Cpu>, (usize, Const<I>, usize, usize) => (usize, Const<O>, usize, usize), down_body);

/// ResNet stem + four stages of blocks (`L1`..`L4` are tuples of blocks) + global average pool.
#[derive(Debug, Clone)]
pub struct ResNet<L1, L2, L3, L4, E: Dtype = f32, D: Storage<E> = Cpu> {
    pub conv1: Conv2D<3, 64, 7, 2, 3, 1, E, D>,
    pub bn1: BatchNorm2D<64, E, D>,
    pub layer1: L1,
    pub layer2: L2,
    pub layer3: L3,
    pub layer4: L4,
    /// Global pooling of the last feature map (`head.pool`); not a tensor, avg when built.
    pub pool: Pool,
}

impl<L1, L2, L3, L4, E, D> TensorCollection<E, D> for ResNet<L1, L2, L3, L4, E, D>
where
    E: Dtype,
    D: Device<E>,
    L1: TensorCollection<E, D>,
    L2: TensorCollection<E, D>,
    L3: TensorCollection<E, D>,
    L4: TensorCollection<E, D>,
{
    type To<E2: Dtype, D2: Device<E2>> =
        ResNet<L1::To<E2, D2>, L2::To<E2, D2>, L3::To<E2, D2>, L4::To<E2, D2>, E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        v: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        v.visit_fields(
            (
                Self::module("conv1", |s| &s.conv1, |s| &mut s.conv1),
                Self::module("bn1", |s| &s.bn1, |s| &mut s.bn1),
                Self::module("layer1", |s| &s.layer1, |s| &mut s.layer1),
                Self::module("layer2", |s| &s.layer2, |s| &mut s.layer2),
                Self::module("layer3", |s| &s.layer3, |s| &mut s.layer3),
                Self::module("layer4", |s| &s.layer4, |s| &mut s.layer4),
            ),
            |(conv1, bn1, layer1, layer2, layer3, layer4)| ResNet {
                conv1,
                bn1,
                layer1,
                layer2,
                layer3,
                layer4,
                pool: Pool::Avg,
            },
        )
    }
}

impl<L1, L2, L3, L4, E: Dtype, D: Storage<E>> HeadName for ResNet<L1, L2, L3, L4, E, D> {
    const HEAD: &'static str = "fc";
}

/// torchvision `resnet18`: stages of [2, 2, 2, 2] basic blocks.
pub type ResNet18<E = f32, D = Cpu> = ResNet<
    (BasicBlock<64, E, D>, BasicBlock<64, E, D>),
    (DownBlock<64, 128, E, D>, BasicBlock<128, E, D>),
    (DownBlock<128, 256, E, D>, BasicBlock<256, E, D>),
    (DownBlock<256, 512, E, D>, BasicBlock<512, E, D>),
    E,
    D,
>;

/// torchvision `resnet34`: stages of [3, 4, 6, 3] basic blocks.
pub type ResNet34<E = f32, D = Cpu> = ResNet<
    (
        BasicBlock<64, E, D>,
        BasicBlock<64, E, D>,
        BasicBlock<64, E, D>,
    ),
    (
        DownBlock<64, 128, E, D>,
        BasicBlock<128, E, D>,
        BasicBlock<128, E, D>,
        BasicBlock<128, E, D>,
    ),
    (
        DownBlock<128, 256, E, D>,
        BasicBlock<256, E, D>,
        BasicBlock<256, E, D>,
        BasicBlock<256, E, D>,
        BasicBlock<256, E, D>,
        BasicBlock<256, E, D>,
    ),
    (
        DownBlock<256, 512, E, D>,
        BasicBlock<512, E, D>,
        BasicBlock<512, E, D>,
    ),
    E,
    D,
>;

/// torchvision `resnet50`: stages of [3, 4, 6, 3] bottleneck blocks of widths 64, 128, 256,
/// 512 (4× that out), the stride on the 3×3 conv of each stage's first block.
pub type ResNet50<E = f32, D = Cpu> = ResNet<
    (
        DownBottleneck<64, 64, 256, 1, E, D>,
        Bottleneck<256, 64, E, D>,
        Bottleneck<256, 64, E, D>,
    ),
    (
        DownBottleneck<256, 128, 512, 2, E, D>,
        Bottleneck<512, 128, E, D>,
        Bottleneck<512, 128, E, D>,
        Bottleneck<512, 128, E, D>,
    ),
    (
        DownBottleneck<512, 256, 1024, 2, E, D>,
        Bottleneck<1024, 256, E, D>,
        Bottleneck<1024, 256, E, D>,
        Bottleneck<1024, 256, E, D>,
        Bottleneck<1024, 256, E, D>,
        Bottleneck<1024, 256, E, D>,
    ),
    (
        DownBottleneck<1024, 512, 2048, 2, E, D>,
        Bottleneck<2048, 512, E, D>,
        Bottleneck<2048, 512, E, D>,
    ),
    E,
    D,
>;

const RESNET_BLOCKS: &[&str] = &["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"];

macro_rules! resnet_body {
    ($s:ident, $x:ident, $f:ident) => {{
        let x = bn_act!($s.bn1, $f, $s.conv1.forward_first($x), Act::Relu);
        let x = max_pool2d(x, 3, 2, Padding::Symmetric(1));
        let x = $s.layer2.$f($s.layer1.$f(x));
        let x = $s.layer4.$f($s.layer3.$f(x));
        pool_features(x, $s.pool)
    }};
}

// Stages for partial freezing, one per entry of RESNET_BLOCKS (the stem's ReLU and max pool
// go with bn1).
macro_rules! r_conv1 {
    ($s:ident, $x:expr, $f:ident) => {
        $s.conv1.forward_first($x)
    };
}
macro_rules! r_bn1 {
    ($s:ident, $x:expr, $f:ident) => {
        max_pool2d(
            bn_act!($s.bn1, $f, $x, Act::Relu),
            3,
            2,
            Padding::Symmetric(1),
        )
    };
}
macro_rules! r_layer1 {
    ($s:ident, $x:expr, $f:ident) => {
        $s.layer1.$f($x)
    };
}
macro_rules! r_layer2 {
    ($s:ident, $x:expr, $f:ident) => {
        $s.layer2.$f($x)
    };
}
macro_rules! r_layer3 {
    ($s:ident, $x:expr, $f:ident) => {
        $s.layer3.$f($x)
    };
}
macro_rules! r_layer4 {
    ($s:ident, $x:expr, $f:ident) => {
        $s.layer4.$f($x)
    };
}

macro_rules! resnet_backbone {
    ($ty:ty, $name:literal, $features:literal) => {
        impl Backbone for $ty {
            const FEATURES: usize = $features;
            const NAME: &'static str = $name;
            const BLOCKS: &'static [&'static str] = RESNET_BLOCKS;
            fn build(dev: &Dev) -> Self {
                BuildModule::build(dev)
            }
            fn set_pool(&mut self, pool: Pool) {
                self.pool = pool;
            }
            fn forward_eval(&self, x: Images<3>) -> Rows {
                resnet_body!(self, x, forward)
            }
            fn forward_train(&mut self, x: Images<3, TrainTape>) -> Rows<TrainTape> {
                resnet_body!(self, x, forward_mut)
            }
            fn forward_train_frozen(&mut self, x: Images<3>, frozen: usize, grads: Gradients<f32, Dev>) -> Rows<TrainTape> {
                pool_features(staged!(self, x, frozen, grads, 0; r_conv1, r_bn1, r_layer1, r_layer2, r_layer3, r_layer4), self.pool)
            }
        }
    };
}
resnet_backbone!(ResNet18, "resnet18", 512);
resnet_backbone!(ResNet34, "resnet34", 512);
resnet_backbone!(ResNet50, "resnet50", 2048);
