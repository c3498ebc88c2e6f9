//! What the integration tests share: starting `runner` in a folder, the fixtures, and tests
//! that need a tool the machine may lack (Chromium, an mlflow venv, `mount`, Slurm).
#![allow(
    dead_code,
    reason = "each test binary uses a part; an `expect` would fail in the one that uses it all"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub(crate) mod grad;

/// The run folders of an experiment folder, sorted: its folders but the hidden ones (the
/// experiment's `.backbones`); none when it does not exist.
pub(crate) fn run_folders(experiment: &Path) -> Vec<PathBuf> {
    let mut runs: Vec<PathBuf> = std::fs::read_dir(experiment)
        .map(|d| {
            d.map(|e| e.unwrap().path())
                .filter(|p| {
                    p.is_dir() && !p.file_name().unwrap().to_string_lossy().starts_with('.')
                })
                .collect()
        })
        .unwrap_or_default();
    runs.sort();
    runs
}

/// A run folder's `manifest.json`, parsed.
pub(crate) fn manifest(run: &Path) -> serde_json::Value {
    let path = runner::results::layout::RunDir::at(run).manifest();
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// [`run_folders`] that hold a manifest (a run that started), sorted.
pub(crate) fn recorded_runs(experiment: &Path) -> Vec<PathBuf> {
    run_folders(experiment)
        .into_iter()
        .filter(|p| runner::results::layout::RunDir::at(p).manifest().is_file())
        .collect()
}

/// The project's root (where `pipeline/` and `tests/fixtures/` are).
pub(crate) fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The columns of metrics.parquet that training computes (not the times).
pub(crate) const TRAINED_COLUMNS: [&str; 7] = [
    "epoch",
    "train_loss",
    "train_acc",
    "val_loss",
    "val_acc",
    "weight_norm",
    "lr",
];

/// The tiny cat/dog image folder (8 train and 4 val images per class).
pub(crate) fn tiny() -> PathBuf {
    project().join("tests/fixtures/catdog-tiny")
}

/// A one-epoch spec of a linear pixel model on [`tiny`] (4 train and 2 val images per class at
/// 16 px), experiment `name`, with `extra` TOML appended (a `[sweep]` table, say).
pub(crate) fn tiny_linear_spec(name: &str, extra: &str) -> String {
    format!(
        r#"[experiment]
name = "{name}"

[dataset]
root = "{}"
train_per_class = 4
val_per_class = 2

[transforms]
resize = 16
crop = 16

[backbone]
name = "linear"

[train]
epochs = 1
{extra}"#,
        tiny().display()
    )
}

/// Copies the files of folder `from` into folder `to`, creating it.
pub(crate) fn copy_folder(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
    }
}

/// A copy of [`tiny`]'s `splits` (`train`, `val`) at `root`, that a test may change or damage.
pub(crate) fn copy_tiny(root: &Path, splits: &[&str]) {
    for split in splits {
        for class in ["cat", "dog"] {
            copy_folder(
                &tiny().join(split).join(class),
                &root.join(split).join(class),
            );
        }
    }
}

/// A spec on [`tiny`] as the tests write it, one table at a time: [`Spec::tiny`] is an MLP
/// trained with SGD on 0.5-normalised images; [`Spec::set`] adds or replaces one `key = value`
/// line of a table. [`Spec::text`] keeps `@DATA@` for the data folder; [`Spec::write`] puts
/// the fixture's path there and writes `exp.toml`.
#[derive(Debug, Clone)]
pub(crate) struct Spec {
    tables: Vec<(String, Vec<String>)>,
}

impl Spec {
    /// Experiment `name` on the data folder, and nothing else (the default seed).
    pub(crate) fn bare(name: &str) -> Spec {
        Spec { tables: Vec::new() }
            .set("experiment", &format!("name = \"{name}\""))
            .set("dataset", "root = \"@DATA@\"")
    }

    /// Experiment `name` with `seed` on the data folder, and nothing else.
    pub(crate) fn named(name: &str, seed: u64) -> Spec {
        Spec::bare(name).set("experiment", &format!("seed = {seed}"))
    }

    pub(crate) fn tiny(name: &str, seed: u64) -> Spec {
        Spec::named(name, seed)
            .set("transforms", "mean = [0.5, 0.5, 0.5]")
            .set("transforms", "std = [0.5, 0.5, 0.5]")
            .set("backbone", "name = \"mlp\"")
            .set("optimizer", "kind = \"sgd\"")
            .set("optimizer", "lr = 0.01")
    }

