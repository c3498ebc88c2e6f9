//! Each architecture as ONNX nodes over its state-dict names: the layers, strides and paddings
//! of `crate::models` (torchvision's ResNet and efficientnet_pytorch's Lite0 layouts), BatchNorm
//! in eval mode on its running statistics.

use super::graph::{Attr, Graph};
use crate::models::HeadConfig;
use crate::nn::head_kinds::{Activation, Pool};
use crate::spec::BackboneName;

/// A value in the graph and its spatial size.
#[derive(Clone)]
struct Map {
    name: String,
    h: usize,
    w: usize,
}

/// How a convolution pads.
#[derive(Clone, Copy)]
enum Pad {
    Symmetric(usize),
    /// TensorFlow's SAME: total `max((ceil(in/s) − 1)·s + k − in, 0)`, the smaller half first.
    Same,
}

fn pads(h: usize, w: usize, k: usize, s: usize, pad: Pad) -> ([i64; 4], usize, usize) {
    match pad {
        Pad::Symmetric(p) => {
            let out = |n: usize| (n + 2 * p - k) / s + 1;
            ([p as i64; 4], out(h), out(w))
        }
        Pad::Same => {
            let one = |n: usize| {
                let out = n.div_ceil(s);
                let total = ((out - 1) * s + k).saturating_sub(n);
                (total / 2, total - total / 2, out)
            };
            let ((t, b, oh), (l, r, ow)) = (one(h), one(w));
            ([t as i64, l as i64, b as i64, r as i64], oh, ow)
        }
    }
}

struct Net<'g, 'w> {
    g: &'g mut Graph<'w>,
    /// BatchNorm ε of the backbone.
    eps: f32,
}

