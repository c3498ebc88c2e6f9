//! Issue #12.1: 40 `runner` processes started at once on one results folder; exactly one of them
//! trains the run, the others find it locked or already done (before the fix, about one start
//! in 40 let two runners train the same run: one read the lock file between its creation and
//! the write of the pid, took it for stale and removed it).

use crate::common;

use common::{command, Spec};
use runner::results::layout::RunDir;
use std::process::Stdio;

#[test]
fn forty_simultaneous_runners_train_one_run_once() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    Spec::tiny("race", 1)
        .table("train", &["epochs = 2", "batch_size = 4"])
        .write(dir);
    let children: Vec<_> = (0..40)
        .map(|_| {
            command(dir, &["run", "exp.toml"])
                .env("RAYON_NUM_THREADS", "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut trained = 0;
    for c in children {
        let out = c.wait_with_output().unwrap();
        assert!(out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        let row = text
            .lines()
            .find(|l| l.starts_with("│ 1 "))
            .unwrap_or_else(|| panic!("no summary row in:\n{text}"));
        // `done` = trained here; `done (earlier)` = found finished; `running` = found locked
        if row.contains(" done ┆") {
            trained += 1;
        } else {
            assert!(
                row.contains("done (earlier)") || row.contains("running"),
                "{row}"
            );
        }
    }
    assert_eq!(trained, 1, "the run was trained {trained} times");
    let run = std::fs::read_dir(dir.join("results/race"))
        .unwrap()
        .flatten()
        .find(|e| RunDir::at(e.path()).manifest().exists())
        .unwrap()
        .path();
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(RunDir::at(&run).manifest()).unwrap())
            .unwrap();
    assert_eq!(manifest["status"], "done");
    assert_eq!(manifest["epochs_done"], 2);
    assert!(
        !RunDir::at(&run).lock().exists(),
        "the lock outlived its holder"
    );
}
