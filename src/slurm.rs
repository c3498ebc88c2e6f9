//! `runner slurm`: a sweep as a Slurm job array, one task per sweep point. The script it writes
//! (`results/<experiment>/slurm/<timestamp>.sbatch`) runs `runner run SPEC --index
//! $SLURM_ARRAY_TASK_ID` from the project folder with the same overrides and results folder;
//! run ids, skipping finished runs, resuming and the run lock do the rest.

use std::path::{Path, PathBuf};
use std::process::Command;

/// What shapes the script (`runner slurm`'s options).
#[derive(Debug, Clone, Default)]
pub(crate) struct SlurmOptions {
    /// `#SBATCH --partition`.
    pub partition: Option<String>,
    /// Time limit per task, in Slurm's format (`30`, `2:00:00`, `1-0`).
    pub time: Option<String>,
    /// CPUs per task; also the runner's thread count inside the task.
    pub cpus_per_task: Option<u32>,
    /// Memory per node, in Slurm's format (`4G`).
    pub mem: Option<String>,
    /// At most K tasks at once (`--array=…%K`).
    pub max_parallel: Option<u32>,
    /// Further `sbatch` arguments.
    pub extra: Vec<String>,
}

/// Everything the script needs.
#[derive(Debug, Clone)]
pub(crate) struct Job<'a> {
    pub experiment: &'a str,
    /// The runner binary, absolute.
    pub runner: &'a Path,
    /// Where the task starts: the folder `runner slurm` was called from, absolute.
    pub project: &'a Path,
    /// As the user gave them (relative to `project`).
    pub spec: &'a Path,
    pub overrides: &'a [String],
    pub pipeline: Option<&'a Path>,
    pub results: &'a Path,
    /// Sweep point numbers (from 1) in the array.
    pub points: &'a [usize],
    pub opts: &'a SlurmOptions,
    pub written_at: &'a str,
}

/// A word for bash, single-quoted unless plainly safe.
pub(crate) fn shell_quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@%+".contains(c));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// `1-4`, `2,5-7`: sorted point numbers as Slurm's `--array` ranges.
pub(crate) fn array_ranges(points: &[usize]) -> String {
    let mut sorted = points.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        let mut end = start;
        while i + 1 < sorted.len() && sorted[i + 1] == end + 1 {
            i += 1;
            end = sorted[i];
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
        i += 1;
    }
    parts.join(",")
}

/// The experiment's Slurm folder: scripts, and `logs/` for the tasks' output.
pub(crate) fn slurm_dir(results: &Path, experiment: &str) -> PathBuf {
    crate::results::layout::ResultsRoot::new(results)
        .experiment(experiment)
        .slurm()
}

/// The sbatch script.
pub(crate) fn script(job: &Job) -> String {
    let o = job.opts;
    let logs = slurm_dir(job.results, job.experiment).join("logs");
    let mut array = array_ranges(job.points);
    if let Some(k) = o.max_parallel {
        array += &format!("%{k}");
    }
    let mut s = String::from("#!/bin/bash\n");
    s += &format!(
        "# Written by `runner slurm` at {}: one array task per sweep point of `{}`.\n",
        job.written_at, job.experiment
    );
    s += "# Submit it with `sbatch` from any folder; each task trains its point with\n";
    s += "# `runner run --index $SLURM_ARRAY_TASK_ID` (finished runs are skipped, interrupted ones\n";
    s += "# resume), and `runner status` shows where every point stands.\n";
    let mut directive = |k: &str, v: &str| s += &format!("#SBATCH --{k}={v}\n");
    directive("job-name", &format!("runner-{}", job.experiment));
    directive("array", &array);
    // relative to the project folder, where the task starts (and where sbatch is called from);
    // the folder exists before submission: Slurm < 23.02 fails the task without a log otherwise
    let abs = |p: &Path| {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            job.project.join(p)
        }
    };
    directive(
        "output",
        &shell_quote(&abs(&logs).join("%A_%a.out").to_string_lossy()),
    );
    directive(
        "error",
        &shell_quote(&abs(&logs).join("%A_%a.err").to_string_lossy()),
    );
    if let Some(c) = o.cpus_per_task {
        directive("cpus-per-task", &c.to_string());
    }
    if let Some(p) = &o.partition {
        directive("partition", &shell_quote(p));
    }
    if let Some(t) = &o.time {
        directive("time", &shell_quote(t));
    }
    if let Some(m) = &o.mem {
        directive("mem", &shell_quote(m));
    }
    s += "\nset -euo pipefail\n";
    s += &format!("cd {}\n", shell_quote(&job.project.to_string_lossy()));
    s += "# the runner's threads: the CPUs Slurm gave this task\n";
    s += "export RAYON_NUM_THREADS=\"${SLURM_CPUS_PER_TASK:-${SLURM_CPUS_ON_NODE:-1}}\"\n";
    s += "export POLARS_MAX_THREADS=\"$RAYON_NUM_THREADS\"\n";
    let mut cmd = vec![
        shell_quote(&job.runner.to_string_lossy()),
        "run".into(),
        shell_quote(&job.spec.to_string_lossy()),
    ];
    for o in job.overrides {
        cmd.push("--set".into());
        cmd.push(shell_quote(o));
    }
    if let Some(p) = job.pipeline {
        cmd.push("--pipeline".into());
        cmd.push(shell_quote(&p.to_string_lossy()));
    }
    cmd.push("--results".into());
    cmd.push(shell_quote(&job.results.to_string_lossy()));
    cmd.push("--index".into());
    cmd.push("\"$SLURM_ARRAY_TASK_ID\"".into());
    s += &format!("exec {}\n", cmd.join(" "));
    s
}

