//! The main job's rows: `experiments/lambda_sweep.toml` (six runs of a head on frozen
//! EfficientNet-Lite0 features) run as `runner SPEC` runs it, into a temporary results folder:
//! once with the feature cache empty, once more (`--rerun`) with the features cached. The
//! second is what a run of a sweep costs beyond its training: its per-run overhead is the
//! invocation's time less the training, over the runs.

use std::path::Path;
use std::time::Instant;

use super::busy::BusyMeter;
use super::Measure;
use crate::results::store::Status;
use crate::run::{self, RunOptions, RunReport};
use crate::spec::{self, LoadOptions};

/// The main job's spec, relative to the project folder `runner bench` runs in.
pub(super) const SPEC: &str = "experiments/lambda_sweep.toml";

/// What the two invocations measured.
pub(super) struct MainJob {
    /// Seconds of the first invocation (features computed) and of the second (cached).
    pub cold: Measure,
    pub cached: Measure,
    /// Seconds per run beyond training, features cached.
    pub overhead: Measure,
    pub runs: usize,
}

/// Runs the main job twice in `root`.
pub(super) fn measure(root: &Path) -> Result<MainJob, String> {
    let opts = LoadOptions {
        overrides: Vec::new(),
        pipeline_dir: None,
    };
    let exp = spec::load(Path::new(SPEC), &opts).map_err(|e| e.to_string())?;
    let results = root.join("main-job");
    let invocation = |rerun: bool| -> Result<(f64, Option<f64>, Vec<RunReport>), String> {
        let meter = BusyMeter::start();
        let t = Instant::now();
        // an invocation resolves its spec (datasets scanned, weights read and hashed) itself
        let resolved = crate::setup::Resolved::new(&exp).map_err(|e| e.to_string())?;
        let every: Vec<usize> = (0..resolved.runs.len()).collect();
        let run_opts = RunOptions {
            results: results.clone(),
            rerun,
            progress: false,
            pause_after: None,
        };
        let reports = run::run_sweep(&resolved, &every, &run_opts);
        let seconds = t.elapsed().as_secs_f64();
        if let Some(r) = reports.iter().find(|r| r.status != Status::Done) {
            return Err(format!(
                "main job run {} ended {:?}: {}",
                r.run_id,
                r.status,
                r.error.as_deref().unwrap_or("")
            ));
        }
        Ok((seconds, meter.stop(), reports))
    };
    let (cold, cold_busy, _) = invocation(false)?;
    let (cached, cached_busy, reports) = invocation(true)?;
    let training: f64 = reports
        .iter()
        .flat_map(|r| r.stages.iter())
        .filter(|(name, _)| *name == "train")
        .map(|(_, s)| s)
        .sum();
    let runs = reports.len().max(1);
    Ok(MainJob {
        cold: Measure::new(cold, cold_busy),
        cached: Measure::new(cached, cached_busy),
        overhead: Measure::new((cached - training) / runs as f64, cached_busy),
        runs,
    })
}
