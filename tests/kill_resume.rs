//! Crash safety, end to end: a sweep is killed with SIGKILL at 10 random moments and restarted
//! each time; afterwards every run must be done, hold epochs 1..E exactly once in readable
//! Parquet, and equal an uninterrupted run of the same sweep metric for metric. The runs use a
//! plateau schedule after a warmup epoch and early stopping, whose states must survive the kills
//! (the `lr` column and where a run stops early are compared too).
//!
//! `cargo test --test kill_resume -- --nocapture` prints what happened at each kill.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use polars::prelude::*;
use rand::{Rng, SeedableRng};

const SPEC: &str = r#"
[experiment]
name = "crash"
seed = 11

[dataset]
root = "@DATA@"
train_per_class = 150
val_per_class = 50

[transforms]
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]

[backbone]
name = "mlp"

[optimizer]
kind = "sgd"
lr = 0.01
momentum = 0.9

[regularization]
kind = "l2"

[train]
epochs = 5
batch_size = 16

[schedule]
kind = "plateau"
warmup_epochs = 1
patience = 0
factor = 0.5

[early_stopping]
metric = "val_acc"
patience = 2

[sweep]
grid = { "regularization.lambda" = [0, 0.01, 0.1] }
"#;

fn runner(dir: &Path, results: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_runner"));
    c.current_dir(dir)
        .args(["run", "exp.toml", "--results", results])
        .env("RUNNER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    c
}

fn run_dirs(root: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(root.join("crash"))
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| p.is_dir())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

fn table(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .expect("readable parquet")
}

#[test]
fn killed_ten_times_the_sweep_still_matches_an_uninterrupted_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline/data/animal-mnist-catdog");
    std::fs::write(
        dir.path().join("exp.toml"),
        SPEC.replace("@DATA@", &data.display().to_string()),
    )
    .unwrap();

    let t = Instant::now();
    assert!(runner(dir.path(), "clean").status().unwrap().success());
    let clean_secs = t.elapsed().as_secs_f64();
    println!("uninterrupted sweep: {clean_secs:.2}s");

    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut kills = 0;
    let mut start_over = false;
    for _ in 1..=60 {
        let mut cmd = runner(dir.path(), "killed");
        if std::mem::take(&mut start_over) {
            cmd.arg("--rerun");
        }
        let mut child = cmd.spawn().unwrap();
        // a random moment within about a tenth of the sweep, so that the kills spread over it
        let delay = rng.gen_range(0.05..(clean_secs / 10.0).max(0.2));
        std::thread::sleep(Duration::from_secs_f64(delay));
        if child.try_wait().unwrap().is_some() {
            // on a fast machine the sweep can end before ten kills: train it again from scratch
            println!(
                "the runner finished the sweep before the kill: starting it over with --rerun"
            );
            start_over = true;
            continue;
        }
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        kills += 1;
        let rows: Vec<usize> = run_dirs(&dir.path().join("killed"))
            .iter()
            .map(|d| {
                if d.join("metrics.parquet").exists() {
                    table(&d.join("metrics.parquet")).height()
                } else {
                    0
                }
            })
            .collect();
        println!("kill {kills:>2} after {delay:.2}s: epochs recorded per run {rows:?}");
        if kills == 10 {
            break;
        }
    }
    assert_eq!(kills, 10, "ten kills must land while the runner works");
    assert!(runner(dir.path(), "killed").status().unwrap().success());

    let clean = run_dirs(&dir.path().join("clean"));
    let killed = run_dirs(&dir.path().join("killed"));
    assert_eq!(clean.len(), 3);
    let names = |v: &[PathBuf]| {
        v.iter()
            .map(|p| p.file_name().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&clean), names(&killed), "same run ids");
    for (a, b) in clean.iter().zip(&killed) {
        let manifest = std::fs::read_to_string(b.join("manifest.json")).unwrap();
        assert!(manifest.contains("\"status\": \"done\""), "{manifest}");
        let json = |dir: &Path| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                .unwrap()
        };
        let (ma, mb) = (json(a), json(b));
        assert_eq!(ma["stopped_early"], mb["stopped_early"], "{}", b.display());
        let epochs_done = mb["epochs_done"].as_i64().unwrap();
        let leftovers: Vec<_> = std::fs::read_dir(b)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.') || n == "lock" || n.starts_with("checkpoint"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        let (ta, tb) = (
            table(&a.join("metrics.parquet")),
            table(&b.join("metrics.parquet")),
        );
        let epochs: Vec<i64> = tb
            .column("epoch")
            .unwrap()
            .i64()
            .unwrap()
            .into_no_null_iter()
            .collect();
        assert_eq!(epochs, (1..=epochs_done).collect::<Vec<_>>());
        if ma["stopped_early"].is_null() {
            assert_eq!(epochs_done, 5);
        } else {
            println!("{}: stopped early: {}", b.display(), ma["stopped_early"]);
        }
        for col in tb.get_column_names() {
            if ["epoch_seconds", "images_per_second"].contains(&col.as_str()) {
                continue;
            }
            assert!(
                ta.column(col).unwrap().equals(tb.column(col).unwrap()),
                "{col} differs in {}",
                b.display()
            );
        }
    }
    println!(
        "10 kills, then every run done, its epochs once each, equal to the uninterrupted sweep"
    );
}
