//! `train.precision`: bf16-mixed runs on oneDNN's bf16 kernels, is recorded in the run id, the
//! manifest and the feature cache's key, and is refused before anything is written where the
//! engine cannot compute it.

use crate::common;

use common::{runner, runner_env, runner_logged, write_spec, Spec};
use runner::results::layout::ExperimentDir;
use runner::results::store::Manifest;

/// A small CNN fine-tuned for two epochs on the tiny set, at 32 px.
fn fine_tune(name: &str) -> Spec {
    Spec::tiny(name, 0)
        .table("transforms", &["resize = 32", "crop = 32"])
        .set("backbone", "name = \"small_cnn\"")
        .table("train", &["epochs = 2", "batch_size = 8"])
}

fn manifests(results: &std::path::Path, experiment: &str) -> Vec<Manifest> {
    common::run_folders(ExperimentDir::at(results.join(experiment)).path())
        .into_iter()
        .map(|run| {
            let text = std::fs::read_to_string(runner::results::layout::RunDir::at(run).manifest())
                .unwrap();
            serde_json::from_str(&text).unwrap()
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(bf16_cpu),
    ignore = "this CPU has neither avx512_bf16 nor AMX: oneDNN has no bf16 kernels for it"
)]
fn a_bf16_mixed_run_is_its_own_run_records_its_isa_and_caches_its_features_apart() {
    let dir = tempfile::tempdir().unwrap();
    fine_tune("bf16").write(dir.path());
    common::ok(&runner(dir.path(), &["exp.toml"]));
    let out = runner(
        dir.path(),
        &["exp.toml", "--set", "train.precision=bf16-mixed"],
    );
    let stdout = common::ok(&out);
    assert!(stdout.contains("1 done, 0 failed"), "{stdout}");
    let mut runs = manifests(&dir.path().join("results"), "bf16");
    assert_eq!(runs.len(), 2, "an f32 and a bf16 run, each its own id");
    runs.sort_by_key(|m| m.precision.clone());
    assert_eq!(runs[0].precision.as_deref(), Some("32"));
    let bf16 = runs[1].precision.as_deref().unwrap_or_default();
    assert!(
        bf16 == "bf16-mixed (avx512_core_bf16)" || bf16 == "bf16-mixed (avx512_core_amx)",
        "{bf16}"
    );
    assert_ne!(runs[0].run_id, runs[1].run_id);
    // the same numbers would mean the convolutions ran in f32
    let metrics = |m: &Manifest| {
        let run = ExperimentDir::at(dir.path().join("results/bf16")).run(&m.run_id);
        std::fs::read(run.metrics()).unwrap()
    };
    assert_ne!(metrics(&runs[0]), metrics(&runs[1]));

    // a frozen backbone's bf16 features are cached apart from its f32 ones
    let dir = tempfile::tempdir().unwrap();
    let spec = fine_tune("frozen_bf16")
        .set("backbone", "freeze = true")
        .set("train", "epochs = 1");
    spec.write(dir.path());
    let f32_run = runner_logged(dir.path(), &["exp.toml"]);
    let log = String::from_utf8_lossy(&f32_run.stderr);
    assert!(
        f32_run.status.success() && log.contains("feature cache miss (built)"),
        "{log}"
    );
    let bf16 = runner_logged(
        dir.path(),
        &["exp.toml", "--set", "train.precision=bf16-mixed"],
    );
    let log = String::from_utf8_lossy(&bf16.stderr);
    assert!(
        bf16.status.success() && log.contains("feature cache miss (built)"),
        "{log}"
    );
}

#[test]
fn bf16_is_refused_before_anything_is_written_where_the_engine_has_none() {
    let dir = tempfile::tempdir().unwrap();
    fine_tune("refused")
        .set("train", "precision = \"bf16-mixed\"")
        .write(dir.path());
    let out = runner_env(
        dir.path(),
        &["exp.toml", "--results", "out"],
        &[("RUNNER_ENGINE", Some("builtin"))],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(
        stderr.contains("exp.toml: train.precision = \"bf16-mixed\" cannot run on this machine: bf16 convolutions run on oneDNN only, and this process's engine is built-in (RUNNER_ENGINE=builtin)"),
        "{stderr}"
    );
    assert!(stderr.contains("set train.precision = \"32\""), "{stderr}");
    assert!(!dir.path().join("out").exists(), "nothing is written");
}

#[test]
fn an_unknown_precision_is_an_error_at_its_line() {
    let dir = tempfile::tempdir().unwrap();
    let spec = fine_tune("bad").set("train", "precision = \"16-mixed\"");
    write_spec(dir.path(), &spec.text());
    let out = runner(dir.path(), &["check", "exp.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{stderr}");
    assert!(stderr.contains("train.precision"), "{stderr}");
    assert!(
        stderr.contains("expected \"32\" or \"bf16-mixed\", found string \"16-mixed\""),
        "{stderr}"
    );
    assert!(stderr.contains("exp.toml:"), "{stderr}");
}
