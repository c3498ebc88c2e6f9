//! `runner slurm` on a real single-node Slurm (Debian's slurm-wlm with munge), not a mock:
//! arrays with a parallelism limit, resubmitting unfinished points, and tasks that start together
//! on a shared feature cache and on locks left by other hosts.
//!
//! Needs a running single-node Slurm: `.ci/run` installs and starts one (`tests/slurm/start.sh`,
//! as root; `tests/slurm/stop.sh` stops it). The tests never start daemons themselves: without a
//! controller they are reported as ignored, with the reason, and `RUNNER_REQUIRE_TOOLS=1` (set by
//! `.ci/run`) makes that a failure.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common;
use common::{tools, Spec};
use libtest_mimic::Trial;
use runner::results::layout::RunDir;

pub(crate) fn trials() -> Vec<Trial> {
    let group = tools::Group::new(module_path!());
    let missing = slurm_missing();
    vec![
        group.needs(
            "an_array_trains_every_point_once_and_resubmits_only_the_unfinished",
            missing.clone(),
            an_array_trains_every_point_once_and_resubmits_only_the_unfinished,
        ),
        group.needs(
            "tasks_share_one_feature_cache_and_judge_other_hosts_locks_by_heartbeat",
            missing.clone(),
            tasks_share_one_feature_cache_and_judge_other_hosts_locks_by_heartbeat,
        ),
        group.needs(
            "a_halving_sweep_is_submitted_rung_by_rung_and_decides_as_one_process",
            missing,
            a_halving_sweep_is_submitted_rung_by_rung_and_decides_as_one_process,
        ),
    ]
}

fn sh(cmd: &str, args: &[&str]) -> Option<std::process::Output> {
    Command::new(cmd).args(args).output().ok()
}

fn controller_up() -> bool {
    sh("scontrol", &["ping"])
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("is UP"))
        .unwrap_or(false)
}

/// The node to ourselves: the tests here run one at a time (also across nextest's processes),
/// since the feature-cache scenario needs two of its tasks to start together.
struct Exclusive(
    #[expect(
        dead_code,
        reason = "held for its lock while the test runs, never read"
    )]
    std::fs::File,
);

fn exclusive() -> Exclusive {
    let f = std::fs::File::create(std::env::temp_dir().join("runner-slurm-tests.lock")).unwrap();
    f.lock().unwrap();
    Exclusive(f)
}

/// Why Slurm cannot run jobs here, if it cannot.
fn slurm_missing() -> Option<String> {
    if sh("sbatch", &["--version"]).is_none() {
        return Some("sbatch is not on PATH (apt-get install slurm-wlm munge)".into());
    }
    if !controller_up() {
        return Some(
            "no slurmctld answers `scontrol ping` (as root: tests/slurm/start.sh starts one)"
                .into(),
        );
    }
    None
}

