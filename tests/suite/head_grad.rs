//! Finite-difference checks of the MLP head's layers: BatchNorm1d (train and eval mode),
//! dropout, GELU, and the whole hidden stack w.r.t. its flat parameter buffers and its input.

use crate::common;

use common::grad::{dot, finite_diff, random};
use dfdx::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use runner::nn::batchnorm1d::{batchnorm1d_eval, batchnorm1d_train};
use runner::nn::dropout::{dropout, Step};
use runner::nn::{HiddenLayers, HiddenLayout};
use runner::spec::Activation;

/// ‖a − b‖ / ‖b‖ (‖b‖ floored at 1e-3).
fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    common::grad::rel_err(a, b, 1e-3)
}

const TOL: f64 = 1e-3;

#[test]
fn batchnorm1d_gradients_match_finite_differences() {
    let dev = Cpu::default();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let (n, c) = (5usize, 3usize);
    let (x, g, b, r) = (
        random(&mut rng, n * c),
        random(&mut rng, c),
        random(&mut rng, c),
        random(&mut rng, n * c),
    );
    let (rm, rv): (Vec<f32>, Vec<f32>) = (vec![0.1, -0.2, 0.3], vec![0.5, 1.5, 0.8]);
    for train in [true, false] {
        let run = |x: &[f32], g: &[f32], b: &[f32]| -> f64 {
            let (xt, gt, bt) = (
                dev.tensor_from_vec(x.to_vec(), (n, c)),
                dev.tensor_from_vec(g.to_vec(), (c,)),
                dev.tensor_from_vec(b.to_vec(), (c,)),
            );
            let (mut m, mut v) = (rm.clone(), rv.clone());
            let y = if train {
                batchnorm1d_train(xt, gt, bt, &mut m, &mut v)
            } else {
                batchnorm1d_eval(xt, gt, bt, &m, &v)
            };
            dot(&y.as_vec(), &r)
        };
        let xt = dev.tensor_from_vec(x.clone(), (n, c));
        let gt = dev.tensor_from_vec(g.clone(), (c,));
        let bt = dev.tensor_from_vec(b.clone(), (c,));
        let grads = Gradients::leaky();
        let (xg, gg, bg) = (
            xt.clone().traced(grads),
            gt.retaped::<OwnedTape<f32, Cpu>>(),
            bt.retaped::<OwnedTape<f32, Cpu>>(),
        );
        let (mut m, mut v) = (rm.clone(), rv.clone());
        let y = if train {
            batchnorm1d_train(xg, gg, bg, &mut m, &mut v)
        } else {
            batchnorm1d_eval(xg, gg, bg, &m, &v)
        };
        let rt = dev.tensor_from_vec(r.clone(), (n, c));
        let grads = (y * rt).sum().backward();
        let eps = 1e-2;
        let fd_x = finite_diff(&x, eps, |p| run(p, &g, &b));
        let fd_g = finite_diff(&g, eps, |p| run(&x, p, &b));
        let fd_b = finite_diff(&b, eps, |p| run(&x, &g, p));
        for (what, got, fd) in [
            ("x", grads.get(&xt).as_vec(), fd_x),
            ("gamma", grads.get(&gt).as_vec(), fd_g),
            ("beta", grads.get(&bt).as_vec(), fd_b),
        ] {
            let e = rel_err(&got, &fd);
            assert!(e < TOL, "train={train} d/d{what}: relative error {e}");
        }
    }
}

#[test]
fn dropout_gradient_is_the_mask() {
    let dev = Cpu::default();
    let mut rng = ChaCha8Rng::seed_from_u64(2);
    let (n, c) = (4usize, 6usize);
    let (x, r) = (random(&mut rng, n * c), random(&mut rng, n * c));
    let step = Step {
        seed: 3,
        epoch: 2,
        batch: 1,
    };
    let run = |x: &[f32]| {
        let y = dropout(dev.tensor_from_vec(x.to_vec(), (n, c)), step, 0, 0.5);
        dot(&y.as_vec(), &r)
    };
    let xt = dev.tensor_from_vec(x.clone(), (n, c));
    let y = dropout(xt.clone().traced(Gradients::leaky()), step, 0, 0.5);
    let kept = y.as_vec().iter().filter(|v| **v != 0.0).count();
    assert!(kept > 0 && kept < n * c, "{kept} of {} kept", n * c);
    let grads = (y * dev.tensor_from_vec(r.clone(), (n, c)))
        .sum()
        .backward();
    let e = rel_err(&grads.get(&xt).as_vec(), &finite_diff(&x, 1e-2, run));
    assert!(e < 1e-3, "relative error {e}");
}

