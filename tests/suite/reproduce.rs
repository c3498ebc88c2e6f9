//! `runner reproduce`: the committed reference run reproduces; an edited copy does not.

use std::path::{Path, PathBuf};
use std::process::Command;

use polars::prelude::*;
use runner::results::layout::RunDir;

fn reference_run() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("results/reference/ci_reference");
    // the run's folder; `runner compare` on the experiment may have left its cache files beside it
    std::fs::read_dir(&root)
        .expect("the committed reference run")
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .expect("a run folder")
}

fn reproduce(run: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_runner"))
        .arg("reproduce")
        .arg(run)
        .args(extra)
        .env("RUNNER_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn the_reference_run_reproduces_and_an_edited_metric_is_caught() {
    let run = reference_run();
    // on each engine (the reference was recorded on the built-in one)
    for (name, _) in runner::testing::engines() {
        let flag = if name == "oneDNN" {
            "onednn"
        } else {
            "builtin"
        };
        let out = reproduce(&run, &["--engine", flag]);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{name}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains(": ok (tolerance"), "{name}: {stdout}");
    }

    // a copy whose stored val loss of epoch 2 is off by 1e-3
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join(run.file_name().unwrap());
    std::fs::create_dir(&copy).unwrap();
    let (from, to) = (RunDir::at(&run), RunDir::at(&copy));
    for f in [RunDir::spec, RunDir::manifest, RunDir::metrics] {
        std::fs::copy(f(&from), f(&to)).unwrap();
    }
    let mut df = ParquetReader::new(std::fs::File::open(RunDir::at(&copy).metrics()).unwrap())
        .finish()
        .unwrap();
    let edited: Vec<f64> = df
        .column("val_loss")
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .enumerate()
        .map(|(i, v)| if i == 1 { v + 1e-3 } else { v })
        .collect();
    df.replace("val_loss", Column::new("val_loss".into(), edited))
        .unwrap();
    ParquetWriter::new(std::fs::File::create(RunDir::at(&copy).metrics()).unwrap())
        .finish(&mut df)
        .unwrap();

    let project = env!("CARGO_MANIFEST_DIR");
    let out = reproduce(&copy, &["--project", project]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().find(|l| l.contains("val_loss ")).unwrap();
    assert!(
        line.contains("1.000e-3") && line.contains("NO") && line.contains(" 2 "),
        "{stdout}"
    );
    assert!(stdout.contains("FAILED"), "{stdout}");
}
