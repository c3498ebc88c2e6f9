//! `runner export mlflow`, read back by MLflow itself (`MlflowClient` on the file store, through
//! tests/support/mlflow_readback.py): the runs, params and metric histories must equal what
//! `runner compare --format json` and the runs' Parquet files say. Needs a Python with mlflow:
//! `RUNNER_MLFLOW_PYTHON`, else `target/mlflow-venv/bin/python` (what .ci/run creates); the
//! test is reported as ignored, with the reason, when there is none (a failure under
//! `RUNNER_REQUIRE_TOOLS=1`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use runner::results::schema::{self, ParamValue};
use runner::results::store::Status;
use runner::testing::{write_run, SyntheticRun};
use serde_json::Value;

use crate::common;
use common::tools;
use libtest_mimic::Trial;
use runner::results::layout::RunDir;

pub(crate) fn trials() -> Vec<Trial> {
    let group = tools::Group::new(module_path!());
    let missing = python_with_mlflow().is_none().then(|| {
        "no Python with mlflow (set RUNNER_MLFLOW_PYTHON, or: python3 -m venv \
         target/mlflow-venv && target/mlflow-venv/bin/pip install mlflow-skinny==3.17.2)"
            .to_string()
    });
    vec![group.needs(
        "mlflow_reads_back_the_runs_params_and_metric_histories",
        missing,
        mlflow_reads_back_the_runs_params_and_metric_histories,
    )]
}

use common::project;

/// `runner ARGS` in the project folder, which must succeed: its stdout.
fn runner(args: &[&str]) -> String {
    common::ok(&common::runner(project(), args))
}

fn python_with_mlflow() -> Option<PathBuf> {
    let candidates = [
        std::env::var("RUNNER_MLFLOW_PYTHON")
            .ok()
            .map(PathBuf::from),
        Some(project().join("target/mlflow-venv/bin/python")),
    ];
    candidates.into_iter().flatten().find(|p| {
        Command::new(p)
            .args(["-c", "import mlflow.tracking"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let name = e.file_name();
        if name.to_string_lossy().starts_with('.')
            || Some(&*name) == RunDir::at(from).model().file_name()
        {
            continue;
        }
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(&name));
        } else {
            std::fs::copy(e.path(), to.join(&name)).unwrap();
        }
    }
}

/// Two experiments: the committed reference run (real training, a full spec.toml) and a
/// synthetic λ sweep with a diverged run.
fn results(root: &Path) -> PathBuf {
    let results = root.join("results");
    copy_dir(
        &project().join("results/reference/ci_reference"),
        &results.join("ci_reference"),
    );
    for (lambda, status) in [
        (0.0, Status::Done),
        (1e-3, Status::Done),
        (0.1, Status::Diverged),
        (0.01, Status::Paused),
    ] {
        let dir = write_run(
            &results,
            &SyntheticRun {
                experiment: "sweep".into(),
                swept: vec![("regularization.lambda".into(), ParamValue::Float(lambda))],
                classes: vec!["cat".into(), "dog".into()],
                epochs: 5,
                status,
                per_class: false,
            },
        )
        .unwrap();
        if status == Status::Paused {
            // stopped by successive halving at its one recorded epoch
            let manifest = dir.manifest();
            let mut m: Value =
                serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
            m["halted"] = serde_json::json!({ "rung": 0, "epoch": 1 });
            std::fs::write(&manifest, m.to_string()).unwrap();
        }
    }
    results
}

/// Every leaf of a TOML table under its dotted key, strings without quotes.
fn flat(prefix: &str, t: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (k, v) in t {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flat(&key, t, out),
            toml::Value::String(s) => {
                out.insert(key, s.clone());
            }
            v => {
                out.insert(key, v.to_string());
            }
        }
    }
}

/// A number of `runner compare --format json` (null: NaN).
fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

/// A value of the read-back: Python's repr, parsed exactly.
fn exact(v: &Value) -> f64 {
    v.as_str().unwrap().parse().unwrap()
}

/// `x` as `num` reads it from compare's JSON: serde_json's float parsing is not always exact,
/// so both sides go through it (compare writes the shortest round-trip text, `{x}`).
fn as_compare(x: f64) -> f64 {
    if x.is_finite() {
        serde_json::from_str(&format!("{x}")).unwrap()
    } else {
        f64::NAN
    }
}

fn same(a: f64, b: f64) -> bool {
    a == b || (a.is_nan() && b.is_nan())
}

