//! Errors that came late or said the wrong thing: a damaged test image found only after
//! training, a damaged model or stored spec in a run folder named as something else, and a
//! replaced classification head announced twice (and by `runner report`, which trains nothing).

use crate::common;

use std::path::{Path, PathBuf};

use common::{runner, runner_env, text, tiny, tiny_linear_spec};
use runner::results::layout::RunDir;

/// Copies the class folders of `from` into `to`.
fn copy_classes(from: &Path, to: &Path, classes: &[(&str, &str)]) {
    for (class, as_class) in classes {
        let dest = to.join(as_class);
        std::fs::create_dir_all(&dest).unwrap();
        for f in std::fs::read_dir(from.join(class)).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, dest.join(f.file_name().unwrap())).unwrap();
        }
    }
}

/// The run folders of `experiment` under `dir/results`, sorted.
fn runs(dir: &Path, experiment: &str) -> Vec<PathBuf> {
    common::recorded_runs(&dir.join("results").join(experiment))
}

/// A trained one-run experiment `late` inside the project (where a run can be reopened), and
/// its run folder relative to it.
fn trained() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::write(dir.path().join("exp.toml"), tiny_linear_spec("late", "")).unwrap();
    let out = runner(dir.path(), &["run", "exp.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    let run = runs(dir.path(), "late").remove(0);
    let rel = run.strip_prefix(dir.path()).unwrap().display().to_string();
    (dir, rel)
}

/// A [`trained`] run with one of its files (`file` of its folder) cut to a third: the project,
/// the run folder relative to it, and the tiny fixture's val folder to evaluate it on.
fn trained_with_a_cut(file: fn(&RunDir) -> PathBuf) -> (tempfile::TempDir, String, String) {
    let (dir, run) = trained();
    common::cut_to_a_third(&file(&RunDir::at(dir.path().join(&run))));
    let val = tiny().join("val").display().to_string();
    (dir, run, val)
}

/// stderr, the run folder written as `<run>`.
fn stderr_of(out: &std::process::Output, run: &str) -> String {
    String::from_utf8_lossy(&out.stderr).replace(run, "results/late/<run>")
}

/// A test image that does not decode fails the run when it starts, before any epoch trains.
#[test]
fn a_damaged_test_image_fails_the_run_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for split in ["train", "val"] {
        copy_classes(
            &tiny().join(split),
            &data.join(split),
            &[("cat", "cat"), ("dog", "dog")],
        );
    }
    copy_classes(
        &tiny().join("val"),
        &data.join("test"),
        &[("cat", "cat"), ("dog", "dog")],
    );
    std::fs::write(
        data.join("test/dog/broken.png"),
        b"\x89PNG\r\n\x1a\n cut short",
    )
    .unwrap();
    let spec = tiny_linear_spec("late", "")
        .replace(&tiny().display().to_string(), &data.display().to_string())
        .replace("epochs = 1", "epochs = 3")
        .replace("[dataset]\n", "[dataset]\ntest_dir = \"test\"\n");
    std::fs::write(dir.path().join("exp.toml"), spec).unwrap();
    let out = runner(dir.path(), &["run", "exp.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot decode image") && err.contains("test/dog/broken.png"),
        "{}",
        text(&out)
    );
    let run = runs(dir.path(), "late").remove(0);
    assert!(
        !RunDir::at(&run).metrics().exists(),
        "no epoch trained: {}",
        text(&out)
    );
    let manifest = std::fs::read_to_string(RunDir::at(&run).manifest()).unwrap();
    assert!(manifest.contains("\"status\": \"failed\""), "{manifest}");
}

