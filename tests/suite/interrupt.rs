//! Ctrl-C, end to end: the first SIGINT finishes the batch, writes the checkpoint and a manifest
//! with status `interrupted` and exits 130; the next invocation resumes the run to the end. A
//! second SIGINT exits at once, and leaves no file half-written either.
//!
//! The signals are sent by the runner to itself at named fault points (`runner::fault`, through
//! `RUNNER_FAILPOINTS`), so each lands at the same batch or between the same two writes on any
//! machine, however loaded: nothing here depends on timing.

use crate::common;

use common::manifest;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{animal_mnist, command, Spec};
use polars::prelude::*;
use runner::results::layout::RunDir;

/// Training batches per epoch: 800 images in batches of 8.
const BATCHES: usize = 100;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    Spec::tiny("ctrlc", 5)
        .table("dataset", &["train_per_class = 400", "val_per_class = 50"])
        .table("train", &["epochs = 200", "batch_size = 8"])
        .write_on(dir.path(), &animal_mnist());
    dir
}

/// `runner run exp.toml` with the fault points `failpoints` (`RUNNER_FAILPOINTS` syntax), to its end.
fn run_with(dir: &Path, failpoints: &str) -> Output {
    command(dir, &["run", "exp.toml"])
        .env("RUNNER_LOG", "info")
        .env("RUNNER_FAILPOINTS", failpoints)
        .output()
        .expect("runner starts")
}

/// Ctrl-C (`what`: `sigint` or `sigint-twice`) at training batch `n` (1-based, counted over
/// the invocation's epochs).
fn at_batch(n: usize, what: &str) -> String {
    format!("after-batch={}*off->return({what})", n - 1)
}

fn run_dir(dir: &Path) -> PathBuf {
    std::fs::read_dir(dir.join("results/ctrlc"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("a run folder")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// That the log of `out` says `text`.
fn says(out: &Output, text: &str) {
    assert!(stderr(out).contains(text), "{}", stderr(out));
}

/// That the run's manifest says `status` after `epochs_done` epochs, as many as its metrics
/// hold.
fn recorded(run: &Path, status: &str, epochs_done: i64) {
    let m = manifest(run);
    assert_eq!(m["status"], status, "{m}");
    assert_eq!(m["epochs_done"], epochs_done, "{m}");
    assert_eq!(epochs(run), (1..=epochs_done).collect::<Vec<_>>());
}

fn leftovers(run: &Path) -> Vec<String> {
    std::fs::read_dir(run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp"))
        .collect()
}

fn epochs(run: &Path) -> Vec<i64> {
    let df = ParquetReader::new(std::fs::File::open(RunDir::at(run).metrics()).unwrap())
        .finish()
        .expect("readable parquet");
    common::i64s(&df, "epoch")
}

#[test]
fn the_first_sigint_checkpoints_and_exits_130_and_a_rerun_resumes() {
    let dir = setup();
    // half way through epoch 2
    let out = run_with(dir.path(), &at_batch(BATCHES + BATCHES / 2, "sigint"));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    says(&out, "interrupted in epoch 2");
    let run = run_dir(dir.path());
    recorded(&run, "interrupted", 1);
    assert!(RunDir::at(&run).checkpoint().exists());
    assert!(!RunDir::at(&run).lock().exists());

    // the next invocation resumes after epoch 1; stopped again in its second epoch (epoch 3)
    let out = run_with(dir.path(), &at_batch(BATCHES + 10, "sigint"));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    says(&out, "resuming after epoch 1");
    says(&out, "interrupted in epoch 3");
    assert_eq!(manifest(&run)["epochs_done"], 2);
    assert_eq!(epochs(&run), vec![1, 2]);
}

#[test]
fn a_second_sigint_exits_at_once_without_half_written_files() {
    let dir = setup();
    let out = run_with(dir.path(), &at_batch(BATCHES + BATCHES / 2, "sigint-twice"));
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    // at once: not after the batch, through the orderly stop, which would have recorded the run
    // as interrupted; the manifest is still the one of epoch 1
    assert!(
        !stderr(&out).contains("interrupted in epoch"),
        "{}",
        stderr(&out)
    );
    let run = run_dir(dir.path());
    recorded(&run, "running", 1);
    assert_eq!(leftovers(&run), Vec::<String>::new());
    // whatever was written is whole: the next invocation resumes
    let out = run_with(dir.path(), &at_batch(BATCHES + 1, "sigint"));
    says(&out, "resuming after epoch 1");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
}

#[test]
fn a_second_sigint_between_the_metrics_and_the_manifest_waits_for_the_manifest() {
    let dir = setup();
    // epoch 2's metrics.parquet is written, its manifest not yet
    let out = run_with(dir.path(), "after-metrics=1*off->return(sigint-twice)");
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let run = run_dir(dir.path());
    let m = manifest(&run);
    assert_eq!(epochs(&run), vec![1, 2], "{m}");
    assert_eq!(
        m["epochs_done"], 2,
        "the manifest agrees with metrics.parquet: {m}"
    );
    assert_eq!(leftovers(&run), Vec::<String>::new());
    // and the checkpoint of epoch 2 was written with them
    let out = run_with(dir.path(), &at_batch(1, "sigint"));
    says(&out, "resuming after epoch 2");
}

#[test]
fn a_second_sigint_during_a_write_leaves_no_temporary_file() {
    let dir = setup();
    // the third manifest write (the run's first, then epoch 1's, then epoch 2's): its
    // temporary file is complete, not yet renamed
    let out = run_with(
        dir.path(),
        "before-rename:manifest.json=2*off->return(sigint-twice)",
    );
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let run = run_dir(dir.path());
    assert_eq!(leftovers(&run), Vec::<String>::new());
    let m = manifest(&run);
    assert_eq!(m["epochs_done"], 2, "{m}");
    assert_eq!(epochs(&run), vec![1, 2]);
}
