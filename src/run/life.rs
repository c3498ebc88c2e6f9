//! One run's life on disk, owned by one value from the moment the run is identified to its
//! report: [`RunLife`] holds the run's folder, its lock (released when the value drops), its
//! manifest and what its recorder writes.
//!
//! 1. [`RunLife::open`]: an earlier invocation finished it ([`Opened::Done`]), another live
//!    process holds it ([`Opened::Held`]), or it is locked, cleaned of what a killed writer
//!    left, and started: `spec.toml` and a `running` manifest written ([`Opened::Ready`]).
//! 2. [`RunLife::train`]: the model fitted through the resume policy (`resume.rs`), each epoch
//!    recorded as it ends; the kept model scored on the test split.
//! 3. [`RunLife::finish`]: the final manifest, the checkpoints dropped once the run is done,
//!    and the [`RunReport`].

use std::path::Path;
use std::time::Instant;

use runner_onednn::DataType;
use sha2::{Digest, Sha256};

use super::cache::FeatureCache;
use super::model;
use super::progress::Progress;
use super::provenance;
use super::record::{previous_done, Record, RunReport};
use super::resume::{Fitting, Paths};
use super::test_split;
use crate::durable::exit_guard::ExitGuard;
use crate::durable::{self, timestamp};
use crate::ops::engine;
use crate::results::layout::{ExperimentDir, RunDir};
use crate::results::schema::{self, ParamValue, RunKey};
use crate::results::store::{Manifest, RunLock, Status, StoppedEarly};
use crate::setup::ResolvedRun;
use crate::spec::expand;
use crate::spec::{Experiment, Precision};
use crate::train::{EpochMetrics, Outcome, TrainError};

/// Who a run is: its id and what the id was computed from, and how long that took.
pub(super) struct Identity {
    pub run_id: String,
    /// The dataset's content hash.
    pub fingerprint: String,
    pub seconds: f64,
}

impl Identity {
    /// Hashes the run's dataset (once per dataset) and computes its id.
    pub(super) fn of(run: &ResolvedRun) -> Result<Identity, TrainError> {
        let t = Instant::now();
        let fingerprint = run.dataset.fingerprint()?;
        let run_id = run.run_id()?;
        Ok(Identity {
            run_id,
            fingerprint,
            seconds: t.elapsed().as_secs_f64(),
        })
    }
}

/// What opening a run folder found.
#[expect(
    clippy::large_enum_variant,
    reason = "one value per run, matched at once: boxing would only add an allocation"
)]
pub(super) enum Opened {
    /// An earlier invocation finished the run: its report, read back.
    Done(RunReport),
    /// Another live process holds the run's lock.
    Held,
    /// Locked by this process and started.
    Ready(RunLife),
}

/// A run being trained by this process.
pub(super) struct RunLife {
    dir: RunDir,
    _lock: RunLock,
    manifest: Manifest,
    /// Every epoch recorded so far (an interrupted earlier invocation's, when resuming).
    rows: Vec<EpochMetrics>,
    /// Seconds per stage of this invocation, as logged.
    stages: Vec<(&'static str, f64)>,
}

impl RunLife {
    /// Opens the run's folder `dir` and, unless it is done or held, starts the run. With
    /// `rerun` a done run trains again and an unfinished one starts over.
    pub(super) fn open(
        exp: &Experiment,
        run: &ResolvedRun,
        id: &Identity,
        swept: &[(String, ParamValue)],
        dir: RunDir,
        rerun: bool,
    ) -> Result<Opened, TrainError> {
        if !rerun {
            if let Some(done) = previous_done(&dir, swept, run.planned) {
                return Ok(Opened::Done(done));
            }
        }
        dir.create()?;
        let Some(lock) = RunLock::acquire(&dir)? else {
            return Ok(Opened::Held);
        };
        dir.remove_stale_temp_files();
        durable::lock::remove_orphaned_private_files(dir.path());
        // an interrupted earlier invocation left epochs behind: keep them for resuming
        let previous = dir.read_manifest().ok();
        // --rerun starts over; otherwise the epochs of an unfinished earlier invocation are kept
        let rows = match &previous {
            Some(m) if m.status != Status::Done && !rerun => {
                schema::read_epochs(&dir.metrics(), &m.classes).unwrap_or_default()
            }
            _ => Vec::new(),
        };
        if rerun {
            let _ = std::fs::remove_file(dir.checkpoint());
            let _ = std::fs::remove_file(dir.best_weights());
        }
        durable::write_text(&dir.spec(), &run.spec().to_toml())?;
        let split_list = run.dataset.split_list();
        if let Some(list) = &split_list {
            durable::write_text(&dir.split_list(), list)?;
        }
        let started_at = previous.map(|m| m.started_at);
        let mut manifest = running_manifest(exp, run, id, swept, rows.len(), started_at);
        manifest.split_sha256 = split_list.map(|list| format!("{:x}", Sha256::digest(list)));
        dir.write_manifest(&manifest)?;
        Ok(Opened::Ready(RunLife {
            dir,
            _lock: lock,
            manifest,
            rows,
            stages: vec![("identify", id.seconds)],
        }))
    }