fn runner(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_runner"))
        .current_dir(dir)
        .args(args)
        // sbatch passes the environment on: the tasks log at info too
        .env("RUNNER_LOG", "info")
        .output()
        .expect("runner starts");
    eprintln!(
        "$ runner {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn job_id(submitted: &str) -> String {
    submitted
        .lines()
        .find_map(|l| l.strip_prefix("submitted job "))
        .unwrap_or_else(|| panic!("no job id in:\n{submitted}"))
        .trim()
        .to_string()
}

/// Waits for the array to leave the queue, printing `squeue` while it runs.
fn wait_for(job: &str) {
    let started = Instant::now();
    let mut shown = false;
    loop {
        let q = sh("squeue", &["-h", "-j", job, "-o", "%i %T %R"]).expect("squeue");
        let text = String::from_utf8_lossy(&q.stdout).into_owned();
        if text.trim().is_empty() {
            return;
        }
        if !shown {
            eprintln!("squeue -j {job}:\n{text}");
            shown = true;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "job {job} still queued after 300 s:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Experiment `name`: an MLP (another backbone where the caller sets one) trained 2 epochs
/// with SGD and L2, on the tiny fixture.
fn spec(name: &str) -> Spec {
    Spec::tiny(name, 5)
        .set("optimizer", "lr = 0.05")
        .set("regularization", "kind = \"l2\"")
        .table("train", &["epochs = 2", "batch_size = 4"])
}

fn status_json(dir: &Path, exp: &str) -> Vec<serde_json::Value> {
    let out = runner(
        dir,
        &["status", &format!("results/{exp}"), "--format", "json"],
    );
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

fn states(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter()
        .map(|r| r["state"].as_str().unwrap().to_string())
        .collect()
}

fn logs(dir: &Path, exp: &str, job: &str, ext: &str) -> Vec<(String, String)> {
    let logs = dir.join(format!("results/{exp}/slurm/logs"));
    let mut v: Vec<(String, String)> = std::fs::read_dir(&logs)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!("{job}_")) && n.ends_with(ext))
        .map(|n| {
            let text = std::fs::read_to_string(logs.join(&n)).unwrap();
            (n, text)
        })
        .collect();
    v.sort();
    v
}

/// Issue #11, first two scenarios: a 4-point sweep as an array of at most 2 tasks at once, then
/// one point lost and resubmitted alone.
fn an_array_trains_every_point_once_and_resubmits_only_the_unfinished() {
    let _node = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    spec("arr")
        .set(
            "sweep",
            r#"grid = { "regularization.lambda" = [0, 0.1], "optimizer.lr" = [0.01, 0.05] }"#,
        )
        .write(dir);
    let out = runner(
        dir,
        &[
            "slurm",
            "exp.toml",
            "--max-parallel",
            "2",
            "--cpus-per-task",
            "1",
            "--submit",
        ],
    );
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("4 of 4 points as array 1-4"), "{text}");
    let job = job_id(&text);
    let script = std::fs::read_dir(dir.join("results/arr/slurm"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().ends_with(".sbatch"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .expect("a script");
    assert!(script.contains("#SBATCH --array=1-4%2\n"), "{script}");
    wait_for(&job);

    let rows = status_json(dir, "arr");
    assert_eq!(states(&rows), ["done"; 4]);
    let out_logs = logs(dir, "arr", &job, ".out");
    assert_eq!(out_logs.len(), 4, "{out_logs:?}");
    for (i, row) in rows.iter().enumerate() {
        let id = row["run_id"].as_str().unwrap();
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("results/arr/{id}/manifest.json"))).unwrap(),
        )
        .unwrap();
        // trained by task i+1 of the array, with the task's one CPU as its thread count
        assert_eq!(manifest["task"], format!("slurm {job}_{}", i + 1));
        assert_eq!(manifest["threads"], 1);
        assert_eq!(manifest["epochs_done"], 2);
        assert_eq!(row["epochs_done"], 2);
    }
    // every task's summary says it trained its point (none found it taken or done)
    for (name, text) in &out_logs {
        assert!(text.contains("1 done, 0 failed"), "{name}:\n{text}");
        assert!(!text.contains("(earlier)"), "{name}:\n{text}");
    }
    let cmp = runner(dir, &["compare", "results/arr", "--format", "csv"]);
    assert!(cmp.status.success());
    assert_eq!(stdout(&cmp).lines().count(), 5, "{}", stdout(&cmp));

    // lose point 3: status shows it pending, and only it is resubmitted
    let lost = rows[2]["run_id"].as_str().unwrap().to_string();
    std::fs::remove_dir_all(dir.join(format!("results/arr/{lost}"))).unwrap();
    let table = stdout(&runner(dir, &["status", "results/arr"]));
    assert!(table.contains("3 done, 1 pending"), "{table}");
    let out = runner(
        dir,
        &["slurm", "exp.toml", "--only", "unfinished", "--submit"],
    );
    let text = stdout(&out);
    assert!(text.contains("1 of 4 points as array 3,"), "{text}");
    let again = job_id(&text);
    wait_for(&again);
    assert_eq!(logs(dir, "arr", &again, ".out").len(), 1);
    assert_eq!(states(&status_json(dir, "arr")), ["done"; 4]);
    let none = stdout(&runner(
        dir,
        &["slurm", "exp.toml", "--only", "unfinished", "--submit"],
    ));
    assert!(
        none.contains("all 4 points are done: nothing to submit"),
        "{none}"
    );
}

fn lock_record(host: &str, pid: u32, age: u64) -> String {
    let t = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - age;
    format!(
        "{{\"host\":\"{host}\",\"pid\":{pid},\"task\":null,\"started\":\"x\",\"heartbeat\":\"x\",\"heartbeat_unix\":{t}}}\n"
    )
}

/// Issue #11, third scenario: tasks started together on a frozen-backbone sweep build the
/// feature cache once; a lock left by another host with an old heartbeat is taken over, a fresh
/// one is respected.
fn tasks_share_one_feature_cache_and_judge_other_hosts_locks_by_heartbeat() {
    let _node = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    spec("frozen")
        // 64×64 inputs: extracting features takes long enough for the tasks to meet
        .set("transforms", "resize = 64")
        .table("backbone", &["name = \"small_cnn\"", "freeze = true"])
        .set(
            "sweep",
            r#"grid = { "regularization.lambda" = [0, 0.01, 0.1] }"#,
        )
        .write(dir);
    let plan = stdout(&runner(dir, &["plan", "exp.toml"]));
    let ids: Vec<String> = plan
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3, "{plan}");
    // point 1: a node that died an hour ago; point 3: a node that is training it right now
    for (id, host, age) in [(&ids[0], "node-gone", 3600), (&ids[2], "node-busy", 0)] {
        let run = dir.join(format!("results/frozen/{id}"));
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(RunDir::at(&run).lock(), lock_record(host, 4242, age)).unwrap();
        let when = SystemTime::now() - Duration::from_secs(age);
        std::fs::File::options()
            .write(true)
            .open(RunDir::at(&run).lock())
            .unwrap()
            .set_modified(when)
            .unwrap();
    }
    let out = runner(dir, &["slurm", "exp.toml", "--submit"]);
    assert!(out.status.success());
    let job = job_id(&stdout(&out));
    wait_for(&job);

    let err_logs = logs(dir, "frozen", &job, ".err");
    let all: String = err_logs.iter().map(|(_, t)| t.as_str()).collect();
    eprintln!("task logs:\n{all}");
    assert_eq!(
        all.matches("built by this task").count(),
        1,
        "feature cache built more than once or never:\n{all}"
    );
    // tasks 1 and 2 start together (2 CPUs): one builds, the other waits for it and reads it
    assert!(all.contains("is building it; this task"), "{all}");
    assert!(all.contains("and read it"), "{all}");
    assert!(all.contains("taking over a stale lock: pid 4242 on node-gone sent no heartbeat"));
    assert!(all.contains("is being trained by pid 4242 on node-busy: moving on"));

    let rows = status_json(dir, "frozen");
    assert_eq!(states(&rows), ["done", "done", "running"]);
    assert_eq!(rows[2]["host"], "node-busy");

    // node-busy goes away for good (its heartbeat stops): the point is resubmitted and done
    let lock = dir.join(format!("results/frozen/{}/lock", ids[2]));
    std::fs::write(&lock, lock_record("node-busy", 4242, 3600)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&lock)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();
    let rows = status_json(dir, "frozen");
    assert_eq!(states(&rows), ["done", "done", "stale"]);
    let out = runner(
        dir,
        &["slurm", "exp.toml", "--only", "unfinished", "--submit"],
    );
    let again = job_id(&stdout(&out));
    wait_for(&again);
    assert_eq!(states(&status_json(dir, "frozen")), ["done"; 3]);
}

/// Successive halving on the cluster: 4 points, rungs at epochs 1 and 2 (rf = 2), so three
/// arrays, each after the one before; the decisions equal those of the same sweep in one
/// process, byte for byte.
fn a_halving_sweep_is_submitted_rung_by_rung_and_decides_as_one_process() {
    let _node = exclusive();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    spec("halve")
        .table("train", &["epochs = 4", "batch_size = 4"])
        .set(
            "sweep",
            r#"grid = { "optimizer.lr" = [0.3, 0.03, 0.003, 0.0003] }"#,
        )
        .table("sweep.halving", &["min_epochs = 1", "reduction_factor = 2"])
        .write(dir);
    let out = runner(
        dir,
        &["slurm", "exp.toml", "--cpus-per-task", "1", "--submit"],
    );
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("submitted 3 times"), "{text}");
    let jobs: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("submitted job "))
        .map(|l| l.split(' ').next().unwrap().to_string())
        .collect();
    assert_eq!(jobs.len(), 3, "{text}");
    assert!(
        text.contains(&format!("--dependency=afterany:{}", jobs[1])),
        "{text}"
    );
    for job in &jobs {
        wait_for(job);
    }
    let mut rows = states(&status_json(dir, "halve"));
    rows.sort();
    assert_eq!(rows, ["done", "stopped", "stopped", "stopped"]);

    let one = runner(dir, &["run", "exp.toml", "--results", "one"]);
    assert!(one.status.success());
    let decisions = |results: &str| {
        std::fs::read_to_string(dir.join(results).join("halve/halving.json")).unwrap()
    };
    assert_eq!(decisions("results"), decisions("one"));
}
