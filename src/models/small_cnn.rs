//! A small CNN for quick experiments on small inputs (28×28, 64×64): three conv-BN-ReLU stages
//! (32, 64, 128 channels; max pooling after the first two), global average pooling, 128
//! features. Works for any input of at least 4×4 pixels.

use crate::nn::BatchNorm2D;
use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection};
use dfdx::prelude::*;

use super::{pool_features, staged, train_chain, Backbone, Dev, HeadName, Images, Rows, TrainTape};
use crate::nn::head_kinds::Pool;
use crate::nn::Conv2D;
use crate::ops::{max_pool2d, Padding};

#[derive(Debug, Clone)]
pub struct SmallCnn<E: Dtype = f32, D: Storage<E> = Cpu> {
    pub conv1: Conv2D<3, 32, 3, 1, 1, 1, E, D>,
    pub bn1: BatchNorm2D<32, E, D>,
    pub conv2: Conv2D<32, 64, 3, 1, 1, 1, E, D>,
    pub bn2: BatchNorm2D<64, E, D>,
    pub conv3: Conv2D<64, 128, 3, 1, 1, 1, E, D>,
    pub bn3: BatchNorm2D<128, E, D>,
    /// Global pooling of the last feature map (`head.pool`); not a tensor, avg when built.
    pub pool: Pool,
}

impl<E: Dtype, D: Device<E>> TensorCollection<E, D> for SmallCnn<E, D> {
    type To<E2: Dtype, D2: Device<E2>> = SmallCnn<E2, D2>;
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
            |(conv1, bn1, conv2, bn2, conv3, bn3)| SmallCnn {
                conv1,
                bn1,
                conv2,
                bn2,
                conv3,
                bn3,
                pool: Pool::Avg,
            },
        )
    }
}

impl<E: Dtype, D: Storage<E>> HeadName for SmallCnn<E, D> {
    const HEAD: &'static str = "fc";
}

macro_rules! small_body {
    ($s:ident, $x:ident, $f:ident) => {{
        let x = $s.bn1.$f($s.conv1.forward_first($x)).relu();
        let x = max_pool2d(x, 2, 2, Padding::Symmetric(0));
        let x = $s.bn2.$f($s.conv2.$f(x)).relu();
        let x = max_pool2d(x, 2, 2, Padding::Symmetric(0));
        pool_features($s.bn3.$f($s.conv3.$f(x)).relu(), $s.pool)
    }};
}

macro_rules! s_conv1 {
    ($s:ident, $x:expr, $f:ident) => {
        $s.conv1.forward_first($x)
    };
}
macro_rules! s_bn1 {
    ($s:ident, $x:expr, $f:ident) => {
        max_pool2d($s.bn1.$f($x).relu(), 2, 2, Padding::Symmetric(0))
    };
}
macro_rules! s_conv2 {
    ($s:ident, $x:expr, $f:ident) => {
        $s.conv2.$f($x)
    };
}
macro_rules! s_bn2 {
    ($s:ident, $x:expr, $f:ident) => {
        max_pool2d($s.bn2.$f($x).relu(), 2, 2, Padding::Symmetric(0))
    };
}
macro_rules! s_conv3 {
    ($s:ident, $x:expr, $f:ident) => {
        $s.conv3.$f($x)
    };
}
macro_rules! s_bn3 {
    ($s:ident, $x:expr, $f:ident) => {
        $s.bn3.$f($x).relu()
    };
}

impl Backbone for SmallCnn {
    const FEATURES: usize = 128;
    const NAME: &'static str = "small_cnn";
    const BLOCKS: &'static [&'static str] = &["conv1", "bn1", "conv2", "bn2", "conv3", "bn3", "fc"];
    fn build(dev: &Dev) -> Self {
        BuildModule::build(dev)
    }
    fn set_pool(&mut self, pool: Pool) {
        self.pool = pool;
    }
    fn forward_eval(&self, x: Images<3>) -> Rows {
        small_body!(self, x, forward)
    }
    fn forward_train(&mut self, x: Images<3, TrainTape>) -> Rows<TrainTape> {
        small_body!(self, x, forward_mut)
    }
    fn forward_train_frozen(
        &mut self,
        x: Images<3>,
        frozen: usize,
        grads: Gradients<f32, Dev>,
    ) -> Rows<TrainTape> {
        pool_features(
            staged!(self, x, frozen, grads, 0; s_conv1, s_bn1, s_conv2, s_bn2, s_conv3, s_bn3),
            self.pool,
        )
    }
}
