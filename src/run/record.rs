//! Bookkeeping of a run as it trains: metrics rows, the manifest, time per stage, and reading
//! back a run an earlier invocation finished.

use std::path::PathBuf;
use std::time::Instant;

use super::progress::Progress;
use crate::durable;
use crate::durable::StoreError;
use crate::results::layout::RunDir;
use crate::results::schema::{self, ParamValue, RunKey};
use crate::results::store::{HaltedAt, Manifest, Status, TestScore};
use crate::spec::expand::PlannedRun;
use crate::train::{EpochMetrics, TrainError};

/// What happened to one run, for the summary table.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub index: usize,
    pub run_id: String,
    pub dir: PathBuf,
    pub swept: Vec<(String, ParamValue)>,
    pub status: Status,
    /// The epoch with the lowest val loss, and the last epoch.
    pub best: Option<EpochMetrics>,
    pub last: Option<EpochMetrics>,
    /// The kept model on the run's test split, when it has one.
    pub test: Option<TestScore>,
    pub seconds: f64,
    pub error: Option<String>,
    /// Already done before this invocation.
    pub reused: bool,
    /// Seconds per stage of this invocation ("identify", "features", "train", …), as logged.
    pub stages: Vec<(&'static str, f64)>,
    /// Where successive halving stopped the run.
    pub halted: Option<HaltedAt>,
}

/// What the generic part reports back to the run's bookkeeping.
pub(super) trait Recorder {
    /// Training resumes after this completed epoch; rows after it are to be dropped.
    fn resumed(&mut self, epoch: usize);
    /// An epoch ended: record its metrics (before the checkpoint is written).
    fn epoch(&mut self, m: &EpochMetrics) -> Result<(), TrainError>;
    /// Epochs already recorded by an interrupted invocation of this run.
    fn recorded(&self) -> usize;
    /// Time spent in a stage of the run (accumulated per stage name).
    fn stage(&mut self, name: &'static str, seconds: f64);
}

impl RunReport {
    /// The report of a run that trained no epoch in this invocation; the other fields are set
    /// with struct update syntax by those who know more.
    pub(super) fn new(
        index: usize,
        run_id: String,
        dir: PathBuf,
        swept: Vec<(String, ParamValue)>,
        status: Status,
    ) -> Self {
        RunReport {
            index,
            run_id,
            dir,
            swept,
            status,
            best: None,
            last: None,
            test: None,
            seconds: 0.0,
            error: None,
            reused: false,
            stages: Vec::new(),
            halted: None,
        }
    }
}

/// Records a run's epochs as they end: metrics.parquet with every row so far, then the
/// manifest's epoch count. It writes into what the run's life owns.
pub(super) struct Record<'a> {
    pub dir: &'a RunDir,
    pub key: &'a RunKey<'a>,
    pub manifest: &'a mut Manifest,
    pub rows: &'a mut Vec<EpochMetrics>,
    pub progress: &'a Progress,
    pub epochs: usize,
    pub stages: &'a mut Vec<(&'static str, f64)>,
}

impl Record<'_> {
    fn add_stage(&mut self, name: &'static str, seconds: f64) {
        match self.stages.iter_mut().find(|(n, _)| *n == name) {
            Some((_, s)) => *s += seconds,
            None => self.stages.push((name, seconds)),
        }
    }
}

impl Recorder for Record<'_> {
    fn stage(&mut self, name: &'static str, seconds: f64) {
        self.add_stage(name, seconds);
    }

    fn resumed(&mut self, epoch: usize) {
        self.rows.truncate(epoch);
    }

    fn recorded(&self) -> usize {
        self.rows.len()
    }

    fn epoch(&mut self, m: &EpochMetrics) -> Result<(), TrainError> {
        let t = Instant::now();
        self.add_stage("train", m.epoch_seconds);
        self.rows.retain(|r| r.epoch < m.epoch);
        self.rows.push(m.clone());
        self.progress.epoch(m, self.epochs);
        let tables = self.dir.tables();
        let built = |path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| StoreError::Polars { path, source }
        };
        let mut df = schema::epochs_frame(self.key, self.rows).map_err(built(&tables.metrics))?;
        durable::write_parquet(&tables.metrics, &mut df)?;
        crate::fault::point("after-metrics");
        // The per-class tables follow the best epoch as soon as it is found, so they are on
        // disk before the checkpoint of that epoch: a run resumed later (whose earlier epochs
        // come back from metrics.parquet without their confusion matrices) still has them.
        if schema::best_epoch(self.rows).map(|b| b.epoch) == Some(m.epoch)
            && !m.confusion.is_empty()
        {
            let write =
                |path: &std::path::Path,
                 df: polars::prelude::PolarsResult<polars::prelude::DataFrame>| {
                    let mut df = df.map_err(built(path))?;
                    durable::write_parquet(path, &mut df)
                };
            write(&tables.per_class, schema::per_class_frame(self.key, m))?;
            write(&tables.confusion, schema::confusion_frame(self.key, m))?;
        }
        self.manifest.epochs_done = m.epoch;
        self.manifest.skipped_images = m.skipped;
        self.dir.write_manifest(self.manifest)?;
        self.add_stage("record", t.elapsed().as_secs_f64());
        Ok(())
    }
}

/// A report for a run that an earlier invocation finished, read back from its files.
pub(super) fn previous_done(
    dir: &RunDir,
    swept: &[(String, ParamValue)],
    run: &PlannedRun,
) -> Option<RunReport> {
    let m = dir.read_manifest().ok()?;
    if m.status != Status::Done {
        return None;
    }
    let rows = schema::read_epochs(&dir.metrics(), &m.classes).ok()?;
    // an early-stopped run is complete with fewer epochs than asked for
    let complete = match &m.stopped_early {
        Some(stopped) => stopped.epoch,
        None => m.epochs,
    };
    if rows.len() != complete {
        return None;
    }
    Some(RunReport {
        best: schema::best_epoch(&rows).cloned(),
        last: rows.last().cloned(),
        test: m.test.clone(),
        reused: true,
        ..RunReport::new(
            run.index,
            m.run_id,
            dir.path().to_path_buf(),
            swept.to_vec(),
            Status::Done,
        )
    })
}