fn layout(activation: Activation, batch_norm: bool, dropout: f64) -> HiddenLayout {
    HiddenLayout {
        features: 4,
        widths: vec![5, 3],
        activation,
        dropout,
        batch_norm,
        seed: 9,
    }
}

/// The whole stack (dropout, linear, BatchNorm1d, activation per layer) in train mode, w.r.t.
/// the flat weight buffer, the biases, the BatchNorm γ and the input.
#[test]
fn hidden_stack_gradients_match_finite_differences() {
    let dev = Cpu::seed_from_u64(4);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let n = 6usize;
    let mut worst: Vec<(String, f64)> = Vec::new();
    for (act, bn, p) in [
        (Activation::Gelu, true, 0.3),
        (Activation::Gelu, false, 0.0),
        (Activation::Relu, true, 0.0),
        (Activation::Relu, false, 0.0),
        (Activation::Relu, false, 0.3),
    ] {
        let base = HiddenLayers::new(&dev, layout(act, bn, p));
        let x = random(&mut rng, n * 4);
        let r = random(&mut rng, n * 3);
        let loss = |h: &HiddenLayers, x: &[f32]| -> f64 {
            let mut h = h.clone();
            h.step = Some((1, 0));
            dot(
                &h.forward_train(dev.tensor_from_vec(x.to_vec(), (n, 4)))
                    .as_vec(),
                &r,
            )
        };
        let mut h = base.clone();
        h.step = Some((1, 0));
        let xt = dev.tensor_from_vec(x.clone(), (n, 4));
        let y = h.forward_train(xt.clone().traced(Gradients::leaky()));
        let grads = (y * dev.tensor_from_vec(r.clone(), (n, 3)))
            .sum()
            .backward();
        let eps = 3e-3;
        let with = |set: &dyn Fn(&mut HiddenLayers, &[f32]), p: &[f32]| {
            let mut h = base.clone();
            set(&mut h, p);
            loss(&h, &x)
        };
        let w = base.weight.as_vec();
        let fd_w = finite_diff(&w, eps, |p| with(&|h, p| h.weight.copy_from(p), p));
        let b = base.bias.as_vec();
        let fd_b = finite_diff(&b, eps, |p| with(&|h, p| h.bias.copy_from(p), p));
        let fd_x = finite_diff(&x, eps, |p| loss(&base, p));
        let mut checks = vec![
            ("weight", grads.get(&h.weight).as_vec(), fd_w),
            ("x", grads.get(&xt).as_vec(), fd_x),
        ];
        let db = grads.get(&h.bias).as_vec();
        if bn {
            // a bias in front of BatchNorm has an exactly zero gradient (the batch mean
            // subtracts it again); finite differences only give their noise there
            let biggest = db.iter().fold(0.0f32, |m, v| m.max(v.abs()));
            let noise = fd_b.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            assert!(
                biggest < 1e-5 && noise < 1e-3,
                "{act:?}: bias grads {db:?}, fd {fd_b:?}"
            );
        } else {
            checks.push(("bias", db, fd_b));
        }
        if bn {
            let g = base.bn_weight.as_vec();
            let fd_g = finite_diff(&g, eps, |p| with(&|h, p| h.bn_weight.copy_from(p), p));
            checks.push(("bn_weight", grads.get(&h.bn_weight).as_vec(), fd_g));
        }
        for (what, got, fd) in checks {
            let e = rel_err(&got, &fd);
            println!("{act:?} bn={bn} p={p} d/d{what}: relative error {e:.2e}");
            worst.push((format!("{act:?} bn={bn} p={p} d/d{what}"), e));
        }
    }
    for (what, e) in worst {
        assert!(e < TOL, "{what}: relative error {e}");
    }
}
