//! A results tree with one damaged run: every reader names the unreadable file, shows the other
//! runs, and exits 1; `status` tells a damaged run from one that never started.

mod common;

use std::path::{Path, PathBuf};

use common::{runner, text, Spec};

fn spec() -> Spec {
    Spec::tiny("damaged", 1)
        .table("dataset", &["train_per_class = 4", "val_per_class = 2"])
        .table("transforms", &["resize = 16", "crop = 16"])
        .set("backbone", "name = \"linear\"")
        .table("train", &["epochs = 1", "batch_size = 4"])
        .set("sweep", r#"grid = { "optimizer.lr" = [0.01, 0.02, 0.03] }"#)
}

/// The sweep trained, then the second run's manifest cut to a third of its length.
fn damaged_tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    spec().write(dir.path());
    let out = runner(dir.path(), &["run", "exp.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    let manifest = runner::results::layout::RunDir::at(second_run(dir.path())).manifest();
    let whole = std::fs::read(&manifest).unwrap();
    std::fs::write(&manifest, &whole[..whole.len() / 3]).unwrap();
    (dir, manifest)
}

/// The second planned point's run folder (as `runner plan` numbers them).
fn second_run(dir: &Path) -> PathBuf {
    let plan = runner(dir, &["plan", "exp.toml"]);
    let line = String::from_utf8_lossy(&plan.stdout)
        .lines()
        .find(|l| l.starts_with("2 "))
        .expect("point 2 in the plan")
        .to_string();
    let id = line.split_whitespace().nth(1).unwrap().to_string();
    dir.join("results/damaged").join(id)
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn status_shows_a_cut_manifest_as_damaged_and_exits_1() {
    let (dir, manifest) = damaged_tree();
    let out = runner(dir.path(), &["status", "results/damaged"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout
        .lines()
        .find(|l| l.contains("damaged "))
        .expect("a damaged row");
    assert!(row.contains("│ 2 "), "{stdout}");
    assert_eq!(stdout.matches(" done ").count(), 2, "{stdout}");
    assert!(stdout.contains("\n2 done, 1 damaged\n"), "{stdout}");
    let rel = manifest
        .strip_prefix(dir.path())
        .unwrap()
        .display()
        .to_string();
    assert!(
        stderr(&out).contains(&format!("cannot read {rel}")),
        "{}",
        text(&out)
    );
    // where (and in what) the parser stopped depends on the pid and times in the file: not part
    // of the snapshot
    let shown: Vec<String> = stderr(&out)
        .replace(&rel, "results/damaged/<run>/manifest.json")
        .lines()
        .map(|l| match l.find("EOF while parsing") {
            Some(at) => format!("{}EOF while parsing …", &l[..at]),
            None => l.to_string(),
        })
        .collect();
    insta::assert_snapshot!(shown.join("\n"));

    // a point that never started is pending, and nothing to complain about
    std::fs::remove_dir_all(manifest.parent().unwrap()).unwrap();
    let out = runner(dir.path(), &["status", "results/damaged"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("pending"),
        "{}",
        text(&out)
    );
}

#[test]
fn plot_report_and_export_name_the_damaged_run_and_keep_the_others() {
    let (dir, manifest) = damaged_tree();
    let rel = manifest
        .strip_prefix(dir.path())
        .unwrap()
        .display()
        .to_string();
    for args in [
        vec!["compare", "results/damaged"],
        vec!["plot", "results/damaged"],
        vec!["report", "results/damaged"],
        vec!["export", "mlflow", "results/damaged", "--to", "mlruns"],
    ] {
        let out = runner(dir.path(), &args);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        let err = stderr(&out);
        assert!(
            err.contains("1 run could not be read and is left out"),
            "{args:?}: {err}"
        );
        assert!(
            err.contains(&format!("cannot read {rel}")),
            "{args:?}: {err}"
        );
        assert!(
            !out.stdout.is_empty(),
            "{args:?}: the other runs' output: {}",
            text(&out)
        );
    }
    let damaged =
        runner::results::layout::ResultsRoot::new(dir.path().join("results")).experiment("damaged");
    assert!(damaged.report_html().is_file());
    assert!(damaged.plots().is_dir());
}
