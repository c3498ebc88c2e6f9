//! What the integration tests share: starting `runner` in a folder, the fixtures, and tests
//! that need a tool the machine may lack (Chromium, an mlflow venv, `mount`, Slurm).
#![allow(
    dead_code,
    reason = "each test file uses a part; an `expect` would fail in the files that use it all"
)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The project's root (where `pipeline/` and `tests/fixtures/` are).
pub fn project() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The tiny cat/dog image folder (8 train and 4 val images per class).
pub fn tiny() -> PathBuf {
    project().join("tests/fixtures/catdog-tiny")
}

/// A one-epoch spec of a linear pixel model on [`tiny`] (4 train and 2 val images per class at
/// 16 px), experiment `name`, with `extra` TOML appended (a `[sweep]` table, say).
pub fn tiny_linear_spec(name: &str, extra: &str) -> String {
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

/// `runner ARGS` in `dir`, logging warnings only.
pub fn runner(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(dir)
        .args(args)
        .env("RUNNER_LOG", "warn")
        .output()
        .expect("runner starts")
}

/// `runner ARGS` in `dir` with environment changes: `Some(value)` sets, `None` removes.
pub fn runner_env(dir: &Path, args: &[&str], env: &[(&str, Option<&str>)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_runner"));
    cmd.current_dir(dir).args(args).env("RUNNER_LOG", "warn");
    for (key, value) in env {
        match value {
            Some(v) => cmd.env(key, v),
            None => cmd.env_remove(key),
        };
    }
    cmd.output().expect("runner starts")
}

/// Exit status, stdout and stderr, for assertion messages.
pub fn text(out: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}\n--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Tests that need a tool. Without it a test is reported as ignored, its reason in the test
/// list (`test [skipped: no chromium …] name ... ignored`), so that `cargo test` shows it;
/// with `RUNNER_REQUIRE_TOOLS=1` (what `.ci/run` sets) it fails instead, naming what is missing.
/// The files that hold such tests run on `libtest-mimic` (`harness = false` in Cargo.toml).
pub mod tools {
    use libtest_mimic::{Arguments, Failed, Trial};

    /// The one switch: every tool-dependent test must run.
    pub const REQUIRE: &str = "RUNNER_REQUIRE_TOOLS";

    fn required() -> bool {
        std::env::var(REQUIRE).as_deref() == Ok("1")
    }

    /// A test that needs nothing.
    pub fn plain(name: &'static str, test: fn()) -> Trial {
        Trial::test(name, move || {
            test();
            Ok(())
        })
    }

    /// A test that needs a tool; `missing` says why it cannot run here (`None`: it can).
    pub fn needs(name: &'static str, missing: Option<String>, test: fn()) -> Trial {
        match missing {
            None => plain(name, test),
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
    pub fn opt_in(name: &'static str, test: fn()) -> Trial {
        plain(name, test).with_ignored_flag(true)
    }

    /// Runs the trials with the usual test-binary arguments and exits.
    pub fn run(trials: Vec<Trial>) -> ! {
        libtest_mimic::run(&Arguments::from_args(), trials).exit()
    }
}