    /// `line` (`key = value`) in `table`: in place of the table's line with that key, else last.
    pub(crate) fn set(mut self, table: &str, line: &str) -> Spec {
        let key = |l: &str| l.split('=').next().unwrap_or("").trim().to_string();
        let t = match self.tables.iter().position(|(t, _)| t == table) {
            Some(t) => t,
            None => {
                self.tables.push((table.to_string(), Vec::new()));
                self.tables.len() - 1
            }
        };
        let lines = &mut self.tables[t].1;
        match lines.iter().position(|l| key(l.as_str()) == key(line)) {
            Some(i) => lines[i] = line.to_string(),
            None => lines.push(line.to_string()),
        }
        self
    }

    /// Several lines of one table.
    pub(crate) fn table(self, table: &str, lines: &[&str]) -> Spec {
        lines.iter().fold(self, |spec, l| spec.set(table, l))
    }

    /// The TOML, tables in the order they were first set; `@DATA@` for the data folder.
    pub(crate) fn text(&self) -> String {
        let mut out = String::new();
        for (table, lines) in &self.tables {
            out += &format!("\n[{table}]\n");
            for l in lines {
                out += l;
                out.push('\n');
            }
        }
        out
    }

    /// Writes `dir/exp.toml` on [`tiny`] and returns its path.
    pub(crate) fn write(&self, dir: &Path) -> PathBuf {
        write_spec(dir, &self.text())
    }

    /// Writes `dir/exp.toml` on the image folder `data`.
    pub(crate) fn write_on(&self, dir: &Path, data: &Path) -> PathBuf {
        write_spec_on(dir, &self.text(), data)
    }
}

