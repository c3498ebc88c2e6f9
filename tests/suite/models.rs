//! Golden tests against PyTorch (ResNet-18 and ResNet-50 with hash-filled weights,
//! EfficientNet-Lite0 with the embedded ImageNet weights) and checks of weight loading.

use crate::common;

use std::collections::HashMap;
use std::convert::Infallible;

use dfdx::losses::cross_entropy_with_logits_loss;
use dfdx::optim::{Momentum, Sgd, SgdConfig};
use dfdx::prelude::*;
use runner::models::{
    imagenet_class_name, load_torchvision_weights, save_torchvision_weights, Backbone, Classifier,
    Dev, EfficientNetLite0, ResNet18, ResNet50, SmallCnn, WeightsError,
};
use runner::testing::fill_with_hash;

const RESNET_GOLDEN: &str = "tests/fixtures/reference/resnet18_golden_io.safetensors";
const RESNET_BF16_GOLDEN: &str = "tests/fixtures/reference/resnet18_bf16_autocast.safetensors";
const RESNET50_GOLDEN: &str = "tests/fixtures/reference/resnet50_golden_io.safetensors";
const LITE0_GOLDEN: &str = "tests/fixtures/reference/efficientnet_lite0_golden.safetensors";
const LITE0_WEIGHTS: &str = "pipeline/weights/efficientnet_lite0_imagenet.safetensors";

/// All tensors of a safetensors file as f32 (i64 converted) with their shapes.
fn read_all(path: &str) -> HashMap<String, (Vec<usize>, Vec<f32>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = ::safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .map(|(name, v)| {
            let data = match v.dtype() {
                ::safetensors::Dtype::F32 => v
                    .data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
                ::safetensors::Dtype::I64 => v
                    .data()
                    .chunks_exact(8)
                    .map(|b| i64::from_le_bytes(b.try_into().unwrap()) as f32)
                    .collect(),
                d => panic!("unexpected dtype {d:?}"),
            };
            (name, (v.shape().to_vec(), data))
        })
        .collect()
}

/// ‖a − b‖ / ‖b‖.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    common::grad::rel_err(a, b, 0.0)
}

/// max |a − b|.
fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length");
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

/// One-hot rows of the golden file's class indices.
fn one_hot(dev: &Dev, target: &[f32], classes: usize) -> Tensor<(usize, usize), f32, Dev> {
    let mut onehot = vec![0.0f32; classes * target.len()];
    for (i, t) in target.iter().enumerate() {
        onehot[i * classes + *t as usize] = 1.0;
    }
    dev.tensor_from_vec(onehot, (target.len(), classes))
}

fn images(
    dev: &Dev,
    shape: &[usize],
    data: Vec<f32>,
) -> Tensor<(usize, Const<3>, usize, usize), f32, Dev> {
    assert_eq!(shape[1], 3);
    dev.tensor_from_vec(data, (shape[0], Const::<3>, shape[2], shape[3]))
}

