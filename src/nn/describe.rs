//! What each layer reports to a model summary (`runner summary`): its output shape for one
//! image, its parameter count read off its real tensors, and its multiply-adds.
//!
//! Counting rule (torchvision's published GFLOPS and torchinfo's totals for ResNets follow it):
//! only convolutions and linear layers do multiply-adds —
//! conv `H′·W′·Cout·k·k·Cin/groups`, linear `in·out`. Bias additions, BatchNorm (an affine map
//! that folds into the preceding conv at inference), activations, pooling and residual adds
//! count 0: they are O(activations), not O(activations × weights).

use dfdx::prelude::*;

use super::conv::padding_of;
use super::{BatchNorm2D, Conv2D, LinearHead, MaxPool2D, ReLU6};
use crate::ops::geometry::window_1d;
use crate::ops::Padding;

/// Shape of one image-like activation: channels, height, width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Chw {
    pub c: usize,
    pub h: usize,
    pub w: usize,
}

impl Chw {
    pub fn new(c: usize, h: usize, w: usize) -> Self {
        Chw { c, h, w }
    }
    pub(crate) fn dims(self) -> Vec<usize> {
        vec![self.c, self.h, self.w]
    }
}

/// One line of a model summary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    /// Dotted path in PyTorch's naming (`layer1.0.conv1`); layers with tensors carry their
    /// state-dict prefix, so the name also says which `backbone.freeze` block holds them.
    pub name: String,
    /// PyTorch's class name for the layer (`Conv2d`, `BatchNorm2d`, `ReLU`, …).
    pub kind: &'static str,
    /// Output shape for one sample: `[C, H, W]`, or `[classes]` for a linear layer.
    pub output: Vec<usize>,
    /// Learnable parameters (BatchNorm's running statistics are buffers, not parameters).
    pub params: usize,
    /// Multiply-adds for one sample (see the module doc for what counts).
    pub mult_adds: u64,
}

/// Implemented by layers and blocks: appends their rows for one input of shape `input`,
/// named under `name`, and returns the output shape.
pub trait Describe {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw;
}

/// `parent.child`, or `child` at the top level.
pub fn join(parent: &str, child: &str) -> String {
    if parent.is_empty() {
        child.to_string()
    } else {
        format!("{parent}.{child}")
    }
}

/// A convolution's hyper-parameters on a given input: the one place its arithmetic lives, shared
/// by [`Conv2D`]'s rows and `runner summary --layer conv`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvLayer {
    pub input: Chw,
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: Padding,
    pub groups: usize,
    pub bias: bool,
}

impl ConvLayer {
    /// Checks what the formulas need: positive sizes, channels divisible by groups, a kernel
    /// that fits the padded input.
    pub fn validate(&self) -> Result<(), String> {
        let ConvLayer {
            input,
            out_channels,
            kernel,
            stride,
            padding,
            groups,
            ..
        } = *self;
        if input.c == 0
            || input.h == 0
            || input.w == 0
            || out_channels == 0
            || kernel == 0
            || stride == 0
            || groups == 0
        {
            return Err("channels, sizes, kernel, stride and groups must all be at least 1".into());
        }
        if input.c % groups != 0 || out_channels % groups != 0 {
            return Err(format!(
                "groups = {groups} must divide both the input channels ({}) and the output channels ({out_channels})",
                input.c
            ));
        }
        if let Padding::Symmetric(p) = padding {
            if input.h + 2 * p < kernel || input.w + 2 * p < kernel {
                return Err(format!(
                    "a {kernel}×{kernel} kernel does not fit a {}×{} input padded by {p}",
                    input.h, input.w
                ));
            }
        }
        Ok(())
    }

    pub fn output(&self) -> Chw {
        let (h, _) = window_1d(self.input.h, self.kernel, self.stride, self.padding);
        let (w, _) = window_1d(self.input.w, self.kernel, self.stride, self.padding);
        Chw::new(self.out_channels, h, w)
    }

