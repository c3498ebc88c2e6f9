//! Fault injection of writes: the results folder on a small tmpfs that fills up during each kind
//! of write (metrics, manifest, checkpoint, feature cache, per-class tables), and the same
//! folder remounted read-only. Each failure must name the file it could not write, leave nothing
//! half-written that a later run trusts, and a rerun after space is freed must complete and equal
//! an uninterrupted run.
//!
//! Needs root (mount): where mounting is not permitted the tests are reported as ignored, with
//! the reason (a failure under `RUNNER_REQUIRE_TOOLS=1`).
//! `cargo test --test tools disk_full:: -- --nocapture` prints each step.

use std::path::Path;
use std::process::Command;

use polars::prelude::*;

use crate::common;
use common::{tools, Spec};
use libtest_mimic::Trial;
use runner::results::layout::RunDir;

pub(crate) fn trials() -> Vec<Trial> {
    let group = tools::Group::new(module_path!());
    // a tmpfs that mounts and unmounts: what both tests do
    let missing = Tmpfs::mount("1m").err();
    vec![
        group.needs(
            "a_full_disk_during_each_kind_of_write_is_named_and_recovered_from",
            missing.clone(),
            a_full_disk_during_each_kind_of_write_is_named_and_recovered_from,
        ),
        group.needs(
            "a_read_only_results_folder_is_named_and_nothing_is_written",
            missing.clone(),
            a_read_only_results_folder_is_named_and_nothing_is_written,
        ),
        group.needs(
            "a_finished_sweep_on_a_read_only_results_folder_is_still_done",
            missing,
            a_finished_sweep_on_a_read_only_results_folder_is_still_done,
        ),
    ]
}

/// A tmpfs mounted on a temporary folder, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// A tmpfs of `size`, or why none can be mounted here.
    fn mount(size: &str) -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("cannot run mount ({e})"))?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount a tmpfs ({}); run the tests as root",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn remount(&self, opt: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,{opt}")])
            .arg(self.path())
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {opt}");
    }

    /// Fills the file system, then frees `free` bytes of the filler again.
    fn leave_free(&self, free: u64) {
        let filler = self.path().join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0xa5u8; 4096];
        let mut written = 0u64;
        loop {
            match std::io::Write::write(&mut f, &chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => written += n as u64,
            }
        }
        f.set_len(written.saturating_sub(free)).unwrap();
    }

    fn free_all(&self) {
        let _ = std::fs::remove_file(self.path().join("filler"));
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

/// A linear model trained 3 epochs with momentum.
fn linear() -> Spec {
    Spec::tiny("full", 4)
        .table("transforms", &["resize = 16", "crop = 16"])
        .set("backbone", "name = \"linear\"")
        .set("optimizer", "momentum = 0.9")
        .table("train", &["epochs = 3", "batch_size = 4"])
}

/// A frozen (random) small CNN: its features go through the feature cache.
fn cached() -> Spec {
    Spec::tiny("full", 4)
        .table("backbone", &["name = \"small_cnn\"", "freeze = true"])
        .table("train", &["epochs = 2", "batch_size = 4"])
}

fn run(spec: &Path, results: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(spec.parent().unwrap())
        .arg("run")
        .arg(spec)
        .arg("--results")
        .arg(results)
        .env("RUNNER_LOG", "warn")
        .output()
        .expect("runner starts")
}

/// [`run`], which must succeed.
fn run_ok(spec: &Path, results: &Path) {
    let out = run(spec, results);
    common::ok(&out);
}

/// A run's metric columns by name.
type Columns = Vec<(String, Vec<f64>)>;

/// Every metric of every run, timings aside, by run id.
fn metrics(results: &Path) -> Vec<(String, Columns)> {
    let mut out = Vec::new();
    let exp = results.join("full");
    for d in common::run_folders(&exp) {
        let df = ParquetReader::new(std::fs::File::open(RunDir::at(&d).metrics()).unwrap())
            .finish()
            .unwrap();
        let mut cols = Vec::new();
        for c in df.columns() {
            let name = c.name().to_string();
            if matches!(name.as_str(), "epoch_seconds" | "images_per_second") {
                continue;
            }
            if let Ok(v) = c.cast(&DataType::Float64) {
                if let Ok(f) = v.f64() {
                    cols.push((name, f.into_no_null_iter().collect()));
                }
            }
        }
        let manifest = std::fs::read_to_string(RunDir::at(&d).manifest()).unwrap();
        assert!(manifest.contains("\"status\": \"done\""), "{manifest}");
        let run = RunDir::at(&d);
        for table in [run.per_class(), run.confusion(), run.model()] {
            assert!(table.is_file(), "no {}", table.display());
        }
        assert!(!RunDir::at(&d).checkpoint().exists());
        out.push((d.file_name().unwrap().to_string_lossy().into_owned(), cols));
    }
    out
}

fn no_temp_files(dir: &Path) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp"), "left behind: {}", p.display());
        if p.is_dir() {
            no_temp_files(&p);
        }
    }
}

