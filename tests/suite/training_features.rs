//! End-to-end (issue #14): schedules, early stopping and augmentation through the `runner`
//! binary on the tiny committed fixture, read back from metrics.parquet and manifest.json.

use crate::common;

use std::path::{Path, PathBuf};

use common::{runner_logged as runner, write_spec, Spec};
use polars::prelude::*;
use runner::results::layout::RunDir;

fn only_run(results: &Path, experiment: &str) -> PathBuf {
    let mut dirs = common::run_folders(&results.join(experiment));
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    dirs.pop().unwrap()
}

/// Trains `dir/exp.toml` into `dir/r`, which must succeed: its one run's folder, and its log.
fn train(dir: &Path) -> (PathBuf, String) {
    let out = runner(dir, &["run", "exp.toml", "--results", "r"]);
    common::ok(&out);
    let log = String::from_utf8_lossy(&out.stderr).into_owned();
    (only_run(&dir.join("r"), "feat"), log)
}

fn column(run: &Path, name: &str) -> Vec<f64> {
    let df = ParquetReader::new(std::fs::File::open(RunDir::at(run).metrics()).unwrap())
        .finish()
        .unwrap();
    common::f64s(&df, name)
}

/// An MLP on 20→16 px images at lr 0.1; a test appends the rest of `[train]` and its tables.
fn base() -> String {
    Spec::tiny("feat", 5)
        .table("transforms", &["resize = 20", "crop = 16"])
        .set("optimizer", "lr = 0.1")
        .set("train", "batch_size = 4")
        .text()
}

#[test]
fn cosine_with_warmup_is_the_lr_column() {
    let dir = tempfile::tempdir().unwrap();
    write_spec(
        dir.path(),
        &format!(
            "{}epochs = 5\ngrad_clip_norm = 1.0\n[loss]\nlabel_smoothing = 0.1\n\
             [schedule]\nkind = \"cosine\"\nwarmup_epochs = 2\nmin_lr = 0.01\n",
            base()
        ),
    );
    let lr = column(&train(dir.path()).0, "lr");
    // warmup 0.1·1/2, 0.1·2/2, then cosine over the last 3 epochs from 0.1 towards 0.01
    let cos = |k: f64| 0.01 + 0.09 * (1.0 + (std::f64::consts::PI * k / 3.0).cos()) / 2.0;
    let expected = [0.05, 0.1, cos(0.0), cos(1.0), cos(2.0)];
    for (a, b) in lr.iter().zip(expected) {
        assert!((a - b).abs() < 1e-12, "{lr:?} vs {expected:?}");
    }
}

#[test]
fn early_stopped_run_is_done_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    // 16 training images: val loss stops improving long before 40 epochs
    write_spec(
        dir.path(),
        &format!("{}epochs = 40\n[early_stopping]\npatience = 1\n", base()),
    );
    let (run, stderr) = train(dir.path());
    let m = common::manifest(&run);
    assert_eq!(m["status"], "done");
    let stopped = &m["stopped_early"];
    let epoch = stopped["epoch"].as_u64().expect("stopped early") as usize;
    assert!(epoch < 40 && m["epochs_done"].as_u64() == Some(epoch as u64));
    assert_eq!(stopped["best_epoch"].as_u64(), Some(epoch as u64 - 1));
    assert!(stopped["reason"]
        .as_str()
        .unwrap()
        .starts_with("val_loss did not improve by more than 0 for 1 epochs"));
    assert_eq!(column(&run, "epoch").len(), epoch);
    assert!(
        stderr.contains("restored the best epoch's weights"),
        "{stderr}"
    );
    // no leftovers, and a second invocation sees it as done
    assert!(!RunDir::at(&run).checkpoint().exists());
    assert!(!RunDir::at(&run).best_weights().exists());
    let again = runner(dir.path(), &["run", "exp.toml", "--results", "r"]);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already done"));
    let compare = runner(dir.path(), &["compare", "r/feat"]);
    let table = String::from_utf8_lossy(&compare.stdout);
    assert!(
        table.contains(&format!("done, stopped early at epoch {epoch}")),
        "{table}"
    );
}

#[test]
fn random_train_transforms_skip_the_feature_cache() {
    let dir = tempfile::tempdir().unwrap();
    let spec = base()
        .replace("name = \"mlp\"", "name = \"small_cnn\"\nfreeze = true")
        .replace(
            "crop = 16",
            "crop = 16\ncolor_jitter = { brightness = 0.3 }",
        );
    write_spec(dir.path(), &format!("{spec}epochs = 1\n"));
    let out = runner(dir.path(), &["run", "exp.toml", "--results", "r"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("feature cache skipped: the train transforms are random (color_jitter)"),
        "{stderr}"
    );
}

#[test]
fn restore_best_leaves_the_best_epochs_weights() {
    // inside the project (target/tmp), so that the run can be loaded back for prediction
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let spec = base()
        .replace("name = \"mlp\"", "name = \"small_cnn\"")
        .replace("resize = 20\ncrop = 16", "resize = 28\ncrop = 28")
        .replace("lr = 0.1", "lr = 0.05");
    write_spec(
        dir.path(),
        &format!("{spec}epochs = 40\n[early_stopping]\npatience = 2\n"),
    );
    let (run, _) = train(dir.path());
    let m = common::manifest(&run);
    let best = m["stopped_early"]["best_epoch"]
        .as_u64()
        .expect("stopped early") as usize;
    let val_loss = column(&run, "val_loss");
    let (at_best, last) = (val_loss[best - 1], *val_loss.last().unwrap());
    // the saved model's cross-entropy on val is the best epoch's, not the last one's
    let predictor = runner::inspect::predict::Predictor::from_run(&run).unwrap();
    let mut images = Vec::new();
    for (label, class) in ["cat", "dog"].iter().enumerate() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(common::tiny().join("val").join(class))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        images.extend(files.into_iter().map(|f| (f, label)));
    }
    let paths: Vec<PathBuf> = images.iter().map(|(p, _)| p.clone()).collect();
    let preds = predictor.predict(&paths, 2).unwrap();
    let loss = preds
        .iter()
        .zip(&images)
        .map(|(p, (_, label))| {
            let prob = p.top.iter().find(|(i, _, _)| i == label).unwrap().2;
            -(prob as f64).ln()
        })
        .sum::<f64>()
        / images.len() as f64;
    assert!(
        (loss - at_best).abs() < 1e-4,
        "saved model's val loss {loss}, best epoch {best}: {at_best}, last: {last}"
    );
    assert!(
        (at_best - last).abs() > 1e-3,
        "best {at_best} vs last {last}"
    );
}
