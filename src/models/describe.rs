//! Per-layer descriptions of the backbones for `runner summary`: each block walks its real
//! layers in forward order (so parameter counts come from the tensors the model trains) and
//! names them like the PyTorch module tree. Parameter-free layers (activations, pooling) get
//! the names torchvision / efficientnet_pytorch give them where those have one.

use dfdx::prelude::*;

use super::bottleneck::{Bottleneck, DownBottleneck};
use super::efficientnet::{DwBlock, LiteBlocks, MBConv};
use super::resnet::{BasicBlock, DownBlock, ResNet};
use super::{Backbone, Classifier, EfficientNetLite0, SmallCnn};
use crate::nn::describe::{join, Chw, Describe, GlobalPool, LayerRow};
use crate::nn::{MaxPool2D, ReLU6};

/// Rows of a whole classifier (backbone, then its head under the state-dict head name) for one
/// image of shape `input`.
pub(crate) fn describe_classifier<B: Backbone>(model: &Classifier<B>, input: Chw) -> Vec<LayerRow> {
    let mut rows = Vec::new();
    model.describe("", input, &mut rows);
    rows
}

impl<B: Backbone> Describe for Classifier<B> {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let features = self.backbone.describe(name, input, rows);
        let head = join(name, B::HEAD);
        let x = self.hidden.describe(&head, features, rows);
        let last = self.hidden.layout.last_linear(&head);
        self.head.describe(&last, x, rows)
    }
}

/// Sequential stages (`layer1 = (block, block)`): children are named by index, as in
/// `nn.Sequential`.
macro_rules! describe_tuple {
    ($($m:ident $i:tt),+) => {
        impl<$($m: Describe),+> Describe for ($($m,)+) {
            fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
                let x = input;
                $(let x = self.$i.describe(&join(name, stringify!($i)), x, rows);)+
                x
            }
        }
    };
}
describe_tuple!(A 0, B 1);
describe_tuple!(A 0, B 1, C 2);
describe_tuple!(A 0, B 1, C 2, D 3);
describe_tuple!(A 0, B 1, C 2, D 3, E 4);
describe_tuple!(A 0, B 1, C 2, D 3, E 4, F 5);

/// torchvision's `BasicBlock` applies its one `relu` module twice: after `bn1`, and after the
/// residual add.
impl<const C: usize> Describe for BasicBlock<C, f32, Cpu> {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let x = self.conv1.describe(&join(name, "conv1"), input, rows);
        let x = self.bn1.describe(&join(name, "bn1"), x, rows);
        let x = ReLU.describe(&join(name, "relu"), x, rows);
        let x = self.conv2.describe(&join(name, "conv2"), x, rows);
        let x = self.bn2.describe(&join(name, "bn2"), x, rows);
        ReLU.describe(&join(name, "relu"), x, rows)
    }
}

/// A downsampling block's end: the shortcut (`downsample.0` conv, `downsample.1` BatchNorm) of
/// the block's `input`, which must meet the main branch's shape `main`, then the ReLU after the
/// add.
fn shortcut_add<C: Describe, B: Describe>(
    downsample: &(C, B),
    name: &str,
    input: Chw,
    main: Chw,
    rows: &mut Vec<LayerRow>,
) -> Chw {
    let s = downsample
        .0
        .describe(&join(name, "downsample.0"), input, rows);
    let s = downsample.1.describe(&join(name, "downsample.1"), s, rows);
    assert_eq!(s, main, "{name}: shortcut and main branch shapes differ");
    ReLU.describe(&join(name, "relu"), main, rows)
}

impl<const I: usize, const O: usize> Describe for DownBlock<I, O, f32, Cpu> {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let x = self.conv1.describe(&join(name, "conv1"), input, rows);
        let x = self.bn1.describe(&join(name, "bn1"), x, rows);
        let x = ReLU.describe(&join(name, "relu"), x, rows);
        let x = self.conv2.describe(&join(name, "conv2"), x, rows);
        let x = self.bn2.describe(&join(name, "bn2"), x, rows);
        shortcut_add(&self.downsample, name, input, x, rows)
    }
}

/// torchvision's `Bottleneck`, like its `BasicBlock`, applies its one `relu` module after
/// each of its first two BatchNorms and after the residual add.
impl<const C: usize, const W: usize> Describe for Bottleneck<C, W, f32, Cpu> {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let x = self.conv1.describe(&join(name, "conv1"), input, rows);
        let x = self.bn1.describe(&join(name, "bn1"), x, rows);
        let x = ReLU.describe(&join(name, "relu"), x, rows);
        let x = self.conv2.describe(&join(name, "conv2"), x, rows);
        let x = self.bn2.describe(&join(name, "bn2"), x, rows);
        let x = ReLU.describe(&join(name, "relu"), x, rows);
        let x = self.conv3.describe(&join(name, "conv3"), x, rows);
        let x = self.bn3.describe(&join(name, "bn3"), x, rows);
        ReLU.describe(&join(name, "relu"), x, rows)
    }
}

impl<const I: usize, const W: usize, const O: usize, const S: usize> Describe
    for DownBottleneck<I, W, O, S, f32, Cpu>
{
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let x = self.conv1.describe(&join(name, "conv1"), input, rows);
        let x = self.bn1.describe(&join(name, "bn1"), x, rows);
        let x = ReLU.describe(&join(name, "relu"), x, rows);
        let x = self.conv2.describe(&join(name, "conv2"), x, rows);
        let x = self.bn2.describe(&join(name, "bn2"), x, rows);
        let x = ReLU.describe(&join(name, "relu"), x, rows);
        let x = self.conv3.describe(&join(name, "conv3"), x, rows);
        let x = self.bn3.describe(&join(name, "bn3"), x, rows);
        shortcut_add(&self.downsample, name, input, x, rows)
    }
}

