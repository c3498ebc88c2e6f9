//! EfficientNet-Lite0 in efficientnet_pytorch's layout: `_conv_stem`, `_bn0`,
//! `_blocks.{0..15}.{_expand_conv, _bn0, _depthwise_conv, _bn1, _project_conv, _bn2}` (block 0
//! has no expand conv), `_conv_head`, `_bn1`, head `_fc`.
//!
//! Lite variant: no squeeze-excitation, ReLU6 after the stem, expand, depthwise and head convs
//! (none after the projection), TensorFlow "SAME" padding, BatchNorm ε = 1e-3 (momentum 0.01,
//! efficientnet_pytorch's), a residual add where stride is 1 and the channel count is kept.

use crate::nn::BatchNorm2D;
use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection};
use dfdx::prelude::*;

use super::fold::{fold, Layers};
use super::{
    bn_act, eval_and_train, pool_features, set_batchnorm_hyper, staged, train_chain, Backbone, Dev,
    HeadName, Images, Rows, TrainTape,
};
use crate::nn::head_kinds::Pool;
use crate::nn::{Conv2D, SAME};
use crate::ops::batchnorm::Act;
use crate::ops::frozen::Layer;

/// Inverted residual block: 1×1 expand `I`→`X`, depthwise `K`×`K` stride `S`, 1×1 project `X`→`O`.
#[derive(Debug, Clone)]
pub struct MBConv<
    const I: usize,
    const X: usize,
    const O: usize,
    const K: usize,
    const S: usize,
    E: Dtype = f32,
    D: Storage<E> = Cpu,
> {
    pub _expand_conv: Conv2D<I, X, 1, 1, 0, 1, E, D>,
    pub _bn0: BatchNorm2D<X, E, D>,
    pub _depthwise_conv: Conv2D<X, X, K, S, SAME, X, E, D>,
    pub _bn1: BatchNorm2D<X, E, D>,
    pub _project_conv: Conv2D<X, O, 1, 1, 0, 1, E, D>,
    pub _bn2: BatchNorm2D<O, E, D>,
}

/// Block without expansion (expand ratio 1, block 0): depthwise then project.
#[derive(Debug, Clone)]
pub struct DwBlock<
    const C: usize,
    const O: usize,
    const K: usize,
    const S: usize,
    E: Dtype = f32,
    D: Storage<E> = Cpu,
> {
    pub _depthwise_conv: Conv2D<C, C, K, S, SAME, C, E, D>,
    pub _bn1: BatchNorm2D<C, E, D>,
    pub _project_conv: Conv2D<C, O, 1, 1, 0, 1, E, D>,
    pub _bn2: BatchNorm2D<O, E, D>,
}

impl<
        const I: usize,
        const X: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        E: Dtype,
        D: Device<E>,
    > TensorCollection<E, D> for MBConv<I, X, O, K, S, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = MBConv<I, X, O, K, S, E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        v: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        v.visit_fields(
            (
                Self::module("_expand_conv", |s| &s._expand_conv, |s| &mut s._expand_conv),
                Self::module("_bn0", |s| &s._bn0, |s| &mut s._bn0),
                Self::module(
                    "_depthwise_conv",
                    |s| &s._depthwise_conv,
                    |s| &mut s._depthwise_conv,
                ),
                Self::module("_bn1", |s| &s._bn1, |s| &mut s._bn1),
                Self::module(
                    "_project_conv",
                    |s| &s._project_conv,
                    |s| &mut s._project_conv,
                ),
                Self::module("_bn2", |s| &s._bn2, |s| &mut s._bn2),
            ),
            |(_expand_conv, _bn0, _depthwise_conv, _bn1, _project_conv, _bn2)| MBConv {
                _expand_conv,
                _bn0,
                _depthwise_conv,
                _bn1,
                _project_conv,
                _bn2,
            },
        )
    }
}

impl<const C: usize, const O: usize, const K: usize, const S: usize, E: Dtype, D: Device<E>>
    TensorCollection<E, D> for DwBlock<C, O, K, S, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = DwBlock<C, O, K, S, E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        v: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        v.visit_fields(
            (
                Self::module(
                    "_depthwise_conv",
                    |s| &s._depthwise_conv,
                    |s| &mut s._depthwise_conv,
                ),
                Self::module("_bn1", |s| &s._bn1, |s| &mut s._bn1),
                Self::module(
                    "_project_conv",
                    |s| &s._project_conv,
                    |s| &mut s._project_conv,
                ),
                Self::module("_bn2", |s| &s._bn2, |s| &mut s._bn2),
            ),
            |(_depthwise_conv, _bn1, _project_conv, _bn2)| DwBlock {
                _depthwise_conv,
                _bn1,
                _project_conv,
                _bn2,
            },
        )
    }
}

