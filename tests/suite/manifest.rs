//! End-to-end: datasets from a manifest (`dataset.manifest`), the split `[dataset.split]` makes
//! where the data has none, their problems as `runner check` reports them, and `runner
//! evaluate` on a manifest's rows, through the `runner` binary on copies of the tiny fixture.

use crate::common;

use std::path::{Path, PathBuf};

use common::{copy_tiny, ok, runner, text, tiny, tiny_linear_spec};
use polars::prelude::*;
use runner::results::layout::RunDir;
use sha2::{Digest, Sha256};

/// `(path relative to root, label, split)` of every image of the copy, in a scrambled order
/// (the order of a manifest's rows does not matter).
fn listing(root: &Path) -> Vec<(String, String, String)> {
    let mut rows = Vec::new();
    for split in ["train", "val"] {
        for class in ["cat", "dog"] {
            for e in std::fs::read_dir(root.join(split).join(class)).unwrap() {
                let name = e.unwrap().file_name().to_string_lossy().into_owned();
                rows.push((
                    format!("{split}/{class}/{name}"),
                    class.into(),
                    split.into(),
                ));
            }
        }
    }
    rows.sort_by_key(|r| Sha256::digest(r.0.as_bytes()).to_vec());
    rows
}

/// `dir/data`, a copy of the tiny fixture's `train/` and `val/`, and its [`listing`].
fn listed_copy(dir: &Path) -> (PathBuf, Vec<(String, String, String)>) {
    let data = dir.join("data");
    copy_tiny(&data, &["train", "val"]);
    let rows = listing(&data);
    (data, rows)
}

/// [`listed_copy`] with a CSV manifest of it, `data/<file>`: a row per image, its path (relative
/// to `data`) and label, and its split when `header` names three columns.
fn listed_copy_with_csv(
    dir: &Path,
    file: &str,
    header: &str,
) -> (PathBuf, Vec<(String, String, String)>) {
    let (data, rows) = listed_copy(dir);
    let with_split = header.split(',').count() == 3;
    let line = |(p, l, s): &(String, String, String)| match with_split {
        true => format!("{p},{l},{s}"),
        false => format!("{p},{l}"),
    };
    write_csv(&data.join(file), header, rows.iter().map(line));
    (data, rows)
}

/// Writes a CSV manifest at `path`: the `header` line, then one line per row.
fn write_csv(path: &Path, header: &str, rows: impl IntoIterator<Item = String>) {
    let mut out = format!("{header}\n");
    for r in rows {
        out += &r;
        out.push('\n');
    }
    std::fs::write(path, out).unwrap();
}

/// The one-epoch linear spec of `common`, on `dataset` (TOML lines of `[dataset]`).
fn spec(dir: &Path, name: &str, dataset: &str) -> PathBuf {
    let body =
        tiny_linear_spec(name, "").replace(&format!("root = \"{}\"\n", tiny().display()), dataset);
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, body).unwrap();
    path
}

/// The run folders under `results/<experiment>/`.
fn runs(results: &Path, experiment: &str) -> Vec<PathBuf> {
    common::recorded_runs(&results.join(experiment))
}

fn trained_metrics(run: &Path) -> DataFrame {
    let df = ParquetReader::new(std::fs::File::open(RunDir::at(run).metrics()).unwrap())
        .finish()
        .unwrap();
    df.select(["epoch", "train_loss", "train_acc", "val_loss", "val_acc"])
        .unwrap()
}