impl Net<'_, '_> {
    fn conv(
        &mut self,
        x: &Map,
        prefix: &str,
        k: usize,
        s: usize,
        pad: Pad,
        groups: usize,
    ) -> Result<Map, String> {
        let (p, h, w) = pads(x.h, x.w, k, s, pad);
        let weight = self.g.weight(&format!("{prefix}.weight"))?;
        let mut inputs = vec![x.name.clone(), weight];
        let bias = format!("{prefix}.bias");
        if self.g.has(&bias) {
            inputs.push(self.g.weight(&bias)?);
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        let name = self.g.node(
            "Conv",
            &inputs,
            vec![
                ("kernel_shape", Attr::Ints(vec![k as i64, k as i64])),
                ("strides", Attr::Ints(vec![s as i64, s as i64])),
                ("pads", Attr::Ints(p.to_vec())),
                ("group", Attr::Int(groups as i64)),
            ],
        );
        Ok(Map { name, h, w })
    }

    /// Eval-mode BatchNorm (`prefix.{weight,bias,running_mean,running_var}`), on maps or rows.
    fn bn(&mut self, x: &str, prefix: &str, eps: f32) -> Result<String, String> {
        let mut inputs = vec![x.to_string()];
        for part in ["weight", "bias", "running_mean", "running_var"] {
            inputs.push(self.g.weight(&format!("{prefix}.{part}"))?);
        }
        let inputs: Vec<&str> = inputs.iter().map(String::as_str).collect();
        Ok(self.g.node(
            "BatchNormalization",
            &inputs,
            vec![("epsilon", Attr::Float(eps))],
        ))
    }

    fn conv_bn(
        &mut self,
        x: &Map,
        conv: &str,
        bn: &str,
        (k, s, pad, groups): (usize, usize, Pad, usize),
    ) -> Result<Map, String> {
        let c = self.conv(x, conv, k, s, pad, groups)?;
        let name = self.bn(&c.name, bn, self.eps)?;
        Ok(Map { name, ..c })
    }

    fn relu(&mut self, x: &Map) -> Map {
        let name = self.g.node("Relu", &[&x.name], vec![]);
        Map { name, ..x.clone() }
    }

    fn relu6(&mut self, x: &Map) -> Map {
        let (lo, hi) = ("relu6_min".to_string(), "relu6_max".to_string());
        if !self.g.has_initializer(&lo) {
            self.g.constant(&lo, &[], vec![0.0]);
            self.g.constant(&hi, &[], vec![6.0]);
        }
        let name = self.g.node("Clip", &[&x.name, &lo, &hi], vec![]);
        Map { name, ..x.clone() }
    }

    fn add(&mut self, a: &Map, b: &Map) -> Map {
        let name = self.g.node("Add", &[&a.name, &b.name], vec![]);
        Map { name, ..a.clone() }
    }

    fn max_pool(&mut self, x: &Map, k: usize, s: usize, p: usize) -> Map {
        let (pads, h, w) = pads(x.h, x.w, k, s, Pad::Symmetric(p));
        let name = self.g.node(
            "MaxPool",
            &[&x.name],
            vec![
                ("kernel_shape", Attr::Ints(vec![k as i64, k as i64])),
                ("strides", Attr::Ints(vec![s as i64, s as i64])),
                ("pads", Attr::Ints(pads.to_vec())),
            ],
        );
        Map { name, h, w }
    }

    /// Global pooling to (batch, C) rows.
    fn global_pool(&mut self, x: &Map, pool: Pool) -> String {
        let op = match pool {
            Pool::Avg => "GlobalAveragePool",
            Pool::Max => "GlobalMaxPool",
        };
        let p = self.g.node(op, &[&x.name], vec![]);
        self.g.node("Flatten", &[&p], vec![("axis", Attr::Int(1))])
    }

    fn linear(&mut self, x: &str, prefix: &str) -> Result<String, String> {
        let w = self.g.weight(&format!("{prefix}.weight"))?;
        let b = self.g.weight(&format!("{prefix}.bias"))?;
        Ok(self
            .g
            .node("Gemm", &[x, &w, &b], vec![("transB", Attr::Int(1))]))
    }

    /// PyTorch's exact GELU, x·½·(1 + erf(x/√2)) (the `Gelu` operator needs opset 20).
    fn gelu(&mut self, x: &str) -> String {
        let (r, half, one) = ("gelu_rsqrt2", "gelu_half", "gelu_one");
        if !self.g.has_initializer(r) {
            self.g
                .constant(r, &[], vec![std::f32::consts::FRAC_1_SQRT_2]);
            self.g.constant(half, &[], vec![0.5]);
            self.g.constant(one, &[], vec![1.0]);
        }
        let scaled = self.g.node("Mul", &[x, r], vec![]);
        let erf = self.g.node("Erf", &[&scaled], vec![]);
        let plus = self.g.node("Add", &[&erf, one], vec![]);
        let halved = self.g.node("Mul", &[&plus, half], vec![]);
        self.g.node("Mul", &[x, &halved], vec![])
    }

    /// The head on `features` rows: the MLP's hidden layers (Dropout is the identity in eval
    /// mode), then the last linear layer.
    fn head(
        &mut self,
        x: &str,
        head: &str,
        cfg: &HeadConfig,
        features: usize,
    ) -> Result<String, String> {
        let layout = cfg.layout(features);
        let mut x = x.to_string();
        for i in 0..layout.widths.len() {
            let at = layout.torch_index(i);
            x = self.linear(&x, &format!("{head}.{at}"))?;
            if layout.batch_norm {
                x = self.bn(
                    &x,
                    &format!("{head}.{}", at + 1),
                    crate::nn::batchnorm1d::EPS as f32,
                )?;
            }
            x = match layout.activation {
                Activation::Relu => self.g.node("Relu", &[&x], vec![]),
                Activation::Gelu => self.gelu(&x),
            };
        }
        self.linear(&x, &layout.last_linear(head))
    }
}

/// The nodes from `input` (normalised images of `size`) to the logits; returns the last output.
// Long: one match arm per backbone, each that architecture's graph in the order of its layers.
pub(super) fn build(
    g: &mut Graph,
    backbone: BackboneName,
    head: &HeadConfig,
    input: &str,
    size: (usize, usize),
) -> Result<String, String> {
    let x = Map {
        name: input.to_string(),
        h: size.0,
        w: size.1,
    };
    let eps = if backbone == BackboneName::EfficientnetLite0 {
        1e-3
    } else {
        1e-5
    };
    let mut n = Net { g, eps };
    match backbone {
        BackboneName::Linear => {
            let flat =
                n.g.node("Flatten", &[&x.name], vec![("axis", Attr::Int(1))]);
            n.linear(&flat, "fc")
        }
        BackboneName::Mlp => {
            let flat =
                n.g.node("Flatten", &[&x.name], vec![("axis", Attr::Int(1))]);
            let h = n.linear(&flat, "fc1")?;
            let h = n.g.node("Relu", &[&h], vec![]);
            n.linear(&h, "fc2")
        }
        BackboneName::SmallCnn => {
            let conv = |n: &mut Net, x: &Map, i: usize| -> Result<Map, String> {
                let y = n.conv_bn(
                    x,
                    &format!("conv{i}"),
                    &format!("bn{i}"),
                    (3, 1, Pad::Symmetric(1), 1),
                )?;
                Ok(n.relu(&y))
            };
            let y = conv(&mut n, &x, 1)?;
            let y = n.max_pool(&y, 2, 2, 0);
            let y = conv(&mut n, &y, 2)?;
            let y = n.max_pool(&y, 2, 2, 0);
            let y = conv(&mut n, &y, 3)?;
            let f = n.global_pool(&y, head.pool);
            n.head(&f, "fc", head, 128)
        }
        BackboneName::Resnet18 => resnet(&mut n, &x, head, Blocks::Basic([2, 2, 2, 2])),
        BackboneName::Resnet34 => resnet(&mut n, &x, head, Blocks::Basic([3, 4, 6, 3])),
        BackboneName::Resnet50 => resnet(&mut n, &x, head, Blocks::Bottleneck([3, 4, 6, 3])),
        BackboneName::EfficientnetLite0 => {
            let y = n.conv_bn(&x, "_conv_stem", "_bn0", (3, 2, Pad::Same, 1))?;
            let mut y = n.relu6(&y);
            // (input, expanded, output channels, kernel, stride) of the 16 blocks
            const BLOCKS: [(usize, usize, usize, usize, usize); 16] = [
                (32, 32, 16, 3, 1),
                (16, 96, 24, 3, 2),
                (24, 144, 24, 3, 1),
                (24, 144, 40, 5, 2),
                (40, 240, 40, 5, 1),
                (40, 240, 80, 3, 2),
                (80, 480, 80, 3, 1),
                (80, 480, 80, 3, 1),
                (80, 480, 112, 5, 1),
                (112, 672, 112, 5, 1),
                (112, 672, 112, 5, 1),
                (112, 672, 192, 5, 2),
                (192, 1152, 192, 5, 1),
                (192, 1152, 192, 5, 1),
                (192, 1152, 192, 5, 1),
                (192, 1152, 320, 3, 1),
            ];
            for (i, &(c_in, x_ch, c_out, k, s)) in BLOCKS.iter().enumerate() {
                let at = format!("_blocks.{i}");
                let mut z = y.clone();
                if i > 0 {
                    // block 0 has no expansion
                    z = n.conv_bn(
                        &z,
                        &format!("{at}._expand_conv"),
                        &format!("{at}._bn0"),
                        (1, 1, Pad::Same, 1),
                    )?;
                    z = n.relu6(&z);
                }
                z = n.conv_bn(
                    &z,
                    &format!("{at}._depthwise_conv"),
                    &format!("{at}._bn1"),
                    (k, s, Pad::Same, x_ch),
                )?;
                z = n.relu6(&z);
                z = n.conv_bn(
                    &z,
                    &format!("{at}._project_conv"),
                    &format!("{at}._bn2"),
                    (1, 1, Pad::Same, 1),
                )?;
                if s == 1 && c_in == c_out {
                    z = n.add(&z, &y);
                }
                y = z;
            }
            let y = n.conv_bn(&y, "_conv_head", "_bn1", (1, 1, Pad::Same, 1))?;
            let y = n.relu6(&y);
            let f = n.global_pool(&y, head.pool);
            n.head(&f, "_fc", head, 1280)
        }
    }
}

/// The blocks of a torchvision ResNet's four stages, and how many of them each stage has.
#[derive(Clone, Copy)]
enum Blocks {
    /// Two 3×3 convs (ResNet-18/34), 512 features.
    Basic([usize; 4]),
    /// 1×1 → 3×3 → 1×1 with the stride on the 3×3 (ResNet-50), 2048 features.
    Bottleneck([usize; 4]),
}

/// A torchvision ResNet: stem, four stages (the first block of stages 2–4 at stride 2, with a
/// 1×1 conv + BN shortcut wherever the shape changes), global pool, head.
fn resnet(n: &mut Net, x: &Map, head: &HeadConfig, blocks: Blocks) -> Result<String, String> {
    let y = n.conv_bn(x, "conv1", "bn1", (7, 2, Pad::Symmetric(3), 1))?;
    let y = n.relu(&y);
    let mut y = n.max_pool(&y, 3, 2, 1);
    let (counts, features) = match blocks {
        Blocks::Basic(c) => (c, 512),
        Blocks::Bottleneck(c) => (c, 2048),
    };
    for (l, &count) in counts.iter().enumerate() {
        for b in 0..count {
            let at = format!("layer{}.{b}", l + 1);
            let stride = if l > 0 && b == 0 { 2 } else { 1 };
            let conv = |i: usize| (format!("{at}.conv{i}"), format!("{at}.bn{i}"));
            let (c1, b1) = conv(1);
            let (c2, b2) = conv(2);
            let z = match blocks {
                Blocks::Basic(_) => {
                    let z = n.conv_bn(&y, &c1, &b1, (3, stride, Pad::Symmetric(1), 1))?;
                    let z = n.relu(&z);
                    n.conv_bn(&z, &c2, &b2, (3, 1, Pad::Symmetric(1), 1))?
                }
                Blocks::Bottleneck(_) => {
                    let (c3, b3) = conv(3);
                    let z = n.conv_bn(&y, &c1, &b1, (1, 1, Pad::Symmetric(0), 1))?;
                    let z = n.relu(&z);
                    let z = n.conv_bn(&z, &c2, &b2, (3, stride, Pad::Symmetric(1), 1))?;
                    let z = n.relu(&z);
                    n.conv_bn(&z, &c3, &b3, (1, 1, Pad::Symmetric(0), 1))?
                }
            };
            // a bottleneck stage's first block changes the channels even at stride 1 (layer1)
            let downsample = b == 0 && (l > 0 || matches!(blocks, Blocks::Bottleneck(_)));
            let shortcut = if downsample {
                n.conv_bn(
                    &y,
                    &format!("{at}.downsample.0"),
                    &format!("{at}.downsample.1"),
                    (1, stride, Pad::Symmetric(0), 1),
                )?
            } else {
                y.clone()
            };
            let sum = n.add(&z, &shortcut);
            y = n.relu(&sum);
        }
    }
    let f = n.global_pool(&y, head.pool);
    n.head(&f, "fc", head, features)
}

#[cfg(test)]
mod tests {
    use super::{pads, Pad};

    #[test]
    fn same_padding_puts_the_smaller_half_first_like_tensorflow() {
        // 32 → 16 with a 3×3 stride-2 kernel: one row/column of padding in all, at the end
        assert_eq!(pads(32, 32, 3, 2, Pad::Same), ([0, 0, 1, 1], 16, 16));
        // 7 → 4 with 5×5 stride 2: 4 in all, split evenly
        assert_eq!(pads(7, 7, 5, 2, Pad::Same), ([2, 2, 2, 2], 4, 4));
        // stride 1 keeps the size
        assert_eq!(pads(5, 6, 3, 1, Pad::Same), ([1, 1, 1, 1], 5, 6));
        // PyTorch's symmetric padding: ResNet's max pool, 8 → 4
        assert_eq!(pads(8, 8, 3, 2, Pad::Symmetric(1)), ([1, 1, 1, 1], 4, 4));
    }
}
