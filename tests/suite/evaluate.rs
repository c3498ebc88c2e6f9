//! End-to-end: the held-out test split (`dataset.test_dir`) and `runner evaluate`, through the
//! `runner` binary on copies of the tiny committed cat/dog images.

use crate::common;

use common::manifest;

use std::path::{Path, PathBuf};

use common::{f64s, runner, text, tiny};
use polars::prelude::*;
use runner::results::layout::RunDir;

/// A dataset root with `train/` and `val/` of the tiny fixture, `test/` = a copy of its val
/// images, and `swapped/` = the same images with the class folders swapped (every label wrong).
fn dataset(root: &Path) {
    for class in ["cat", "dog"] {
        let other = if class == "cat" { "dog" } else { "cat" };
        for (from, to, as_class) in [
            ("train", "train", class),
            ("val", "val", class),
            ("val", "test", class),
            ("val", "swapped", other),
        ] {
            common::copy_folder(
                &tiny().join(from).join(class),
                &root.join(to).join(as_class),
            );
        }
    }
}

fn write_spec(dir: &Path, body: &str) {
    let data = dir.join("data");
    dataset(&data);
    std::fs::write(
        dir.join("exp.toml"),
        body.replace("@DATA@", &data.display().to_string()),
    )
    .unwrap();
}

/// Trains `dir/exp.toml` into `dir/r`, which must succeed: the run folders of `experiment`.
fn train(dir: &Path, experiment: &str) -> Vec<PathBuf> {
    let out = runner(dir, &["run", "exp.toml", "--results", "r"]);
    assert!(out.status.success(), "{}", text(&out));
    run_dirs(&dir.join("r"), experiment)
}

fn run_dirs(results: &Path, experiment: &str) -> Vec<PathBuf> {
    common::recorded_runs(&results.join(experiment))
}

fn frame(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .unwrap()
}

/// An MLP swept over `dataset.test_dir`: none, a copy of the val images, the same images with
/// every label wrong.
fn held_out() -> String {
    common::spec_fixture("held_out.toml")
}