/// A folder, a CSV manifest of its files (relative paths, Hugging Face's `file_name` column,
/// rows in any order) and a Parquet manifest of them (absolute paths, elsewhere) train the
/// same run: the same id and the same metrics.
#[test]
fn a_manifest_of_a_folders_files_trains_the_folders_run() {
    let dir = tempfile::tempdir().unwrap();
    let (data, rows) = listed_copy_with_csv(dir.path(), "metadata.csv", "file_name,label,split");
    let lists = dir.path().join("lists");
    std::fs::create_dir_all(&lists).unwrap();
    let absolute: Vec<String> = rows
        .iter()
        .map(|r| data.join(&r.0).display().to_string())
        .collect();
    let mut df = df!(
        "image" => absolute,
        "class" => rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(),
        "split" => rows.iter().map(|r| r.2.clone()).collect::<Vec<_>>(),
    )
    .unwrap();
    ParquetWriter::new(std::fs::File::create(lists.join("labels.parquet")).unwrap())
        .finish(&mut df)
        .unwrap();

    let mut ids = Vec::new();
    let mut metrics = Vec::new();
    for (i, body) in [
        format!("root = \"{}\"\n", data.display()),
        "manifest = \"data/metadata.csv\"\n".to_owned(),
        "manifest = \"lists/labels.parquet\"\npath_column = \"image\"\nlabel_column = \"class\"\n"
            .to_owned(),
    ]
    .iter()
    .enumerate()
    {
        let spec = spec(dir.path(), "same", body);
        let results = dir.path().join(format!("results{i}"));
        let results_arg = results.display().to_string();
        let spec_arg = spec.display().to_string();
        ok(&runner(dir.path(), &[&spec_arg, "--results", &results_arg]));
        let run = runs(&results, "same").pop().unwrap();
        ids.push(run.file_name().unwrap().to_string_lossy().into_owned());
        metrics.push(trained_metrics(&run));
    }
    assert_eq!(ids[0], ids[1]);
    assert_eq!(ids[0], ids[2]);
    assert!(
        metrics[0].equals(&metrics[1]),
        "{:?}\n{:?}",
        metrics[0],
        metrics[1]
    );
    assert!(
        metrics[0].equals(&metrics[2]),
        "{:?}\n{:?}",
        metrics[0],
        metrics[2]
    );
}

/// The committed Animal-MNIST images listed in a manifest plan the main job's runs under the
/// ids the folder gives them (the README's).
#[test]
fn a_manifest_of_the_committed_images_plans_the_main_jobs_run_ids() {
    let dir = tempfile::tempdir().unwrap();
    let root = common::animal_mnist();
    let mut lines = Vec::new();
    for split in ["val", "train"] {
        for class in ["dog", "cat"] {
            for e in std::fs::read_dir(root.join(split).join(class)).unwrap() {
                let path = e.unwrap().path();
                lines.push(format!("{},{class},{split}", path.display()));
            }
        }
    }
    let manifest = dir.path().join("catdog.csv");
    write_csv(&manifest, "path,label,split", lines);
    let spec = common::project().join("experiments/lambda_sweep.toml");
    let spec = spec.display().to_string();
    let folder = ok(&runner(dir.path(), &["plan", &spec]));
    let set = format!("dataset.manifest={}", manifest.display());
    let listed = ok(&runner(
        dir.path(),
        &["plan", &spec, "--set", "dataset.root=", "--set", &set],
    ));
    assert_eq!(folder, listed);
    assert!(folder.contains("e17835fa1f44"), "{folder}");
}

