//! Test fixtures for the unit and integration tests and the benches: the golden tests' hash
//! weight fill, and synthetic results trees. Compiled in every build (hidden from the docs), so
//! that the tests link the very library `cargo run` built; the binary leaves them out, as it
//! calls none of them.
//!
//! Synthetic results trees, laid out and typed exactly like the runner's (through
//! `schema::epochs_frame`, `per_class_frame`, `confusion_frame` and `store::Manifest`), for the
//! views' tests and the `compare` benchmark. The curves are smooth made-up functions of the run's
//! parameters, so a test can predict which epoch is best.

use std::path::{Path, PathBuf};

use polars::prelude::*;
use sha2::{Digest, Sha256};

use crate::durable;
use crate::durable::StoreError;
use crate::models::weights::torch_name;
use crate::models::{Backbone, Classifier};
use crate::nn::tensors;
use crate::results::layout::RunDir;
use crate::results::schema::{self, ParamValue, RunKey};
use crate::results::store::{Manifest, Status};
use crate::train::EpochMetrics;
use std::convert::Infallible;

/// What to write for one run.
#[derive(Debug, Clone)]
pub struct SyntheticRun {
    pub experiment: String,
    pub swept: Vec<(String, ParamValue)>,
    pub classes: Vec<String>,
    /// Epochs planned; `Diverged` and `Failed` runs record fewer (see [`write_run`]).
    pub epochs: usize,
    pub status: Status,
    /// Also write `per_class.parquet` and `confusion.parquet` (best epoch by val loss).
    pub per_class: bool,
}

/// The run id the synthetic writer gives a run: a hash of its experiment and swept values.
pub fn run_id(experiment: &str, swept: &[(String, ParamValue)]) -> String {
    let mut h = Sha256::new();
    h.update(experiment.as_bytes());
    for (k, v) in swept {
        h.update(format!("\0{k}={v}").as_bytes());
    }
    format!("{:x}", h.finalize())[..12].to_string()
}

/// The metrics of epoch `e` (1-based) of a run whose regularisation strength is `lambda` and
/// whose seed-like jitter is `h` in [0, 1). Val loss falls, then rises (overfitting) from about
/// epoch ln(45 / (1 - h·0.5)) / 0.4 ≈ 9.5; a larger lambda lowers the weight norm.
pub(crate) fn epoch_metrics(e: usize, lambda: f64, h: f64, classes: usize) -> EpochMetrics {
    let ef = e as f64;
    let val_loss = 0.25 + 0.45 * (-0.4 * ef).exp() + 0.004 * ef * (1.0 - 0.5 * h) + 0.02 * h;
    let val_acc = (1.0 - val_loss / 1.5).clamp(0.0, 1.0);
    let support = 50u64;
    let class_acc: Vec<f64> = (0..classes)
        .map(|c| (val_acc + 0.04 * (c as f64 - (classes as f64 - 1.0) / 2.0)).clamp(0.0, 1.0))
        .collect();
    let confusion = (0..classes)
        .map(|t| {
            let right = (class_acc[t] * support as f64).round() as u64;
            (0..classes)
                .map(|p| match p {
                    _ if p == t => right,
                    _ if p == (t + 1) % classes => support - right,
                    _ => 0,
                })
                .collect()
        })
        .collect();
    EpochMetrics {
        epoch: e,
        train_loss: 0.05 + 0.7 * (-0.3 * ef).exp() + 0.02 * h,
        train_acc: (1.0 - 0.6 * (-0.3 * ef).exp()).clamp(0.0, 1.0),
        val_loss,
        val_acc,
        val_class_acc: class_acc,
        confusion,
        weight_norm: 3.0 + 0.2 * ef / (1.0 + 100.0 * lambda) + 0.05 * h,
        lr: 0.01,
        epoch_seconds: 1.5,
        images_per_second: 400.0,
        train_samples: 1000,
        skipped: 0,
    }
}

