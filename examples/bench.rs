//! Throughput and memory harness (not a test): `cargo run --release --example bench -- WHAT`
//! with WHAT one of `resnet18-train` (64×64, batch 16), `resnet34-train` (224×224, batch 4;
//! run under `/usr/bin/time -v` for peak RSS), `lite0-infer` / `lite0-train` (224×224, batch 8),
//! `conv` (per-layer conv GFLOP/s), `bn` (fused vs dfdx BatchNorm). Optional second argument:
//! iterations. dfdx's tensor cache is enabled unless NO_CACHE is set.

use std::time::Instant;

use dfdx::losses::cross_entropy_with_logits_loss;
use dfdx::optim::{Momentum, Sgd, SgdConfig};
use dfdx::prelude::*;
use runner::models::{Backbone, Classifier, Dev, EfficientNetLite0, ResNet18, ResNet34};
use runner::ops::conv::{conv2d_backward_input, conv2d_backward_weight, conv2d_forward};
use runner::ops::{Conv2dGeom, Padding};

fn train<B: Backbone>(batch: usize, size: usize, iters: usize) {
    let dev = Dev::seed_from_u64(0);
    if std::env::var_os("NO_CACHE").is_none() {
        dev.enable_cache();
    }
    let mut model = Classifier::<B>::new(&dev, 10);
    let mut opt = Sgd::new(
        &model,
        SgdConfig {
            lr: 0.01,
            momentum: Some(Momentum::Classic(0.9)),
            weight_decay: None,
        },
    );
    let x: Tensor<(usize, Const<3>, usize, usize), f32, Dev> =
        dev.sample_normal_like(&(batch, Const, size, size));
    let mut y = vec![0.0f32; batch * 10];
    (0..batch).for_each(|i| y[i * 10 + i % 10] = 1.0);
    let y = dev.tensor_from_vec(y, (batch, 10usize));
    let mut grads = model.alloc_grads();
    for i in 0..iters + 1 {
        let start = Instant::now();
        let logits = model.forward_train(x.clone().traced(grads));
        let loss = cross_entropy_with_logits_loss(logits, y.clone());
        let l = loss.array();
        grads = loss.backward();
        opt.update(&mut model, &grads).unwrap();
        model.zero_grads(&mut grads);
        let s = start.elapsed().as_secs_f64();
        println!(
            "{} train {size}x{size} batch {batch} step {i}{}: {:.3} s, {:.2} img/s, loss {l:.4}",
            B::NAME,
            if i == 0 { " (warm-up)" } else { "" },
            s,
            batch as f64 / s
        );
    }
}

fn infer<B: Backbone>(batch: usize, size: usize, iters: usize) {
    let dev = Dev::seed_from_u64(0);
    if std::env::var_os("NO_CACHE").is_none() {
        dev.enable_cache();
    }
    let model = Classifier::<B>::new(&dev, 1000);
    let x: Tensor<(usize, Const<3>, usize, usize), f32, Dev> =
        dev.sample_normal_like(&(batch, Const, size, size));
    for i in 0..iters + 1 {
        let start = Instant::now();
        let y = model.forward_eval(x.clone());
        let _ = y.as_vec();
        let s = start.elapsed().as_secs_f64();
        println!(
            "{} eval {size}x{size} batch {batch} run {i}: {:.3} s, {:.2} img/s",
            B::NAME,
            s,
            batch as f64 / s
        );
    }
}

fn conv_layers() {
    // (name, c_in, c_out, k, stride, groups, size) of representative layers at batch 4.
    let layers = [
        ("resnet stem 7x7/2", 3, 64, 7, 2, 1, 224),
        ("resnet layer1 3x3", 64, 64, 3, 1, 1, 56),
        ("resnet layer2 3x3", 128, 128, 3, 1, 1, 28),
        ("resnet layer3 3x3", 256, 256, 3, 1, 1, 14),
        ("resnet layer4 3x3", 512, 512, 3, 1, 1, 7),
        ("lite0 expand 1x1", 24, 144, 1, 1, 1, 56),
        ("lite0 dw 5x5", 240, 240, 5, 1, 240, 28),
    ];
    for (name, ci, co, k, s, g, hw) in layers {
        let pad = if k == 7 {
            Padding::Symmetric(3)
        } else if g > 1 {
            Padding::Same
        } else {
            Padding::Symmetric(k / 2)
        };
        let geom = Conv2dGeom::new(4, ci, hw, hw, co, k, s, pad, g);
        let x = vec![0.5f32; 4 * ci * hw * hw];
        let w = vec![0.01f32; geom.weight_len()];
        let flop = 2.0 * geom.macs() as f64;
        let t = Instant::now();
        let out = conv2d_forward(&geom, &x, &w, None);
        let fwd = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut dx = vec![0.0f32; x.len()];
        conv2d_backward_input(&geom, &w, &out, &mut dx);
        let bwd_x = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let mut dw = vec![0.0f32; w.len()];
        conv2d_backward_weight(&geom, &x, &out, &mut dw, None);
        let bwd_w = t.elapsed().as_secs_f64();
        println!(
            "{name:20} fwd {:6.1} GFLOP/s  dx {:6.1} GFLOP/s  dw {:6.1} GFLOP/s",
            flop / fwd / 1e9,
            flop / bwd_x / 1e9,
            flop / bwd_w / 1e9
        );
    }
}

/// dfdx's BatchNorm2D against the fused one, train step (forward + backward) on 4×64×112×112.
fn batchnorm() {
    let dev = Dev::seed_from_u64(0);
    if std::env::var_os("NO_CACHE").is_none() {
        dev.enable_cache();
    }
    let mut ours = dev.build_module::<runner::nn::builder::BatchNorm2D<64>, f32>();
    let mut theirs = dev.build_module::<dfdx::nn::builders::BatchNorm2D<64>, f32>();
    let x: Tensor<(usize, Const<64>, usize, usize), f32, Dev> =
        dev.sample_normal_like(&(4, Const, 112, 112));
    for round in 0..3 {
        let t = Instant::now();
        let y = ours.forward_mut(x.clone().leaky_traced());
        let _ = y.sum().backward();
        let a = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let y = theirs.forward_mut(x.clone().leaky_traced());
        let _ = y.sum().backward();
        let b = t.elapsed().as_secs_f64();
        println!(
            "batchnorm train fwd+bwd round {round}: fused {:.1} ms, dfdx {:.1} ms",
            a * 1e3,
            b * 1e3
        );
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map(String::as_str).unwrap_or("resnet18-train");
    let iters: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(3);
    match what {
        "resnet18-train" => train::<ResNet18>(16, 64, iters),
        "resnet34-train" => train::<ResNet34>(4, 224, iters),
        "lite0-infer" => infer::<EfficientNetLite0>(8, 224, iters),
        "lite0-train" => train::<EfficientNetLite0>(8, 224, iters),
        "conv" => conv_layers(),
        "bn" => batchnorm(),
        other => panic!("unknown benchmark {other}"),
    }
}
