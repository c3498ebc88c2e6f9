//! The bottleneck blocks of ResNet-50 in torchvision's layout (`conv1` 1×1 → `conv2` 3×3 →
//! `conv3` 1×1 with 4× expansion, `downsample.{0,1}` on the first block of each stage). The
//! stride sits on the 3×3 conv, as in torchvision's "ResNet v1.5" (the original paper put it on
//! the first 1×1), so torchvision's checkpoints compute what they computed there.

use crate::nn::BatchNorm2D;
use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection};
use dfdx::prelude::*;

use super::{bn_act, eval_and_train};
use crate::nn::Conv2D;
use crate::ops::batchnorm::Act;

/// Bottleneck keeping `C` = 4·`W` channels and the resolution, `W` channels inside: identity
/// shortcut.
#[derive(Debug, Clone)]
pub struct Bottleneck<const C: usize, const W: usize, E: Dtype = f32, D: Storage<E> = Cpu> {
    pub conv1: Conv2D<C, W, 1, 1, 0, 1, E, D>,
    pub bn1: BatchNorm2D<W, E, D>,
    pub conv2: Conv2D<W, W, 3, 1, 1, 1, E, D>,
    pub bn2: BatchNorm2D<W, E, D>,
    pub conv3: Conv2D<W, C, 1, 1, 0, 1, E, D>,
    pub bn3: BatchNorm2D<C, E, D>,
}

/// First bottleneck of a stage: `I` → `O` channels (`W` inside), stride `S` on the 3×3 conv,
/// and a 1×1 stride-`S` conv + BN shortcut (needed even at stride 1 in `layer1`, where the
/// channels go from 64 to 256).
#[derive(Debug, Clone)]
pub struct DownBottleneck<
    const I: usize,
    const W: usize,
    const O: usize,
    const S: usize,
    E: Dtype = f32,
    D: Storage<E> = Cpu,
> {
    pub conv1: Conv2D<I, W, 1, 1, 0, 1, E, D>,
    pub bn1: BatchNorm2D<W, E, D>,
    pub conv2: Conv2D<W, W, 3, S, 1, 1, E, D>,
    pub bn2: BatchNorm2D<W, E, D>,
    pub conv3: Conv2D<W, O, 1, 1, 0, 1, E, D>,
    pub bn3: BatchNorm2D<O, E, D>,
    pub downsample: (Conv2D<I, O, 1, S, 0, 1, E, D>, BatchNorm2D<O, E, D>),
}

impl<const C: usize, const W: usize, E: Dtype, D: Device<E>> TensorCollection<E, D>
    for Bottleneck<C, W, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = Bottleneck<C, W, E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        v: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        v.visit_fields(
            (
                Self::module("conv1", |s| &s.conv1, |s| &mut s.conv1),
                Self::module("bn1", |s| &s.bn1, |s| &mut s.bn1),
                Self::module("conv2", |s| &s.conv2, |s| &mut s.conv2),
                Self::module("bn2", |s| &s.bn2, |s| &mut s.bn2),
                Self::module("conv3", |s| &s.conv3, |s| &mut s.conv3),
                Self::module("bn3", |s| &s.bn3, |s| &mut s.bn3),
            ),
            |(conv1, bn1, conv2, bn2, conv3, bn3)| Bottleneck {
                conv1,
                bn1,
                conv2,
                bn2,
                conv3,
                bn3,
            },
        )
    }
}

impl<const I: usize, const W: usize, const O: usize, const S: usize, E: Dtype, D: Device<E>>
    TensorCollection<E, D> for DownBottleneck<I, W, O, S, E, D>
{
    type To<E2: Dtype, D2: Device<E2>> = DownBottleneck<I, W, O, S, E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        v: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        // dfdx takes at most six fields in a tuple; nested tuples visit in the same order
        v.visit_fields(
            (
                (
                    Self::module("conv1", |s| &s.conv1, |s| &mut s.conv1),
                    Self::module("bn1", |s| &s.bn1, |s| &mut s.bn1),
                    Self::module("conv2", |s| &s.conv2, |s| &mut s.conv2),
                    Self::module("bn2", |s| &s.bn2, |s| &mut s.bn2),
                    Self::module("conv3", |s| &s.conv3, |s| &mut s.conv3),
                    Self::module("bn3", |s| &s.bn3, |s| &mut s.bn3),
                ),
                Self::module("downsample", |s| &s.downsample, |s| &mut s.downsample),
            ),
            |((conv1, bn1, conv2, bn2, conv3, bn3), downsample)| DownBottleneck {
                conv1,
                bn1,
                conv2,
                bn2,
                conv3,
                bn3,
                downsample,
            },
        )
    }
}

// relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + x), the ReLUs and the add fused into
// the BatchNorms. As in the basic block, the tape follows the main branch and the shortcut's
// gradient joins it by tensor id in the last BatchNorm.
macro_rules! bottleneck_body {
    ($s:ident, $x:ident, $f:ident) => {{
        let (x, tape) = $x.split_tape();
        let y = $s.conv1.$f(x.clone().put_tape(tape));
        let y = bn_act!($s.bn1, $f, y, Act::Relu);
        let y = bn_act!($s.bn2, $f, $s.conv2.$f(y), Act::Relu);
        bn_act!($s.bn3, $f, $s.conv3.$f(y), Act::Relu, residual = &x)
    }};
}
eval_and_train!([const C: usize, const W: usize] Bottleneck<C, W, f32, Cpu>, (usize, Const<C>, usize, usize) => (usize, Const<C>, usize, usize), bottleneck_body);

// The shortcut (1×1 conv + BN) runs before bn3 so that bn3 can add it, fused with the ReLU.
macro_rules! down_bottleneck_body {
    ($s:ident, $x:ident, $f:ident) => {{
        let (x, tape) = $x.split_tape();
        let y = $s.conv1.$f(x.clone().put_tape(tape));
        let y = bn_act!($s.bn1, $f, y, Act::Relu);
        let y = bn_act!($s.bn2, $f, $s.conv2.$f(y), Act::Relu);
        let (y, tape) = $s.conv3.$f(y).split_tape();
        let (shortcut, tape) = $s.downsample.$f(x.put_tape(tape)).split_tape();
        bn_act!(
            $s.bn3,
            $f,
            y.put_tape(tape),
            Act::Relu,
            residual = &shortcut
        )
    }};
}
eval_and_train!([const I: usize, const W: usize, const O: usize, const S: usize] DownBottleneck<I, W, O, S, f32, Cpu>, (usize, Const<I>, usize, usize) => (usize, Const<O>, usize, usize), down_bottleneck_body);