/// The golden ResNet-18 (hash-filled) on the golden input, in eval and train mode: eval logits,
/// train logits, the mean cross-entropy and the gradients the golden files store, by name.
struct Resnet18Outputs {
    logits_eval: Vec<f32>,
    logits_train: Vec<f32>,
    loss: f32,
    grads: Vec<(&'static str, Vec<f32>)>,
}

fn resnet18_outputs(
    model: &mut Classifier<ResNet18>,
    g: &HashMap<String, (Vec<usize>, Vec<f32>)>,
) -> Resnet18Outputs {
    let dev = Dev::seed_from_u64(0);
    let (in_shape, input) = g["input"].clone();
    let x = images(&dev, &in_shape, input);
    // eval mode: BatchNorm on running statistics
    let logits_eval = model.forward_eval(x.clone()).as_vec();
    // train mode: batch statistics, mean cross-entropy, gradients
    let onehot = one_hot(&dev, &g["target"].1, 2);
    let grads = model.alloc_grads();
    let logits = model.forward_train(x.traced(grads));
    let logits_train = logits.as_vec();
    let loss = cross_entropy_with_logits_loss(logits, onehot);
    let l = loss.array();
    let grads = loss.backward();
    let b = &model.backbone;
    Resnet18Outputs {
        logits_eval,
        logits_train,
        loss: l,
        grads: vec![
            ("conv1.weight", grads.get(&b.conv1.weight).as_vec()),
            ("bn1.weight", grads.get(&b.bn1.scale).as_vec()),
            (
                "layer4.1.conv2.weight[:8]",
                grads.get(&b.layer4.1.conv2.weight).as_vec(),
            ),
            ("fc.weight", grads.get(&model.head.weight).as_vec()),
            ("fc.bias", grads.get(&model.head.bias).as_vec()),
        ],
    }
}

/// The relative errors of `ours` against a golden file's outputs: eval logits, train logits,
/// loss, then each gradient (compared over the golden's length), printed with `what`.
fn golden_errors(
    what: &str,
    ours: &Resnet18Outputs,
    g: &HashMap<String, (Vec<usize>, Vec<f32>)>,
) -> (f64, f64, f64, Vec<(&'static str, f64)>) {
    let eval = rel_err(&ours.logits_eval, &g["logits_eval"].1);
    let train = rel_err(&ours.logits_train, &g["logits_train"].1);
    let want = g["loss_train"].1[0];
    let loss = ((ours.loss - want) / want).abs() as f64;
    println!(
        "{what}: eval logits rel err {eval:.3e}, train logits {train:.3e}, loss {} vs {want} ({loss:.3e})",
        ours.loss
    );
    let grads = ours
        .grads
        .iter()
        .map(|(name, v)| {
            let (_, want) = &g[&format!("grad.{name}")];
            let e = rel_err(&v[..want.len()], want);
            println!("{what}: grad {name} rel err {e:.3e}");
            (*name, e)
        })
        .collect();
    (eval, train, loss, grads)
}

fn hash_filled_resnet18() -> Classifier<ResNet18> {
    let dev = Dev::seed_from_u64(0);
    let mut model = Classifier::<ResNet18>::new(&dev, 2);
    fill_with_hash(&mut model);
    model
}

#[test]
fn resnet18_matches_pytorch_golden() {
    runner::testing::on_each_engine(|engine| {
        println!("engine: {engine}");
        let g = read_all(RESNET_GOLDEN);
        let mut model = hash_filled_resnet18();

        // The fill reproduces PyTorch's probes.
        let probe = |name: &str, ours: Vec<f32>| {
            let (_, want) = &g[&format!("weights.{name}[:4]")];
            let e = rel_err(&ours[..want.len()], want);
            assert!(e < 1e-6, "probe {name}: rel err {e}");
        };
        probe("conv1.weight", model.backbone.conv1.weight.as_vec());
        probe("fc.bias", model.head.bias.as_vec());
        probe(
            "layer1.0.bn1.running_var",
            model.backbone.layer1.0.bn1.running_var.as_vec(),
        );
        probe(
            "layer2.0.downsample.1.bias",
            model.backbone.layer2.0.downsample.1.bias.as_vec(),
        );

        let ours = resnet18_outputs(&mut model, &g);
        let (eval, train, loss, grads) = golden_errors("resnet18", &ours, &g);
        assert!(eval < 1e-4, "eval logits rel err {eval}");
        assert!(train < 1e-4, "train logits rel err {train}");
        assert!(loss < 1e-4, "loss rel err {loss}");
        for (name, e) in grads {
            assert!(e < 1e-3, "grad {name}: rel err {e}");
        }
    });
}

/// `train.precision = "bf16-mixed"` against PyTorch's `torch.autocast("cpu", torch.bfloat16)` on
/// the golden ResNet-18. bf16 keeps 8 bits of mantissa, and the golden's train mode (BatchNorm
/// over a batch of two 64×64 images) amplifies rounding: autocast's own early-layer gradients
/// are 45–55% from f32's. So bf16's tolerance is PyTorch's own distance: every output (logits,
/// loss, each gradient) is at most [`BF16_TOLERANCE`] times as far from f32 as autocast's (plus
/// 1e-3), and
/// measurably not f32 (the test fails if the convolutions silently ran in f32).
#[test]
#[cfg_attr(
    not(bf16_cpu),
    ignore = "this CPU has neither avx512_bf16 nor AMX: oneDNN has no bf16 kernels for it"
)]
fn resnet18_bf16_mixed_is_as_close_to_f32_as_pytorch_autocast() {
    use runner::ops::engine::{self, Engine};
    let engine = Engine::onednn().expect("bf16 runs on oneDNN: install libdnnl");
    let f32_golden = read_all(RESNET_GOLDEN);
    let autocast = read_all(RESNET_BF16_GOLDEN);
    let ours = engine::with(engine, || {
        engine::with_conv_precision(runner_onednn::DataType::Bf16, || {
            resnet18_outputs(&mut hash_filled_resnet18(), &f32_golden)
        })
    });
    let flat = |e: (f64, f64, f64, Vec<(&'static str, f64)>)| {
        let mut v = vec![("eval logits", e.0), ("train logits", e.1), ("loss", e.2)];
        v.extend(e.3);
        v
    };
    let torch = Resnet18Outputs {
        logits_eval: autocast["logits_eval"].1.clone(),
        logits_train: autocast["logits_train"].1.clone(),
        loss: autocast["loss_train"].1[0],
        grads: ours
            .grads
            .iter()
            .map(|(name, _)| (*name, autocast[&format!("grad.{name}")].1.clone()))
            .collect(),
    };
    golden_errors("runner bf16 vs autocast", &ours, &autocast);
    let theirs = flat(golden_errors("autocast vs f32", &torch, &f32_golden));
    let mine = flat(golden_errors("runner bf16 vs f32", &ours, &f32_golden));
    for ((name, e), (_, bound)) in mine.iter().zip(&theirs) {
        assert!(
            *e <= BF16_TOLERANCE * bound + 1e-3,
            "{name}: runner's bf16 is {e:.3e} from f32, autocast {bound:.3e}"
        );
    }
    assert!(
        mine[0].1 > 1e-5,
        "eval logits within {:.1e} of f32: not computed in bf16",
        mine[0].1
    );
}

/// How much farther from f32 than PyTorch's autocast runner's bf16-mixed may be. Measured on
/// avx512_core_bf16: the gradients are 0.7–1.5× autocast's distance, the train logits 1.0×, the
/// loss 2.5× and the eval logits 3.8× (four logits of two classes near zero: one rounding moves
/// such a ratio a lot).
const BF16_TOLERANCE: f64 = 4.0;

/// Compares `ours` with the golden tensor `key`: prints the max abs difference and the relative
/// error, and asserts the relative error is under `tol` (ResNet-18's tolerances).
fn against(g: &HashMap<String, (Vec<usize>, Vec<f32>)>, key: &str, ours: &[f32], tol: f64) {
    let (_, want) = &g[key];
    let ours = &ours[..want.len()];
    let e = rel_err(ours, want);
    println!(
        "resnet50 {key}: max abs diff {:.3e}, rel err {e:.3e} (tolerance {tol:.0e})",
        max_abs(ours, want)
    );
    assert!(e < tol, "{key}: rel err {e}");
}

/// torchvision's resnet50 (bottleneck blocks, stride on the 3×3) with the hash fill, as PyTorch
/// ran it on two 64×64 images (tests/fixtures/pytorch/make_resnet50.py).
#[test]
fn resnet50_matches_pytorch_golden() {
    runner::testing::on_each_engine(|engine| {
        println!("engine: {engine}");
        let g = read_all(RESNET50_GOLDEN);
        let dev = Dev::seed_from_u64(0);
        let mut model = Classifier::<ResNet50>::new(&dev, 2);
        fill_with_hash(&mut model);
        let b = &model.backbone;
        against(
            &g,
            "weights.conv1.weight[:4]",
            &b.conv1.weight.as_vec(),
            1e-6,
        );
        against(&g, "weights.fc.bias[:4]", &model.head.bias.as_vec(), 1e-6);
        let var = b.layer1.0.bn3.running_var.as_vec();
        against(&g, "weights.layer1.0.bn3.running_var[:4]", &var, 1e-6);
        let bias = b.layer2.0.downsample.1.bias.as_vec();
        against(&g, "weights.layer2.0.downsample.1.bias[:4]", &bias, 1e-6);

        let (in_shape, input) = g["input"].clone();
        let x = images(&dev, &in_shape, input);
        // the logits of a hash-filled net are mostly fc.bias: the features check the backbone
        let features = model.backbone.forward_eval(x.clone()).as_vec();
        against(&g, "features_eval", &features, 1e-4);
        against(
            &g,
            "logits_eval",
            &model.forward_eval(x.clone()).as_vec(),
            1e-4,
        );

        // Train mode on the plain fill amplifies float32 rounding block after block (PyTorch's
        // own float32 and float64 differ by 3e-2 in conv1's gradient); the golden damps every
        // residual branch's last BatchNorm γ by 1/4 (exact in f32) for a well-conditioned net.
        let _ = runner::nn::tensors::for_each_mut(&mut model, |t| -> Result<(), Infallible> {
            if t.name().ends_with("bn3.scale") {
                let damped: Vec<f32> = t.values().iter().map(|v| v * 0.25).collect();
                t.set_values(&damped);
            }
            Ok(())
        });
        let onehot = one_hot(&dev, &g["target"].1, 2);
        let grads = model.alloc_grads();
        let logits = model.forward_train(x.traced(grads));
        against(&g, "logits_train", &logits.as_vec(), 1e-4);
        let loss = cross_entropy_with_logits_loss(logits, onehot);
        against(&g, "loss_train", &[loss.array()], 1e-4);
        let grads = loss.backward();
        let b = &model.backbone;
        for (key, tensor) in [
            ("grad.conv1.weight", grads.get(&b.conv1.weight).as_vec()),
            ("grad.bn1.weight", grads.get(&b.bn1.scale).as_vec()),
            (
                "grad.layer1.0.downsample.0.weight[:8]",
                grads.get(&b.layer1.0.downsample.0.weight).as_vec(),
            ),
            (
                "grad.layer2.0.conv2.weight[:8]",
                grads.get(&b.layer2.0.conv2.weight).as_vec(),
            ),
            (
                "grad.layer4.2.conv3.weight[:8]",
                grads.get(&b.layer4.2.conv3.weight).as_vec(),
            ),
            ("grad.fc.weight", grads.get(&model.head.weight).as_vec()),
            ("grad.fc.bias", grads.get(&model.head.bias).as_vec()),
        ] {
            against(&g, key, &tensor, 1e-3);
        }
    });
}

fn top5(row: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].partial_cmp(&row[a]).unwrap());
    idx.truncate(5);
    idx
}

