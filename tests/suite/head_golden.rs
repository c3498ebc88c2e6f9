//! An MLP head against PyTorch (tests/golden/mlp_head.py wrote the numbers): the head loads
//! torch's `nn.Sequential` state dict by its names, and its eval-mode logits, train-mode
//! logits (same dropout masks), loss, gradients and updated BatchNorm statistics match.

use crate::common;

use ::safetensors::SafeTensors;
use dfdx::prelude::*;
use runner::models::feature_head::FeatureHead;
use runner::models::HeadConfig;
use runner::nn::HiddenLayers;
use runner::spec::{Activation, Pool};

const GOLDEN: &str = "tests/fixtures/reference/mlp_head_golden.safetensors";

fn floats(st: &SafeTensors, name: &str) -> (Vec<usize>, Vec<f32>) {
    let t = st
        .tensor(name)
        .unwrap_or_else(|_| panic!("{GOLDEN} has no `{name}`"));
    let v = t
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    (t.shape().to_vec(), v)
}

/// ‖a − b‖ / ‖b‖.
fn rel_err(a: &[f32], b: &[f32]) -> f64 {
    rel_err_floor(a, b, 1e-12)
}

/// ‖a − b‖ / max(‖b‖, floor).
fn rel_err_floor(a: &[f32], b: &[f32], floor: f64) -> f64 {
    common::grad::rel_err(a, b, floor)
}

#[test]
fn mlp_head_matches_pytorch() {
    runner::testing::on_each_engine(|engine| {
        println!("engine: {engine}");
        let bytes = std::fs::read(GOLDEN).unwrap();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        let step: Vec<usize> = serde_json::from_str(&meta["step"]).unwrap();
        let cfg = HeadConfig {
            widths: vec![5, 4],
            activation: Activation::Gelu,
            dropout: meta["dropout"].parse().unwrap(),
            batch_norm: true,
            pool: Pool::Avg,
            seed: step[0] as u64,
        };
        let dev = Cpu::default();
        let mut head = FeatureHead::new(&dev, 6, 3, &cfg);

        // torch's names are the ones the head reads and writes
        let last = head.hidden.layout.last_linear("fc");
        assert_eq!(last, "fc.9");
        let read = head
            .hidden
            .load_torch("fc", |n| st.tensor(n).ok().map(|_| floats(&st, n)))
            .unwrap();
        head.fc.weight.copy_from(&floats(&st, "fc.9.weight").1);
        head.fc.bias.copy_from(&floats(&st, "fc.9.bias").1);
        let mut ours: Vec<String> = read.iter().map(|n| n["fc.".len()..].to_string()).collect();
        ours.extend(["9.weight".into(), "9.bias".into()]);
        let torch: Vec<String> = serde_json::from_str::<Vec<String>>(&meta["state_dict_keys"])
            .unwrap()
            .into_iter()
            .filter(|k| !k.ends_with("num_batches_tracked"))
            .collect();
        assert_eq!(ours, torch);

        let (_, x) = floats(&st, "x");
        let labels: Vec<usize> = floats(&st, "labels")
            .1
            .iter()
            .map(|v| *v as usize)
            .collect();
        let n = labels.len();
        let mut errors: Vec<(String, f64)> = Vec::new();

        let eval = head.fc.forward(
            head.hidden
                .forward_eval(dev.tensor_from_vec(x.clone(), (n, 6))),
        );
        errors.push((
            "eval logits".into(),
            rel_err(&eval.as_vec(), &floats(&st, "eval_logits").1),
        ));

        head.hidden.step = Some((step[1], step[2]));
        let xt = dev.tensor_from_vec(x, (n, 6));
        let h = head
            .hidden
            .forward_train(xt.clone().traced(Gradients::leaky()));
        let logits = head.fc.forward(h);
        errors.push((
            "train logits".into(),
            rel_err(&logits.as_vec(), &floats(&st, "train_logits").1),
        ));
        let mut onehot = vec![0.0; n * 3];
        for (i, y) in labels.iter().enumerate() {
            onehot[i * 3 + y] = 1.0;
        }
        let loss = cross_entropy_with_logits_loss(logits, dev.tensor_from_vec(onehot, (n, 3)));
        errors.push((
            "loss".into(),
            rel_err(&[loss.array()], &floats(&st, "train_loss").1),
        ));
        let grads = loss.backward();
        errors.push((
            "grad x".into(),
            rel_err(&grads.get(&xt).as_vec(), &floats(&st, "grad.x").1),
        ));
        // the hidden buffers' gradients, laid out by torch name through a copy of the head
        let mut g: HiddenLayers = head.hidden.clone();
        g.weight.copy_from(&grads.get(&head.hidden.weight).as_vec());
        g.bias.copy_from(&grads.get(&head.hidden.bias).as_vec());
        g.bn_weight
            .copy_from(&grads.get(&head.hidden.bn_weight).as_vec());
        g.bn_bias
            .copy_from(&grads.get(&head.hidden.bn_bias).as_vec());
        let weight_grad_norm = |name: &str| -> f64 {
            let w = floats(&st, &format!("grad.{name}")).1;
            w.iter().map(|v| (*v as f64).powi(2)).sum::<f64>().sqrt()
        };
        for (name, _, v) in g.torch_tensors("fc") {
            if name.contains("running") {
                continue;
            }
            let torch = floats(&st, &format!("grad.{name}")).1;
            // The Linear biases in front of BatchNorm (fc.1, fc.5) have an exactly zero gradient
            // (the batch mean subtracts them); torch's and ours are rounding noise, so they are
            // measured against the size of their layer's weight gradient instead.
            let e = if name == "fc.1.bias" || name == "fc.5.bias" {
                let w = weight_grad_norm(&name.replace("bias", "weight"));
                rel_err_floor(&v, &torch, w)
            } else {
                rel_err(&v, &torch)
            };
            errors.push((format!("grad {name}"), e));
        }
        for (name, got) in [
            ("fc.9.weight", grads.get(&head.fc.weight).as_vec()),
            ("fc.9.bias", grads.get(&head.fc.bias).as_vec()),
        ] {
            let e = rel_err(&got, &floats(&st, &format!("grad.{name}")).1);
            errors.push((format!("grad {name}"), e));
        }
        for (name, _, v) in head.hidden.torch_tensors("fc") {
            if name.contains("running") {
                let e = rel_err(&v, &floats(&st, &format!("after.{name}")).1);
                errors.push((format!("{name} after the step"), e));
            }
        }

        let worst = errors.iter().map(|e| e.1).fold(0.0, f64::max);
        for (what, e) in &errors {
            println!("{what:>32}: relative error {e:.2e}");
        }
        println!("max relative error (‖ours − torch‖ / ‖torch‖ per tensor): {worst:.2e}");
        assert_eq!(errors.len(), 4 + 8 + 2 + 4);
        assert!(worst < 1e-5, "max relative error {worst}");
    });
}
