//! `runner export onnx`, checked by the real tools: every architecture and both head kinds,
//! frozen and not, trained for one epoch on the tiny fixture, exported, passed through
//! `onnx.checker.check_model` and run by onnxruntime (tests/support/onnx_check.py) on the
//! fixture's val images; the logits must equal the runner's own forward pass on the run (the one
//! its test split and `runner evaluate` score with) within 1e-4. Needs a Python with onnx and
//! onnxruntime: `RUNNER_ONNX_PYTHON`, else `target/onnx-venv/bin/python` (what .ci/run creates).
//! `-- --nocapture` prints the comparison table, with the time of one batch both ways.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::common;
use common::{runner, text, tools, Spec};
use libtest_mimic::Trial;
use runner::results::layout::RunDir;

pub(crate) fn trials() -> Vec<Trial> {
    let group = tools::Group::new(module_path!());
    let missing = python_with_onnx().is_none().then(|| {
        "no Python with onnx and onnxruntime (set RUNNER_ONNX_PYTHON, or: python3 -m venv \
         target/onnx-venv && target/onnx-venv/bin/pip install onnx==1.17.0 onnxruntime==1.20.1)"
            .to_string()
    });
    vec![group.needs(
        "onnxruntime_gives_the_runners_logits_for_every_architecture_and_head",
        missing,
        onnxruntime_gives_the_runners_logits_for_every_architecture_and_head,
    )]
}