/// Writes `results/<experiment>/<run_id>/` with metrics.parquet (unless the run failed before its
/// first epoch) and manifest.json. A `Diverged` run records `epochs / 2` epochs, a `Running` run
/// `epochs / 3`, a `Failed` run none. Written like the runner writes (atomically), but from
/// whatever thread calls it: polars' writer uses its own thread pool, so callers that write
/// many runs at once should use plain threads, not a rayon pool (see benches/compare.rs).
pub fn write_run(results: &Path, run: &SyntheticRun) -> Result<RunDir, StoreError> {
    let id = run_id(&run.experiment, &run.swept);
    let dir = RunDir::new(results, &run.experiment, &id);
    dir.create()?;
    let lambda = run
        .swept
        .iter()
        .find(|(k, _)| k.ends_with("lambda"))
        .map(|(_, v)| match v {
            ParamValue::Float(f) => *f,
            ParamValue::Int(i) => *i as f64,
            _ => 0.0,
        })
        .unwrap_or(0.0);
    let h = u32::from_str_radix(&id[..6], 16).unwrap_or(0) as f64 / (1u32 << 24) as f64;
    let done = match run.status {
        Status::Done => run.epochs,
        Status::Diverged => run.epochs / 2,
        Status::Running | Status::Interrupted | Status::Paused => run.epochs / 3,
        Status::Failed => 0,
    };
    let rows: Vec<EpochMetrics> = (1..=done)
        .map(|e| epoch_metrics(e, lambda, h, run.classes.len()))
        .collect();
    let key = RunKey {
        experiment: &run.experiment,
        run_id: &id,
        swept: &run.swept,
        classes: &run.classes,
    };
    // through the runner's own atomic writes: a generator killed mid-way leaves whole files
    let parquet = |path: PathBuf, df: PolarsResult<DataFrame>| -> Result<(), StoreError> {
        let mut df = df.map_err(|source| StoreError::Polars {
            path: path.clone(),
            source,
        })?;
        durable::write_parquet(&path, &mut df)
    };
    if !rows.is_empty() {
        parquet(dir.metrics(), schema::epochs_frame(&key, &rows))?;
        if run.per_class {
            let best = schema::best_epoch(&rows).expect("rows");
            parquet(dir.per_class(), schema::per_class_frame(&key, best))?;
            parquet(dir.confusion(), schema::confusion_frame(&key, best))?;
        }
    }
    dir.write_manifest(&synthetic_manifest(run, &id, done))?;
    Ok(dir)
}

/// The manifest of a synthetic run `id` that recorded `done` epochs.
fn synthetic_manifest(run: &SyntheticRun, id: &str, done: usize) -> Manifest {
    Manifest {
        experiment: run.experiment.clone(),
        run_id: id.to_string(),
        index: 0,
        swept: run.swept.clone(),
        spec_hash: "0".repeat(12),
        dataset_fingerprint: "0".repeat(64),
        split_sha256: None,
        weights_hash: None,
        seed: 0,
        status: run.status,
        epochs_done: done,
        epochs: run.epochs,
        diverged_epoch: (run.status == Status::Diverged).then_some(done + 1),
        skipped_images: 0,
        stopped_early: None,
        halted: None,
        test: None,
        error: (run.status == Status::Failed).then(|| "synthetic failure".to_string()),
        classes: run.classes.clone(),
        device: "cpu".into(),
        engine: None,
        precision: None,
        threads: 1,
        git_commit: None,
        git_dirty: None,
        runner_version: env!("CARGO_PKG_VERSION").into(),
        crate_versions: Vec::new(),
        started_at: "2026-01-01T00:00:00Z".into(),
        finished_at: None,
        host: None,
        pid: None,
        task: None,
    }
}

// ---- the golden tests' weight fill (see ../shared/README of the golden files) ----

/// FNV-1a 32-bit hash of the UTF-8 bytes of `s`.
pub(crate) fn fnv1a32(s: &str) -> u32 {
    s.bytes()
        .fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619))
}

