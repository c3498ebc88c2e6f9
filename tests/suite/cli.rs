//! End-to-end: the `runner` binary on tiny real data, read back through polars.

use crate::common;

use std::path::{Path, PathBuf};

use common::{runner, runner_logged, write_spec, Spec};
use polars::prelude::*;
use runner::results::layout::RunDir;

/// The two-run MLP sweep over `regularization.lambda`.
fn sweep() -> String {
    common::spec_fixture("sweep.toml")
}

/// A random small CNN, frozen, under a two-run sweep: its features are computed once.
fn frozen() -> Spec {
    Spec::bare("frozen")
        .table("transforms", &["resize = 32", "crop = 32"])
        .table("backbone", &["name = \"small_cnn\"", "freeze = true"])
        .set("regularization", "kind = \"l2\"")
        .table("train", &["epochs = 2", "batch_size = 8"])
        .set("sweep", r#"grid = { "regularization.lambda" = [0, 0.5] }"#)
}

/// A ResNet-18 frozen up to `layer3`, two learning rates.
fn until() -> Spec {
    Spec::named("until", 5)
        .table("transforms", &["resize = 32", "crop = 32"])
        .table(
            "backbone",
            &["name = \"resnet18\"", "freeze = \"until:layer3\""],
        )
        .table("train", &["epochs = 1", "batch_size = 8"])
        .set("sweep", r#"grid = { "optimizer.lr" = [0.01, 0.5] }"#)
}

#[test]
fn a_two_epoch_sweep_writes_one_parquet_per_run_with_one_row_per_epoch() {
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path(), &sweep());
    let out = runner(dir.path(), &["exp.toml"]);
    let stdout = common::ok(&out);
    assert!(
        stdout.contains("regularization.lambda") && stdout.contains("2 done, 0 failed"),
        "{stdout}"
    );

    let runs: Vec<RunDir> = std::fs::read_dir(dir.path().join("results/tiny"))
        .unwrap()
        .map(|e| RunDir::at(e.unwrap().path()))
        .collect();
    assert_eq!(runs.len(), 2);
    let mut lambdas = Vec::new();
    for run in &runs {
        let df = ParquetReader::new(std::fs::File::open(run.metrics()).unwrap())
            .finish()
            .unwrap();
        assert_eq!(common::i64s(&df, "epoch"), vec![1, 2]);
        for col in ["train_loss", "val_loss", "weight_norm", "epoch_seconds"] {
            let v = df.column(col).unwrap().f64().unwrap();
            assert!(
                v.into_no_null_iter().all(|x| x.is_finite() && x >= 0.0),
                "{col}"
            );
        }
        for col in ["train_acc", "val_acc", "val_acc.cat", "val_acc.dog"] {
            let v = df.column(col).unwrap().f64().unwrap();
            assert!(
                v.into_no_null_iter().all(|x| (0.0..=1.0).contains(&x)),
                "{col}"
            );
        }
        let lambda = df.column("regularization.lambda").unwrap().f64().unwrap();
        assert_eq!(lambda.n_unique().unwrap(), 1);
        lambdas.push(lambda.get(0).unwrap());
        let run_id = run.path().file_name().unwrap().to_str().unwrap();
        let ids = df.column("run_id").unwrap();
        assert_eq!(ids.str().unwrap().get(0), Some(run_id));
        // the resolved spec and the manifest sit next to the metrics
        let manifest = std::fs::read_to_string(run.manifest()).unwrap();
        assert!(manifest.contains("\"status\": \"done\""), "{manifest}");
        assert!(run.spec().exists() && run.per_class().exists());
    }
    lambdas.sort_by(f64::total_cmp);
    assert_eq!(lambdas, vec![0.0, 0.1]);

    // the results views read them back
    let cmp = runner(dir.path(), &["compare", "results/tiny", "--format", "csv"]);
    let csv = String::from_utf8_lossy(&cmp.stdout);
    assert!(
        cmp.status.success() && csv.lines().count() == 3 && csv.contains("done"),
        "{csv}"
    );
    let plot = runner(dir.path(), &["plot", "results/tiny"]);
    let paths = String::from_utf8_lossy(&plot.stdout);
    assert!(
        plot.status.success() && paths.lines().all(|p| dir.path().join(p.trim()).is_file()),
        "{paths}"
    );
    assert!(paths.contains("best_vs_lambda.png"), "{paths}");
    let preview = runner(dir.path(), &["preview", "exp.toml", "-n", "4"]);
    let png = String::from_utf8_lossy(&preview.stdout);
    assert!(
        preview.status.success() && png.trim().ends_with("results/tiny/preview.png"),
        "{png}"
    );
    assert!(image::open(dir.path().join(png.trim())).is_ok());
    // preview takes --set like every command that reads a spec, with the same validation
    let flipped = runner(
        dir.path(),
        &[
            "preview",
            "exp.toml",
            "-n",
            "2",
            "--set",
            "transforms.hflip=1",
            "-o",
            "p.png",
        ],
    );
    assert!(flipped.status.success() && dir.path().join("p.png").is_file());
    let bad = runner(
        dir.path(),
        &["preview", "exp.toml", "--set", "transforms.hflp=1"],
    );
    assert_eq!(bad.status.code(), Some(78));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("did you mean `transforms.hflip`"));

    // a second invocation finds both runs done and trains nothing
    let again = runner(dir.path(), &["exp.toml"]);
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        again.status.success() && stdout.matches("done (earlier)").count() == 2,
        "{stdout}"
    );
}

