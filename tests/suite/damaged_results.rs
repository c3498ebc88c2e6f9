//! A results tree with one damaged run: every reader names the unreadable file, shows the other
//! runs, and exits 1; `status` tells a damaged run from one that never started.

use crate::common;

use std::path::{Path, PathBuf};

use common::{runner, text, Spec};
use runner::results::layout::RunDir;

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
    let manifest = RunDir::at(second_run(dir.path())).manifest();
    common::cut_to_a_third(&manifest);
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

/// `runner ARGS` in `dir` exits 1, names the unreadable file `rel` and writes the other runs'
/// output.
fn shows_the_others_and_names(dir: &Path, args: &[&str], rel: &str) {
    let out = runner(dir, args);
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
        shows_the_others_and_names(dir.path(), &args, &rel);
    }
    let damaged =
        runner::results::layout::ResultsRoot::new(dir.path().join("results")).experiment("damaged");
    assert!(damaged.report_html().is_file());
    assert!(damaged.plots().is_dir());
}

/// The first point of a two-point sweep (lr = 0.01) and the second, trained.
fn two_point_sweep() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    spec()
        .set("sweep", r#"grid = { "optimizer.lr" = [0.01, 0.02] }"#)
        .write(dir.path());
    let out = runner(dir.path(), &["run", "exp.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    let second = second_run(dir.path());
    let first = std::fs::read_dir(dir.path().join("results/damaged"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| RunDir::at(p).manifest().is_file() && *p != second)
        .expect("the first run");
    (dir, first, second)
}

/// MLflow's name of each exported run, by run id: the `mlflow.runName` tag and meta.yaml's
/// `run_name`.
fn mlflow_names(mlruns: &Path) -> Vec<(String, String, String)> {
    let mut names = Vec::new();
    for exp in std::fs::read_dir(mlruns).unwrap() {
        let exp = exp.unwrap().path();
        if exp.file_name().unwrap() == "0" || !exp.is_dir() {
            continue;
        }
        for run in std::fs::read_dir(&exp).unwrap() {
            let run = run.unwrap().path();
            if !run.is_dir() {
                continue;
            }
            let tag = std::fs::read_to_string(run.join("tags/mlflow.runName")).unwrap();
            let meta = std::fs::read_to_string(run.join("meta.yaml")).unwrap();
            let line = meta
                .lines()
                .find(|l| l.starts_with("run_name:"))
                .unwrap()
                .to_string();
            names.push((run.file_name().unwrap().to_string_lossy().into(), tag, line));
        }
    }
    names.sort();
    names
}

/// A run's display name comes from its own sweep point and the plan: damaging the other run of
/// a two-point sweep does not rename it in MLflow, in the plot legends or in the report.
#[test]
fn a_run_keeps_its_name_when_another_run_is_damaged() {
    let (dir, first, second) = two_point_sweep();
    let id = first.file_name().unwrap().to_string_lossy().into_owned();
    let out = runner(
        dir.path(),
        &["export", "mlflow", "results/damaged", "--to", "mlruns"],
    );
    assert!(out.status.success(), "{}", text(&out));
    let before: Vec<_> = mlflow_names(&dir.path().join("mlruns"))
        .into_iter()
        .filter(|(run, ..)| *run == id)
        .collect();
    assert_eq!(before.len(), 1);
    assert_eq!(before[0].1, "lr=0.01");

    common::cut_to_a_third(&RunDir::at(&second).metrics());
    let out = runner(
        dir.path(),
        &["export", "mlflow", "results/damaged", "--to", "mlruns"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let after: Vec<_> = mlflow_names(&dir.path().join("mlruns"))
        .into_iter()
        .filter(|(run, ..)| *run == id)
        .collect();
    assert_eq!(after, before, "the healthy run's MLflow name and meta.yaml");

    let out = runner(
        dir.path(),
        &["compare", "results/damaged", "--format", "csv"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let csv = String::from_utf8_lossy(&out.stdout).into_owned();
    let (header, row) = csv.split_once('\n').unwrap();
    let lr = header.split(',').position(|c| c.ends_with("lr"));
    assert_eq!(
        lr.map(|i| row.split(',').nth(i).unwrap()),
        Some("0.01"),
        "the row says which point it is: {csv}"
    );
    let out = runner(dir.path(), &["plot", "results/damaged"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let legend =
        std::fs::read_to_string(dir.path().join("results/damaged/plots/loss.svg")).unwrap();
    assert!(
        legend.contains("lr=0.01"),
        "the legend names the healthy run by its lr"
    );
    let out = runner(dir.path(), &["report", "results/damaged"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let page = std::fs::read_to_string(dir.path().join("results/damaged/report.html")).unwrap();
    // the run's section is rendered from the page's payload when opened
    let payload = page
        .split("<script type=\"application/json\" id=\"run-data\">")
        .nth(1)
        .and_then(|s| s.split("</script>").next())
        .expect("the runs' payload");
    let payload: serde_json::Value = serde_json::from_str(payload).unwrap();
    let section = payload["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["anchor"] == format!("run-damaged-{id}").as_str())
        .expect("the run's section");
    assert_eq!(section["label"], "lr=0.01", "{section}");
}

/// A report that leaves out an unreadable run says so on the page, with the file and the
/// error, and keeps the complete report it replaces beside it.
#[test]
fn a_partial_report_names_what_it_left_out_and_keeps_the_complete_one() {
    let (dir, _, second) = two_point_sweep();
    let out = runner(dir.path(), &["report", "results/damaged"]);
    assert!(out.status.success(), "{}", text(&out));
    let report = dir.path().join("results/damaged/report.html");
    let complete = std::fs::read_to_string(&report).unwrap();
    assert!(!complete.contains("could not be read"));

    let metrics = RunDir::at(&second).metrics();
    common::cut_to_a_third(&metrics);
    let rel = metrics
        .strip_prefix(dir.path())
        .unwrap()
        .display()
        .to_string();
    let out = runner(dir.path(), &["report", "results/damaged"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let kept = dir.path().join("results/damaged/report.last-complete.html");
    assert_eq!(
        std::fs::read_to_string(&kept).unwrap(),
        complete,
        "the complete report is kept"
    );
    assert!(
        stderr(&out).contains(
            "the last complete report is kept as results/damaged/report.last-complete.html"
        ),
        "{}",
        text(&out)
    );
    let page = std::fs::read_to_string(&report).unwrap();
    let banner = page
        .split("<div class=\"banner\"")
        .nth(1)
        .and_then(|b| b.split("</div>").next())
        .expect("a banner on the page");
    assert!(
        banner.contains("1 run could not be read and is left out of this page"),
        "{banner}"
    );
    assert!(banner.contains(&format!("cannot read {rel}")), "{banner}");
    assert!(
        banner.contains("href=\"report.last-complete.html\""),
        "{banner}"
    );

    // again: the page is partial, the complete one stays as it was
    let out = runner(dir.path(), &["report", "results/damaged"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), complete);
}

/// A damaged file other than the metrics (the stored spec): `report` and `export mlflow` leave
/// that run out and name the file, as for damaged metrics, instead of failing altogether.
#[test]
fn a_damaged_spec_leaves_its_run_out_of_the_report_and_the_export() {
    let (dir, first, second) = two_point_sweep();
    let spec = RunDir::at(&second).spec();
    std::fs::write(&spec, "[optimizer\nlr = 0.02\n").unwrap();
    let rel = spec.strip_prefix(dir.path()).unwrap().display().to_string();
    for args in [
        vec!["report", "results/damaged"],
        vec!["export", "mlflow", "results/damaged", "--to", "mlruns"],
    ] {
        shows_the_others_and_names(dir.path(), &args, &rel);
    }
    let id = |run: &Path| run.file_name().unwrap().to_string_lossy().into_owned();
    let page = std::fs::read_to_string(dir.path().join("results/damaged/report.html")).unwrap();
    assert!(page.contains(&format!("details id=\"run-damaged-{}\"", id(&first))));
    assert!(!page.contains(&format!("details id=\"run-damaged-{}\"", id(&second))));
    let exported: Vec<String> = mlflow_names(&dir.path().join("mlruns"))
        .into_iter()
        .map(|(run, ..)| run)
        .collect();
    assert_eq!(exported, vec![id(&first)]);
}
