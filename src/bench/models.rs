//! Whole-model workloads: one SGD training step (forward, cross-entropy, backward, update) and
//! eval-mode inference, on random inputs, with the same shapes as the PyTorch side.

use dfdx::losses::cross_entropy_with_logits_loss;
use dfdx::optim::{Momentum, Sgd, SgdConfig};
use dfdx::prelude::*;

use super::busy::timed;
use super::Measure;
use crate::models::{Backbone, Classifier, Dev};

fn device() -> Dev {
    let dev = Dev::seed_from_u64(0);
    // What training runs use: recycled tensor buffers instead of an allocation per op.
    dev.enable_cache();
    dev
}

/// Images per second of a training step at `batch`×3×`size`×`size`, 10 classes.
pub fn train_step<B: Backbone>(batch: usize, size: usize, iters: usize) -> Measure {
    let dev = device();
    let mut model = Classifier::<B>::new(&dev, 10);
    let cfg = SgdConfig {
        lr: 0.01,
        momentum: Some(Momentum::Classic(0.9)),
        weight_decay: None,
    };
    let mut opt = Sgd::new(&model, cfg);
    let x: Tensor<(usize, Const<3>, usize, usize), f32, Dev> =
        dev.sample_normal_like(&(batch, Const, size, size));
    let y: Vec<f32> = (0..batch * 10)
        .map(|i| f32::from(i % 10 == (i / 10) % 10))
        .collect();
    let y = dev.tensor_from_vec(y, (batch, 10usize));
    let mut grads = Some(model.alloc_grads());
    let (s, busy) = timed(1, iters, || {
        let g = grads.take().unwrap();
        let logits = model.forward_train(x.clone().traced(g));
        let mut g = cross_entropy_with_logits_loss(logits, y.clone()).backward();
        opt.update(&mut model, &g).unwrap();
        model.zero_grads(&mut g);
        grads = Some(g);
    });
    Measure::new(batch as f64 / s, busy)
}

/// Images per second of eval-mode inference at `batch`×3×`size`×`size`, 1000 classes.
pub fn inference<B: Backbone>(batch: usize, size: usize, iters: usize) -> Measure {
    let dev = device();
    let model = Classifier::<B>::new(&dev, 1000);
    let x: Tensor<(usize, Const<3>, usize, usize), f32, Dev> =
        dev.sample_normal_like(&(batch, Const, size, size));
    let (s, busy) = timed(1, iters, || {
        let _ = model.forward_eval(x.clone()).as_vec();
    });
    Measure::new(batch as f64 / s, busy)
}