/// The split a manifest without a split column gets: per-class counts within one image of the
/// fractions, the same files for the same seed, others for another seed; `split.csv` lists
/// them and the manifest holds its hash; a folder without `val/` is split the same way.
#[test]
fn a_split_made_from_fractions_is_seeded_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    listed_copy_with_csv(dir.path(), "labels.csv", "path,label");
    let split_of = |seed: u64, results: &str| {
        let body = format!(
            "manifest = \"data/labels.csv\"\n\n[dataset.split]\nval = 0.25\ntest = 0.2\nseed = {seed}\n"
        );
        let spec = spec(dir.path(), "split", &body);
        let body = std::fs::read_to_string(&spec)
            .unwrap()
            .replace("train_per_class = 4\nval_per_class = 2\n", "");
        std::fs::write(&spec, body).unwrap();
        let spec_arg = spec.display().to_string();
        ok(&runner(dir.path(), &[&spec_arg, "--results", results]));
        let run = runs(&dir.path().join(results), "split").pop().unwrap();
        let list = std::fs::read_to_string(RunDir::at(&run).split_list()).unwrap();
        let recorded = common::manifest(&run)["split_sha256"]
            .as_str()
            .unwrap()
            .to_owned();
        assert_eq!(recorded, format!("{:x}", Sha256::digest(&list)));
        (run.file_name().unwrap().to_owned(), list)
    };
    let (id, list) = split_of(0, "a");
    // 12 images per class: val round(3) = 3, test round(2.4) = 2, train 7
    for class in ["cat", "dog"] {
        for (split, n) in [("train", 7), ("val", 3), ("test", 2)] {
            let count = list
                .lines()
                .filter(|l| l.ends_with(&format!(",{class},{split}")))
                .count();
            assert_eq!(count, n, "{class} {split}\n{list}");
        }
    }
    let (again_id, again) = split_of(0, "b");
    assert_eq!((&again_id, &again), (&id, &list));
    let (other_id, other) = split_of(1, "c");
    assert_ne!(other, list);
    assert_ne!(other_id, id);

    // a folder without `val/`: its training images split by the default fractions (0.2)
    let train_only = dir.path().join("train-only");
    copy_tiny(&train_only, &["train"]);
    let spec = spec(
        dir.path(),
        "folder",
        &format!("root = \"{}\"\n", train_only.display()),
    );
    let body = std::fs::read_to_string(&spec)
        .unwrap()
        .replace("train_per_class = 4\nval_per_class = 2\n", "");
    std::fs::write(&spec, body).unwrap();
    let spec_arg = spec.display().to_string();
    ok(&runner(dir.path(), &[&spec_arg, "--results", "d"]));
    let run = runs(&dir.path().join("d"), "folder").pop().unwrap();
    let list = std::fs::read_to_string(RunDir::at(&run).split_list()).unwrap();
    // 8 images per class: val round(1.6) = 2
    assert_eq!(
        list.lines().filter(|l| l.ends_with(",val")).count(),
        4,
        "{list}"
    );
    assert_eq!(list.lines().filter(|l| l.ends_with(",train")).count(), 12);
}

/// `runner check` on a bad manifest: each problem at its line and cell, exit 78, nothing
/// written.
#[test]
fn bad_manifests_are_named_at_their_rows() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    copy_tiny(&data, &["train", "val"]);
    let check = |name: &str, dataset: &str| {
        let spec = spec(dir.path(), name, dataset);
        let spec_arg = spec.file_name().unwrap().to_string_lossy().into_owned();
        let out = runner(dir.path(), &["check", &spec_arg]);
        assert_eq!(out.status.code(), Some(78), "{}", text(&out));
        assert!(!dir.path().join("results").exists());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };

    std::fs::write(data.join("notes.txt"), "not an image\n").unwrap();
    std::fs::write(
        data.join("bad.csv"),
        "path,label,split\n\
         train/cat/cat_02000.png,cat,train\n\
         train/cat/cat_02000.png,cat,train\n\
         train/cat/cat_09999.png,cat,train\n\
         val/cat/cat_02800.png,cat,valid\n\
         ,dog,train\n\
         val/dog/dog_04800.png,,val\n\
         notes.txt,dog,train\n\
         train/dog/dog_04000.png,dog,train,extra\n",
    )
    .unwrap();
    insta::assert_snapshot!("bad_rows", check("rows", "manifest = \"data/bad.csv\"\n"));

    std::fs::write(
        data.join("one_split.csv"),
        "path,label,split\n\
         train/cat/cat_02000.png,cat,train\n\
         val/cat/cat_02800.png,cat,val\n\
         train/dog/dog_04000.png,dog,val\n\
         val/dog/dog_04800.png,dog,test\n",
    )
    .unwrap();
    insta::assert_snapshot!(
        "class_without_training_rows",
        check("classes", "manifest = \"data/one_split.csv\"\n")
    );

    std::fs::write(
        data.join("two_dogs.csv"),
        "path,label\n\
         train/cat/cat_02000.png,cat\n\
         train/cat/cat_02001.png,cat\n\
         train/cat/cat_02002.png,cat\n\
         train/cat/cat_02003.png,cat\n\
         train/dog/dog_04000.png,dog\n\
         train/dog/dog_04001.png,dog\n",
    )
    .unwrap();
    insta::assert_snapshot!(
        "fractions_leave_a_class_no_training_image",
        check(
            "fractions",
            "manifest = \"data/two_dogs.csv\"\nsplit = { val = 0.3, test = 0.25 }\n"
        )
    );

    std::fs::write(data.join("columns.csv"), "image,class\na.png,cat\n").unwrap();
    insta::assert_snapshot!(
        "missing_columns",
        check(
            "columns",
            "manifest = \"data/columns.csv\"\nsplit_column = \"fold\"\n"
        )
    );

    insta::assert_snapshot!(
        "no_manifest_file",
        check("missing", "manifest = \"data/nope.csv\"\n")
    );

    // a Parquet manifest's rows are named by their row number
    let mut df = df!(
        "path" => ["train/cat/cat_02000.png", "val/cat/cat_02800.png"],
        "label" => ["cat", "cat"],
        "split" => ["train", "validation"],
    )
    .unwrap();
    ParquetWriter::new(std::fs::File::create(data.join("bad.parquet")).unwrap())
        .finish(&mut df)
        .unwrap();
    insta::assert_snapshot!(
        "parquet_row",
        check("parquet", "manifest = \"data/bad.parquet\"\n")
    );
}