#[test]
fn efficientnet_lite0_matches_pytorch_golden() {
    runner::testing::on_each_engine(|engine| {
        println!("engine: {engine}");
        let g = read_all(LITE0_GOLDEN);
        let dev = Dev::seed_from_u64(0);
        let mut model = Classifier::<EfficientNetLite0>::new(&dev, 1000);
        let report = load_torchvision_weights(&mut model, LITE0_WEIGHTS, false).unwrap();
        assert!(!report.head_replaced);
        assert_eq!(report.checkpoint_classes, Some(1000));
        let (in_shape, input) = g["input"].clone();
        let logits = model.forward_eval(images(&dev, &in_shape, input)).as_vec();
        let want = &g["logits"].1;
        let e = rel_err(&logits, want);
        println!("efficientnet_lite0 logits rel err {e:.3e}");
        assert!(e < 1e-3, "logits rel err {e}");
        for i in 0..in_shape[0] {
            let (ours, theirs) = (
                top5(&logits[i * 1000..(i + 1) * 1000]),
                top5(&want[i * 1000..(i + 1) * 1000]),
            );
            println!(
                "image {i}: top-5 {ours:?} ({})",
                imagenet_class_name(ours[0])
            );
            assert_eq!(ours, theirs, "top-5 of image {i}");
        }
        assert_eq!(top5(&logits[..1000])[..3], [285, 281, 282]);
    });
}

