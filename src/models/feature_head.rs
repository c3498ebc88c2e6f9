//! A classifier's head on its own, trained on a frozen backbone's pooled features (cached or
//! computed per batch). Its tensors are named like the classifier's head (`fc.weight`,
//! `fc.hidden.*`), so a trained one moves into the [`super::Classifier`] field by field.

use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection};
use dfdx::prelude::*;

use super::{hidden_prefix, HeadConfig};
use crate::nn::{HiddenLayers, LinearHead};
use crate::train::{Dev, Inputs, Logits, Net, TrainError};

#[derive(Debug, Clone)]
pub struct FeatureHead<E: Dtype = f32, D: Storage<E> = Cpu> {
    pub hidden: HiddenLayers<E, D>,
    pub fc: LinearHead<E, D>,
}

impl FeatureHead<f32, Cpu> {
    /// The declared head on `features` inputs; a linear head draws from the generator exactly
    /// what a bare [`LinearHead::new`] draws.
    pub fn new(dev: &Dev, features: usize, classes: usize, head: &HeadConfig) -> Self {
        let hidden = HiddenLayers::new(dev, head.layout(features));
        let fc = LinearHead::new(dev, hidden.layout.output(), classes);
        FeatureHead { hidden, fc }
    }
    fn features(&self) -> usize {
        self.hidden.layout.features
    }
}

impl<E: Dtype, D: Device<E>> TensorCollection<E, D> for FeatureHead<E, D> {
    type To<E2: Dtype, D2: Device<E2>> = FeatureHead<E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, E, D>>(
        visitor: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        let hidden = hidden_prefix("fc");
        visitor.visit_fields(
            (
                Self::module(&hidden, |s| &s.hidden, |s| &mut s.hidden),
                Self::module("fc", |s| &s.fc, |s| &mut s.fc),
            ),
            |(hidden, fc)| FeatureHead { hidden, fc },
        )
    }
}

impl Net for FeatureHead<f32, Cpu> {
    fn logits(&self, dev: &Dev, x: Inputs) -> Result<Logits, TrainError> {
        let x = x.flat(dev, self.features())?;
        Ok(self.fc.forward(self.hidden.forward_eval(x)))
    }
    fn logits_train(
        &mut self,
        dev: &Dev,
        x: Inputs,
        grads: Gradients<f32, Dev>,
    ) -> Result<Logits<OwnedTape<f32, Dev>>, TrainError> {
        let x = x.flat(dev, self.features())?.traced(grads);
        let h = self.hidden.forward_train(x);
        Ok(self.fc.forward(h))
    }
    fn begin_batch(&mut self, epoch: usize, batch: usize) {
        self.hidden.step = Some((epoch, batch));
    }
}
