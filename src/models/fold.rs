//! Backbones as [`FrozenNet`] layers for frozen feature extraction: every convolution with the
//! eval-mode BatchNorm after it folded in, the activation after it and the residual add fused.

use dfdx::prelude::*;

use super::{Backbone, Dev};
use crate::nn::conv::padding_of;
use crate::nn::head_kinds::Pool;
use crate::nn::{BatchNorm2D, Conv2D};
use crate::ops::batchnorm::Act;
use crate::ops::frozen::{fold_batchnorm, FoldedConv, FrozenNet, Layer};

fn read<S: Shape>(t: &Tensor<S, f32, Cpu>) -> Vec<f32> {
    crate::nn::values(t)
}

/// `conv` with `bn` folded in.
pub fn fold<
    const I: usize,
    const O: usize,
    const K: usize,
    const S: usize,
    const P: usize,
    const G: usize,
>(
    conv: &Conv2D<I, O, K, S, P, G, f32, Cpu>,
    bn: &BatchNorm2D<O, f32, Cpu>,
) -> FoldedConv {
    let (weight, bias) = fold_batchnorm(
        &read(&conv.weight),
        &read(&bn.scale),
        &read(&bn.bias),
        &read(&bn.running_mean),
        &read(&bn.running_var),
        bn.epsilon,
    );
    FoldedConv {
        c_in: I,
        c_out: O,
        k: K,
        stride: S,
        padding: padding_of(P),
        groups: G,
        weight,
        bias,
    }
}

/// Layers appended in order, each reading the previous one's output unless told otherwise.
#[derive(Default)]
pub(crate) struct Layers(pub Vec<Layer>);

impl Layers {
    /// The index of the value the next layer reads by default (the last output).
    pub(crate) fn last(&self) -> usize {
        self.0.len()
    }
    /// Appends `act(conv(value input) + value residual)`; returns its output's value index.
    pub(crate) fn push(
        &mut self,
        conv: FoldedConv,
        input: usize,
        residual: Option<usize>,
        act: Act,
    ) -> usize {
        self.0.push(Layer {
            conv,
            input,
            residual,
            act,
        });
        self.0.len()
    }
}

/// A frozen backbone's pooled features: through its folded layers ([`FrozenNet`]) where the
/// backbone has them, else its eval-mode forward pass.
pub struct FrozenFeatures<B> {
    backbone: B,
    net: Option<FrozenNet>,
    pool: Pool,
}

impl<B: Backbone> FrozenFeatures<B> {
    /// `backbone` pooling its last feature map with `pool` (`head.pool`).
    pub fn new(mut backbone: B, pool: Pool) -> Self {
        backbone.set_pool(pool);
        let net = backbone.frozen_layers().map(FrozenNet::new);
        FrozenFeatures {
            backbone,
            net,
            pool,
        }
    }

    /// Whether the folded path is used.
    pub fn is_folded(&self) -> bool {
        self.net.is_some()
    }

    /// The pooled features (n × `B::FEATURES`) of `n` NCHW images of h × w.
    pub fn features(&self, dev: &Dev, x: Vec<f32>, n: usize, h: usize, w: usize) -> Vec<f32> {
        let Some(net) = &self.net else {
            let x = dev.tensor_from_vec(x, (n, Const::<3>, h, w));
            return self.backbone.forward_eval(x).as_vec();
        };
        let (maps, [c, oh, ow]) = net.forward(&x, n, h, w);
        assert_eq!(
            c,
            B::FEATURES,
            "the folded layers end in the pooled features"
        );
        let plane = oh * ow;
        maps.chunks(plane)
            .map(|p| match self.pool {
                Pool::Avg => p.iter().map(|v| *v as f64).sum::<f64>() as f32 / plane as f32,
                Pool::Max => p.iter().copied().fold(f32::NEG_INFINITY, f32::max),
            })
            .collect()
    }
}