fn python_with_onnx() -> Option<PathBuf> {
    let candidates = [
        std::env::var("RUNNER_ONNX_PYTHON").ok().map(PathBuf::from),
        Some(common::project().join("target/onnx-venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import onnx, onnxruntime"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// (backbone, head, freeze, crop).
type Case = (&'static str, &'static str, &'static str, u32);

/// Every architecture, both head kinds, frozen and not.
const CASES: &[Case] = &[
    ("linear", "linear", "false", 16),
    ("mlp", "linear", "false", 16),
    ("small_cnn", "linear", "false", 28),
    ("small_cnn", "mlp", "true", 28),
    ("resnet18", "linear", "false", 32),
    ("resnet18", "mlp", "true", 32),
    ("resnet34", "linear", "true", 32),
    ("resnet34", "mlp", "false", 32),
    // 64: at 32 the last stage is 1×1, and one epoch of train-mode BatchNorm over a batch's
    // single values blows ResNet-50's gradients up (PyTorch's too)
    ("resnet50", "linear", "false", 64),
    ("resnet50", "mlp", "true", 64),
    ("efficientnet_lite0", "linear", "false", 32),
    ("efficientnet_lite0", "mlp", "true", 32),
];

fn spec() -> Spec {
    let list = |f: &dyn Fn(&Case) -> String| CASES.iter().map(f).collect::<Vec<_>>().join(", ");
    Spec::named("onnx", 2)
        .table(
            "transforms",
            &["resize = 64", "crop = 32", "mean = [0.5, 0.45, 0.4]", "std = [0.25, 0.2, 0.3]"],
        )
        .set("backbone", "name = \"small_cnn\"")
        // an MLP head with every layer kind: BatchNorm1d and the exact GELU
        .table("head", &["hidden = [24]", "activation = \"gelu\"", "batch_norm = true"])
        .table("optimizer", &["kind = \"sgd\"", "lr = 0.01"])
        .table("train", &["batch_size = 4", "epochs = 1"])
        .set(
            "sweep",
            &format!(
                r#"zip = [{{ "backbone.name" = [{}], "head.kind" = [{}], "backbone.freeze" = [{}], "transforms.crop" = [{}] }}]"#,
                list(&|c| format!("\"{}\"", c.0)),
                list(&|c| format!("\"{}\"", c.1)),
                list(&|c| c.2.to_string()),
                list(&|c| c.3.to_string()),
            ),
        )
}

struct Checked {
    logits: Vec<f64>,
    shape: Vec<usize>,
    opset: i64,
    batch_dim: String,
    classes: String,
    seconds: f64,
}

fn onnxruntime(
    model: &Path,
    input: &[f32],
    (n, h, w): (usize, usize, usize),
    repeats: usize,
) -> Checked {
    let file = model.with_extension("input.f32");
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new(python_with_onnx().unwrap())
        .arg(common::project().join("tests/support/onnx_check.py"))
        .arg(model)
        .arg(&file)
        .args([n, h, w, repeats].map(|v| v.to_string()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Checked {
        logits: v["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect(),
        shape: v["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_u64().unwrap() as usize)
            .collect(),
        opset: v["opset"].as_i64().unwrap(),
        batch_dim: v["batch_dim"].as_str().unwrap().to_string(),
        classes: v["metadata"]["classes"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        seconds: v["seconds"].as_f64().unwrap_or(f64::NAN),
    }
}

/// `runner export onnx RUN --to TO FLAGS` in `dir`, which must succeed.
fn export(dir: &Path, run: &Path, to: &Path, flags: &[&str]) {
    let (run, to) = (run.display().to_string(), to.display().to_string());
    let mut args = vec!["export", "onnx", &run, "--to", &to];
    args.extend_from_slice(flags);
    let out = runner(dir, &args);
    assert!(out.status.success(), "{}", text(&out));
}

fn max_abs(a: &[f32], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (*x as f64 - y).abs())
        .fold(0.0, f64::max)
}

fn onnxruntime_gives_the_runners_logits_for_every_architecture_and_head() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    spec().write(dir.path());
    let out = runner(dir.path(), &["run", "exp.toml", "--results", "r"]);
    assert!(out.status.success(), "{}", text(&out));
    let mut images: Vec<PathBuf> = ["cat", "dog"]
        .iter()
        .flat_map(|c| std::fs::read_dir(common::tiny().join("val").join(c)).unwrap())
        .map(|e| e.unwrap().path())
        .collect();
    images.sort();
    let mut runs: Vec<PathBuf> = std::fs::read_dir(dir.path().join("r/onnx"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| RunDir::at(p).model().is_file())
        .collect();
    runs.sort();
    assert_eq!(runs.len(), CASES.len());
    println!("| architecture | head | frozen | max abs logit | max abs diff | max abs diff, --with-preprocessing | runner s/batch (weights load + forward) | onnxruntime s/batch (session.run, median of 5) |");
    println!("|---|---|---|---|---|---|---|---|");
    for run in &runs {
        let (_, spec, kept, _) = runner::evaluate::open_run(run).unwrap();
        let (x, n, h, w) = kept.batch(&images).unwrap();
        let t = Instant::now();
        let ours = kept.logits(x.clone(), n, h, w).unwrap();
        let our_seconds = t.elapsed().as_secs_f64();
        let plain = run.join("model.onnx");
        export(dir.path(), run, &plain, &[]);
        let theirs = onnxruntime(&plain, &x, (n, h, w), 5);
        assert_eq!(theirs.shape, vec![n, 2]);
        assert!(theirs.opset >= 17);
        assert_eq!(theirs.batch_dim, "batch");
        assert_eq!(theirs.classes, r#"["cat","dog"]"#);
        let d = max_abs(&ours, &theirs.logits);
        // with the normalisation in the graph, the input is the image in [0, 1]
        let pre = run.join("model-pre.onnx");
        export(dir.path(), run, &pre, &["--with-preprocessing"]);
        let t = &spec.transforms;
        let raw: Vec<f32> = x
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let c = (i / (h * w)) % 3;
                v * t.std[c] + t.mean[c]
            })
            .collect();
        let with_pre = onnxruntime(&pre, &raw, (n, h, w), 0);
        let d_pre = max_abs(&ours, &with_pre.logits);
        let scale = ours.iter().fold(0.0f32, |m, v| m.max(v.abs())) as f64;
        println!(
            "| {:?} | {:?} | {:?} | {scale:.3e} | {d:.2e} | {d_pre:.2e} | {our_seconds:.4} | {:.4} |",
            spec.backbone.name,
            spec.head.kind,
            spec.backbone.freeze,
            theirs.seconds
        );
        // 1e-4 on logits of order 1; float rounding grows with the logits' size (a ResNet one
        // epoch from random initialisation reaches thousands in eval mode), so relative there
        let tolerance = 1e-4 * scale.max(1.0);
        assert!(
            d <= tolerance,
            "{}: max abs difference {d} (logits up to {scale})",
            run.display()
        );
        assert!(
            d_pre <= tolerance,
            "{}: with preprocessing, max abs difference {d_pre} (logits up to {scale})",
            run.display()
        );
    }
}
