//! Choosing the CPU engine end to end: `--engine` / `RUNNER_ENGINE` pick it, the run's log and
//! manifest name it, a run's id does not depend on it, and a bad choice is a clear error.

use crate::common;

use common::{command, Spec};
use runner::results::layout::RunDir;
use std::path::{Path, PathBuf};

fn project(dir: &Path) -> PathBuf {
    Spec::named("engines", 5)
        .table("transforms", &["resize = 20", "crop = 16"])
        .set("backbone", "name = \"small_cnn\"")
        .table("train", &["epochs = 1", "batch_size = 8"])
        .write(dir)
}

fn runner(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    command(dir, args)
        .env("RUNNER_LOG", "info")
        .env_remove("RUNNER_ENGINE")
        .envs(env.iter().copied())
        .output()
        .expect("runner starts")
}

/// The one run's folder and its manifest.
fn the_run(results: &Path) -> (String, serde_json::Value) {
    let run = std::fs::read_dir(results.join("engines"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("a run folder");
    let manifest = std::fs::read_to_string(RunDir::at(&run).manifest()).unwrap();
    let id = run.file_name().unwrap().to_string_lossy().into_owned();
    (id, serde_json::from_str(&manifest).unwrap())
}

#[test]
fn the_engine_is_logged_and_recorded_and_not_part_of_the_run_id() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let out = runner(
        dir.path(),
        &["exp.toml", "--engine", "builtin", "--results", "a"],
        &[("RUNNER_ENGINE", "onednn")],
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{log}");
    // the flag wins over the variable
    assert!(log.contains("engine: built-in (--engine=builtin)"), "{log}");
    let (builtin_id, manifest) = the_run(&dir.path().join("a"));
    assert_eq!(manifest["engine"], "built-in (--engine=builtin)");

    for (name, _) in runner::testing::engines() {
        if name != "oneDNN" {
            continue;
        }
        let out = runner(
            dir.path(),
            &["exp.toml", "--results", "b"],
            &[("RUNNER_ENGINE", "onednn")],
        );
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{log}");
        let line = log.lines().find(|l| l.contains("engine: ")).expect(&log);
        assert!(line.contains("engine: oneDNN 2."), "{line}");
        let (id, manifest) = the_run(&dir.path().join("b"));
        assert!(manifest["engine"]
            .as_str()
            .unwrap()
            .starts_with("oneDNN 2."));
        assert_eq!(
            id, builtin_id,
            "the engine is not part of the run's identity"
        );
    }
}

#[test]
fn an_unknown_engine_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    project(dir.path());
    let out = runner(dir.path(), &["exp.toml", "--engine", "gpu"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let flag = String::from_utf8_lossy(&out.stderr).into_owned();
    let out = runner(
        dir.path(),
        &["plan", "exp.toml"],
        &[("RUNNER_ENGINE", "fast")],
    );
    assert_eq!(out.status.code(), Some(2));
    let var = String::from_utf8_lossy(&out.stderr).into_owned();
    insta::assert_snapshot!(format!("--engine gpu:\n{flag}\nRUNNER_ENGINE=fast:\n{var}"));
    assert!(!dir.path().join("results").exists(), "nothing is written");
}
