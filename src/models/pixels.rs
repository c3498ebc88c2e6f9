//! Models on raw pixels: logistic regression and a one-hidden-layer MLP on flattened images.

use dfdx::prelude::*;

use crate::nn::LinearHead;
use crate::train::{Dev, Inputs, Logits, Net, TrainError};

/// Hidden width of the `mlp` pixel model.
pub(crate) const MLP_HIDDEN: usize = 256;

/// Multinomial logistic regression on flattened pixels (or on any feature vector).
#[derive(Debug, Clone)]
pub(crate) struct LinearModel<E: Dtype = f32, D: Storage<E> = Cpu> {
    pub fc: LinearHead<E, D>,
}

impl LinearModel<f32, Cpu> {
    pub(crate) fn new(dev: &Dev, inputs: usize, classes: usize) -> Self {
        Self {
            fc: LinearHead::new(dev, inputs, classes),
        }
    }
}

impl<E: Dtype, D: Device<E>> TensorCollection<E, D> for LinearModel<E, D> {
    type To<E2: Dtype, D2: Device<E2>> = LinearModel<E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(Self::module("fc", |s| &s.fc, |s| &mut s.fc), |fc| {
            LinearModel { fc }
        })
    }
}

impl Net for LinearModel<f32, Cpu> {
    fn logits(&self, dev: &Dev, x: Inputs) -> Result<Logits, TrainError> {
        Ok(self.fc.forward(x.flat(dev, self.fc.features())?))
    }
    fn logits_train(
        &mut self,
        dev: &Dev,
        x: Inputs,
        grads: Gradients<f32, Dev>,
    ) -> Result<Logits<OwnedTape<f32, Dev>>, TrainError> {
        Ok(self
            .fc
            .forward(x.flat(dev, self.fc.features())?.traced(grads)))
    }
}

/// One hidden ReLU layer.
#[derive(Debug, Clone)]
pub(crate) struct MlpModel<E: Dtype = f32, D: Storage<E> = Cpu> {
    pub fc1: LinearHead<E, D>,
    pub fc2: LinearHead<E, D>,
}

impl MlpModel<f32, Cpu> {
    pub(crate) fn new(dev: &Dev, inputs: usize, hidden: usize, classes: usize) -> Self {
        Self {
            fc1: LinearHead::new(dev, inputs, hidden),
            fc2: LinearHead::new(dev, hidden, classes),
        }
    }
}

impl<E: Dtype, D: Device<E>> TensorCollection<E, D> for MlpModel<E, D> {
    type To<E2: Dtype, D2: Device<E2>> = MlpModel<E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        visitor.visit_fields(
            (
                Self::module("fc1", |s| &s.fc1, |s| &mut s.fc1),
                Self::module("fc2", |s| &s.fc2, |s| &mut s.fc2),
            ),
            |(fc1, fc2)| MlpModel { fc1, fc2 },
        )
    }
}

impl Net for MlpModel<f32, Cpu> {
    fn logits(&self, dev: &Dev, x: Inputs) -> Result<Logits, TrainError> {
        Ok(self
            .fc2
            .forward(self.fc1.forward(x.flat(dev, self.fc1.features())?).relu()))
    }
    fn logits_train(
        &mut self,
        dev: &Dev,
        x: Inputs,
        grads: Gradients<f32, Dev>,
    ) -> Result<Logits<OwnedTape<f32, Dev>>, TrainError> {
        let x = x.flat(dev, self.fc1.features())?.traced(grads);
        Ok(self.fc2.forward(self.fc1.forward(x).relu()))
    }
}