#[test]
fn a_misspelt_key_fails_with_its_place_and_a_suggestion_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    write_spec(
        dir.path(),
        &sweep().replace("kind = \"l2\"", "kind = \"l2\"\nlamda = 0.1"),
    );
    let out = runner(dir.path(), &["exp.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("exp.toml:24:1"), "{stderr}");
    assert!(
        stderr.contains("lamda") && stderr.contains("did you mean `lambda`"),
        "{stderr}"
    );
    assert!(!dir.path().join("results").exists());
}

#[test]
fn plan_lists_every_run_with_its_swept_value() {
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path(), &sweep());
    let out = runner(dir.path(), &["plan", "exp.toml"]);
    let stdout = common::ok(&out);
    assert!(
        stdout.contains("regularization.lambda=0\n") || stdout.contains("regularization.lambda=0 "),
        "{stdout}"
    );
    assert!(stdout.contains("regularization.lambda=0.1"), "{stdout}");
    let check = runner(
        dir.path(),
        &["check", "exp.toml", "--set", "train.epochs=0"],
    );
    assert_eq!(check.status.code(), Some(78));
    let usage = runner(dir.path(), &["plan"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn a_frozen_backbone_builds_its_features_once_and_reuses_them_across_runs_and_invocations() {
    let dir = tempfile::tempdir().unwrap();
    frozen().write(dir.path());
    let out = runner_logged(dir.path(), &["exp.toml"]);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    assert_eq!(
        log.matches("feature cache miss (built): 16 train + 8 val")
            .count(),
        1,
        "{log}"
    );
    assert_eq!(
        log.matches("feature cache hit: 16 train + 8 val").count(),
        1,
        "{log}"
    );
    assert!(log.contains("time by stage: identify"), "{log}");

    let again = runner_logged(dir.path(), &["exp.toml", "--rerun"]);
    let log = String::from_utf8_lossy(&again.stderr);
    assert!(again.status.success(), "{log}");
    assert_eq!(
        log.matches("feature cache hit: 16 train + 8 val").count(),
        2,
        "{log}"
    );
    assert!(!log.contains("miss"), "{log}");

    // the trained weights are one classifier, PyTorch names: each run keeps its trained head,
    // and the frozen backbone they share is stored once in the experiment
    let experiment = dir.path().join("results/frozen");
    let runs = common::run_folders(&experiment);
    assert_eq!(runs.len(), 2, "{runs:?}");
    let names = |path: &Path| {
        let bytes = std::fs::read(path).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let mut names: Vec<String> = st.names().iter().map(|s| s.to_string()).collect();
        names.sort();
        names
    };
    for run in &runs {
        assert_eq!(names(&RunDir::at(run).model()), ["fc.bias", "fc.weight"]);
    }
    let store = runner::results::layout::ExperimentDir::at(&experiment).backbones();
    let stored: Vec<PathBuf> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let backbone = names(&stored[0]);
    assert!(
        backbone.len() > 4 && backbone.iter().all(|n| !n.starts_with("fc.")),
        "{backbone:?}"
    );

    // a corrupt cache file is detected and rebuilt
    let cache = std::fs::read_dir(
        runner::results::layout::ResultsRoot::new(dir.path().join("results")).cache(),
    )
    .unwrap()
    .next()
    .unwrap()
    .unwrap()
    .path();
    let len = std::fs::metadata(&cache).unwrap().len();
    std::fs::write(&cache, vec![7u8; len as usize / 2]).unwrap();
    let third = runner_logged(dir.path(), &["exp.toml", "--rerun"]);
    let log = String::from_utf8_lossy(&third.stderr);
    assert!(
        third.status.success() && log.contains("is unusable") && log.contains("miss (built)"),
        "{log}"
    );
}

#[test]
fn a_small_cnn_fine_tunes_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    frozen()
        .set("backbone", "freeze = false")
        .set("sweep", r#"grid = { "regularization.lambda" = [0.01] }"#)
        .write(dir.path());
    let out = runner(dir.path(), &["exp.toml"]);
    let stdout = common::ok(&out);
    assert!(stdout.contains("1 done, 0 failed"), "{stdout}");
}

#[test]
fn predict_names_chelsea_a_cat_with_the_embedded_efficientnet() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = runner(
        root,
        &[
            "predict",
            "--model",
            "efficientnet_lite0",
            "--weights",
            "pipeline/weights/efficientnet_lite0_imagenet.safetensors",
            "--top",
            "3",
            "pipeline/data/catdog-photos/val/cat/skimage_chelsea.png",
        ],
    );
    let stdout = common::ok(&out);
    // the top 3 in any order: Egyptian cat, tabby, tiger cat
    let top: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains(" ┆ "))
        .skip(1)
        .collect();
    assert_eq!(top.len(), 3, "{stdout}");
    for (index, name) in [
        ("285", "Egyptian cat"),
        ("281", "tabby"),
        ("282", "tiger cat"),
    ] {
        assert!(
            top.iter()
                .any(|l| l.contains(&format!(" {index} ")) && l.contains(name)),
            "{stdout}"
        );
    }
}

/// Tensors of a saved model by name.
fn saved(run: &Path) -> std::collections::BTreeMap<String, Vec<f32>> {
    let bytes = std::fs::read(RunDir::at(run).model()).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensors()
        .into_iter()
        .filter(|(_, t)| t.dtype() == safetensors::Dtype::F32)
        .map(|(n, t)| {
            (
                n,
                t.data()
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                    .collect(),
            )
        })
        .collect()
}

#[test]
fn freezing_until_layer3_trains_only_layer4_and_the_head() {
    let dir = tempfile::tempdir().unwrap();
    until().write(dir.path());
    let out = runner(dir.path(), &["exp.toml"]);
    let stdout = common::ok(&out);
    assert!(stdout.contains("2 done, 0 failed"), "{stdout}");

    // same seed, different learning rates: the frozen blocks are the same (their random
    // initialisation, BatchNorm statistics never updated), layer4 and fc are not
    let runs: Vec<PathBuf> = std::fs::read_dir(dir.path().join("results/until"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    let (a, b) = (saved(&runs[0]), saved(&runs[1]));
    let frozen = |n: &str| {
        ["conv1.", "bn1.", "layer1.", "layer2.", "layer3."]
            .iter()
            .any(|p| n.starts_with(p))
    };
    for (name, va) in &a {
        let vb = &b[name];
        if frozen(name) {
            assert_eq!(va, vb, "{name}");
            if name.ends_with("running_mean") {
                assert!(va.iter().all(|v| *v == 0.0), "{name} was updated");
            }
            if name.ends_with("running_var") {
                assert!(va.iter().all(|v| *v == 1.0), "{name} was updated");
            }
        } else {
            assert_ne!(va, vb, "{name} did not train");
        }
    }
    assert!(
        a.keys().any(|n| n.starts_with("layer4.")) && a.keys().any(|n| n.starts_with("layer3."))
    );

    // the summary of the same spec counts the frozen part apart
    let out = runner(dir.path(), &["summary", "exp.toml"]);
    let stdout = common::ok(&out);
    assert!(
        stdout.contains("resnet18 on one 3×32×32 image, 2 classes"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Frozen params: 2,782,784 (blocks conv1 to layer3)"),
        "{stdout}"
    );
    assert!(stdout.contains("Trainable params: 8,394,754"), "{stdout}");
}

#[test]
fn check_rejects_an_unknown_freeze_block_and_names_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    until()
        .set("backbone", "freeze = \"until:layer9\"")
        .write(dir.path());
    let out = runner(dir.path(), &["check", "exp.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("unknown block `layer9` for resnet18 (expected one of conv1, bn1, layer1, layer2, layer3, layer4)"),
        "{stderr}"
    );
}

#[test]
fn summary_of_one_layer_spells_out_the_formulas() {
    let dir = tempfile::tempdir().unwrap();
    let out = runner(
        dir.path(),
        &[
            "summary",
            "--layer",
            "conv",
            "--in",
            "10,48,64",
            "--out-channels",
            "20",
            "--kernel",
            "3",
        ],
    );
    let stdout = common::ok(&out);
    assert!(stdout.contains("Cout×H′×W′ = 20×46×62"), "{stdout}");
    assert!(stdout.contains("3·3·10/1·20 + 20 = 1,820"), "{stdout}");
    assert!(stdout.contains("46·62·20·3·3·10/1 = 5,133,600"), "{stdout}");
}

/// A frozen backbone with pretrained weights is read only when something needs its values:
/// the first run of a sweep (features to compute, the backbone to store); the second run and a
/// later invocation train their heads on cached features without reading the checkpoint.
#[test]
fn a_cached_frozen_run_never_reads_its_pretrained_weights() {
    let dir = tempfile::tempdir().unwrap();
    frozen().write(dir.path());
    let out = runner(dir.path(), &["exp.toml"]);
    common::ok(&out);
    // a trained run's kept model (its head, joined with the stored backbone) as weights
    let trained = common::run_folders(&dir.path().join("results/frozen")).remove(0);
    let weights = RunDir::at(&trained).model().display().to_string();
    let pre = frozen()
        .set("experiment", "name = \"pretrained\"")
        .set("backbone", &format!("weights = \"{weights}\""));
    std::fs::write(
        dir.path().join("pre.toml"),
        pre.text()
            .replace("@DATA@", &common::tiny().display().to_string()),
    )
    .unwrap();
    let loads = |args: &[&str]| {
        let out = runner_logged(dir.path(), args);
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{log}");
        log.matches("tensors of small_cnn from").count()
    };
    assert_eq!(loads(&["pre.toml"]), 1);
    assert_eq!(loads(&["pre.toml", "--rerun"]), 0);
}
