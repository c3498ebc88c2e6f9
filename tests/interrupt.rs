//! Ctrl-C, end to end: the first SIGINT finishes the batch, writes the checkpoint and a manifest
//! with status `interrupted` and exits 130; the next invocation resumes the run to the end. A
//! second SIGINT exits at once, and leaves no file half-written either.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use polars::prelude::*;

const SPEC: &str = r#"
[experiment]
name = "ctrlc"
seed = 5

[dataset]
root = "@DATA@"
train_per_class = 400
val_per_class = 50

[transforms]
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]

[backbone]
name = "mlp"

[optimizer]
kind = "sgd"
lr = 0.01

[train]
epochs = 200
batch_size = 8
"#;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("pipeline/data/animal-mnist-catdog");
    std::fs::write(
        dir.path().join("exp.toml"),
        SPEC.replace("@DATA@", &data.display().to_string()),
    )
    .unwrap();
    dir
}

fn start(dir: &Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(dir)
        .args(["run", "exp.toml"])
        .env("RUNNER_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("runner starts")
}

fn run_dir(dir: &Path) -> Option<PathBuf> {
    std::fs::read_dir(dir.join("results/ctrlc"))
        .ok()?
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
}

/// Waits until the run has recorded an epoch.
fn wait_for_first_epoch(dir: &Path, child: &mut Child) -> PathBuf {
    let t = Instant::now();
    loop {
        if let Some(run) = run_dir(dir).filter(|r| r.join("metrics.parquet").exists()) {
            return run;
        }
        assert!(child.try_wait().unwrap().is_none(), "runner ended early");
        assert!(t.elapsed() < Duration::from_secs(300), "no epoch recorded");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigint(child: &Child) {
    // the shell's own `kill`: no procps needed
    let ok = Command::new("sh")
        .args(["-c", &format!("kill -INT {}", child.id())])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

fn manifest(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("manifest.json")).unwrap()).unwrap()
}

fn epochs(run: &Path) -> Vec<i64> {
    let df = ParquetReader::new(std::fs::File::open(run.join("metrics.parquet")).unwrap())
        .finish()
        .expect("readable parquet");
    df.column("epoch")
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

#[test]
fn the_first_sigint_checkpoints_and_exits_130_and_a_rerun_resumes() {
    let dir = setup();
    let mut child = start(dir.path());
    let run = wait_for_first_epoch(dir.path(), &mut child);
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("interrupted"), "{stderr}");
    let m = manifest(&run);
    assert_eq!(m["status"], "interrupted", "{m}");
    let done = m["epochs_done"].as_u64().unwrap() as i64;
    assert!((1..200).contains(&done), "{m}");
    assert_eq!(epochs(&run), (1..=done).collect::<Vec<_>>());
    assert!(run.join("checkpoint.safetensors").exists());
    assert!(!run.join("lock").exists());

    // the next invocation resumes after the last recorded epoch
    let mut child = start(dir.path());
    // let it resume, then stop it again and check that it went on from where it was
    let t = Instant::now();
    loop {
        if manifest(&run)["epochs_done"].as_u64().unwrap() as i64 > done {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "runner ended early");
        assert!(t.elapsed() < Duration::from_secs(300), "did not resume");
        std::thread::sleep(Duration::from_millis(50));
    }
    sigint(&child);
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    let later = manifest(&run)["epochs_done"].as_u64().unwrap() as i64;
    assert_eq!(epochs(&run), (1..=later).collect::<Vec<_>>());
}

#[test]
fn a_second_sigint_exits_at_once_without_half_written_files() {
    let dir = setup();
    let mut child = start(dir.path());
    let run = wait_for_first_epoch(dir.path(), &mut child);
    sigint(&child);
    sigint(&child);
    let t = Instant::now();
    let out = child.wait_with_output().unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(out.status.code(), Some(130));
    // whatever was written is whole: the next invocation resumes or starts over, never fails
    let m = manifest(&run);
    let done = m["epochs_done"].as_u64().unwrap() as i64;
    assert_eq!(epochs(&run), (1..=done).collect::<Vec<_>>());
    let names: Vec<String> = std::fs::read_dir(&run)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".tmp")), "{names:?}");
}