/// Adds the block input when stride is 1 and channels are kept. `I == O` is only known as a
/// value, so the input is re-typed with a (free, contiguous) reshape.
macro_rules! skip_add {
    ($y:expr, $x:expr, $i:expr, $o:expr, $s:expr) => {{
        let y = $y;
        if $s == 1 && $i == $o {
            let shape = *y.shape();
            y + $x.reshape_like(&shape)
        } else {
            y
        }
    }};
}

macro_rules! mbconv_body {
    ($s:ident, $x:ident, $f:ident) => {{
        let (x, tape) = $x.split_tape();
        let y = bn_act!(
            $s._bn0,
            $f,
            $s._expand_conv.$f(x.clone().put_tape(tape)),
            Act::Relu6
        );
        let y = bn_act!($s._bn1, $f, $s._depthwise_conv.$f(y), Act::Relu6);
        skip_add!($s._bn2.$f($s._project_conv.$f(y)), x, I, O, S)
    }};
}
eval_and_train!(
    [const I: usize, const X: usize, const O: usize, const K: usize, const S: usize]
    MBConv<I, X, O, K, S, f32, Cpu>, (usize, Const<I>, usize, usize) => (usize, Const<O>, usize, usize), mbconv_body
);

macro_rules! dw_body {
    ($s:ident, $x:ident, $f:ident) => {{
        let (x, tape) = $x.split_tape();
        let y = bn_act!(
            $s._bn1,
            $f,
            $s._depthwise_conv.$f(x.clone().put_tape(tape)),
            Act::Relu6
        );
        skip_add!($s._bn2.$f($s._project_conv.$f(y)), x, C, O, S)
    }};
}
eval_and_train!(
    [const C: usize, const O: usize, const K: usize, const S: usize]
    DwBlock<C, O, K, S, f32, Cpu>, (usize, Const<C>, usize, usize) => (usize, Const<O>, usize, usize), dw_body
);

impl<const I: usize, const X: usize, const O: usize, const K: usize, const S: usize>
    MBConv<I, X, O, K, S, f32, Cpu>
{
    fn fold_into(&self, l: &mut Layers) {
        let x = l.last();
        let e = l.push(fold(&self._expand_conv, &self._bn0), x, None, Act::Relu6);
        let d = l.push(fold(&self._depthwise_conv, &self._bn1), e, None, Act::Relu6);
        let skip = (S == 1 && I == O).then_some(x);
        l.push(
            fold(&self._project_conv, &self._bn2),
            d,
            skip,
            Act::Identity,
        );
    }
}

impl<const C: usize, const O: usize, const K: usize, const S: usize> DwBlock<C, O, K, S, f32, Cpu> {
    fn fold_into(&self, l: &mut Layers) {
        let x = l.last();
        let d = l.push(fold(&self._depthwise_conv, &self._bn1), x, None, Act::Relu6);
        let skip = (S == 1 && C == O).then_some(x);
        l.push(
            fold(&self._project_conv, &self._bn2),
            d,
            skip,
            Act::Identity,
        );
    }
}

/// The 16 blocks of Lite0 (channels, expansion, kernel, stride read off the ImageNet weights;
/// strides [1,2,1,2,1,2,1,1,1,1,1,2,1,1,1,1]).
#[derive(Debug, Clone)]
pub struct LiteBlocks<E: Dtype = f32, D: Storage<E> = Cpu> {
    pub b0: DwBlock<32, 16, 3, 1, E, D>,
    pub b1: MBConv<16, 96, 24, 3, 2, E, D>,
    pub b2: MBConv<24, 144, 24, 3, 1, E, D>,
    pub b3: MBConv<24, 144, 40, 5, 2, E, D>,
    pub b4: MBConv<40, 240, 40, 5, 1, E, D>,
    pub b5: MBConv<40, 240, 80, 3, 2, E, D>,
    pub b6: MBConv<80, 480, 80, 3, 1, E, D>,
    pub b7: MBConv<80, 480, 80, 3, 1, E, D>,
    pub b8: MBConv<80, 480, 112, 5, 1, E, D>,
    pub b9: MBConv<112, 672, 112, 5, 1, E, D>,
    pub b10: MBConv<112, 672, 112, 5, 1, E, D>,
    pub b11: MBConv<112, 672, 192, 5, 2, E, D>,
    pub b12: MBConv<192, 1152, 192, 5, 1, E, D>,
    pub b13: MBConv<192, 1152, 192, 5, 1, E, D>,
    pub b14: MBConv<192, 1152, 192, 5, 1, E, D>,
    pub b15: MBConv<192, 1152, 320, 3, 1, E, D>,
}