    /// Weight elements: `k·k·Cin/groups·Cout`.
    pub(crate) fn weight_params(&self) -> usize {
        self.kernel * self.kernel * self.input.c / self.groups * self.out_channels
    }

    /// Weights plus `Cout` for a bias.
    pub fn params(&self) -> usize {
        self.weight_params() + if self.bias { self.out_channels } else { 0 }
    }

    /// `H′·W′·Cout·k·k·Cin/groups`: every output value is a dot product over one weight filter.
    pub(crate) fn mult_adds(&self) -> u64 {
        let out = self.output();
        (out.h * out.w) as u64 * self.weight_params() as u64
    }
}

impl<
        const I: usize,
        const O: usize,
        const K: usize,
        const S: usize,
        const P: usize,
        const G: usize,
    > Describe for Conv2D<I, O, K, S, P, G, f32, Cpu>
{
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        assert_eq!(
            input.c, I,
            "{name}: Conv2D<{I}, {O}> given {} channels",
            input.c
        );
        let layer = ConvLayer {
            input,
            out_channels: O,
            kernel: K,
            stride: S,
            padding: padding_of(P),
            groups: G,
            bias: false,
        };
        let params = self.weight.shape().num_elements();
        debug_assert_eq!(
            params,
            layer.params(),
            "{name}: weight tensor and formula disagree"
        );
        let out = layer.output();
        rows.push(LayerRow {
            name: name.to_string(),
            kind: "Conv2d",
            output: out.dims(),
            params,
            mult_adds: layer.mult_adds(),
        });
        out
    }
}

impl<const C: usize> Describe for BatchNorm2D<C, f32, Cpu> {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        assert_eq!(
            input.c, C,
            "{name}: BatchNorm2D<{C}> given {} channels",
            input.c
        );
        let params = self.scale.shape().num_elements() + self.bias.shape().num_elements();
        rows.push(LayerRow {
            name: name.to_string(),
            kind: "BatchNorm2d",
            output: input.dims(),
            params,
            mult_adds: 0,
        });
        input
    }
}

impl Describe for ReLU {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        rows.push(LayerRow {
            name: name.to_string(),
            kind: "ReLU",
            output: input.dims(),
            params: 0,
            mult_adds: 0,
        });
        input
    }
}

impl Describe for ReLU6 {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        rows.push(LayerRow {
            name: name.to_string(),
            kind: "ReLU6",
            output: input.dims(),
            params: 0,
            mult_adds: 0,
        });
        input
    }
}

impl<const K: usize, const S: usize, const P: usize> Describe for MaxPool2D<K, S, P> {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let (h, _) = window_1d(input.h, K, S, padding_of(P));
        let (w, _) = window_1d(input.w, K, S, padding_of(P));
        let out = Chw::new(input.c, h, w);
        rows.push(LayerRow {
            name: name.to_string(),
            kind: "MaxPool2d",
            output: out.dims(),
            params: 0,
            mult_adds: 0,
        });
        out
    }
}

/// Global average pooling to one value per channel (PyTorch's `AdaptiveAvgPool2d(1)`).
impl Describe for AvgPoolGlobal {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let out = Chw::new(input.c, 1, 1);
        rows.push(LayerRow {
            name: name.to_string(),
            kind: "AdaptiveAvgPool2d",
            output: out.dims(),
            params: 0,
            mult_adds: 0,
        });
        out
    }
}

/// Global pooling to one value per channel, as `head.pool` chose it (PyTorch's
/// `AdaptiveAvgPool2d(1)` / `AdaptiveMaxPool2d(1)`).
pub(crate) struct GlobalPool(pub crate::nn::head_kinds::Pool);

impl Describe for GlobalPool {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let out = Chw::new(input.c, 1, 1);
        rows.push(LayerRow {
            name: name.to_string(),
            kind: match self.0 {
                crate::nn::head_kinds::Pool::Avg => "AdaptiveAvgPool2d",
                crate::nn::head_kinds::Pool::Max => "AdaptiveMaxPool2d",
            },
            output: out.dims(),
            params: 0,
            mult_adds: 0,
        });
        out
    }
}