impl<L1: Describe, L2: Describe, L3: Describe, L4: Describe> Describe
    for ResNet<L1, L2, L3, L4, f32, Cpu>
{
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let x = self.conv1.describe(&join(name, "conv1"), input, rows);
        let x = self.bn1.describe(&join(name, "bn1"), x, rows);
        let x = ReLU.describe(&join(name, "relu"), x, rows);
        let x = MaxPool2D::<3, 2, 1>.describe(&join(name, "maxpool"), x, rows);
        let x = self.layer1.describe(&join(name, "layer1"), x, rows);
        let x = self.layer2.describe(&join(name, "layer2"), x, rows);
        let x = self.layer3.describe(&join(name, "layer3"), x, rows);
        let x = self.layer4.describe(&join(name, "layer4"), x, rows);
        GlobalPool(self.pool).describe(&join(name, "avgpool"), x, rows)
    }
}

impl Describe for SmallCnn<f32, Cpu> {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let x = self.conv1.describe(&join(name, "conv1"), input, rows);
        let x = self.bn1.describe(&join(name, "bn1"), x, rows);
        let x = ReLU.describe(&join(name, "relu1"), x, rows);
        let x = MaxPool2D::<2, 2, 0>.describe(&join(name, "pool1"), x, rows);
        let x = self.conv2.describe(&join(name, "conv2"), x, rows);
        let x = self.bn2.describe(&join(name, "bn2"), x, rows);
        let x = ReLU.describe(&join(name, "relu2"), x, rows);
        let x = MaxPool2D::<2, 2, 0>.describe(&join(name, "pool2"), x, rows);
        let x = self.conv3.describe(&join(name, "conv3"), x, rows);
        let x = self.bn3.describe(&join(name, "bn3"), x, rows);
        let x = ReLU.describe(&join(name, "relu3"), x, rows);
        GlobalPool(self.pool).describe(&join(name, "avgpool"), x, rows)
    }
}

impl<const I: usize, const X: usize, const O: usize, const K: usize, const S: usize> Describe
    for MBConv<I, X, O, K, S, f32, Cpu>
{
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let x = self
            ._expand_conv
            .describe(&join(name, "_expand_conv"), input, rows);
        let x = self._bn0.describe(&join(name, "_bn0"), x, rows);
        let x = ReLU6.describe(&join(name, "_relu6"), x, rows);
        let x = self
            ._depthwise_conv
            .describe(&join(name, "_depthwise_conv"), x, rows);
        let x = self._bn1.describe(&join(name, "_bn1"), x, rows);
        let x = ReLU6.describe(&join(name, "_relu6"), x, rows);
        let x = self
            ._project_conv
            .describe(&join(name, "_project_conv"), x, rows);
        self._bn2.describe(&join(name, "_bn2"), x, rows)
    }
}

impl<const C: usize, const O: usize, const K: usize, const S: usize> Describe
    for DwBlock<C, O, K, S, f32, Cpu>
{
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let x = self
            ._depthwise_conv
            .describe(&join(name, "_depthwise_conv"), input, rows);
        let x = self._bn1.describe(&join(name, "_bn1"), x, rows);
        let x = ReLU6.describe(&join(name, "_relu6"), x, rows);
        let x = self
            ._project_conv
            .describe(&join(name, "_project_conv"), x, rows);
        self._bn2.describe(&join(name, "_bn2"), x, rows)
    }
}

impl Describe for LiteBlocks<f32, Cpu> {
    fn describe(&self, name: &str, x: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let b = |i: usize| join(name, &i.to_string());
        let x = self.b0.describe(&b(0), x, rows);
        let x = self.b1.describe(&b(1), x, rows);
        let x = self.b2.describe(&b(2), x, rows);
        let x = self.b3.describe(&b(3), x, rows);
        let x = self.b4.describe(&b(4), x, rows);
        let x = self.b5.describe(&b(5), x, rows);
        let x = self.b6.describe(&b(6), x, rows);
        let x = self.b7.describe(&b(7), x, rows);
        let x = self.b8.describe(&b(8), x, rows);
        let x = self.b9.describe(&b(9), x, rows);
        let x = self.b10.describe(&b(10), x, rows);
        let x = self.b11.describe(&b(11), x, rows);
        let x = self.b12.describe(&b(12), x, rows);
        let x = self.b13.describe(&b(13), x, rows);
        let x = self.b14.describe(&b(14), x, rows);
        self.b15.describe(&b(15), x, rows)
    }
}

impl Describe for EfficientNetLite0<f32, Cpu> {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let x = self
            ._conv_stem
            .describe(&join(name, "_conv_stem"), input, rows);
        let x = self._bn0.describe(&join(name, "_bn0"), x, rows);
        let x = ReLU6.describe(&join(name, "_relu6"), x, rows);
        let x = self._blocks.describe(&join(name, "_blocks"), x, rows);
        let x = self._conv_head.describe(&join(name, "_conv_head"), x, rows);
        let x = self._bn1.describe(&join(name, "_bn1"), x, rows);
        let x = ReLU6.describe(&join(name, "_relu6"), x, rows);
        GlobalPool(self.pool).describe(&join(name, "_avg_pooling"), x, rows)
    }
}