    /// Trains the run's model, recording each epoch, and scores the kept model on the test
    /// split when training completed; both in the run's `train.precision`.
    pub(super) fn train(
        &mut self,
        run: &ResolvedRun,
        id: &Identity,
        cache: &mut FeatureCache,
        progress: &Progress,
        head: &str,
        pause_after: Option<usize>,
    ) -> Result<Outcome, TrainError> {
        match conv_precision(run) {
            Ok(precision) => engine::with_conv_precision(precision, || {
                self.train_and_score(run, id, cache, progress, head, pause_after)
            }),
            Err(e) => {
                progress.finish();
                Err(e)
            }
        }
    }

    fn train_and_score(
        &mut self,
        run: &ResolvedRun,
        id: &Identity,
        cache: &mut FeatureCache,
        progress: &Progress,
        head: &str,
        pause_after: Option<usize>,
    ) -> Result<Outcome, TrainError> {
        let key = RunKey {
            experiment: &run.spec().experiment.name,
            run_id: &id.run_id,
            swept: &self.manifest.swept.clone(),
            classes: &run.dataset.folder.classes,
        };
        let (checkpoint, model, best) = (
            self.dir.checkpoint(),
            self.dir.model(),
            self.dir.best_weights(),
        );
        let backbones = ExperimentDir::of_run(self.dir.path()).backbones();
        let paths = Paths {
            checkpoint: &checkpoint,
            model: &model,
            best: &best,
            backbones: &backbones,
        };
        let result = {
            let mut rec = Record {
                dir: &self.dir,
                key: &key,
                manifest: &mut self.manifest,
                rows: &mut self.rows,
                progress,
                epochs: run.fit.epochs,
                stages: &mut self.stages,
            };
            let mut fitting = Fitting {
                cfg: &run.fit,
                progress,
                paths: &paths,
                rec: &mut rec,
                pause_after,
            };
            test_split::check_images(run)
                .and_then(|()| model::train(run, &id.fingerprint, cache, &mut fitting))
        };
        progress.finish();
        match result {
            Ok(outcome @ (Outcome::Done | Outcome::Stopped(_))) => {
                test_split::score(run, &self.dir, &mut self.manifest, &self.rows, head)
                    .map(|()| outcome)
            }
            other => other,
        }
    }

