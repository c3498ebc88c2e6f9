//! How the generic training loop drives a CNN classifier: whole, or with its first blocks frozen
//! (`backbone.freeze = "until:<block>"`). The pixel models implement [`Net`] beside their
//! definitions in `pixels.rs`.

use dfdx::nn::tensor_collection::{ModuleVisitor, TensorCollection};
use dfdx::prelude::{Device, Dtype, Trace};

use super::{Backbone, Classifier};
use crate::train::{Dev, Inputs, Net, TrainError};

/// A classifier whose first `frozen` top-level blocks (`Backbone::BLOCKS`) do not train. Its
/// tensors keep the classifier's names, so checkpoints and saved weights look the same.
pub struct PartlyFrozen<B: Backbone> {
    pub model: Classifier<B>,
    pub frozen: usize,
}

impl<B: Backbone> TensorCollection<f32, Dev> for PartlyFrozen<B> {
    /// A converted copy (`to_device`, …) is the plain classifier: the freeze belongs to training.
    type To<E2: Dtype, D2: Device<E2>> = Classifier<B::To<E2, D2>, E2, D2>;
    fn iter_tensors<V: ModuleVisitor<Self, f32, Dev>>(
        v: &mut V,
    ) -> Result<Option<Self::To<V::E2, V::D2>>, V::Err> {
        v.visit_fields(Self::module("", |s| &s.model, |s| &mut s.model), |model| {
            model
        })
    }
}

impl<B: Backbone> Net for PartlyFrozen<B> {
    fn logits(&self, dev: &Dev, x: Inputs) -> Result<crate::train::Logits, TrainError> {
        Ok(self.model.forward_eval(x.images(dev)?))
    }
    fn logits_train(
        &mut self,
        dev: &Dev,
        x: Inputs,
        grads: dfdx::prelude::Gradients<f32, Dev>,
    ) -> Result<crate::train::Logits<dfdx::prelude::OwnedTape<f32, Dev>>, TrainError> {
        Ok(self
            .model
            .forward_train_frozen(x.images(dev)?, self.frozen, grads))
    }
}

impl<B: Backbone> Net for Classifier<B> {
    fn logits(&self, dev: &Dev, x: Inputs) -> Result<crate::train::Logits, TrainError> {
        Ok(self.forward_eval(x.images(dev)?))
    }
    fn logits_train(
        &mut self,
        dev: &Dev,
        x: Inputs,
        grads: dfdx::prelude::Gradients<f32, Dev>,
    ) -> Result<crate::train::Logits<dfdx::prelude::OwnedTape<f32, Dev>>, TrainError> {
        Ok(self.forward_train(x.images(dev)?.traced(grads)))
    }
}