/// The folded frozen-feature path (BatchNorm folded into the convolutions, ReLU6 and the
/// residual adds fused) against the unfused eval-mode forward pass, on the ImageNet weights, for
/// both poolings, the golden input and a batch of another size.
#[test]
fn folded_lite0_features_equal_the_unfused_ones() {
    use runner::models::fold::FrozenFeatures;
    use runner::spec::Pool;
    let g = read_all(LITE0_GOLDEN);
    let dev = Dev::seed_from_u64(0);
    let mut model = Classifier::<EfficientNetLite0>::new(&dev, 1000);
    load_torchvision_weights(&mut model, LITE0_WEIGHTS, false).unwrap();
    let (shape, golden) = g["input"].clone();
    let other: Vec<f32> = (0..3 * 3 * 96 * 96)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 2.0)
        .collect();
    let inputs = [
        ((shape[0], shape[2], shape[3]), golden),
        ((3, 96, 96), other),
    ];
    runner::testing::on_each_engine(|engine| {
        for ((n, h, w), x) in &inputs {
            for pool in [Pool::Avg, Pool::Max] {
                let frozen = FrozenFeatures::new(model.backbone.clone(), pool);
                assert!(frozen.is_folded());
                let folded = frozen.features(&dev, x.clone(), *n, *h, *w);
                let mut backbone = model.backbone.clone();
                backbone.set_pool(pool);
                let unfused = backbone
                    .forward_eval(dev.tensor_from_vec(x.clone(), (*n, Const::<3>, *h, *w)))
                    .as_vec();
                assert_eq!(folded.len(), unfused.len());
                let worst = folded
                    .iter()
                    .zip(&unfused)
                    .map(|(a, b)| (a - b).abs() / b.abs().max(1.0))
                    .fold(0.0f32, f32::max);
                println!("{engine} {n}x{h}x{w} {pool:?}: worst difference {worst:.2e}");
                assert!(worst <= 1e-4, "{engine} {n}x{h}x{w} {pool:?}: {worst}");
            }
        }
    });
}