/// Runs `spec` with 0, 4, 8, … KiB free until a run completes; after each failure checks the
/// error and reruns with the space freed. Returns the files named by the failures.
fn fill_up(fs: &Tmpfs, spec: Spec, step: u64) -> Vec<String> {
    let work = tempfile::tempdir().unwrap();
    let spec = spec.write(work.path());
    // the reference: an uninterrupted run with space to spare
    let reference_dir = work.path().join("reference");
    run_ok(&spec, &reference_dir);
    let reference = metrics(&reference_dir);

    let results = fs.path().join("results");
    let mut named = Vec::new();
    let mut free = 0;
    loop {
        let _ = std::fs::remove_dir_all(&results);
        fs.leave_free(free);
        let out = run(&spec, &results);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        fs.free_all();
        if out.status.success() {
            assert_eq!(metrics(&results), reference);
            println!("{:>4} KiB free: completed", free / 1024);
            break;
        }
        let line = stderr
            .lines()
            .find(|l| l.contains("No space left on device"))
            .unwrap_or_else(|| panic!("{free} bytes free: no ENOSPC error in:\n{stderr}"))
            .to_string();
        assert!(line.contains("cannot write "), "{line}");
        // the innermost "cannot write PATH: why" names the file
        let file = line
            .rsplit("cannot write ")
            .next()
            .and_then(|s| s.split(':').next())
            .unwrap()
            .to_string();
        assert!(file.starts_with(&results.display().to_string()), "{line}");
        println!("{:>4} KiB free: {}", free / 1024, line.trim());
        named.push(
            Path::new(&file)
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned(),
        );
        no_temp_files(&results);
        // the rerun, with space again, completes and equals the uninterrupted run
        let again = run(&spec, &results);
        assert!(
            again.status.success(),
            "rerun after {free} bytes free:\n{}",
            String::from_utf8_lossy(&again.stderr)
        );
        assert_eq!(
            metrics(&results),
            reference,
            "rerun after {free} bytes free"
        );
        // fine steps while the small files are written, then coarser ones for the weights
        free += if free < 96 * 1024 { 4096 } else { step };
    }
    named
}

fn a_full_disk_during_each_kind_of_write_is_named_and_recovered_from() {
    let fs = Tmpfs::mount("8m").unwrap();
    let mut named = fill_up(&fs, linear(), 4096);
    named.extend(fill_up(&fs, cached(), 64 * 1024));
    named.sort();
    named.dedup();
    println!("writes that hit the full disk: {named:?}");
    // the file names alone
    let run = RunDir::at("");
    let name = |p: std::path::PathBuf| p.to_string_lossy().into_owned();
    for kind in [run.metrics(), run.manifest(), run.checkpoint()].map(name) {
        assert!(named.contains(&kind), "{kind} never failed: {named:?}");
    }
    // the trained weights: a run's model file, or (the frozen run) the backbone its
    // experiment stores once, its largest write
    let model = name(run.model());
    let stored_backbone = |n: &String| n.starts_with("small_cnn-") && n.ends_with(".safetensors");
    assert!(
        named.contains(&model) || named.iter().any(stored_backbone),
        "neither {model} nor the stored backbone ever failed: {named:?}"
    );
    let per_class = [run.per_class(), run.confusion()].map(name);
    assert!(
        named.iter().any(|n| per_class.contains(n)),
        "the per-class tables never failed: {named:?}"
    );
    assert!(
        named.iter().any(|n| n.starts_with("features-")),
        "the feature cache never failed: {named:?}"
    );
}

fn a_read_only_results_folder_is_named_and_nothing_is_written() {
    let fs = Tmpfs::mount("8m").unwrap();
    let work = tempfile::tempdir().unwrap();
    let spec = linear().write(work.path());
    let results = fs.path().join("results");
    // a first run completes; then the folder turns read-only under a rerun
    run_ok(&spec, &results);
    let reference = metrics(&results);
    fs.remount("ro");
    let out = Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(work.path())
        .args(["run", "exp.toml", "--rerun", "--results"])
        .arg(&results)
        .env("RUNNER_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("read-only rerun: {}", stderr.trim());
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("Read-only file system") && stderr.contains(&results.display().to_string()),
        "{stderr}"
    );
    fs.remount("rw");
    // nothing changed: the run is still done with the same metrics
    assert_eq!(metrics(&results), reference);
    let out = run(&spec, &results);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("done (earlier)"));
}

fn a_finished_sweep_on_a_read_only_results_folder_is_still_done() {
    let fs = Tmpfs::mount("8m").unwrap();
    let work = tempfile::tempdir().unwrap();
    let spec = linear()
        .set("sweep", r#"grid = { "optimizer.lr" = [0.01, 0.02, 0.03] }"#)
        .write(work.path());
    let results = fs.path().join("results");
    run_ok(&spec, &results);
    // an archived tree: every run done, the folder read-only
    fs.remount("ro");
    let out = run(&spec, &results);
    fs.remount("rw");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("read-only, all done: {}", stderr.trim());
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("3 done, 0 failed"), "{stdout}");
    let plan = runner::results::layout::ResultsRoot::new(&results)
        .plan("full")
        .display()
        .to_string();
    assert!(
        stderr.contains("the plan is not recorded")
            && stderr.contains(&plan)
            && stderr.contains("Read-only file system"),
        "{stderr}"
    );
}
