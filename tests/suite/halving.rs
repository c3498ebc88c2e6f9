//! `[sweep.halving]` end to end on the tiny cat/dog folder: the spec's refusals at their lines
//! (exit 78), the promotions and the decisions file of a small sweep, a promoted point's
//! numbers against the same point trained without halving, and the decisions file byte for
//! byte across a second sweep and a sweep killed again and again and resumed.

use std::path::Path;
use std::process::Stdio;

use crate::common;

use common::{command, ok, runner, text, tiny_linear_spec, write_spec};
use polars::prelude::*;
use runner::results::layout::{ResultsRoot, RunDir};

/// Four learning rates, 4 epochs, rungs at epochs 1 and 2 (rf = 2): 4 → 2 → 1 points.
fn sweep(halving: &str) -> String {
    tiny_linear_spec(
        "halve",
        &format!(
            r#"batch_size = 2

[optimizer]
kind = "sgd"
momentum = 0.9

[sweep]
grid = {{ "optimizer.lr" = [0.3, 0.03, 0.003, 0.0003] }}

[sweep.halving]
{halving}
"#
        ),
    )
    .replace("[train]\nepochs = 1", "[train]\nepochs = 4")
}

const HALVING: &str = "min_epochs = 1\nreduction_factor = 2";

fn decisions(dir: &Path, results: &str) -> serde_json::Value {
    let path = ResultsRoot::new(dir.join(results))
        .experiment("halve")
        .halving();
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The folder of run `id` of the experiment under `dir/results`.
fn run_dir(dir: &Path, results: &str, id: &str) -> std::path::PathBuf {
    ResultsRoot::new(dir.join(results))
        .experiment("halve")
        .run(id)
        .path()
        .to_path_buf()
}

fn decisions_bytes(dir: &Path, results: &str) -> Vec<u8> {
    std::fs::read(
        ResultsRoot::new(dir.join(results))
            .experiment("halve")
            .halving(),
    )
    .unwrap()
}

fn metrics(dir: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(RunDir::at(dir).metrics()).unwrap())
        .finish()
        .unwrap()
}

fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(RunDir::at(dir).manifest()).unwrap()).unwrap()
}

/// `runner check` on `body` fails with exit 78, naming the file at the line holding `marker`.
fn refused(body: &str, marker: &str, message: &str) {
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path(), body);
    let text_written = std::fs::read_to_string(dir.path().join("exp.toml")).unwrap();
    let line = 1 + text_written
        .lines()
        .position(|l| l.contains(marker))
        .unwrap_or_else(|| panic!("`{marker}` is in the spec"));
    let out = runner(dir.path(), &["check", "exp.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        stderr.contains(&format!("exp.toml:{line}:")),
        "expected line {line}:\n{stderr}"
    );
    assert!(stderr.contains(message), "expected `{message}`:\n{stderr}");
}

#[test]
fn bad_halving_specs_are_refused_at_their_lines() {
    refused(
        &sweep("min_epochs = 1\nreduction_factor = 1"),
        "reduction_factor = 1",
        "expected an integer of at least 2",
    );
    refused(
        &sweep("min_epochs = 5"),
        "min_epochs = 5",
        "expected fewer epochs than train.epochs (4)",
    );
    refused(
        &sweep("min_epochs = 1\nmetric = \"val_f1\""),
        "metric = \"val_f1\"",
        "val_f1",
    );
    refused(
        &tiny_linear_spec("one", "epochs = 3\n\n[sweep.halving]\nmin_epochs = 1\n")
            .replace("epochs = 1\nepochs = 3", "epochs = 3"),
        "min_epochs = 1",
        "halving needs a sweep of at least 2 points to choose from; this one has 1",
    );
    refused(
        &sweep("min_epochs = 1\nmode = \"async\""),
        "mode = \"async\"",
        "asynchronous halving (ASHA) is not built yet",
    );
}