fn temp_path(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("runner-models-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// Writes a safetensors file of f32 tensors.
fn write_file(path: &std::path::Path, tensors: &[(String, Vec<usize>, Vec<f32>)]) {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, d)| d.iter().flat_map(|v| v.to_le_bytes()).collect())
        .collect();
    let views: Vec<(String, ::safetensors::tensor::TensorView)> = tensors
        .iter()
        .zip(&bytes)
        .map(|((n, s, _), b)| {
            (
                n.clone(),
                ::safetensors::tensor::TensorView::new(::safetensors::Dtype::F32, s.clone(), b)
                    .unwrap(),
            )
        })
        .collect();
    ::safetensors::serialize_to_file(views, &None, path).unwrap();
}

#[test]
fn weights_round_trip_and_head_replacement() {
    let dev = Dev::seed_from_u64(1);
    let model = Classifier::<SmallCnn>::new(&dev, 10);
    let path = temp_path("small10.safetensors");
    save_torchvision_weights(&model, &path).unwrap();

    // Same class count: every tensor (running statistics included) comes back.
    let mut other = Classifier::<SmallCnn>::new(&Dev::seed_from_u64(2), 10);
    let report = load_torchvision_weights(&mut other, &path, false).unwrap();
    assert_eq!(report.tensors_loaded, 3 + 3 * 4 + 2); // 3 convs, 3 BatchNorms × 4, head weight + bias
    assert!(!report.head_replaced);
    assert_eq!(
        other.backbone.conv2.weight.as_vec(),
        model.backbone.conv2.weight.as_vec()
    );
    assert_eq!(
        other.backbone.bn3.running_var.as_vec(),
        model.backbone.bn3.running_var.as_vec()
    );
    assert_eq!(other.head.weight.as_vec(), model.head.weight.as_vec());

    // Other class count: refused without opt-in, with a hint at the setting.
    let mut three = Classifier::<SmallCnn>::new(&dev, 3);
    let err = load_torchvision_weights(&mut three, &path, false).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(
            err,
            WeightsError::HeadClasses {
                found: 10,
                expected: 3,
                ..
            }
        ),
        "{msg}"
    );
    assert!(
        msg.contains("head.replace = true") && msg.contains("small10.safetensors"),
        "{msg}"
    );

    // Opted in: backbone loaded, head re-initialised.
    let report = load_torchvision_weights(&mut three, &path, true).unwrap();
    assert!(report.head_replaced);
    assert_eq!(report.checkpoint_classes, Some(10));
    assert_eq!(
        three.backbone.conv1.weight.as_vec(),
        model.backbone.conv1.weight.as_vec()
    );
    assert_eq!(three.head.weight.shape(), &(3, 128));
}

