//! The cluster path under load, opt-in (minutes of work): one 200-point sweep over a shared
//! feature cache, trained by 200 `runner run --index I` processes, at most `SOAK_PARALLEL`
//! (default 2) at a time; every tenth process is killed (SIGKILL) at a random moment and
//! started again. Afterwards every point is done, trained to the end by exactly one process,
//! the cache was built once, no lock is left, and `runner status` agrees with the files.
//!
//! `cargo test --test suite cluster_soak:: -- --ignored --nocapture` prints the figures.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::common;

use rand::{Rng, SeedableRng};
use runner::results::layout::RunDir;

const POINTS: usize = 200;

fn spec() -> common::Spec {
    let lrs: Vec<String> = (1..=POINTS)
        .map(|i| format!("{}", i as f64 * 1e-4))
        .collect();
    common::Spec::tiny("soak", 3)
        .table("dataset", &["train_per_class = 8", "val_per_class = 4"])
        .table("transforms", &["resize = 32", "crop = 32"])
        .table("backbone", &["name = \"small_cnn\"", "freeze = true"])
        .table("train", &["epochs = 2", "batch_size = 4"])
        .set(
            "sweep",
            &format!("grid = {{ \"optimizer.lr\" = [{}] }}", lrs.join(", ")),
        )
}

fn runner(dir: &Path, index: usize) -> Command {
    let mut c = common::command(dir, &["run", "exp.toml", "--index", &index.to_string()]);
    c.env("RUNNER_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// Every file under `dir` whose name says it is a lock.
fn locks(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if p.is_dir() {
            locks(&p, out);
        } else if name == "lock" || name.starts_with("lock-") || name.ends_with(".lock") {
            out.push(p);
        }
    }
}

#[test]
#[ignore = "soak, minutes: cargo test --test suite cluster_soak:: -- --ignored --nocapture"]
fn two_hundred_index_processes_with_kills_train_every_point_exactly_once() {
    let parallel: usize = std::env::var("SOAK_PARALLEL")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    spec().write(dir);

    let started = Instant::now();
    let next = AtomicUsize::new(1);
    let kills = AtomicUsize::new(0);
    // (index, finished process output), every process that ran to its end
    let outputs: Mutex<Vec<(usize, Output)>> = Mutex::new(Vec::new());
    // a process takes about this long; kills land uniformly within it
    let typical = Mutex::new(Duration::from_secs(2));
    std::thread::scope(|s| {
        for worker in 0..parallel {
            let (next, kills, outputs, typical) = (&next, &kills, &outputs, &typical);
            s.spawn(move || {
                let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(worker as u64);
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i > POINTS {
                        break;
                    }
                    if i % 10 == 0 {
                        let mut child = runner(dir, i).spawn().unwrap();
                        let limit = typical.lock().unwrap().as_secs_f64();
                        std::thread::sleep(Duration::from_secs_f64(rng.gen_range(0.0..limit)));
                        if child.try_wait().unwrap().is_none() {
                            child.kill().unwrap();
                            kills.fetch_add(1, Ordering::SeqCst);
                        }
                        child.wait().unwrap();
                    }
                    let t = Instant::now();
                    let out = runner(dir, i).output().unwrap();
                    *typical.lock().unwrap() = t.elapsed();
                    outputs.lock().unwrap().push((i, out));
                }
            });
        }
    });
    let wall = started.elapsed();

    let outputs = outputs.into_inner().unwrap();
    let mut failed = Vec::new();
    let mut trained_by = vec![0usize; POINTS + 1];
    let mut cache_builds = 0;
    for (i, out) in &outputs {
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !out.status.success() {
            failed.push(format!("index {i}: {:?}\n{stderr}", out.status));
        }
        if stdout.contains("soak: 1 done") && !stdout.contains("done (earlier)") {
            trained_by[*i] += 1;
        }
        cache_builds += stderr.matches("built by this task").count();
    }
    let duplicates = trained_by.iter().filter(|&&n| n > 1).count();
    let mut left = Vec::new();
    locks(&dir.join("results"), &mut left);
    let status = Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(dir)
        .args(["status", "results/soak"])
        .output()
        .unwrap();
    let status_text = String::from_utf8_lossy(&status.stdout);
    let done_dirs = std::fs::read_dir(dir.join("results/soak"))
        .unwrap()
        .flatten()
        .filter(|e| {
            std::fs::read_to_string(RunDir::at(e.path()).manifest())
                .is_ok_and(|m| m.contains("\"status\": \"done\""))
        })
        .count();
    println!(
        "soak: {} processes ({} killed and restarted, {} at a time), {} points trained to the end by their restarted or only process, {} run folders done, {} points trained by more than one process, cache built {} time(s), {} lock file(s) left, status: {:?}, wall {:.1}s",
        outputs.len() + kills.load(Ordering::SeqCst),
        kills.load(Ordering::SeqCst),
        parallel,
        trained_by.iter().filter(|&&n| n >= 1).count(),
        done_dirs,
        duplicates,
        cache_builds,
        left.len(),
        status_text.lines().last().unwrap_or_default(),
        wall.as_secs_f64()
    );
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    assert_eq!(done_dirs, POINTS);
    assert_eq!(duplicates, 0);
    assert!(left.is_empty(), "{left:?}");
    assert_eq!(cache_builds, 1, "the feature cache is built once");
    assert!(status.status.success());
    assert_eq!(
        status_text.lines().last(),
        Some(format!("{POINTS} done").as_str())
    );
}