/// The counter-based uniform numbers u ∈ [0, 1) of the golden tests' weight fill for the
/// tensor called `name`: element j hashes `fnv1a32(name) + j·0x9E3779B9` with murmur3's finaliser.
pub(crate) fn hash_uniforms(name: &str, len: usize) -> impl Iterator<Item = f64> {
    let seed = fnv1a32(name);
    (0..len).map(move |j| {
        let mut h = seed.wrapping_add((j as u32).wrapping_mul(0x9E37_79B9));
        h ^= h >> 16;
        h = h.wrapping_mul(0x85EB_CA6B);
        h ^= h >> 13;
        h = h.wrapping_mul(0xC2B2_AE35);
        h ^= h >> 16;
        h as f64 / 4294967296.0
    })
}

/// Fills every tensor of `model` from [`hash_uniforms`] of its state-dict name: BatchNorm γ and
/// running_var 0.5 + u; β and running_mean (2u − 1)·0.2; conv/linear weights (2u − 1)/√fan_in;
/// the head bias (2u − 1)/√features. This reproduces the weights behind the golden files.
pub fn fill_with_hash<B: Backbone>(model: &mut Classifier<B>) {
    let head_bias = format!("{}.bias", B::HEAD);
    let _ = tensors::for_each_mut(model, |t| -> Result<(), Infallible> {
        let name = t.name().to_string();
        let torch = torch_name(&name);
        let dims = t.dims().to_vec();
        let len: usize = dims.iter().product();
        let u = hash_uniforms(&torch, len);
        let values: Vec<f32> = if name.ends_with(".scale") || name.ends_with("running_var") {
            u.map(|u| (0.5 + u) as f32).collect()
        } else if name.ends_with("running_mean") || (name.ends_with(".bias") && torch != head_bias)
        {
            u.map(|u| ((2.0 * u - 1.0) * 0.2) as f32).collect()
        } else if torch == head_bias {
            let s = (B::FEATURES as f64).sqrt();
            u.map(|u| ((2.0 * u - 1.0) / s) as f32).collect()
        } else {
            let fan_in = (len / dims[0].max(1)).max(1) as f64;
            u.map(|u| ((2.0 * u - 1.0) / fan_in.sqrt()) as f32)
                .collect()
        };
        t.set_values(&values);
        Ok(())
    });
}

/// Whether a test that needs a missing tool must fail instead of skipping (CI sets
/// `RUNNER_REQUIRE_TOOLS=1`).
pub(crate) fn tools_required() -> bool {
    std::env::var("RUNNER_REQUIRE_TOOLS").as_deref() == Ok("1")
}

/// The engines a test runs its checks on: the built-in kernels, then oneDNN. Without a usable
/// oneDNN the second is left out with a visible `SKIPPED` line, or the test fails when
/// [`tools_required`].
pub fn engines() -> Vec<(&'static str, crate::ops::engine::Engine)> {
    use crate::ops::engine::Engine;
    let mut out = vec![("built-in", Engine::Builtin)];
    match Engine::onednn() {
        Ok(e) => out.push(("oneDNN", e)),
        Err(why) => {
            assert!(
                !tools_required(),
                "RUNNER_REQUIRE_TOOLS=1 but oneDNN is unusable: {why}"
            );
            eprintln!("SKIPPED (the oneDNN half of this test): {why}");
        }
    }
    out
}

/// Runs `check` once per engine of [`engines`] (on this thread), naming the engine.
pub fn on_each_engine(mut check: impl FnMut(&str)) {
    for (name, engine) in engines() {
        crate::ops::engine::with(engine, || check(name));
    }
}

#[cfg(test)]
mod hash_fill_tests {
    use super::*;

    #[test]
    fn hash_fill_matches_the_documented_values() {
        // conv1.weight starts 0.07495967, −0.01659734, −0.01964474 (fan_in 3·7·7).
        let s = (147f64).sqrt();
        let v: Vec<f64> = hash_uniforms("conv1.weight", 3)
            .map(|u| (2.0 * u - 1.0) / s)
            .collect();
        for (a, b) in v.iter().zip([0.07495967, -0.01659734, -0.01964474]) {
            assert!((a - b).abs() < 1e-7, "{a} vs {b}");
        }
    }
}