#[test]
fn test_images_never_influence_training_and_the_kept_model_is_scored() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    write_spec(dir.path(), &held_out());
    let runs = train(dir.path(), "held_out");
    assert_eq!(runs.len(), 3, "{runs:?}");
    let by_test = |name: &str| {
        runs.iter()
            .find(|r| manifest(r)["swept"][0][1] == name)
            .unwrap_or_else(|| panic!("no run with test_dir {name:?}"))
            .clone()
    };
    let (none, test, swapped) = (by_test(""), by_test("test"), by_test("swapped"));

    // the same epochs, losses, accuracies, weights and stopping point with any test split,
    // also one whose every label is wrong
    let plain = frame(&RunDir::at(&none).metrics());
    for run in [&test, &swapped] {
        let df = frame(&RunDir::at(run).metrics());
        for c in common::TRAINED_COLUMNS {
            assert_eq!(f64s(&df, c), f64s(&plain, c), "{c} of {}", run.display());
        }
        assert_eq!(
            manifest(run)["stopped_early"],
            manifest(&none)["stopped_early"]
        );
    }
    assert!(manifest(&none).get("test").is_none());
    assert!(!RunDir::at(&none).test_tables().metrics.exists());

    // the kept model is the best epoch's (restore_best), and the manifest says so
    let m = manifest(&test);
    let kept = &m["test"];
    assert_eq!(kept["model"], "best");
    let best = m["stopped_early"]["best_epoch"].clone();
    let best = if best.is_null() {
        // not stopped: the best by val loss over every epoch
        let loss = f64s(&plain, "val_loss");
        let i = (0..loss.len())
            .min_by(|&a, &b| loss[a].total_cmp(&loss[b]))
            .unwrap();
        serde_json::json!(i + 1)
    } else {
        best
    };
    assert_eq!(kept["epoch"], best);
    assert_eq!(kept["images"], 8);
    // on the val images, the kept model scores what its val pass did at that epoch
    let e = best.as_u64().unwrap() as usize;
    let (val_loss, val_acc) = (
        f64s(&plain, "val_loss")[e - 1],
        f64s(&plain, "val_acc")[e - 1],
    );
    let (loss, acc) = (
        kept["loss"].as_f64().unwrap(),
        kept["acc"].as_f64().unwrap(),
    );
    assert!((loss - val_loss).abs() < 1e-6, "{loss} vs {val_loss}");
    assert_eq!(acc, val_acc);
    // two classes with every label swapped: the other images are right
    let wrong = manifest(&swapped)["test"]["acc"].as_f64().unwrap();
    assert_eq!(wrong, 1.0 - acc);

    // the tables: the val tables' conventions
    let t = frame(&RunDir::at(&test).test_tables().metrics);
    assert_eq!(f64s(&t, "test_acc"), vec![acc]);
    assert_eq!(f64s(&t, "epoch"), vec![e as f64]);
    assert_eq!(
        t.column("dataset.test_dir").unwrap().str().unwrap().get(0),
        Some("test")
    );
    let pc = frame(&RunDir::at(&test).test_tables().per_class);
    assert_eq!(f64s(&pc, "support"), vec![4.0, 4.0]);
    let cm = frame(&RunDir::at(&test).test_tables().confusion);
    assert_eq!(f64s(&cm, "count").iter().sum::<f64>(), 8.0);

    // compare shows the test columns because some run has a test split
    let out = runner(dir.path(), &["compare", "r/held_out", "--format", "csv"]);
    assert!(out.status.success(), "{}", text(&out));
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
    let at = header
        .iter()
        .position(|h| *h == "test_acc")
        .expect("a test_acc column");
    let row = csv
        .lines()
        .find(|l| l.contains(",test,"))
        .expect("the run with test_dir = test");
    assert_eq!(row.split(',').nth(at).unwrap().parse::<f64>().unwrap(), acc);

    // the MLflow export carries them, at the kept model's epoch
    let out = runner(
        dir.path(),
        &["export", "mlflow", "r/held_out", "--to", "mlruns"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let id = test.file_name().unwrap().to_string_lossy().into_owned();
    let found: Vec<PathBuf> = glob::glob(&format!(
        "{}/mlruns/*/{id}/metrics/test_acc",
        dir.path().display()
    ))
    .unwrap()
    .map(Result::unwrap)
    .collect();
    assert_eq!(found.len(), 1, "{found:?}");
    let line = std::fs::read_to_string(&found[0]).unwrap();
    let parts: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(parts[1].parse::<f64>().unwrap(), acc);
    assert_eq!(parts[2], e.to_string());
}

/// A frozen small CNN scored on the `test` split.
fn small_cnn() -> String {
    common::Spec::tiny("scored", 1)
        .set("dataset", "test_dir = \"test\"")
        .table("transforms", &["resize = 28", "crop = 28"])
        .table("backbone", &["name = \"small_cnn\"", "freeze = true"])
        .set("optimizer", "lr = 0.05")
        .table("train", &["batch_size = 4", "epochs = 2"])
        .text()
}

#[test]
fn the_test_split_equals_runner_evaluate_on_the_same_folder() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    write_spec(dir.path(), &small_cnn());
    let run = train(dir.path(), "scored").remove(0);
    let kept = manifest(&run)["test"].clone();
    assert_eq!(kept["model"], "final");
    assert_eq!(kept["epoch"], 2);

    let run_arg = run.display().to_string();
    let data = dir.path().join("data/test").display().to_string();
    let out = runner(
        dir.path(),
        &["evaluate", &run_arg, "--data", &data, "--format", "json"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let all = &json["classes"][2];
    assert_eq!(all["class"], "all");
    assert_eq!(all["accuracy"], kept["acc"]);
    assert_eq!(all["loss"], kept["loss"]);
    assert_eq!(all["images"], kept["images"]);
    // the same confusion matrix as the test split's table
    let cm = frame(&RunDir::at(&run).test_tables().confusion);
    let counts: Vec<u64> = f64s(&cm, "count").iter().map(|&c| c as u64).collect();
    let evaluated: Vec<u64> = json["confusion"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|c| c.as_u64().unwrap()))
        .collect();
    assert_eq!(evaluated, counts);

    // written next to the run, under a name that says which data
    let written: Vec<PathBuf> = std::fs::read_dir(RunDir::at(&run).evaluations())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(written.len(), 1, "{written:?}");
    let name = written[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .into_owned();
    assert!(name.ends_with("-data-test"), "{name}");
    let eval = frame(&RunDir::at(&written[0]).metrics());
    let test = frame(&RunDir::at(&run).test_tables().metrics);
    assert_eq!(f64s(&eval, "eval_acc"), f64s(&test, "test_acc"));
    assert_eq!(f64s(&eval, "eval_loss"), f64s(&test, "test_loss"));
    assert_eq!(
        f64s(&frame(&RunDir::at(&written[0]).per_class()), "precision"),
        f64s(
            &frame(&RunDir::at(&run).test_tables().per_class),
            "precision"
        )
    );

    // the readable table
    let out = runner(dir.path(), &["evaluate", &run_arg, "--data", &data]);
    assert!(out.status.success(), "{}", text(&out));
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.contains("the final model (epoch 2)"), "{table}");
    assert!(table.contains("│ all   ┆      8 ┆"), "{table}");

    // other classes: an error that lists both sides, exit 78, nothing written
    let mismatch = common::project()
        .join("tests/fixtures/catdog-mismatch/val")
        .display()
        .to_string();
    let out = runner(dir.path(), &["evaluate", &run_arg, "--data", &mismatch]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&mismatch, "<DATA>");
    insta::assert_snapshot!("evaluate_class_mismatch", stderr);
    assert_eq!(
        std::fs::read_dir(RunDir::at(&run).evaluations())
            .unwrap()
            .count(),
        1
    );

    // not a run folder
    let out = runner(dir.path(), &["evaluate", &data, "--data", &data]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    common::stderr_says(&out, "is not a run folder");
}

#[test]
fn a_test_split_with_other_classes_is_a_spec_error_at_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    dataset(&data);
    std::fs::create_dir_all(data.join("other/cow")).unwrap();
    std::fs::copy(
        tiny().join("val/cat/cat_02800.png"),
        data.join("other/cow/a.png"),
    )
    .unwrap();
    std::fs::create_dir_all(data.join("other/cat")).unwrap();
    std::fs::copy(
        tiny().join("val/cat/cat_02800.png"),
        data.join("other/cat/b.png"),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("exp.toml"),
        held_out()
            .replace("@DATA@", &data.display().to_string())
            .replace(
                "grid = { \"dataset.test_dir\" = [\"\", \"test\", \"swapped\"] }",
                "",
            )
            .replace("[dataset]\n", "[dataset]\ntest_dir = \"other\"\n"),
    )
    .unwrap();
    let out = runner(dir.path(), &["check", "exp.toml"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&data.display().to_string(), "<DATA>");
    insta::assert_snapshot!("test_dir_other_classes", stderr);
    assert!(!dir.path().join("results").exists());
}

/// A file where a folder is expected (`dataset.test_dir`, `dataset.root`, `--data`, the run
/// folder): the message says a file is there, not that nothing is.
#[test]
fn a_file_where_a_folder_is_expected_is_called_a_file() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let data = dir.path().join("data");
    dataset(&data);
    std::fs::write(data.join("test.txt"), "a list of test images\n").unwrap();
    let spec = held_out()
        .replace("@DATA@", &data.display().to_string())
        .replace(
            "grid = { \"dataset.test_dir\" = [\"\", \"test\", \"swapped\"] }",
            "",
        )
        .replace("epochs = 12", "epochs = 1");
    let with_test = spec.replace("[dataset]\n", "[dataset]\ntest_dir = \"test.txt\"\n");
    std::fs::write(dir.path().join("exp.toml"), &with_test).unwrap();
    let out = runner(dir.path(), &["check", "exp.toml"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&data.display().to_string(), "<DATA>");
    insta::assert_snapshot!("test_dir_is_a_file", stderr);

    let file_root = data.join("test.txt").display().to_string();
    std::fs::write(
        dir.path().join("exp.toml"),
        spec.replace(&data.display().to_string(), &file_root),
    )
    .unwrap();
    let out = runner(dir.path(), &["check", "exp.toml"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    let stderr =
        String::from_utf8_lossy(&out.stderr).replace(&data.display().to_string(), "<DATA>");
    assert!(
        stderr.contains("expected a folder, found a file at data/test.txt"),
        "{stderr}"
    );

    // on the command line (`runner evaluate RUN --data FILE`, a file for the run folder): a
    // usage error that says so
    std::fs::write(dir.path().join("exp.toml"), &spec).unwrap();
    let run = train(dir.path(), "held_out").remove(0);
    let run = run.strip_prefix(dir.path()).unwrap().display().to_string();
    for (args, said) in [
        (
            vec!["evaluate", &run, "--data", "data/test.txt"],
            "error: --data data/test.txt is a file, not a folder or a manifest (.csv, .parquet)"
                .to_string(),
        ),
        (
            vec!["evaluate", "exp.toml", "--data", "data/test"],
            "error: run folder exp.toml is a file, not a folder".to_string(),
        ),
    ] {
        let out = runner(dir.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), said);
    }
}

/// Runs of a sweep on one frozen backbone keep their heads and share the backbone, stored once
/// in the experiment; evaluating a run reads the two as one model, and says what is missing
/// when the experiment's store is not there.
#[test]
fn frozen_runs_share_one_stored_backbone() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let spec = format!(
        "{}\n[sweep]\ngrid = {{ \"optimizer.lr\" = [0.05, 0.1] }}\n",
        small_cnn()
    );
    write_spec(dir.path(), &spec);
    let runs = train(dir.path(), "scored");
    assert_eq!(runs.len(), 2, "{runs:?}");
    let store = runner::results::layout::ExperimentDir::of_run(&runs[0]).backbones();
    let stored: Vec<String> = std::fs::read_dir(&store)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    let stored_name = stored[0].clone();
    assert!(stored_name.starts_with("small_cnn-"), "{stored_name}");
    for run in &runs {
        let kept = safetensors_names(&RunDir::at(run).model());
        assert!(kept.iter().all(|n| n.starts_with("fc.")), "{kept:?}");
        let data = dir.path().join("data/test").display().to_string();
        let out = runner(
            dir.path(),
            &["evaluate", &run.display().to_string(), "--data", &data],
        );
        assert!(out.status.success(), "{}", text(&out));
    }

    std::fs::rename(&store, dir.path().join("moved")).unwrap();
    let data = dir.path().join("data/test").display().to_string();
    let run = runs[0].display().to_string();
    let out = runner(dir.path(), &["evaluate", &run, "--data", &data]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&stored_name) && err.contains("it is missing") && err.contains(".backbones"),
        "{err}"
    );
}

/// The tensor names of a safetensors file.
fn safetensors_names(path: &Path) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.names().into_iter().map(|n| n.to_string()).collect()
}
