//! What a halving sweep reads back from its runs' folders: where each run stands at a rung,
//! the metric it recorded there, and a stopped run's mark. Every process of the sweep (one
//! `runner run`, or many `--index` tasks) judges a rung from these files alone, so they judge
//! it alike.

use crate::durable::StoreError;
use crate::results::layout::RunDir;
use crate::results::schema;
use crate::results::store::{HaltedAt, RunLock, Status};
use crate::run::record::RunReport;
use crate::spec::HalvingMetric;
use crate::train::EpochMetrics;

/// Whether a run with this status (and this many epochs) is through with the rung at `epoch`:
/// paused there, or ended (done, diverged, failed; ranked by what it recorded). A run that is
/// running, interrupted or not started has not reached it.
pub(super) fn through(status: Status, epochs_done: usize, epoch: usize) -> bool {
    match status {
        Status::Paused => epochs_done >= epoch,
        Status::Done | Status::Diverged | Status::Failed => true,
        Status::Running | Status::Interrupted => false,
    }
}

/// [`through`] as the run's manifest says; `false` without one.
pub(super) fn reached(dir: &RunDir, epoch: usize) -> bool {
    dir.read_manifest()
        .is_ok_and(|m| through(m.status, m.epochs_done, epoch))
}

/// Whether the run is paused at exactly `epoch` and not stopped there: nothing to train before
/// the rung's decision.
pub(super) fn waits_at(dir: &RunDir, epoch: usize) -> bool {
    dir.read_manifest()
        .is_ok_and(|m| m.status == Status::Paused && m.epochs_done == epoch && m.halted.is_none())
}

/// The metric at `epoch` averaged over a point's runs; `None` when one has no such epoch.
pub(super) fn mean_at(dirs: &[RunDir], metric: HalvingMetric, epoch: usize) -> Option<f64> {
    let mut sum = 0.0;
    for dir in dirs {
        let manifest = dir.read_manifest().ok()?;
        let rows = schema::read_epochs(&dir.metrics(), &manifest.classes).ok()?;
        let row = rows.iter().find(|r| r.epoch == epoch)?;
        sum += metric_of(row, metric);
    }
    let mean = sum / dirs.len().max(1) as f64;
    mean.is_finite().then_some(mean)
}

fn metric_of(row: &EpochMetrics, metric: HalvingMetric) -> f64 {
    match metric {
        HalvingMetric::ValLoss => row.val_loss,
        HalvingMetric::ValAcc => row.val_acc,
        HalvingMetric::TrainLoss => row.train_loss,
        HalvingMetric::TrainAcc => row.train_acc,
    }
}

/// Marks a paused run as stopped at its rung, under the run's lock. A run another process
/// holds is left as it is: that process applies the decision to it when it lets go (`quiet`:
/// say so only in the debug log, for runs of other tasks).
pub(super) fn mark_halted(dir: &RunDir, halted: HaltedAt, quiet: bool) -> Result<(), StoreError> {
    let unmarked = |dir: &RunDir| {
        dir.read_manifest()
            .ok()
            .filter(|m| m.status == Status::Paused && m.halted != Some(halted))
    };
    // every task applies every decided rung: most runs are marked already, and reading a
    // manifest costs far less than taking a lock
    if unmarked(dir).is_none() {
        return Ok(());
    }
    let Some(_lock) = RunLock::acquire(dir)? else {
        if quiet {
            tracing::debug!(
                "{}: held by another process; it marks itself {halted}",
                dir.path().display()
            );
        } else {
            tracing::warn!(
                "{}: held by another process; not marked {halted}",
                dir.path().display()
            );
        }
        return Ok(());
    };
    // read again under the lock: the run may have changed since
    if let Some(mut manifest) = unmarked(dir) {
        manifest.halted = Some(halted);
        dir.write_manifest(&manifest)?;
    }
    Ok(())
}

/// The report of a run this invocation did not train (its rung was decided earlier, or it
/// waits at it already), read back.
pub(super) fn report_from_disk(dir: &RunDir, index: usize) -> RunReport {
    let manifest = dir.read_manifest().ok();
    let rows = manifest
        .as_ref()
        .and_then(|m| schema::read_epochs(&dir.metrics(), &m.classes).ok())
        .unwrap_or_default();
    let (run_id, swept, status, halted) = match &manifest {
        Some(m) => (m.run_id.clone(), m.swept.clone(), m.status, m.halted),
        None => (String::from("-"), Vec::new(), Status::Paused, None),
    };
    RunReport {
        best: schema::best_epoch(&rows).cloned(),
        last: rows.last().cloned(),
        reused: true,
        halted,
        ..RunReport::new(index, run_id, dir.path().to_path_buf(), swept, status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_through_a_rung_paused_there_or_ended() {
        assert!(through(Status::Paused, 3, 3));
        assert!(!through(Status::Paused, 1, 3), "paused at an earlier rung");
        for ended in [Status::Done, Status::Diverged, Status::Failed] {
            assert!(through(ended, 0, 3));
        }
        for open in [Status::Running, Status::Interrupted] {
            assert!(!through(open, 3, 3));
        }
    }
}
