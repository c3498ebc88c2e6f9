//! `backbone.freeze = "until:<block>"`: the frozen prefix gets no gradient, no update, no decay
//! and keeps its BatchNorm running statistics; everything after it trains.

use dfdx::losses::cross_entropy_with_logits_loss;
use dfdx::nn::tensor_collection::{
    RecursiveWalker, TensorCollection, TensorOptions, TensorVisitor, ViewTensorName, ViewTensorRef,
};
use dfdx::prelude::*;
use runner::models::{
    Backbone, Classifier, Dev, EfficientNetLite0, ResNet18, ResNet34, ResNet50, SmallCnn,
};
use runner::train::{Frozen, OptimizerConfig, OptimizerState, Penalty, RegularizationKind};

/// One tensor of a model: its name, its values, and Σ|g| of its gradient (0 without one).
struct Seen {
    name: String,
    values: Vec<f32>,
    gradient_norm: f32,
}

/// Every tensor of a model in its order (parameters and BatchNorm running statistics), with
/// its gradient's norm in `grads` when given.
fn walk<M: TensorCollection<f32, Dev>>(
    model: &M,
    grads: Option<&Gradients<f32, Dev>>,
) -> Vec<Seen> {
    struct Collect<'a>(Option<&'a Gradients<f32, Dev>>, Vec<Seen>);
    impl TensorVisitor<f32, Dev> for Collect<'_> {
        type Viewer = (ViewTensorRef, ViewTensorName);
        type Err = CpuError;
        type E2 = f32;
        type D2 = Dev;
        fn visit<S: Shape>(
            &mut self,
            opts: TensorOptions<S, f32, Dev>,
            (t, name): (&Tensor<S, f32, Dev>, String),
        ) -> Result<Option<Tensor<S, f32, Dev>>, CpuError> {
            // running statistics have no gradient slot
            let gradient_norm = match self.0 {
                Some(grads) if opts.do_gradient_update => runner::nn::values(&grads.get(t))
                    .iter()
                    .map(|g| g.abs())
                    .sum(),
                _ => 0.0,
            };
            // `values`: a linear head's hidden-layer buffers are empty (dfdx's as_vec panics)
            let values = runner::nn::values(t);
            self.1.push(Seen {
                name,
                values,
                gradient_norm,
            });
            Ok(None)
        }
    }
    let mut c = Collect(grads, Vec::new());
    M::iter_tensors(&mut RecursiveWalker {
        m: (model, String::new()),
        f: &mut c,
    })
    .unwrap();
    c.1
}

/// Every tensor of a model by name (parameters and BatchNorm running statistics).
fn tensors<M: TensorCollection<f32, Dev>>(model: &M) -> Vec<(String, Vec<f32>)> {
    walk(model, None)
        .into_iter()
        .map(|t| (t.name, t.values))
        .collect()
}

type Images = Tensor<(usize, Const<3>, usize, usize), f32, Dev>;

fn batch(dev: &Dev, size: usize) -> (Images, Tensor<(usize, usize), f32, Dev>) {
    let x = dev.sample_normal_like(&(2, Const, size, size));
    (
        x,
        dev.tensor_from_vec(vec![1.0, 0.0, 0.0, 0.0, 0.0, 1.0], (2usize, 3usize)),
    )
}

/// Three SGD steps with momentum, an L2 penalty and decoupled decay on every tensor, the
/// backbone frozen until `until`: frozen tensors stay bit-identical, all others change.
fn train_until<B: Backbone>(until: &str, size: usize) {
    let dev = Dev::seed_from_u64(11);
    let mut model = Classifier::<B>::new(&dev, 3);
    let k = B::frozen_blocks(until).unwrap();
    let frozen = Frozen(B::BLOCKS[..k].iter().map(|b| b.to_string()).collect());
    let before = tensors(&model);
    let mut opt = OptimizerState::new(OptimizerConfig::Sgd {
        lr: 0.05,
        momentum: 0.9,
        nesterov: false,
    });
    let l2 = Penalty {
        kind: RegularizationKind::L2,
        lambda: 1e-3,
        apply_to_all: true,
    };
    let decay = Penalty {
        kind: RegularizationKind::Decoupled,
        lambda: 0.1,
        apply_to_all: true,
    };
    for _ in 0..3 {
        let (x, y) = batch(&dev, size);
        let logits = model.forward_train_frozen(x, k, model.alloc_grads());
        let mut grads = cross_entropy_with_logits_loss(logits, y).backward();
        l2.add_gradients_except(&mut model, &mut grads, &frozen);
        decay.decay_except(&mut model, 0.05, &frozen);
        opt.update_except(&mut model, &mut grads, &frozen);
    }
    let after = tensors(&model);
    let (mut kept, mut changed) = (0, 0);
    for ((name, b), (_, a)) in before.iter().zip(&after) {
        if b.is_empty() {
            continue; // a linear head's (empty) hidden-layer buffers
        }
        if frozen.holds(name) {
            assert!(
                b.iter().zip(a).all(|(b, a)| b.to_bits() == a.to_bits()),
                "{} {name} changed",
                B::NAME
            );
            kept += 1;
        } else {
            assert_ne!(b, a, "{} {name} did not train", B::NAME);
            changed += 1;
        }
    }
    assert!(kept > 0 && changed > 0, "{kept} kept, {changed} changed");
    // optimizer state only for the trained tensors
    let trainable = after
        .iter()
        .filter(|(n, _)| !frozen.holds(n) && !n.contains("running_"))
        .count();
    assert_eq!(opt.first.len(), trainable);
}