#[test]
fn weights_mismatch_lists_every_offending_tensor() {
    let dev = Dev::seed_from_u64(1);
    let model = Classifier::<SmallCnn>::new(&dev, 4);
    let good = temp_path("small4.safetensors");
    save_torchvision_weights(&model, &good).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = read_all(good.to_str().unwrap())
        .into_iter()
        .map(|(n, (s, d))| (n, s, d))
        .filter(|(n, _, _)| n != "bn2.running_mean")
        .collect();
    for (n, s, d) in tensors.iter_mut() {
        if n == "conv3.weight" {
            *s = vec![128, 64, 1, 9];
            let _ = d;
        }
    }
    tensors.push(("conv4.weight".into(), vec![2, 2], vec![0.0; 4]));
    tensors.push(("bn1.num_batches_tracked".into(), vec![1], vec![0.0]));
    let bad = temp_path("small4-bad.safetensors");
    write_file(&bad, &tensors);

    let mut target = Classifier::<SmallCnn>::new(&Dev::seed_from_u64(3), 4);
    let before = target.backbone.conv1.weight.as_vec();
    let err = load_torchvision_weights(&mut target, &bad, false).unwrap_err();
    let msg = err.to_string();
    println!("{msg}");
    match &err {
        WeightsError::Mismatch { problems, .. } => assert_eq!(problems.len(), 3, "{msg}"),
        other => panic!("unexpected error {other}"),
    }
    assert!(msg.contains("small4-bad.safetensors"), "{msg}");
    assert!(
        msg.contains("missing tensor `bn2.running_mean` (expected shape [64])"),
        "{msg}"
    );
    assert!(
        msg.contains("tensor `conv3.weight` has shape [128, 64, 1, 9], expected [128, 64, 3, 3]"),
        "{msg}"
    );
    assert!(msg.contains("unexpected tensor `conv4.weight`"), "{msg}");
    assert!(!msg.contains("num_batches_tracked"), "{msg}");
    // Nothing was loaded.
    assert_eq!(target.backbone.conv1.weight.as_vec(), before);

    let err =
        load_torchvision_weights(&mut target, temp_path("nope.safetensors"), false).unwrap_err();
    assert!(
        err.to_string().starts_with("cannot read weights file")
            && err.to_string().contains("nope.safetensors")
    );
}

#[test]
fn every_backbone_trains_one_step_on_small_inputs() {
    runner::testing::on_each_engine(|engine| {
        println!("engine: {engine}");
        // Shapes flow, gradients reach the first conv, the optimizer accepts every parameter.
        fn step<B: Backbone>(size: usize) {
            let dev = Dev::seed_from_u64(4);
            let mut model = Classifier::<B>::new(&dev, 3);
            let mut opt = Sgd::new(
                &model,
                SgdConfig {
                    lr: 0.01,
                    momentum: Some(Momentum::Classic(0.9)),
                    weight_decay: None,
                },
            );
            let x: Tensor<(usize, Const<3>, usize, usize), f32, Dev> =
                dev.sample_normal_like(&(2, Const, size, size));
            let y = dev.tensor_from_vec(vec![1.0f32, 0.0, 0.0, 0.0, 0.0, 1.0], (2usize, 3usize));
            let grads = model.alloc_grads();
            let logits = model.forward_train(x.clone().traced(grads));
            assert_eq!(logits.shape(), &(2, 3));
            let loss = cross_entropy_with_logits_loss(logits, y);
            assert!(loss.array().is_finite());
            let grads = loss.backward();
            opt.update(&mut model, &grads)
                .expect("every parameter gets a gradient");
            let eval = model.forward_eval(x);
            assert!(eval.as_vec().iter().all(|v| v.is_finite()), "{}", B::NAME);
        }
        step::<SmallCnn>(28);
        step::<SmallCnn>(64);
        step::<ResNet18>(32);
        // at 32 its last stage is 1×1: train-mode BatchNorm over two values blows the
        // gradients up and one SGD step gives NaN logits (in PyTorch too)
        step::<ResNet50>(64);
        step::<EfficientNetLite0>(32);
    });
}