impl<E: Dtype, D: Device<E>> TensorCollection<E, D> for LiteBlocks<E, D> {
    type To<E2: Dtype, D2: Device<E2>> = LiteBlocks<E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        v: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        // dfdx implements field lists for tuples of up to six: group them, names stay flat.
        v.visit_fields(
            (
                (
                    Self::module("0", |s| &s.b0, |s| &mut s.b0),
                    Self::module("1", |s| &s.b1, |s| &mut s.b1),
                    Self::module("2", |s| &s.b2, |s| &mut s.b2),
                    Self::module("3", |s| &s.b3, |s| &mut s.b3),
                    Self::module("4", |s| &s.b4, |s| &mut s.b4),
                    Self::module("5", |s| &s.b5, |s| &mut s.b5),
                ),
                (
                    Self::module("6", |s| &s.b6, |s| &mut s.b6),
                    Self::module("7", |s| &s.b7, |s| &mut s.b7),
                    Self::module("8", |s| &s.b8, |s| &mut s.b8),
                    Self::module("9", |s| &s.b9, |s| &mut s.b9),
                    Self::module("10", |s| &s.b10, |s| &mut s.b10),
                    Self::module("11", |s| &s.b11, |s| &mut s.b11),
                ),
                (
                    Self::module("12", |s| &s.b12, |s| &mut s.b12),
                    Self::module("13", |s| &s.b13, |s| &mut s.b13),
                    Self::module("14", |s| &s.b14, |s| &mut s.b14),
                    Self::module("15", |s| &s.b15, |s| &mut s.b15),
                ),
            ),
            |((b0, b1, b2, b3, b4, b5), (b6, b7, b8, b9, b10, b11), (b12, b13, b14, b15))| {
                LiteBlocks {
                    b0,
                    b1,
                    b2,
                    b3,
                    b4,
                    b5,
                    b6,
                    b7,
                    b8,
                    b9,
                    b10,
                    b11,
                    b12,
                    b13,
                    b14,
                    b15,
                }
            },
        )
    }
}

macro_rules! blocks_body {
    ($s:ident, $x:ident, $f:ident) => {{
        let x = $s.b3.$f($s.b2.$f($s.b1.$f($s.b0.$f($x))));
        let x = $s.b7.$f($s.b6.$f($s.b5.$f($s.b4.$f(x))));
        let x = $s.b11.$f($s.b10.$f($s.b9.$f($s.b8.$f(x))));
        $s.b15.$f($s.b14.$f($s.b13.$f($s.b12.$f(x))))
    }};
}
eval_and_train!([] LiteBlocks<f32, Cpu>, (usize, Const<32>, usize, usize) => (usize, Const<320>, usize, usize), blocks_body);

/// EfficientNet-Lite0 backbone (1280 pooled features).
#[derive(Debug, Clone)]
pub struct EfficientNetLite0<E: Dtype = f32, D: Storage<E> = Cpu> {
    pub _conv_stem: Conv2D<3, 32, 3, 2, SAME, 1, E, D>,
    pub _bn0: BatchNorm2D<32, E, D>,
    pub _blocks: LiteBlocks<E, D>,
    pub _conv_head: Conv2D<320, 1280, 1, 1, 0, 1, E, D>,
    pub _bn1: BatchNorm2D<1280, E, D>,
    /// Global pooling of the last feature map (`head.pool`); not a tensor, avg when built.
    pub pool: Pool,
}

impl<E: Dtype, D: Device<E>> TensorCollection<E, D> for EfficientNetLite0<E, D> {
    type To<E2: Dtype, D2: Device<E2>> = EfficientNetLite0<E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        v: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        v.visit_fields(
            (
                Self::module("_conv_stem", |s| &s._conv_stem, |s| &mut s._conv_stem),
                Self::module("_bn0", |s| &s._bn0, |s| &mut s._bn0),
                Self::module("_blocks", |s| &s._blocks, |s| &mut s._blocks),
                Self::module("_conv_head", |s| &s._conv_head, |s| &mut s._conv_head),
                Self::module("_bn1", |s| &s._bn1, |s| &mut s._bn1),
            ),
            |(_conv_stem, _bn0, _blocks, _conv_head, _bn1)| EfficientNetLite0 {
                _conv_stem,
                _bn0,
                _blocks,
                _conv_head,
                _bn1,
                pool: Pool::Avg,
            },
        )
    }
}

impl<E: Dtype, D: Storage<E>> HeadName for EfficientNetLite0<E, D> {
    const HEAD: &'static str = "_fc";
}

macro_rules! lite0_body {
    ($s:ident, $x:ident, $f:ident) => {{
        let x = bn_act!($s._bn0, $f, $s._conv_stem.forward_first($x), Act::Relu6);
        let x = $s._blocks.$f(x);
        pool_features(
            bn_act!($s._bn1, $f, $s._conv_head.$f(x), Act::Relu6),
            $s.pool,
        )
    }};
}