#[test]
fn frozen_prefix_stays_bit_identical_and_the_rest_trains() {
    train_until::<SmallCnn>("bn2", 16);
    train_until::<ResNet18>("layer3", 32);
    train_until::<ResNet18>("conv1", 32);
}

/// For every split point of every backbone: the frozen blocks' tensors get no gradient at all
/// (the tape starts after them), the first trained block's weights get one. Catches a block
/// index in `forward_train_frozen` that disagrees with `BLOCKS`.
#[test]
fn every_split_point_of_every_backbone_starts_the_tape_at_the_right_block() {
    fn check<B: Backbone>(size: usize) {
        let dev = Dev::seed_from_u64(12);
        let mut model = Classifier::<B>::new(&dev, 3);
        let names: Vec<String> = tensors(&model).into_iter().map(|(n, _)| n).collect();
        for k in 1..B::BLOCKS.len() {
            let frozen = Frozen(B::BLOCKS[..k].iter().map(|b| b.to_string()).collect());
            let next = Frozen(vec![B::BLOCKS[k].to_string()]);
            let (x, y) = batch(&dev, size);
            let grads = cross_entropy_with_logits_loss(
                model.forward_train_frozen(x, k, model.alloc_grads()),
                y,
            )
            .backward();
            let grad_norms = gradient_norms(&model, &grads);
            for (name, g) in names.iter().zip(&grad_norms) {
                // running statistics, and a linear head's (empty) hidden-layer buffers
                if name.contains("running_") || name.contains(".hidden.") {
                    continue;
                }
                if frozen.holds(name) {
                    assert_eq!(
                        *g,
                        0.0,
                        "{} until {}: {name} got a gradient",
                        B::NAME,
                        B::BLOCKS[k - 1]
                    );
                }
                if next.holds(name) || (B::BLOCKS[k] == B::HEAD && name.starts_with(B::HEAD)) {
                    assert!(
                        *g > 0.0,
                        "{} until {}: {name} got no gradient",
                        B::NAME,
                        B::BLOCKS[k - 1]
                    );
                }
            }
        }
    }
    // Sizes keep at least 2×2 positions in the last stage: train-mode BatchNorm over only two
    // values (batch 2 at 1×1) passes back an exactly zero gradient, whatever is frozen.
    check::<SmallCnn>(16);
    check::<ResNet18>(64);
    check::<ResNet34>(64);
    check::<ResNet50>(64);
    check::<EfficientNetLite0>(64);
}

/// Σ|g| per tensor, in the model's tensor order.
fn gradient_norms<M: TensorCollection<f32, Dev>>(
    model: &M,
    grads: &Gradients<f32, Dev>,
) -> Vec<f32> {
    walk(model, Some(grads))
        .into_iter()
        .map(|t| t.gradient_norm)
        .collect()
}

/// With every backbone block frozen the logits are exactly eval mode's.
#[test]
fn fully_frozen_backbone_gives_eval_logits() {
    let dev = Dev::seed_from_u64(13);
    let mut model = Classifier::<SmallCnn>::new(&dev, 3);
    let (x, _) = batch(&dev, 16);
    let all = SmallCnn::BLOCKS.len() - 1;
    let train = model.forward_train_frozen(x.clone(), all, model.alloc_grads());
    assert_eq!(train.as_vec(), model.forward_eval(x).as_vec());
}