/// A spec of `tests/fixtures/specs/` as written there (`@DATA@` for the data folder): the specs
/// whose tests name their lines (an error's `exp.toml:LINE:COLUMN`, a snapshot of one) keep
/// their exact text there.
pub(crate) fn spec_fixture(name: &str) -> String {
    let path = project().join("tests/fixtures/specs").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The embedded 28×28 cat/dog set (`pipeline/data/animal-mnist-catdog`): more images than
/// [`tiny`], for the tests that need many batches.
pub(crate) fn animal_mnist() -> PathBuf {
    project().join("pipeline/data/animal-mnist-catdog")
}

/// Writes `body` to `dir/exp.toml`, `@DATA@` replaced by [`tiny`]'s path, and returns the path.
pub(crate) fn write_spec(dir: &Path, body: &str) -> PathBuf {
    write_spec_on(dir, body, &tiny())
}

/// Writes `body` to `dir/exp.toml`, `@DATA@` replaced by `data`, and returns the path.
pub(crate) fn write_spec_on(dir: &Path, body: &str, data: &Path) -> PathBuf {
    let path = dir.join("exp.toml");
    std::fs::write(&path, body.replace("@DATA@", &data.display().to_string())).unwrap();
    path
}

/// The runner binary in `dir` with `args`, logging warnings only; to be run by the caller.
pub(crate) fn command(dir: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runner"));
    cmd.current_dir(dir).args(args).env("RUNNER_LOG", "warn");
    cmd
}

/// `runner ARGS` in `dir`, logging warnings only.
pub(crate) fn runner(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().expect("runner starts")
}

/// `runner ARGS` in `dir`, logging at info (the tests that read the log).
pub(crate) fn runner_logged(dir: &Path, args: &[&str]) -> Output {
    command(dir, args)
        .env("RUNNER_LOG", "info")
        .output()
        .expect("runner starts")
}

/// The stdout of a run that must succeed.
pub(crate) fn ok(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `runner ARGS` in `dir` with environment changes: `Some(value)` sets, `None` removes.
pub(crate) fn runner_env(dir: &Path, args: &[&str], env: &[(&str, Option<&str>)]) -> Output {
    let mut cmd = command(dir, args);
    for (key, value) in env {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    cmd.output().expect("runner starts")
}

/// Mean and variance of an image's luminance (a blank figure has almost none).
pub(crate) fn luminance(img: &image::RgbImage) -> (f64, f64) {
    let lum: Vec<f64> = img
        .pixels()
        .map(|p| p.0.iter().map(|&c| c as f64).sum::<f64>() / 3.0)
        .collect();
    let mean = lum.iter().sum::<f64>() / lum.len() as f64;
    let var = lum.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / lum.len() as f64;
    (mean, var)
}

/// A column of a table as f64s (integers cast).
pub(crate) fn f64s(df: &polars::prelude::DataFrame, name: &str) -> Vec<f64> {
    use polars::prelude::DataType;
    df.column(name)
        .unwrap()
        .cast(&DataType::Float64)
        .unwrap()
        .f64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

/// An integer column of a table.
pub(crate) fn i64s(df: &polars::prelude::DataFrame, name: &str) -> Vec<i64> {
    df.column(name)
        .unwrap()
        .i64()
        .unwrap()
        .into_no_null_iter()
        .collect()
}

/// Cuts a file to a third of its length: a damaged result file, as a full disk or a killed
/// copy leaves it.
pub(crate) fn cut_to_a_third(file: &Path) {
    let whole = std::fs::read(file).unwrap();
    std::fs::write(file, &whole[..whole.len() / 3]).unwrap();
}

/// Exit status, stdout and stderr, for assertion messages.
pub(crate) fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// That the stderr of `out` says `said` (exit status, stdout and stderr in the message).
pub(crate) fn stderr_says(out: &Output, said: &str) {
    assert!(
        String::from_utf8_lossy(&out.stderr).contains(said),
        "{}",
        text(out)
    );
}

/// Tests that need a tool. Without it a test is reported as ignored, its reason in the test
/// list (`test [skipped: no chromium …] name ... ignored`), so that `cargo test` shows it;
/// with `RUNNER_REQUIRE_TOOLS=1` (what `.ci/run` sets) it fails instead, naming what is missing.
/// The files that hold such tests run on `libtest-mimic` (`harness = false` in Cargo.toml).
pub(crate) mod tools {
    use libtest_mimic::{Arguments, Failed, Trial};

    /// The one switch: every tool-dependent test must run.
    pub(crate) const REQUIRE: &str = "RUNNER_REQUIRE_TOOLS";

    fn required() -> bool {
        std::env::var(REQUIRE).as_deref() == Ok("1")
    }

    /// The trials of one module of the tools binary, named `module::test` (so that
    /// `cargo test --test tools report::` picks one module, as in the suite binary).
    pub(crate) struct Group {
        module: &'static str,
    }

    impl Group {
        /// `module_path!()` of the module whose trials these are.
        pub(crate) fn new(module_path: &'static str) -> Group {
            // `tools::report` -> `report`: the crate's own name says nothing
            let module = module_path.split_once("::").map_or(module_path, |(_, m)| m);
            Group { module }
        }

        fn name(&self, test: &str) -> String {
            format!("{}::{test}", self.module)
        }

        /// A test that needs nothing.
        pub(crate) fn plain(&self, name: &str, test: fn()) -> Trial {
            Trial::test(self.name(name), move || {
                test();
                Ok(())
            })
        }

        /// A test that needs a tool; `missing` says why it cannot run here (`None`: it can).
        pub(crate) fn needs(&self, name: &str, missing: Option<String>, test: fn()) -> Trial {
            let name = self.name(name);
            match missing {
                None => Trial::test(name, move || {
                    test();
                    Ok(())
                }),
                Some(why) if required() => Trial::test(name, move || {
                    Err(Failed::from(format!("{REQUIRE}=1, but {why}")))
                }),
                Some(why) => {
                    eprintln!("SKIPPED {name}: {why} (set {REQUIRE}=1 to make this a failure)");
                    Trial::test(name, || Ok(()))
                        .with_kind(format!("skipped: {why}"))
                        .with_ignored_flag(true)
                }
            }
        }

        /// A test that only runs when asked for (`-- --ignored`), like `#[ignore]`.
        pub(crate) fn opt_in(&self, name: &str, test: fn()) -> Trial {
            self.plain(name, test).with_ignored_flag(true)
        }
    }

    /// Runs the trials with the usual test-binary arguments and exits.
    pub(crate) fn run(trials: Vec<Trial>) -> ! {
        libtest_mimic::run(&Arguments::from_args(), trials).exit()
    }
}

/// The spec files of tests/specs/ and their rendered errors.
pub(crate) mod specs {
    use std::path::Path;

    use runner::spec::{self, Experiment, LoadOptions, SpecError};

    /// `tests/specs/<spec>` with `--set` `overrides`, no pipeline folder.
    pub(crate) fn load(spec: &str, overrides: &[&str]) -> Result<Experiment, SpecError> {
        let opts = LoadOptions {
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            pipeline_dir: None,
        };
        spec::load(&Path::new("tests/specs").join(spec), &opts)
    }

    /// The rendered error of `tests/specs/<spec>` with `overrides`, which must fail to load.
    pub(crate) fn error(spec: &str, overrides: &[&str]) -> String {
        error_of(spec, load(spec, overrides))
    }

    /// The rendered error of `spec`, which must have failed with `runner check`'s exit code.
    pub(crate) fn error_of<T>(spec: &str, loaded: Result<T, SpecError>) -> String {
        match loaded {
            Ok(_) => panic!("{spec} loaded, expected an error"),
            Err(err) => {
                let rendered = err.to_string();
                assert_eq!(runner::cli::Failure::from(err).exit_code(), 78);
                rendered
            }
        }
    }
}