fn mlflow_reads_back_the_runs_params_and_metric_histories() {
    let python = python_with_mlflow().expect("main checked that there is one");
    let tmp = tempfile::tempdir().unwrap();
    let results = results(tmp.path());
    let store = tmp.path().join("mlruns");
    let args = [
        "export",
        "mlflow",
        results.to_str().unwrap(),
        "--to",
        store.to_str().unwrap(),
    ];
    let first = runner(&args);
    // exporting again updates the same experiments and runs
    let again = runner(&args);
    assert_eq!(first.matches("(new)").count(), 2, "{first}");
    assert_eq!(
        again.replace("(updated)", "(new)"),
        first,
        "same experiment ids"
    );

    let out = Command::new(&python)
        .arg(project().join("tests/support/mlflow_readback.py"))
        .arg(&store)
        .output()
        .unwrap();
    common::ok(&out);
    let experiments: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    let mut names: Vec<&str> = experiments
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["ci_reference", "sweep"]);

    let compare: Vec<Value> = serde_json::from_str(&runner(&[
        "compare",
        results.to_str().unwrap(),
        "--format",
        "json",
    ]))
    .unwrap();
    let runs: Vec<(&Value, &Value)> = experiments
        .iter()
        .flat_map(|e| e["runs"].as_array().unwrap().iter().map(move |r| (e, r)))
        .collect();
    assert_eq!(runs.len(), compare.len(), "one MLflow run per runner run");
    for row in &compare {
        let id = row["run_id"].as_str().unwrap();
        let experiment = row["experiment"].as_str().unwrap();
        let (exp, run) = runs
            .iter()
            .find(|(_, r)| r["run_id"] == id)
            .unwrap_or_else(|| panic!("run {id} is not in MLflow"));
        assert_eq!(exp["name"], experiment);
        let tags = &run["tags"];
        assert_eq!(tags["runner.run_id"], id);
        // compare says where successive halving stopped a point; MLflow has it in a tag
        let status = tags.get("runner.halving").unwrap_or(&tags["runner.status"]);
        assert_eq!(status, &row["status"]);
        let want = match tags["runner.status"].as_str() {
            Some("done") => "FINISHED",
            Some("paused") => "KILLED",
            _ => "FAILED",
        };
        assert_eq!(run["status"], want);
        if tags["runner.status"] == "paused" {
            assert_eq!(tags["runner.halving"], "stopped at rung 0 (epoch 1)");
            assert_eq!(tags["runner.halving.rung"], "0");
            assert_eq!(tags["runner.halving.epoch"], "1");
        } else {
            assert!(tags.get("runner.halving").is_none(), "{tags}");
        }
        assert!(run["end_time"].as_i64().unwrap() >= run["start_time"].as_i64().unwrap());

        // every metric column of the Parquet is a history, step = epoch
        let dir = results.join(experiment).join(id);
        let frame = schema::read_frame(&RunDir::at(&dir).metrics()).unwrap();
        let metrics = run["metrics"].as_object().unwrap();
        let mut keys: Vec<&String> = metrics.keys().collect();
        keys.sort();
        let mut columns: Vec<&String> = frame.columns.iter().map(|(k, _)| k).collect();
        columns.sort();
        assert_eq!(keys, columns, "run {id}");
        for key in [
            "val_acc.cat",
            "val_acc.dog",
            "weight_norm",
            "lr",
            "epoch_seconds",
        ] {
            assert!(metrics.contains_key(key), "{key}");
        }
        for (key, values) in &frame.columns {
            let history = metrics[key].as_array().unwrap();
            let steps: Vec<usize> = history
                .iter()
                .map(|h| h[0].as_u64().unwrap() as usize)
                .collect();
            assert_eq!(steps, frame.epochs, "{id} {key} steps");
            for (h, &v) in history.iter().zip(values) {
                assert!(same(exact(&h[1]), v), "{id} {key}: {} vs {v}", h[1]);
            }
        }

        // compare's summary, recomputed from MLflow's histories
        let history = |key: &str| -> Vec<f64> {
            metrics[key]
                .as_array()
                .unwrap()
                .iter()
                .map(|h| exact(&h[1]))
                .collect()
        };
        let (val_loss, val_acc) = (history("val_loss"), history("val_acc"));
        let best = (0..val_loss.len())
            .filter(|&i| val_loss[i].is_finite())
            .fold(None, |b: Option<usize>, i| match b {
                Some(b) if val_loss[b] <= val_loss[i] => Some(b),
                _ => Some(i),
            })
            .unwrap();
        assert_eq!(
            row["best_epoch"].as_f64().unwrap(),
            frame.epochs[best] as f64
        );
        assert_eq!(num(&row["val_loss@best"]), as_compare(val_loss[best]));
        assert_eq!(num(&row["val_acc@best"]), as_compare(val_acc[best]));
        assert_eq!(
            num(&row["final_val_loss"]),
            as_compare(*val_loss.last().unwrap())
        );
        assert_eq!(
            num(&row["final_train_loss"]),
            as_compare(*history("train_loss").last().unwrap())
        );
        assert_eq!(
            num(&row["final_weight_norm"]),
            as_compare(*history("weight_norm").last().unwrap())
        );

        // params: every resolved spec key, or the swept values where there is no spec.toml
        let params: BTreeMap<String, String> = run["params"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
            .collect();
        let spec = RunDir::at(&dir).spec();
        if spec.is_file() {
            let table: toml::Table = std::fs::read_to_string(&spec).unwrap().parse().unwrap();
            let mut want = BTreeMap::new();
            flat("", &table, &mut want);
            assert_eq!(params, want);
            assert!(params.len() > 30, "{}", params.len());
            let manifest: Value = serde_json::from_str(
                &std::fs::read_to_string(RunDir::at(&dir).manifest()).unwrap(),
            )
            .unwrap();
            assert_eq!(tags["mlflow.source.git.commit"], manifest["git_commit"]);
        } else {
            let lambda: f64 = params["regularization.lambda"].parse().unwrap();
            assert_eq!(as_compare(lambda), num(&row["regularization.lambda"]));
            assert_eq!(
                run["run_name"].as_str().unwrap(),
                format!("lambda={}", params["regularization.lambda"])
            );
        }
    }
}
