//! `runner run --index/--shard` and `runner status` without a scheduler: which points a
//! selection trains, its usage errors, and the status of every planned point from the files.

use crate::common;

use common::{command, Spec};
use std::path::Path;

fn runner(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = command(dir, args)
        .env("RUNNER_LOG", "info")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .env_remove("JOB_COMPLETION_INDEX")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The CSV status with the columns that vary from machine to machine (run id: the data's
/// absolute path is part of the spec here; host, pid, time) starred.
fn status_csv(dir: &Path) -> String {
    let (code, out, err) = runner(dir, &["status", "results/sel", "--format", "csv"], &[]);
    assert_eq!(code, 0, "{err}");
    out.lines()
        .map(|l| {
            let mut cells: Vec<&str> = l.split(',').collect();
            if cells[0] != "index" {
                for i in [1, 6, 7, 9] {
                    cells[i] = if cells[i].is_empty() { "" } else { "*" };
                }
            }
            cells.join(",")
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn indices_shards_and_env_train_the_chosen_points_and_status_shows_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    Spec::tiny("sel", 2)
        .table("train", &["epochs = 2", "batch_size = 4"])
        .set(
            "sweep",
            r#"grid = { "optimizer.lr" = [0.01, 0.02, 0.03, 0.04] }"#,
        )
        .write(dir);

    let (code, _, err) = runner(dir, &["run", "exp.toml", "--index", "5"], &[]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(err.lines().last().unwrap(), @"error: --index 5 is out of range: the sweep has 4 points, numbered 1..=4 (see `runner plan`)");
    let (code, _, err) = runner(dir, &["run", "exp.toml", "--index", "env"], &[]);
    assert_eq!(code, 2);
    insta::assert_snapshot!(err.lines().last().unwrap(), @"error: --index env: neither SLURM_ARRAY_TASK_ID (Slurm job arrays) nor JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs) is set");
    let (code, _, err) = runner(dir, &["run", "exp.toml", "--shard", "0/2"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("expected I/N with 1 <= I <= N (e.g. 2/4), found `0/2`"),
        "{err}"
    );

    // a command that fails on its arguments writes nothing, not even the plan
    assert!(!dir.join("results").exists());

    let (code, out, _) = runner(dir, &["run", "exp.toml", "--index", "2"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("sel: 1 done, 0 failed"), "{out}");
    // Kubernetes counts from 0: index 3 is point 4
    let (code, _, err) = runner(
        dir,
        &["run", "exp.toml", "--index", "env"],
        &[("JOB_COMPLETION_INDEX", "3")],
    );
    assert_eq!(code, 0);
    assert!(
        err.contains("--index env (JOB_COMPLETION_INDEX=3, from 0): sweep point 4 of 4"),
        "{err}"
    );
    insta::assert_snapshot!(status_csv(dir), @r"
    index,run_id,optimizer.lr,state,epochs_done,epochs,host,pid,task,updated,detail
    1,*,0.01,pending,0,2,,,,,
    2,*,0.02,done,2,2,*,*,,*,
    3,*,0.03,pending,0,2,,,,,
    4,*,0.04,done,2,2,*,*,k8s index 3,*,
    ");
    // shard 1/2 = points 1 and 3, the two still pending
    let (code, out, _) = runner(dir, &["run", "exp.toml", "--shard", "1/2"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("sel: 2 done"), "{out}");
    let (_, table, _) = runner(dir, &["status", "results/sel"], &[]);
    assert!(table.contains("4 done\n"), "{table}");
    // a path that does not exist is a usage error, as for every command
    let (code, _, err) = runner(dir, &["status", "results/nope"], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no such results folder or file: results/nope"),
        "{err}"
    );
}
