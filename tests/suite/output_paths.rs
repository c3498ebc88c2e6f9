//! Files the user names on the command line: their missing folders are created (one rule for
//! every command), and a write that fails names the file once.

use crate::common;

use common::{runner, text, tiny_linear_spec};

/// A trained one-run experiment `out`, inside the project (where a run folder can be reopened).
fn trained() -> tempfile::TempDir {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let spec = tiny_linear_spec("out", "");
    std::fs::write(dir.path().join("exp.toml"), spec).unwrap();
    let out = runner(dir.path(), &["run", "exp.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    dir
}

/// The folder of the one run of `trained`, relative to it.
fn the_run(dir: &std::path::Path) -> String {
    let runs: Vec<String> = std::fs::read_dir(dir.join("results/out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && dir.join("results/out").join(n).is_dir())
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    format!("results/out/{}", runs[0])
}

#[test]
fn report_preview_and_export_create_the_folders_of_the_paths_they_are_given() {
    let dir = trained();
    let run = the_run(dir.path());
    for (args, file) in [
        (
            vec!["report", "results/out", "-o", "a/b/report.html"],
            "a/b/report.html",
        ),
        (
            vec!["preview", "exp.toml", "-o", "c/d/grid.png"],
            "c/d/grid.png",
        ),
        (
            vec!["export", "mlflow", "results/out", "--to", "e/f/mlruns"],
            "e/f/mlruns/0/meta.yaml",
        ),
        (
            vec!["export", "onnx", &run, "--to", "g/h/model.onnx"],
            "g/h/model.onnx",
        ),
    ] {
        let out = runner(dir.path(), &args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert!(dir.path().join(file).is_file(), "{args:?}: no {file}");
    }
}

#[test]
fn a_file_that_cannot_be_written_is_named_once() {
    let dir = trained();
    // a folder in the path is a file
    let out = runner(
        dir.path(),
        &["report", "results/out", "-o", "exp.toml/report.html"],
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stderr));
}