/// `runner evaluate RUN --data MANIFEST`: the test rows by default, `--split` for others.
#[test]
fn evaluate_scores_a_manifests_rows() {
    // inside the project: `evaluate` finds a run's project above it
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let (data, rows) = listed_copy(dir.path());
    // the last two rows of each class are the test split
    let mut seen = std::collections::HashMap::new();
    let lines: Vec<String> = rows
        .iter()
        .map(|(p, l, s)| {
            let n = seen.entry(l.clone()).or_insert(0);
            *n += 1;
            let split = if *n <= 2 { "test" } else { s.as_str() };
            format!("{p},{l},{split}")
        })
        .collect();
    let val_rows = lines.iter().filter(|l| l.ends_with(",val")).count();
    write_csv(&data.join("labels.csv"), "path,label,split", lines);
    let spec = spec(dir.path(), "eval", "manifest = \"data/labels.csv\"\n");
    let spec_arg = spec.display().to_string();
    let out = ok(&runner(dir.path(), &[&spec_arg, "--results", "results"]));
    assert!(out.contains("test acc"), "{out}");
    let run = runs(&dir.path().join("results"), "eval").pop().unwrap();
    let run_arg = run.display().to_string();
    let id = run.file_name().unwrap().to_string_lossy().into_owned();

    // `runner evaluate RUN --data ARGS`
    let evaluate = |args: &[&str]| {
        let mut argv = vec!["evaluate", run_arg.as_str(), "--data"];
        argv.extend_from_slice(args);
        runner(dir.path(), &argv)
    };
    let out = ok(&evaluate(&["data/labels.csv"]));
    assert!(
        out.starts_with(&format!(
            "eval {id} on data/labels.csv (split test): 4 images"
        )),
        "{out}"
    );
    let out = ok(&evaluate(&["data/labels.csv", "--split", "val"]));
    assert!(
        out.contains(&format!("(split val): {val_rows} images")),
        "{out}"
    );
    // the tables go to a folder named after the manifest and the split
    let evaluated: Vec<String> = std::fs::read_dir(RunDir::at(&run).evaluations())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        evaluated.iter().any(|n| n.ends_with("data-labels.csv-val")),
        "{evaluated:?}"
    );

    let out = evaluate(&["data/labels.csv", "--split", "valid"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));

    std::fs::write(
        data.join("cows.csv"),
        "path,label\ntrain/cat/cat_02000.png,cow\n",
    )
    .unwrap();
    let out = evaluate(&["data/cows.csv"]);
    assert_eq!(out.status.code(), Some(78), "{}", text(&out));
    insta::assert_snapshot!(
        "evaluate_label_not_a_class",
        String::from_utf8_lossy(&out.stderr)
    );
}