    /// Records how the run ended in its manifest (the first failure is the cause: a full disk
    /// fails every later write too), drops its checkpoints once it is done, releases its lock
    /// and reports it.
    pub(super) fn finish(
        mut self,
        result: Result<Outcome, TrainError>,
        run: &ResolvedRun,
        head: &str,
        started: Instant,
    ) -> Result<RunReport, TrainError> {
        let total = started.elapsed().as_secs_f64();
        let other = total - self.stages.iter().map(|(_, s)| s).sum::<f64>();
        tracing::info!(
            "{head}: time by stage: {}, other {other:.2}s",
            self.stages
                .iter()
                .map(|(n, s)| format!("{n} {s:.2}s"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        let manifest = &mut self.manifest;
        manifest.finished_at = Some(timestamp::now_utc());
        let restore_best = run
            .fit
            .early_stopping
            .as_ref()
            .is_some_and(|e| e.restore_best);
        let (status, error) = ending(&result, manifest, restore_best, head);
        manifest.status = status;
        manifest.error = error.clone();
        // the final manifest and the removal of the checkpoints belong together
        let _whole = ExitGuard::hold();
        let written = self.dir.write_manifest(manifest).map_err(TrainError::from);
        if let Some(e) = result.err().or(written.err()) {
            return Err(e);
        }
        if status == Status::Done {
            // everything of the run is recorded: its checkpoints are no longer needed
            let _ = std::fs::remove_file(self.dir.checkpoint());
            let _ = std::fs::remove_file(self.dir.best_weights());
        }
        Ok(RunReport {
            best: schema::best_epoch(&self.rows).cloned(),
            last: self.rows.last().cloned(),
            test: self.manifest.test.clone(),
            seconds: started.elapsed().as_secs_f64(),
            error,
            stages: std::mem::take(&mut self.stages),
            ..RunReport::new(
                run.index(),
                self.manifest.run_id.clone(),
                self.dir.path().to_path_buf(),
                self.manifest.swept.clone(),
                status,
            )
        })
    }
}

/// The precision of the run's convolutions on this process's engine; an error, before anything
/// is trained, where `train.precision` asks for what the engine cannot compute (a run never
/// computes in f32 while recording bf16).
fn conv_precision(run: &ResolvedRun) -> Result<DataType, TrainError> {
    match run.spec().train.precision {
        Precision::Full => Ok(DataType::F32),
        Precision::Bf16Mixed => engine::bf16_support()
            .map(|_| DataType::Bf16)
            .map_err(|why| {
                TrainError::Unsupported(format!("train.precision = \"bf16-mixed\": {why}"))
            }),
    }
}

/// `32`, or `bf16-mixed (avx512_core_bf16)`: the precision with the instruction set it ran on.
fn precision_label(precision: Precision) -> String {
    match (precision, engine::bf16_support()) {
        (Precision::Bf16Mixed, Ok(isa)) => format!("{precision} ({isa})"),
        _ => precision.to_string(),
    }
}

/// The manifest of a run as it starts: what it is, where it runs, and its epochs so far.
fn running_manifest(
    exp: &Experiment,
    run: &ResolvedRun,
    id: &Identity,
    swept: &[(String, ParamValue)],
    epochs_done: usize,
    started_at: Option<String>,
) -> Manifest {
    let spec = run.spec();
    let (git_commit, git_dirty) =
        provenance::git_state(exp.source.parent().unwrap_or(Path::new(".")));
    let mut crate_versions = provenance::crate_versions();
    crate_versions.push(("rustc".into(), provenance::rustc_version().into()));
    Manifest {
        experiment: spec.experiment.name.clone(),
        run_id: id.run_id.clone(),
        index: run.index(),
        swept: swept.to_vec(),
        spec_hash: expand::run_id(spec, ""),
        dataset_fingerprint: id.fingerprint.clone(),
        split_sha256: None,
        weights_hash: run.weights.as_ref().map(|w| w.sha256.clone()),
        seed: spec.experiment.seed,
        status: Status::Running,
        epochs_done,
        epochs: spec.train.epochs as usize,
        diverged_epoch: None,
        skipped_images: 0,
        stopped_early: None,
        halted: None,
        test: None,
        error: None,
        classes: run.dataset.folder.classes.clone(),
        device: "cpu".into(),
        engine: Some(crate::ops::engine::describe_current()),
        precision: Some(precision_label(spec.train.precision)),
        threads: rayon::current_num_threads(),
        git_commit,
        git_dirty,
        runner_version: env!("CARGO_PKG_VERSION").into(),
        crate_versions,
        started_at: started_at.unwrap_or_else(timestamp::now_utc),
        finished_at: None,
        host: Some(durable::hostname()),
        pid: Some(std::process::id()),
        task: durable::lock::task_name(),
    }
}

/// The status a training result gives the run (and its error), logged, with what the manifest
/// records about it (early stopping, the diverged epoch).
fn ending(
    result: &Result<Outcome, TrainError>,
    manifest: &mut Manifest,
    restore_best: bool,
    head: &str,
) -> (Status, Option<String>) {
    match result {
        Ok(Outcome::Done) => (Status::Done, None),
        Ok(Outcome::Interrupted { epoch }) => {
            tracing::warn!(
                "{head}: interrupted in epoch {epoch}; the next invocation resumes after epoch {}",
                epoch - 1
            );
            (Status::Interrupted, None)
        }
        Ok(Outcome::Stopped(stopped)) => {
            tracing::info!(
                "{head}: stopped early after epoch {}: {}",
                stopped.epoch,
                stopped.reason
            );
            manifest.stopped_early = Some(StoppedEarly {
                epoch: stopped.epoch,
                best_epoch: stopped.best_epoch,
                reason: stopped.reason.clone(),
                restored_best: restore_best,
            });
            (Status::Done, None)
        }
        Ok(Outcome::Paused { epoch }) => {
            tracing::info!(
                "{head}: paused after epoch {epoch}, a halving rung, with its checkpoint"
            );
            (Status::Paused, None)
        }
        Ok(Outcome::Diverged { epoch }) => {
            manifest.diverged_epoch = Some(*epoch);
            tracing::warn!("{head}: diverged in epoch {epoch} (non-finite loss)");
            (Status::Diverged, None)
        }
        Err(e) => (Status::Failed, Some(e.to_string())),
    }
}
