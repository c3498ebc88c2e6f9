//! A command that fails on its arguments exits 2 and writes nothing.

use crate::common;

use std::path::Path;

use common::{runner, text, tiny_linear_spec};
use runner::results::layout::RunDir;

fn two_point_sweep(dir: &Path) {
    let spec = tiny_linear_spec(
        "usage",
        r#"
[sweep]
grid = { "optimizer.lr" = [0.01, 0.02] }
"#,
    );
    std::fs::write(dir.join("exp.toml"), spec).unwrap();
}

/// Everything in `dir` but the spec.
fn written(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "exp.toml")
        .collect()
}

#[test]
fn an_index_past_the_sweep_and_an_unset_index_variable_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    two_point_sweep(dir.path());
    let out = runner(dir.path(), &["run", "exp.toml", "--index", "3"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(written(dir.path()), Vec::<String>::new(), "{}", text(&out));
    let out = common::runner_env(
        dir.path(),
        &["run", "exp.toml", "--index", "env"],
        &[
            ("SLURM_ARRAY_TASK_ID", None),
            ("JOB_COMPLETION_INDEX", None),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert_eq!(written(dir.path()), Vec::<String>::new(), "{}", text(&out));
    let out = runner(dir.path(), &["run", "exp.toml", "--shard", "2/2"]);
    assert!(
        out.status.success(),
        "a valid selection still trains: {}",
        text(&out)
    );
}

#[test]
fn a_path_that_does_not_exist_is_a_usage_error_for_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for args in [
        "run nope.toml",
        "check nope.toml",
        "plan nope.toml",
        "preview nope.toml",
        "summary nope.toml",
        "slurm nope.toml",
        "reproduce results/x/nope",
        "evaluate results/x/nope --data val",
        "export onnx results/x/nope --to model.onnx",
        "predict --run results/x/nope cat.png",
        "predict --model resnet18 --weights nope.safetensors cat.png",
        "status results/nope",
        "compare results/nope",
        "plot results/nope",
        "report results/nope",
        "export mlflow results/nope --to mlruns",
    ] {
        let argv: Vec<&str> = args.split(' ').collect();
        let out = runner(dir.path(), &argv);
        assert_eq!(out.status.code(), Some(2), "runner {args}: {}", text(&out));
        let err = String::from_utf8_lossy(&out.stderr);
        seen.push(format!(
            "runner {args}\n  {}",
            err.lines().last().unwrap_or_default()
        ));
    }
    assert_eq!(written(dir.path()), Vec::<String>::new());
    insta::assert_snapshot!(seen.join("\n"));
}

/// A misspelt path after an existing one (`evaluate RUN --data DIR`, `--project DIR` of
/// `reproduce` and `report`): a usage error, as for every other path on the command line, and
/// nothing is written.
#[test]
fn a_misspelt_second_path_is_a_usage_error_too() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    std::fs::write(dir.path().join("exp.toml"), tiny_linear_spec("usage", "")).unwrap();
    let out = runner(dir.path(), &["run", "exp.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    let run = std::fs::read_dir(dir.path().join("results/usage"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| RunDir::at(p).manifest().is_file())
        .expect("a run folder");
    let run = run.strip_prefix(dir.path()).unwrap().display().to_string();
    for (args, said) in [
        (
            vec!["evaluate", &run, "--data", "vall"],
            "error: --data folder vall does not exist",
        ),
        (
            vec!["reproduce", &run, "--project", "projct"],
            "error: --project folder projct does not exist",
        ),
        (
            vec!["report", "results/usage", "--project", "projct"],
            "error: --project folder projct does not exist",
        ),
    ] {
        let out = runner(dir.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out));
        assert_eq!(String::from_utf8_lossy(&out.stderr).trim_end(), said);
    }
    assert!(!dir.path().join(&run).join("evaluate").exists());
    assert!(!dir.path().join("results/usage/report.html").exists());
}

/// A file given where the command needs a folder (a run folder, `--pipeline`, `--project`): a
/// usage error that says so, and nothing is written.
#[test]
fn a_file_where_a_folder_is_expected_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    two_point_sweep(dir.path());
    let mut seen = Vec::new();
    for args in [
        "reproduce exp.toml",
        "predict --run exp.toml exp.toml",
        "evaluate exp.toml --data exp.toml",
        "export onnx exp.toml --to model.onnx",
        "run exp.toml --pipeline exp.toml",
        "report results/usage --project exp.toml",
    ] {
        let argv: Vec<&str> = args.split(' ').collect();
        let out = runner(dir.path(), &argv);
        assert_eq!(out.status.code(), Some(2), "runner {args}: {}", text(&out));
        seen.push(format!(
            "runner {args}\n  {}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        ));
    }
    assert_eq!(written(dir.path()), Vec::<String>::new());
    insta::assert_snapshot!(seen.join("\n"));
}
