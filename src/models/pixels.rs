//! Models on raw pixels: logistic regression and a one-hidden-layer MLP on flattened images.

use dfdx::prelude::*;

use crate::nn::DynLinear;
use crate::train::{Dev, Inputs, Logits, Net, TrainError};

/// Multinomial logistic regression on flattened pixels (or on any feature vector).
#[derive(Debug, Clone)]
pub struct LinearModel {
    pub fc: DynLinear,
}

impl LinearModel {
    pub fn new(dev: &Dev, inputs: usize, classes: usize) -> Self {
        Self { fc: DynLinear::new(dev, inputs, classes) }
    }
}

impl TensorCollection<f32, Dev> for LinearModel {
    type To<E2: Dtype, D2: Device<E2>> = LinearModel;
    fn iter_tensors<V: ModuleVisitor<Self, f32, Dev>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(Self::module("fc", |s| &s.fc, |s| &mut s.fc), |fc| LinearModel { fc })
    }
}

impl Net for LinearModel {
    fn logits(&self, dev: &Dev, x: Inputs) -> Result<Logits, TrainError> {
        Ok(self.fc.forward(x.flat(dev, self.fc.inputs())?))
    }
    fn logits_train(
        &mut self,
        dev: &Dev,
        x: Inputs,
        grads: Gradients<f32, Dev>,
    ) -> Result<Logits<OwnedTape<f32, Dev>>, TrainError> {
        Ok(self.fc.forward(x.flat(dev, self.fc.inputs())?.traced(grads)))
    }
}

/// One hidden ReLU layer.
#[derive(Debug, Clone)]
pub struct MlpModel {
    pub fc1: DynLinear,
    pub fc2: DynLinear,
}

impl MlpModel {
    pub fn new(dev: &Dev, inputs: usize, hidden: usize, classes: usize) -> Self {
        Self { fc1: DynLinear::new(dev, inputs, hidden), fc2: DynLinear::new(dev, hidden, classes) }
    }
}

impl TensorCollection<f32, Dev> for MlpModel {
    type To<E2: Dtype, D2: Device<E2>> = MlpModel;
    fn iter_tensors<V: ModuleVisitor<Self, f32, Dev>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (Self::module("fc1", |s| &s.fc1, |s| &mut s.fc1), Self::module("fc2", |s| &s.fc2, |s| &mut s.fc2)),
            |(fc1, fc2)| MlpModel { fc1, fc2 },
        )
    }
}

impl Net for MlpModel {
    fn logits(&self, dev: &Dev, x: Inputs) -> Result<Logits, TrainError> {
        Ok(self.fc2.forward(self.fc1.forward(x.flat(dev, self.fc1.inputs())?).relu()))
    }
    fn logits_train(
        &mut self,
        dev: &Dev,
        x: Inputs,
        grads: Gradients<f32, Dev>,
    ) -> Result<Logits<OwnedTape<f32, Dev>>, TrainError> {
        let x = x.flat(dev, self.fc1.inputs())?.traced(grads);
        Ok(self.fc2.forward(self.fc1.forward(x).relu()))
    }
}