/// `20261201T101500Z` from an RFC 3339 time, for file names.
pub(crate) fn stamp(rfc3339: &str) -> String {
    rfc3339.replace(['-', ':'], "")
}

/// Writes the script under `results/<experiment>/slurm/` (and creates `logs/` next to it).
pub(crate) fn write_script(job: &Job) -> Result<PathBuf, String> {
    let dir = slurm_dir(job.results, job.experiment);
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).map_err(|e| format!("cannot create {}: {e}", logs.display()))?;
    let base = stamp(job.written_at);
    let mut path = dir.join(format!("{base}.sbatch"));
    let mut n = 1;
    while path.exists() {
        n += 1;
        path = dir.join(format!("{base}-{n}.sbatch"));
    }
    crate::durable::write_atomic(&path, |f| {
        std::io::Write::write_all(f, script(job).as_bytes())
    })
    .map_err(|e| e.to_string())?;
    Ok(path)
}

/// The `sbatch` command line for a script.
pub(crate) fn sbatch_args(script: &Path, extra: &[String]) -> Vec<String> {
    let mut args = vec!["--parsable".to_string()];
    args.extend(extra.iter().cloned());
    args.push(script.to_string_lossy().into_owned());
    args
}

/// Runs `sbatch` (fire and forget) and returns the job id.
pub(crate) fn submit(script: &Path, extra: &[String]) -> Result<String, String> {
    let out = Command::new("sbatch")
        .args(sbatch_args(script, extra))
        .output()
        .map_err(|e| format!("cannot run sbatch: {e} (is Slurm installed and on PATH?)"))?;
    if !out.status.success() {
        return Err(format!(
            "sbatch failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    // --parsable: `jobid` or `jobid;cluster`
    let text = String::from_utf8_lossy(&out.stdout);
    let id = text.trim().split(';').next().unwrap_or("").to_string();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("sbatch printed no job id: `{}`", text.trim()));
    }
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_ranges_compress_runs_of_numbers() {
        assert_eq!(array_ranges(&[1, 2, 3, 4]), "1-4");
        assert_eq!(array_ranges(&[7, 2, 5, 6]), "2,5-7");
        assert_eq!(array_ranges(&[3]), "3");
    }

    #[test]
    fn the_script_runs_one_point_per_task_with_the_same_overrides() {
        let opts = SlurmOptions {
            partition: Some("debug".into()),
            time: Some("10:00".into()),
            cpus_per_task: Some(2),
            mem: None,
            max_parallel: Some(2),
            extra: vec![],
        };
        let overrides = [
            "train.epochs=1".to_string(),
            "experiment.name=it's".to_string(),
        ];
        let job = Job {
            experiment: "tiny",
            runner: Path::new("/opt/runner/bin/runner"),
            project: Path::new("/home/me/project"),
            spec: Path::new("experiments/tiny.toml"),
            overrides: &overrides,
            pipeline: None,
            results: Path::new("results"),
            points: &[1, 2, 4],
            opts: &opts,
            written_at: "2026-12-01T10:15:00Z",
        };
        let s = script(&job);
        for want in [
            "#SBATCH --array=1-2,4%2\n",
            "#SBATCH --output=/home/me/project/results/tiny/slurm/logs/%A_%a.out\n",
            "#SBATCH --error=/home/me/project/results/tiny/slurm/logs/%A_%a.err\n",
            "#SBATCH --cpus-per-task=2\n",
            "#SBATCH --partition=debug\n",
            "#SBATCH --time=10:00\n",
            "cd /home/me/project\n",
            "exec /opt/runner/bin/runner run experiments/tiny.toml --set train.epochs=1 --set 'experiment.name=it'\\''s' --results results --index \"$SLURM_ARRAY_TASK_ID\"\n",
        ] {
            assert!(s.contains(want), "missing {want:?} in\n{s}");
        }
        assert!(!s.contains("--mem"));
        assert_eq!(stamp(job.written_at), "20261201T101500Z");
    }
}