#[test]
fn dfdx_safetensors_reset_and_param_count_see_every_tensor() {
    let dev = Dev::seed_from_u64(5);
    let model = Classifier::<SmallCnn>::new(&dev, 5);
    // 3·32·9 + 32·64·9 + 64·128·9 conv weights, 2·(32+64+128) BatchNorm γ/β, 128·5 + 5 head.
    assert_eq!(
        model.num_trainable_params(),
        864 + 18432 + 73728 + 2 * 224 + 645
    );
    let path = temp_path("small5-dfdx.safetensors");
    // Written by the project's own walker: dfdx 0.13's `save_safetensors` reads every tensor
    // with `as_vec`, which panics on the empty hidden-layer buffers of a linear head (see
    // `runner::nn::values`). dfdx's loader reads the file back.
    runner::train::checkpoint::save_weights(&path, &model).unwrap();
    let mut other = Classifier::<SmallCnn>::new(&Dev::seed_from_u64(6), 5);
    assert_ne!(
        other.backbone.conv3.weight.as_vec(),
        model.backbone.conv3.weight.as_vec()
    );
    other.load_safetensors(&path).unwrap();
    assert_eq!(
        other.backbone.conv3.weight.as_vec(),
        model.backbone.conv3.weight.as_vec()
    );
    assert_eq!(other.head.bias.as_vec(), model.head.bias.as_vec());
    other.reset_params();
    assert_ne!(
        other.backbone.conv3.weight.as_vec(),
        model.backbone.conv3.weight.as_vec()
    );
    assert_eq!(other.head.weight.shape(), &(5, 128));
    // Kaiming normal, fan-out 128·3·3: std ≈ √(2/1152) ≈ 0.0417.
    let w = other.backbone.conv3.weight.as_vec();
    let std = (w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>() / w.len() as f64).sqrt();
    assert!((std - (2.0f64 / 1152.0).sqrt()).abs() < 0.003, "std {std}");
}

#[test]
fn modules_compose_in_dfdx_tuples() {
    use runner::nn::builder::{AvgPool2D, Conv2D, MaxPool2D, ReLU6};
    use runner::nn::SAME;
    type Net = (
        (Conv2D<3, 8, 3, 1, 1>, BatchNorm2D<8>, ReLU, MaxPool2D<2, 2>),
        Residual<(Conv2D<8, 8, 3, 1, SAME, 8>, BatchNorm2D<8>, ReLU6)>,
        (
            Conv2D<8, 16, 3, 2, SAME>,
            Bias2D<16>,
            AvgPool2D<2, 2, 0>,
            AvgPoolGlobal,
        ),
    );
    let dev = Dev::seed_from_u64(7);
    let mut net = dev.build_module::<Net, f32>();
    assert_eq!(
        net.1 .0 .0.weight.shape(),
        &(Const::<8>, 1, Const::<3>, Const::<3>)
    );
    let mut opt = Sgd::new(
        &net,
        SgdConfig {
            lr: 0.1,
            momentum: None,
            weight_decay: None,
        },
    );
    let x: Tensor<(usize, Const<3>, usize, usize), f32, Dev> =
        dev.sample_normal_like(&(2, Const, 16, 16));
    let grads = net.alloc_grads();
    let y = net.forward_mut(x.clone().traced(grads));
    assert_eq!(y.shape(), &(2, Const::<16>));
    let grads = y.square().mean().backward();
    let before = net.0 .0.weight.as_vec();
    opt.update(&mut net, &grads)
        .expect("all parameters updated");
    assert_ne!(net.0 .0.weight.as_vec(), before);
    let eval = net.forward(x);
    assert!(eval.as_vec().iter().all(|v| v.is_finite()));
}