#[test]
fn halving_promotes_the_best_and_records_every_decision() {
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path(), &sweep(HALVING));
    let out = ok(&runner(dir.path(), &["run", "exp.toml", "--results", "r"]));
    assert!(out.contains("stopped at rung 0 (epoch 1)"), "{out}");
    assert!(out.contains("stopped at rung 1 (epoch 2)"), "{out}");
    // 4 points × 1 epoch + 2 × 1 more + 1 × 2 more
    assert!(
        out.contains("halving trained 8 of the full sweep's 16 epochs (50%)"),
        "{out}"
    );

    let d = decisions(dir.path(), "r");
    let rungs = d["rungs"].as_array().unwrap();
    assert_eq!(rungs.len(), 2);
    for (rung, (epoch, reached, kept)) in [(1, 4, 2), (2, 2, 1)].into_iter().enumerate() {
        let r = &rungs[rung];
        assert_eq!(r["epoch"], epoch);
        let ranking = r["ranking"].as_array().unwrap();
        assert_eq!(ranking.len(), reached);
        assert_eq!(r["promoted"], kept);
        let values: Vec<f64> = ranking
            .iter()
            .map(|p| p["value"].as_f64().unwrap())
            .collect();
        assert!(values.windows(2).all(|w| w[0] <= w[1]), "{values:?}");
        for (place, p) in ranking.iter().enumerate() {
            assert_eq!(p["promoted"], place < kept);
            // the value is the run's recorded val_loss at the rung's epoch
            let run = run_dir(dir.path(), "r", p["runs"][0].as_str().unwrap());
            let m = metrics(&run);
            let losses = common::f64s(&m, "val_loss");
            assert_eq!(losses[epoch - 1], p["value"].as_f64().unwrap());
            let status = manifest(&run);
            if !p["promoted"].as_bool().unwrap() {
                assert_eq!(status["status"], "paused");
                assert_eq!(status["halted"]["rung"], rung);
                assert_eq!(m.height(), epoch, "a stopped run trains no further");
                assert!(RunDir::at(&run).checkpoint().exists());
                // reproduced up to where halving stopped it
                let (run_s, project) = (run.to_str().unwrap(), dir.path().to_str().unwrap());
                let out = runner(dir.path(), &["reproduce", run_s, "--project", project]);
                assert!(out.status.success(), "{}", text(&out));
            }
        }
    }
    // the last point standing trained to the end
    let winner = rungs[1]["ranking"][0]["runs"][0].as_str().unwrap();
    let run = run_dir(dir.path(), "r", winner);
    assert_eq!(manifest(&run)["status"], "done");
    assert_eq!(metrics(&run).height(), 4);

    // status and compare say where each stopped point stopped
    let status = ok(&runner(dir.path(), &["status", "r/halve"]));
    assert!(status.contains("stopped at rung 0 (epoch 1)"), "{status}");
    assert!(status.contains("1 done, 3 stopped"), "{status}");
    let compare = ok(&runner(dir.path(), &["compare", "r/halve"]));
    assert!(compare.contains("stopped at rung 1 (epoch 2)"), "{compare}");

    // --index and runner slurm do not take a halving sweep yet: refused, nothing written
    for args in [
        &["run", "exp.toml", "--results", "r", "--index", "2"][..],
        &["slurm", "exp.toml", "--results", "r"][..],
    ] {
        let out = runner(dir.path(), args);
        assert_eq!(out.status.code(), Some(2), "{}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains("[sweep.halving]"));
    }
    let experiment = ResultsRoot::new(dir.path().join("r")).experiment("halve");
    assert!(!experiment.slurm().exists());

    // another sweep with other settings may not reuse these decisions
    write_spec(dir.path(), &sweep("min_epochs = 1\nreduction_factor = 3"));
    let out = runner(dir.path(), &["run", "exp.toml", "--results", "r"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("halving.json"));
}

#[test]
fn a_promoted_point_trains_to_the_numbers_of_the_same_point_without_halving() {
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path(), &sweep(HALVING));
    ok(&runner(
        dir.path(),
        &["run", "exp.toml", "--results", "halved"],
    ));
    write_spec(dir.path(), &sweep("min_epochs = 0"));
    ok(&runner(
        dir.path(),
        &["run", "exp.toml", "--results", "full"],
    ));

    let d = decisions(dir.path(), "halved");
    let winner = d["rungs"][1]["ranking"][0]["runs"][0].as_str().unwrap();
    // the same run id with and without halving: halving is not part of a run's identity
    let (halved, full) = (
        metrics(&run_dir(dir.path(), "halved", winner)),
        metrics(&run_dir(dir.path(), "full", winner)),
    );
    for column in common::TRAINED_COLUMNS {
        let (a, b) = (common::f64s(&halved, column), common::f64s(&full, column));
        assert_eq!(a.len(), 4);
        assert_eq!(
            a.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            b.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            "{column}: {a:?} vs {b:?}"
        );
    }
    // and the full sweep's stopped points are the same runs, trained further
    for p in d["rungs"][0]["ranking"].as_array().unwrap() {
        let id = p["runs"][0].as_str().unwrap();
        assert!(run_dir(dir.path(), "full", id).is_dir());
    }
}

#[test]
fn the_decisions_are_the_same_byte_for_byte_run_twice_or_killed_and_resumed() {
    let dir = tempfile::tempdir().unwrap();
    write_spec(dir.path(), &sweep(HALVING));
    ok(&runner(dir.path(), &["run", "exp.toml", "--results", "a"]));
    ok(&runner(dir.path(), &["run", "exp.toml", "--results", "b"]));
    let first = decisions_bytes(dir.path(), "a");
    assert_eq!(first, decisions_bytes(dir.path(), "b"));
    // a second invocation over finished results decides nothing anew
    ok(&runner(dir.path(), &["run", "exp.toml", "--results", "a"]));
    assert_eq!(first, decisions_bytes(dir.path(), "a"));

    // killed at these points, one after another, then let finish: 4 batches per epoch
    let kills = [
        "after-batch=5*off->return(kill)",
        "before-rename:halving.json=return(kill)",
        "after-batch=6*off->return(kill)",
        "before-rename:manifest.json=3*off->return(kill)",
        "before-rename:halving.json=return(kill)",
        "after-metrics=1*off->return(kill)",
    ];
    let mut killed = 0;
    for point in kills {
        let status = command(dir.path(), &["run", "exp.toml", "--results", "k"])
            .env("RUNNER_FAILPOINTS", point)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        if !status.success() {
            killed += 1;
        }
    }
    assert!(killed >= 4, "only {killed} of the invocations were killed");
    ok(&runner(dir.path(), &["run", "exp.toml", "--results", "k"]));
    assert_eq!(
        String::from_utf8(first).unwrap(),
        String::from_utf8(decisions_bytes(dir.path(), "k")).unwrap()
    );
}
