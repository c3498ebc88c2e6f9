//! Bad input and faults, end to end (issue #12): each test is a case that once went wrong.

use crate::common;

use std::path::{Path, PathBuf};

use common::{runner, text, tiny};
use polars::prelude::*;
use runner::results::layout::RunDir;

/// A copy of catdog-tiny in `dir/data` that a test may damage.
fn copy_tiny(dir: &Path) -> PathBuf {
    let data = dir.join("data");
    common::copy_tiny(&data, &["train", "val"]);
    data
}

/// Writes `dir/exp.toml`: `text` (a [`linear_spec`], changed) on the image folder `data`.
fn spec(dir: &Path, data: &Path, text: &str) {
    common::write_spec_on(dir, text, data);
}

/// A linear model, 4 train and 2 val images per class, two epochs (the tests name its lines).
fn linear_spec() -> String {
    common::spec_fixture("reliability.toml")
}

fn table(path: &Path) -> DataFrame {
    ParquetReader::new(std::fs::File::open(path).unwrap())
        .finish()
        .expect("readable parquet")
}

fn run_dirs(results: &Path) -> Vec<PathBuf> {
    common::run_folders(results)
}

/// Item 3 and the skipped-image count of item 7: the first training image is corrupt and the
/// spec says to skip bad images.
#[test]
fn a_corrupt_first_training_image_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let data = copy_tiny(dir.path());
    let first = data.join("train/cat/cat_02000.png");
    std::fs::write(&first, b"\x89PNG\r\n\x1a\n truncated").unwrap();
    spec(
        dir.path(),
        &data,
        &linear_spec().replace(
            "train_per_class = 4",
            "train_per_class = 4\non_bad_image = \"skip\"",
        ),
    );
    let out = runner(dir.path(), &["exp.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    let runs = run_dirs(&dir.path().join("results/rel"));
    assert_eq!(runs.len(), 1);
    let df = table(&RunDir::at(&runs[0]).metrics());
    let skipped: Vec<i64> = df
        .column("skipped_images")
        .expect("a skipped_images column")
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect();
    assert_eq!(skipped, vec![1, 1]);
    let manifest = std::fs::read_to_string(RunDir::at(&runs[0]).manifest()).unwrap();
    assert!(manifest.contains("\"skipped_images\": 1"), "{manifest}");
}

/// `runner preview` reads the training images as the run's training does: with
/// `on_bad_image = "skip"` an undecodable image is left out of the grid (it once failed on a
/// dataset that trains fine, because the preview always used the `error` policy).
#[test]
fn preview_skips_the_images_the_run_skips() {
    let dir = tempfile::tempdir().unwrap();
    let data = copy_tiny(dir.path());
    std::fs::write(
        data.join("train/cat/cat_02000.png"),
        b"\x89PNG\r\n\x1a\n truncated",
    )
    .unwrap();
    let skip = linear_spec().replace(
        "train_per_class = 4",
        "train_per_class = 4\non_bad_image = \"skip\"",
    );
    spec(dir.path(), &data, &skip);
    let out = runner(dir.path(), &["preview", "exp.toml", "-n", "8"]);
    assert!(out.status.success(), "{}", text(&out));
    let png = runner::results::layout::ResultsRoot::new(dir.path().join("results"))
        .experiment("rel")
        .preview_png();
    // 7 decodable training images of 16×16 (scaled ×6): one row of 7
    let grid = image::open(&png).unwrap().to_rgb8();
    assert_eq!(
        grid.dimensions(),
        runner::inspect::preview::grid_size(7, (16, 16))
    );
    // with the default policy the same dataset is an error, as training would be
    spec(dir.path(), &data, &linear_spec());
    let out = runner(dir.path(), &["preview", "exp.toml", "-n", "8"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    common::stderr_says(&out, "cat_02000.png");
}

/// Item 4: a hidden folder (Jupyter's) inside a split is no class for `check` nor the loader.
#[test]
fn hidden_folders_and_files_are_neither_classes_nor_images() {
    let dir = tempfile::tempdir().unwrap();
    let data = copy_tiny(dir.path());
    std::fs::create_dir_all(data.join("train/.ipynb_checkpoints")).unwrap();
    std::fs::create_dir_all(data.join("val/.ipynb_checkpoints")).unwrap();
    // a macOS resource fork next to the images: not an image either
    std::fs::write(data.join("train/dog/._dog_03000.png"), b"\0\x05\x16\x07").unwrap();
    spec(dir.path(), &data, &linear_spec());
    let check = runner(dir.path(), &["check", "exp.toml"]);
    assert!(check.status.success(), "{}", text(&check));
    let out = runner(dir.path(), &["exp.toml"]);
    assert!(out.status.success(), "{}", text(&out));
}

/// Item 5: a weights file that is not safetensors, one of another backbone, and a CUDA device
/// are spec errors at check time, pointing at the key's line, and `run` writes nothing.
#[test]
fn bad_weights_files_and_cuda_are_spec_errors_at_check_time() {
    let dir = tempfile::tempdir().unwrap();
    let image = tiny().join("train/cat/cat_02000.png");
    std::fs::copy(&image, dir.path().join("photo.safetensors")).unwrap();
    let cnn = linear_spec().replace(
        "name = \"linear\"",
        "name = \"small_cnn\"\nweights = \"photo.safetensors\"",
    );
    spec(dir.path(), &tiny(), &cnn);
    for cmd in ["check", "run"] {
        let out = runner(dir.path(), &[cmd, "exp.toml"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{}", text(&out));
        assert!(stderr.contains("backbone.weights"), "{stderr}");
        assert!(stderr.contains("exp.toml:18:"), "{stderr}");
        assert!(stderr.contains("expected a safetensors file"), "{stderr}");
        assert!(!dir.path().join("results").exists());
    }
    // a valid safetensors file of another architecture: names and shapes are checked too
    let other = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("pipeline/weights/efficientnet_lite0_imagenet.safetensors");
    let cnn = linear_spec().replace(
        "name = \"linear\"",
        &format!("name = \"small_cnn\"\nweights = \"{}\"", other.display()),
    );
    spec(dir.path(), &tiny(), &cnn);
    let out = runner(dir.path(), &["check", "exp.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    assert!(
        stderr.contains("backbone.weights") && stderr.contains("missing tensor `conv1.weight`"),
        "{stderr}"
    );

    let cuda = linear_spec().replace("epochs = 2", "epochs = 2\ndevice = \"cuda\"");
    spec(dir.path(), &tiny(), &cuda);
    for cmd in ["check", "run"] {
        let out = runner(dir.path(), &[cmd, "exp.toml"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(78), "{}", text(&out));
        assert!(
            stderr.contains("train.device") && stderr.contains("exp.toml:25:"),
            "{stderr}"
        );
        assert!(!dir.path().join("results").exists());
    }
}

/// Item 6: a sweep mixing booleans and strings writes one column type (string) in every run.
#[test]
fn a_swept_key_has_one_column_type_across_runs() {
    let dir = tempfile::tempdir().unwrap();
    let body = linear_spec()
        .replace("name = \"linear\"", "name = \"small_cnn\"")
        .replace("epochs = 2", "epochs = 1")
        + "\n[sweep]\ngrid = { \"backbone.freeze\" = [true, false, \"until:conv2\"] }\n";
    spec(dir.path(), &tiny(), &body);
    let out = runner(dir.path(), &["exp.toml"]);
    assert!(out.status.success(), "{}", text(&out));
    let runs = run_dirs(&dir.path().join("results/rel"));
    assert_eq!(runs.len(), 3);
    let mut values = Vec::new();
    for r in &runs {
        let run = RunDir::at(r);
        for file in [run.metrics(), run.per_class(), run.confusion()] {
            let df = table(&file);
            let c = df.column("backbone.freeze").unwrap();
            assert_eq!(c.dtype(), &DataType::String, "{}", file.display());
        }
        let df = table(&RunDir::at(r).metrics());
        let c = df.column("backbone.freeze").unwrap();
        values.push(c.str().unwrap().get(0).unwrap().to_string());
    }
    values.sort();
    assert_eq!(values, ["false", "true", "until:conv2"]);

    // item 7: predict with the run's 2-class head names its classes, not ImageNet's
    let weights = runs.iter().map(|r| RunDir::at(r).model()).next().unwrap();
    let img = tiny().join("val/dog/dog_04800.png");
    let out = runner(
        dir.path(),
        &[
            "predict",
            "--model",
            "small_cnn",
            "--weights",
            weights.to_str().unwrap(),
            img.to_str().unwrap(),
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout.contains(" cat ") && stdout.contains(" dog ") && !stdout.contains("tench"),
        "{stdout}"
    );
}

/// Item 7: runs held by another process are not counted as done, and failed runs are numbered
/// from 1 like the log.
#[test]
fn the_summary_counts_held_runs_apart_and_numbers_runs_from_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = copy_tiny(dir.path());
    std::fs::write(data.join("train/dog/dog_03000.png"), b"not an image").unwrap();
    let body =
        linear_spec() + "\n[sweep]\ngrid = { \"dataset.on_bad_image\" = [\"error\", \"skip\"] }\n";
    spec(dir.path(), &data, &body);
    let out = runner(dir.path(), &["exp.toml"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(stdout.contains("1 done, 1 failed"), "{stdout}");
    assert!(stderr.contains("run 1 ("), "{stderr}");
    assert!(!stderr.contains("run 0 ("), "{stderr}");

    // a live process (this test) holds the failed run: it is neither done nor failed here
    let failed = run_dirs(&dir.path().join("results/rel"))
        .into_iter()
        .find(|d| {
            std::fs::read_to_string(RunDir::at(d).manifest())
                .unwrap()
                .contains("\"failed\"")
        })
        .unwrap();
    let run_dir = RunDir::at(&failed);
    let _held = runner::results::store::RunLock::acquire(&run_dir)
        .unwrap()
        .expect("nobody else holds it");
    let out = runner(dir.path(), &["exp.toml"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("1 done, 0 failed, 0 diverged, 1 held by another process"),
        "{}",
        text(&out)
    );
}

/// Item 7: an image of another size after the transforms is named as such, not as undecodable.
#[test]
fn an_image_of_another_size_is_not_called_undecodable() {
    let dir = tempfile::tempdir().unwrap();
    let data = copy_tiny(dir.path());
    let big = image::RgbImage::from_pixel(40, 30, image::Rgb([9, 9, 9]));
    big.save(data.join("train/cat/cat_02001.png")).unwrap();
    let body = linear_spec()
        .replace("resize = 16\ncrop = 16\n", "")
        .replace("batch_size = 4", "batch_size = 8");
    spec(dir.path(), &data, &body);
    let out = runner(dir.path(), &["exp.toml"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(!stderr.contains("cannot decode"), "{stderr}");
    assert!(
        stderr.contains("cat_02001.png") && stderr.contains("is 30×40 after the transforms"),
        "{stderr}"
    );
}

/// Item 7: compare shows the readable runs and lists the unreadable ones with their error.
#[test]
fn compare_lists_a_corrupt_run_apart_and_shows_the_others() {
    use runner::results::schema::ParamValue;
    use runner::results::store::Status;
    use runner::testing::{write_run, SyntheticRun};
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let mut dirs = Vec::new();
    for lambda in [0.0, 0.1, 1.0] {
        let run = SyntheticRun {
            experiment: "sweep".into(),
            swept: vec![("regularization.lambda".into(), ParamValue::Float(lambda))],
            classes: vec!["cat".into(), "dog".into()],
            epochs: 3,
            status: Status::Done,
            per_class: false,
        };
        dirs.push(write_run(&results, &run).unwrap().path().to_path_buf());
    }
    let bad = RunDir::at(&dirs[1]).metrics();
    let mut bytes = std::fs::read(&bad).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(&bad, bytes).unwrap();
    let out = runner(dir.path(), &["compare", "results/sweep"]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(
        stdout.lines().filter(|l| l.contains("done")).count(),
        2,
        "{stdout}"
    );
    assert!(
        stderr.contains("1 run could not be read")
            && stderr.contains(&format!(
                "cannot read results/sweep/{}/metrics.parquet",
                dirs[1].file_name().unwrap().to_string_lossy()
            )),
        "{stderr}"
    );
}