/// An MLP head's hidden layers, one row per `nn.Sequential` entry up to the Dropout before the
/// last linear layer (that one is the [`LinearHead`]'s row), named by index under `name`.
impl Describe for super::HiddenLayers<f32, Cpu> {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        use super::mlp_head::TorchLayer;
        let l = &self.layout;
        if l.widths.is_empty() {
            return input;
        }
        let features = input.c * input.h * input.w;
        assert_eq!(
            features, l.features,
            "{name}: MLP head of {} features given {features}",
            l.features
        );
        let mut width = features;
        let layers = l.torch_layers(0);
        for (i, layer) in layers[..layers.len() - 1].iter().enumerate() {
            let (kind, params, mult_adds) = match *layer {
                TorchLayer::Dropout => ("Dropout", 0, 0),
                TorchLayer::Linear(i, o) => {
                    width = o;
                    ("Linear", i * o + o, (i * o) as u64)
                }
                TorchLayer::BatchNorm1d(c) => ("BatchNorm1d", 2 * c, 0),
                TorchLayer::Activation(crate::nn::head_kinds::Activation::Relu, _) => {
                    ("ReLU", 0, 0)
                }
                TorchLayer::Activation(crate::nn::head_kinds::Activation::Gelu, _) => {
                    ("GELU", 0, 0)
                }
            };
            rows.push(LayerRow {
                name: join(name, &i.to_string()),
                kind,
                output: vec![width],
                params,
                mult_adds,
            });
        }
        Chw::new(width, 1, 1)
    }
}

/// The input is flattened (`C·H·W` features); the output is `[classes]`, returned as
/// `classes × 1 × 1`.
impl Describe for LinearHead<f32, Cpu> {
    fn describe(&self, name: &str, input: Chw, rows: &mut Vec<LayerRow>) -> Chw {
        let features = input.c * input.h * input.w;
        assert_eq!(
            features,
            self.features(),
            "{name}: linear layer of {} features given {features}",
            self.features()
        );
        let params = self.weight.shape().num_elements() + self.bias.shape().num_elements();
        let mult_adds = (self.features() * self.classes()) as u64;
        rows.push(LayerRow {
            name: name.to_string(),
            kind: "Linear",
            output: vec![self.classes()],
            params,
            mult_adds,
        });
        Chw::new(self.classes(), 1, 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conv_formulas_on_the_teaching_example() {
        let l = ConvLayer {
            input: Chw::new(10, 48, 64),
            out_channels: 20,
            kernel: 3,
            stride: 1,
            padding: Padding::Symmetric(0),
            groups: 1,
            bias: true,
        };
        assert_eq!(l.output(), Chw::new(20, 46, 62));
        assert_eq!(l.params(), 1_820);
        assert_eq!(l.mult_adds(), 5_133_600);
        let depthwise = ConvLayer {
            out_channels: 10,
            groups: 10,
            stride: 2,
            padding: Padding::Same,
            bias: false,
            ..l
        };
        assert_eq!(depthwise.output(), Chw::new(10, 24, 32));
        assert_eq!(depthwise.params(), 90);
        assert_eq!(depthwise.mult_adds(), 24 * 32 * 90);
        assert!(ConvLayer { groups: 3, ..l }
            .validate()
            .unwrap_err()
            .contains("groups = 3"));
        assert!(ConvLayer { kernel: 50, ..l }
            .validate()
            .unwrap_err()
            .contains("does not fit"));
    }

    #[test]
    fn a_conv_module_reports_its_real_tensor() {
        let dev = Cpu::default();
        let conv = dev.build_module::<super::super::builder::Conv2D<4, 8, 3, 2, 1, 2>, f32>();
        let mut rows = Vec::new();
        let out = conv.describe("c", Chw::new(4, 9, 9), &mut rows);
        assert_eq!(out, Chw::new(8, 5, 5));
        assert_eq!(rows[0].params, 8 * 2 * 9);
        assert_eq!(rows[0].mult_adds, 25 * 8 * 2 * 9);
    }
}
