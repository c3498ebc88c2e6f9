//! End-to-end: MLP heads through the `runner` binary on tiny real data — a frozen backbone's
//! head trained on cached features, and a fine-tuned network with an MLP head; the saved
//! weights carry PyTorch `nn.Sequential` names and the run reproduces exactly.

use crate::common;

use common::{ok, runner, tiny as fixture, Spec};
use runner::results::layout::RunDir;
use std::path::{Path, PathBuf};

/// A small CNN with an MLP head of every layer kind; `freeze` is `true` or `false`.
fn spec(freeze: &str) -> Spec {
    Spec::named("mlp_head", 5)
        .table(
            "transforms",
            &[
                "resize = 20",
                "crop = 16",
                "mean = [0.5, 0.5, 0.5]",
                "std = [0.5, 0.5, 0.5]",
            ],
        )
        .table(
            "backbone",
            &["name = \"small_cnn\"", &format!("freeze = {freeze}")],
        )
        .table(
            "head",
            &[
                "kind = \"mlp\"",
                "hidden = [8]",
                "activation = \"gelu\"",
                "dropout = 0.5",
                "batch_norm = true",
                "pool = \"max\"",
            ],
        )
        .table("regularization", &["kind = \"l2\"", "lambda = 0.01"])
        .table("train", &["epochs = 2", "batch_size = 4"])
}

/// Names and shapes of a safetensors file.
fn tensors(path: &Path) -> Vec<(String, Vec<usize>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<usize>)> = st
        .tensors()
        .into_iter()
        .map(|(n, t)| (n, t.shape().to_vec()))
        .collect();
    v.sort();
    v
}

fn run_dir(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir.join("results/mlp_head"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| RunDir::at(p).manifest().exists())
        .expect("a run folder")
}

#[test]
fn mlp_heads_train_save_torch_names_and_reproduce() {
    for freeze in ["true", "false"] {
        let dir = tempfile::tempdir().unwrap();
        spec(freeze).write(dir.path());
        // reproduce and predict find the project by its pipeline/defaults.toml
        std::fs::create_dir(dir.path().join("pipeline")).unwrap();
        std::fs::copy(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline/defaults.toml"),
            dir.path().join("pipeline/defaults.toml"),
        )
        .unwrap();
        let stdout = ok(&runner(dir.path(), &["exp.toml"]));
        assert!(stdout.contains("1 done, 0 failed"), "{stdout}");

        let run = run_dir(dir.path());
        let names = tensors(&RunDir::at(&run).model());
        let head: Vec<(String, Vec<usize>)> = names
            .into_iter()
            .filter(|(n, _)| n.starts_with("fc."))
            .collect();
        let want = [
            ("fc.1.bias", vec![8]),
            ("fc.1.weight", vec![8, 128]),
            ("fc.2.bias", vec![8]),
            ("fc.2.running_mean", vec![8]),
            ("fc.2.running_var", vec![8]),
            ("fc.2.weight", vec![8]),
            ("fc.5.bias", vec![2]),
            ("fc.5.weight", vec![2, 8]),
        ];
        let want: Vec<(String, Vec<usize>)> =
            want.into_iter().map(|(n, s)| (n.to_string(), s)).collect();
        assert_eq!(head, want, "freeze = {freeze}");

        // dropout masks and BatchNorm statistics are deterministic: the metrics come back exactly
        let out = ok(&runner(dir.path(), &["reproduce", run.to_str().unwrap()]));
        assert!(out.contains(": ok (tolerance"), "{out}");

        // and the run's weights load back for prediction with its head
        let img = fixture().join("val/cat");
        let img = std::fs::read_dir(img)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let out = ok(&runner(
            dir.path(),
            &[
                "predict",
                "--run",
                run.to_str().unwrap(),
                img.to_str().unwrap(),
            ],
        ));
        assert!(out.contains("cat") && out.contains("dog"), "{out}");
    }
}

#[test]
fn summary_lists_the_head_layers() {
    let dir = tempfile::tempdir().unwrap();
    spec("true").write(dir.path());
    let out = ok(&runner(dir.path(), &["summary", "exp.toml"]));
    let rows: Vec<&str> = out.lines().filter(|l| l.contains(" fc.")).collect();
    assert_eq!(rows.len(), 6, "{out}");
    for (row, (name, kind)) in rows.iter().zip([
        ("fc.0", "Dropout"),
        ("fc.1", "Linear"),
        ("fc.2", "BatchNorm1d"),
        ("fc.3", "GELU"),
        ("fc.4", "Dropout"),
        ("fc.5", "Linear"),
    ]) {
        assert!(row.contains(name) && row.contains(kind), "{row}");
    }
    // Linear(128, 8): 1,032 parameters, 1,024 multiply-adds; BatchNorm1d(8): 16
    assert!(
        rows[1].contains("1,032") && rows[1].contains("1,024"),
        "{}",
        rows[1]
    );
    assert!(rows[2].contains("16"), "{}", rows[2]);
    assert!(out.contains("AdaptiveMaxPool2d"), "{out}");
    assert!(out.contains("mlp head [8], gelu, batch_norm true"), "{out}");
}
