//! The PyTorch side: `torch_bench.py` (embedded, fed to the interpreter on stdin) run as a
//! subprocess of the Python named by BENCH_TORCH; it prints one JSON object.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use super::kernels::CONV_LAYERS;
use super::product::{Workload, L2, LR};

const SCRIPT: &str = include_str!("torch_bench.py");

/// Runs the script with `python` at `threads` threads; the parsed JSON, or why not.
pub(super) fn run(
    python: &str,
    threads: usize,
    quick: bool,
    image_dir: &Path,
    workloads: &[(Workload, PathBuf)],
) -> Result<Value, String> {
    let workloads: Vec<Value> = workloads
        .iter()
        .map(|(w, dir)| {
            let mut v = w.to_json();
            v["data"] = Value::String(dir.display().to_string());
            v
        })
        .collect();
    let layers: Vec<Value> = CONV_LAYERS
        .iter()
        .map(|&(n, ci, co, k, s, g, hw)| serde_json::json!([n, ci, co, k, s, g, hw]))
        .collect();
    let mut child = Command::new(python)
        .arg("-")
        .arg(threads.to_string())
        .arg(if quick { "1" } else { "0" })
        .arg(image_dir)
        .env("BENCH_CONV_LAYERS", Value::Array(layers).to_string())
        .env("BENCH_WORKLOADS", Value::Array(workloads).to_string())
        .env("BENCH_LR", LR.to_string())
        .env("BENCH_WEIGHT_DECAY", (2.0 * L2).to_string())
        // torch would otherwise also size its inter-op pools and OpenMP by the core count.
        .env("OMP_NUM_THREADS", threads.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot start {python}: {e}"))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(SCRIPT.as_bytes())
        .map_err(|e| format!("writing the script to {python}: {e}"))?;
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{python} torch_bench.py failed: {}", out.status));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let last = text.lines().last().unwrap_or("");
    serde_json::from_str(last).map_err(|e| format!("torch_bench.py printed no JSON ({e})"))
}