/// Nothing frozen = train mode; everything frozen = eval mode (features on a fresh tape).
fn frozen_extremes<B: Backbone>(size: usize) {
    let dev = Dev::seed_from_u64(8);
    let model = Classifier::<B>::new(&dev, 3);
    let x: Tensor<(usize, Const<3>, usize, usize), f32, Dev> =
        dev.sample_normal_like(&(2, Const, size, size));
    assert!(
        B::frozen_blocks(B::BLOCKS[B::BLOCKS.len() - 1]).is_none(),
        "the head cannot be frozen"
    );
    let (mut a, mut b) = (model.clone(), model.clone());
    let ga = a.alloc_grads();
    let la = a.forward_train_frozen(x.clone(), 0, ga).as_vec();
    let gb = b.alloc_grads();
    let lb = b.forward_train(x.clone().traced(gb)).as_vec();
    assert!(rel_err(&la, &lb) < 1e-6, "{}: frozen 0 vs train", B::NAME);
    let mut c = model.clone();
    let gc = c.alloc_grads();
    let lc = c
        .forward_train_frozen(x.clone(), B::BLOCKS.len(), gc)
        .as_vec();
    assert!(
        rel_err(&lc, &model.forward_eval(x).as_vec()) < 1e-6,
        "{}: all frozen vs eval",
        B::NAME
    );
}

#[test]
fn partial_freezing() {
    runner::testing::on_each_engine(|engine| {
        println!("engine: {engine}");
        frozen_extremes::<SmallCnn>(16);
        frozen_extremes::<ResNet18>(32);
        frozen_extremes::<ResNet50>(32);
        frozen_extremes::<EfficientNetLite0>(32);

        let dev = Dev::seed_from_u64(9);
        let x: Tensor<(usize, Const<3>, usize, usize), f32, Dev> =
            dev.sample_normal_like(&(2, Const, 32, 32));
        let zero = |v: Vec<f32>| v.iter().all(|x| *x == 0.0);

        let mut m = Classifier::<ResNet18>::new(&dev, 3);
        let k = ResNet18::frozen_blocks("layer2").unwrap();
        assert_eq!(k, 4);
        let (rm_frozen, rm_trained) = (
            m.backbone.layer2.1.bn2.running_mean.as_vec(),
            m.backbone.layer3.0.bn1.running_mean.as_vec(),
        );
        let grads = m.alloc_grads();
        let grads = m
            .forward_train_frozen(x.clone(), k, grads)
            .square()
            .mean()
            .backward();
        let b = &m.backbone;
        assert!(
            zero(grads.get(&b.layer2.1.conv2.weight).as_vec())
                && zero(grads.get(&b.conv1.weight).as_vec())
        );
        assert!(
            !zero(grads.get(&b.layer3.0.conv1.weight).as_vec())
                && !zero(grads.get(&m.head.weight).as_vec())
        );
        assert_eq!(b.layer2.1.bn2.running_mean.as_vec(), rm_frozen);
        assert_ne!(b.layer3.0.bn1.running_mean.as_vec(), rm_trained);

        let mut m = Classifier::<EfficientNetLite0>::new(&dev, 3);
        let k = EfficientNetLite0::frozen_blocks("_blocks.3").unwrap();
        assert_eq!(k, 6);
        let grads = m.alloc_grads();
        let grads = m
            .forward_train_frozen(x, k, grads)
            .square()
            .mean()
            .backward();
        let b = &m.backbone._blocks;
        assert!(zero(grads.get(&b.b3._project_conv.weight).as_vec()));
        assert!(!zero(grads.get(&b.b4._expand_conv.weight).as_vec()));
    });
}