/// A cut `model.safetensors`: `evaluate` and `export onnx` say the file is damaged and which.
#[test]
fn a_damaged_model_file_is_called_damaged() {
    let (dir, run, val) = trained_with_a_cut(RunDir::model);
    let mut seen = Vec::new();
    for args in [
        vec!["evaluate", &run, "--data", &val],
        vec!["export", "onnx", &run, "--to", "model.onnx"],
    ] {
        let out = runner(dir.path(), &args);
        assert!(!out.status.success(), "{}", text(&out));
        seen.push(format!(
            "runner {}\n{}",
            args[..2].join(" ").replace(&run, "results/late/<run>"),
            stderr_of(&out, &run)
        ));
    }
    assert!(!dir.path().join("model.onnx").exists());
    insta::assert_snapshot!(seen.join("\n"));
}

/// A stored `spec.toml` that no longer parses: one `error:`, naming the file and line.
#[test]
fn a_damaged_stored_spec_is_one_error_naming_the_file() {
    let (dir, run) = trained();
    std::fs::write(
        RunDir::at(dir.path().join(&run)).spec(),
        "[experiment\nname = \"late\"\n",
    )
    .unwrap();
    let val = tiny().join("val").display().to_string();
    let image = tiny().join("val/cat/cat_02800.png").display().to_string();
    let mut seen = Vec::new();
    for args in [
        vec!["evaluate", &run, "--data", &val],
        vec!["export", "onnx", &run, "--to", "model.onnx"],
        vec!["reproduce", &run],
        vec!["predict", "--run", &run, &image],
    ] {
        let out = runner(dir.path(), &args);
        assert!(!out.status.success(), "{}", text(&out));
        let err = stderr_of(&out, &run);
        assert_eq!(err.matches("error:").count(), 1, "{args:?}: {err}");
        seen.push(format!("runner {}\n{err}", args[0]));
    }
    insta::assert_snapshot!(seen.join("\n"));
}

/// `head.replace = true` on weights with another class count: the run says once that it
/// replaced the head, and `runner report` (which builds no model) says nothing about it.
#[test]
fn a_replaced_head_is_announced_once_and_not_by_the_report() {
    // inside the project: the report draws the preview from the run's stored spec
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let two = tiny_linear_spec("two", "").replace("name = \"linear\"", "name = \"small_cnn\"");
    std::fs::write(dir.path().join("two.toml"), two).unwrap();
    let out = runner(dir.path(), &["run", "two.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    let weights = RunDir::at(runs(dir.path(), "two").remove(0)).model();

    // three classes: the third a copy of the cats
    let data = dir.path().join("data");
    for split in ["train", "val"] {
        copy_classes(
            &tiny().join(split),
            &data.join(split),
            &[("cat", "cat"), ("dog", "dog"), ("cat", "cow")],
        );
    }
    let three = tiny_linear_spec("three", "")
        .replace(&tiny().display().to_string(), &data.display().to_string())
        .replace(
            "name = \"linear\"",
            &format!(
                "name = \"small_cnn\"\nweights = \"{}\"\n\n[head]\nreplace = true",
                weights.display()
            ),
        );
    std::fs::write(dir.path().join("three.toml"), three).unwrap();
    let info = [("RUNNER_LOG", Some("info"))];
    let out = runner_env(dir.path(), &["run", "three.toml"], &info);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    let head_lines: Vec<&str> = err.lines().filter(|l| l.contains("head")).collect();
    assert_eq!(head_lines.len(), 1, "{head_lines:#?}");
    assert!(
        head_lines[0].contains("its 2-class head was replaced by a new 3-class head"),
        "{}",
        head_lines[0]
    );

    let out = runner_env(dir.path(), &["report", "results/three"], &info);
    assert!(out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("head"), "{err}");
}

/// A cut `manifest.json`: `evaluate` names the file and the fault, not "is not a run folder".
#[test]
fn a_damaged_manifest_is_named_not_called_a_missing_run() {
    let (dir, run, val) = trained_with_a_cut(RunDir::manifest);
    let out = runner(dir.path(), &["evaluate", &run, "--data", &val]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let err = stderr_of(&out, &run);
    assert!(
        err.starts_with("error: cannot read results/late/<run>/manifest.json: EOF while parsing"),
        "{err}"
    );
    assert!(!err.contains("is not a run folder"), "{err}");
}