// Stages for partial freezing, one per backbone entry of BLOCKS (ReLU6 goes with the BatchNorm).
macro_rules! e_stem {
    ($s:ident, $x:expr, $f:ident) => {
        $s._conv_stem.forward_first($x)
    };
}
macro_rules! e_bn0 {
    ($s:ident, $x:expr, $f:ident) => {
        bn_act!($s._bn0, $f, $x, Act::Relu6)
    };
}
macro_rules! e_b0 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b0.$f($x)
    };
}
macro_rules! e_b1 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b1.$f($x)
    };
}
macro_rules! e_b2 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b2.$f($x)
    };
}
macro_rules! e_b3 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b3.$f($x)
    };
}
macro_rules! e_b4 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b4.$f($x)
    };
}
macro_rules! e_b5 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b5.$f($x)
    };
}
macro_rules! e_b6 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b6.$f($x)
    };
}
macro_rules! e_b7 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b7.$f($x)
    };
}
macro_rules! e_b8 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b8.$f($x)
    };
}
macro_rules! e_b9 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b9.$f($x)
    };
}
macro_rules! e_b10 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b10.$f($x)
    };
}
macro_rules! e_b11 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b11.$f($x)
    };
}
macro_rules! e_b12 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b12.$f($x)
    };
}
macro_rules! e_b13 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b13.$f($x)
    };
}
macro_rules! e_b14 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b14.$f($x)
    };
}
macro_rules! e_b15 {
    ($s:ident, $x:expr, $f:ident) => {
        $s._blocks.b15.$f($x)
    };
}
macro_rules! e_head {
    ($s:ident, $x:expr, $f:ident) => {
        $s._conv_head.$f($x)
    };
}
macro_rules! e_bn1 {
    ($s:ident, $x:expr, $f:ident) => {
        bn_act!($s._bn1, $f, $x, Act::Relu6)
    };
}

impl Backbone for EfficientNetLite0 {
    const FEATURES: usize = 1280;
    const NAME: &'static str = "efficientnet_lite0";
    const BLOCKS: &'static [&'static str] = &[
        "_conv_stem",
        "_bn0",
        "_blocks.0",
        "_blocks.1",
        "_blocks.2",
        "_blocks.3",
        "_blocks.4",
        "_blocks.5",
        "_blocks.6",
        "_blocks.7",
        "_blocks.8",
        "_blocks.9",
        "_blocks.10",
        "_blocks.11",
        "_blocks.12",
        "_blocks.13",
        "_blocks.14",
        "_blocks.15",
        "_conv_head",
        "_bn1",
        "_fc",
    ];
    fn build(dev: &Dev) -> Self {
        let mut m: Self = BuildModule::build(dev);
        set_batchnorm_hyper(&mut m, 1e-3, 0.01);
        m
    }
    fn set_pool(&mut self, pool: Pool) {
        self.pool = pool;
    }
    fn forward_eval(&self, x: Images<3>) -> Rows {
        lite0_body!(self, x, forward)
    }
    fn frozen_layers(&self) -> Option<Vec<Layer>> {
        let mut l = Layers::default();
        l.push(fold(&self._conv_stem, &self._bn0), 0, None, Act::Relu6);
        let b = &self._blocks;
        b.b0.fold_into(&mut l);
        b.b1.fold_into(&mut l);
        b.b2.fold_into(&mut l);
        b.b3.fold_into(&mut l);
        b.b4.fold_into(&mut l);
        b.b5.fold_into(&mut l);
        b.b6.fold_into(&mut l);
        b.b7.fold_into(&mut l);
        b.b8.fold_into(&mut l);
        b.b9.fold_into(&mut l);
        b.b10.fold_into(&mut l);
        b.b11.fold_into(&mut l);
        b.b12.fold_into(&mut l);
        b.b13.fold_into(&mut l);
        b.b14.fold_into(&mut l);
        b.b15.fold_into(&mut l);
        let x = l.last();
        l.push(fold(&self._conv_head, &self._bn1), x, None, Act::Relu6);
        Some(l.0)
    }
    fn forward_train(&mut self, x: Images<3, TrainTape>) -> Rows<TrainTape> {
        lite0_body!(self, x, forward_mut)
    }
    fn forward_train_frozen(
        &mut self,
        x: Images<3>,
        frozen: usize,
        grads: Gradients<f32, Dev>,
    ) -> Rows<TrainTape> {
        pool_features(
            staged!(self, x, frozen, grads, 0;
            e_stem, e_bn0, e_b0, e_b1, e_b2, e_b3, e_b4, e_b5, e_b6, e_b7, e_b8, e_b9, e_b10, e_b11, e_b12, e_b13,
            e_b14, e_b15, e_head, e_bn1),
            self.pool,
        )
    }
}
