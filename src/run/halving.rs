//! Synchronous successive halving over a sweep, in one process: every point trains up to the
//! first rung and pauses there with its checkpoint; once all have, the best 1/rf by the metric
//! at that epoch go on from their checkpoints to the next rung, the others stop; and so on
//! until the last points train to `train.epochs`.
//!
//! Decisions are data: each rung's decision is written to the experiment's `halving.json`
//! before any run is stopped or trained on, and a sweep that finds a rung decided there applies
//! that decision instead of deciding again. Ranking uses only recorded metrics, with ties
//! broken by point number, so the same spec takes the same decisions on any machine.

use std::collections::BTreeMap;

use super::{run_sweep, RunOptions, RunReport};
use crate::durable::StoreError;
use crate::results::halving::{Decisions, HalvingSettings, PointValue, RungDecision};
use crate::results::layout::{ResultsRoot, RunDir};
use crate::results::schema;
use crate::results::store::{HaltedAt, RunLock, Status};
use crate::setup::Resolved;
use crate::spec::{Goal, Halving, HalvingMetric};
use crate::train::EpochMetrics;

/// Why a halving sweep cannot go on (its runs' own failures are in their reports).
#[derive(Debug, thiserror::Error)]
pub(crate) enum HalvingError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The decisions file was written by a sweep with other settings or other points.
    #[error("{path}: {why}\n  = help: the decisions there belong to another sweep: move the file away (or the experiment's results) to start the halving over")]
    Mismatch { path: String, why: String },
    #[error("cannot compute run ids: {0}")]
    RunId(String),
}

/// The points of the sweep: each point's run positions (its seeds), in plan order.
struct Points {
    runs: Vec<Vec<usize>>,
    /// Each point's swept values but the seed, `key=value`, and its run ids.
    params: Vec<String>,
    run_ids: Vec<Vec<String>>,
}

impl Points {
    /// The run positions of these points, in plan order.
    fn runs_of(&self, points: &[usize]) -> Vec<usize> {
        points
            .iter()
            .flat_map(|&p| self.runs[p].iter().copied())
            .collect()
    }

    fn of(resolved: &Resolved) -> Result<Points, HalvingError> {
        let seeds = resolved.exp.sweep.seeds_per_point();
        let total = resolved.runs.len();
        let runs: Vec<Vec<usize>> = (0..total / seeds)
            .map(|p| (p * seeds..(p + 1) * seeds).collect())
            .collect();
        let params = runs
            .iter()
            .map(|r| {
                resolved.runs[r[0]]
                    .planned
                    .swept
                    .iter()
                    .filter(|(k, _)| !(seeds > 1 && k == "experiment.seed"))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect();
        let run_ids = runs
            .iter()
            .map(|r| {
                r.iter()
                    .map(|&i| resolved.runs[i].run_id())
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| HalvingError::RunId(e.to_string()))
            })
            .collect::<Result<_, _>>()?;
        Ok(Points {
            runs,
            params,
            run_ids,
        })
    }
}

/// Trains the sweep under `halving`; returns one report per run of the sweep it trained or
/// stopped, in plan order.
pub(crate) fn run_halving(
    resolved: &Resolved,
    halving: &Halving,
    opts: &RunOptions,
) -> Result<Vec<RunReport>, HalvingError> {
    let exp = resolved.exp;
    let points = Points::of(resolved)?;
    let experiment = ResultsRoot::new(&opts.results).experiment(&exp.name);
    let path = experiment.halving();
    let settings = settings(halving, &points);
    let mut decisions = match Decisions::read(&path)? {
        Some(found) if found.settings != settings => {
            return Err(HalvingError::Mismatch {
                path: path.display().to_string(),
                why: format!(
                    "recorded with other halving settings: {:?}, this sweep has {:?}",
                    found.settings, settings
                ),
            })
        }
        Some(found) => found,
        None => Decisions {
            settings,
            rungs: Vec::new(),
        },
    };
    let mut sweep = Sweep {
        resolved,
        halving,
        opts,
        points: &points,
        reports: BTreeMap::new(),
    };
    let mut alive: Vec<usize> = (0..points.runs.len()).collect();
    for (rung, &epoch) in halving.rungs().iter().enumerate() {
        let epoch = epoch as usize;
        let decision = match decisions.rungs.get(rung) {
            Some(recorded) => {
                check_recorded(recorded, rung, epoch, &alive, &path)?;
                tracing::info!(
                    "halving: rung {rung} (epoch {epoch}) decided earlier, in {}",
                    path.display()
                );
                recorded.clone()
            }
            None => {
                let Some(decision) = sweep.decide_rung(rung, epoch, &alive) else {
                    tracing::warn!(
                        "halving: rung {rung} not decided: some of its runs did not reach epoch {epoch} here"
                    );
                    return Ok(sweep.reports.into_values().collect());
                };
                // recorded before it takes effect: a kill from here on resumes with it
                decisions.rungs.push(decision.clone());
                decisions.write(&path)?;
                decision
            }
        };
        alive = sweep.apply(&decision, &alive)?;
    }
    let selected = points.runs_of(&alive);
    tracing::info!(
        "halving: training {} point(s) to epoch {}",
        alive.len(),
        halving.epochs
    );
    let last = run_sweep(resolved, &selected, opts);
    sweep.reports.extend(last.into_iter().map(|r| (r.index, r)));
    Ok(sweep.reports.into_values().collect())
}

/// One halving sweep under way: what it trains with, and the latest report of each run.
struct Sweep<'a, 'r> {
    resolved: &'a Resolved<'r>,
    halving: &'a Halving,
    opts: &'a RunOptions,
    points: &'a Points,
    reports: BTreeMap<usize, RunReport>,
}

impl Sweep<'_, '_> {
    fn dir(&self, point: usize, seed: usize) -> RunDir {
        RunDir::new(
            &self.opts.results,
            &self.resolved.exp.name,
            &self.points.run_ids[point][seed],
        )
    }

    /// Trains the `alive` points up to the rung's epoch and ranks them there; `None` when some
    /// run did not get there in this invocation (interrupted, failed to start, held elsewhere).
    fn decide_rung(&mut self, rung: usize, epoch: usize, alive: &[usize]) -> Option<RungDecision> {
        let selected = self.points.runs_of(alive);
        tracing::info!(
            "halving: rung {rung}: training {} point(s) to epoch {epoch}",
            alive.len()
        );
        let capped = RunOptions {
            pause_after: Some(epoch),
            ..self.opts.clone()
        };
        let trained = run_sweep(self.resolved, &selected, &capped);
        let unfinished = trained.len() < selected.len()
            || trained
                .iter()
                .any(|r| matches!(r.status, Status::Interrupted | Status::Running));
        self.reports
            .extend(trained.into_iter().map(|r| (r.index, r)));
        if unfinished || crate::train::interrupt::requested() {
            return None;
        }
        let values = alive
            .iter()
            .map(|&p| {
                let dirs: Vec<RunDir> = (0..self.points.runs[p].len())
                    .map(|s| self.dir(p, s))
                    .collect();
                (p, mean_at(&dirs, self.halving.metric, epoch))
            })
            .collect();
        Some(decide(self.halving, rung, epoch, values, self.points))
    }

    /// Stops the points the decision does not promote (their manifests marked, their reports
    /// saying where) and returns the promoted ones, in plan order.
    fn apply(
        &mut self,
        decision: &RungDecision,
        alive: &[usize],
    ) -> Result<Vec<usize>, HalvingError> {
        let (rung, epoch) = (decision.rung, decision.epoch);
        let mut promoted: Vec<usize> = decision.promoted_points().map(|p| p - 1).collect();
        let halted = HaltedAt { rung, epoch };
        for &p in alive.iter().filter(|p| !promoted.contains(p)) {
            for seed in 0..self.points.runs[p].len() {
                let dir = self.dir(p, seed);
                mark_halted(&dir, halted)?;
                let index = self.points.runs[p][seed];
                let report = self
                    .reports
                    .remove(&index)
                    .unwrap_or_else(|| report_from_disk(&dir, index));
                let report = RunReport {
                    halted: Some(halted),
                    ..report
                };
                self.reports.insert(index, report);
            }
        }
        tracing::info!(
            "halving: rung {rung} (epoch {epoch}): {} of {} point(s) go on: {}",
            promoted.len(),
            alive.len(),
            promoted
                .iter()
                .map(|p| (p + 1).to_string())
                .collect::<Vec<_>>()
                .join(", ")
        );
        promoted.sort_unstable();
        Ok(promoted)
    }
}

fn settings(halving: &Halving, points: &Points) -> HalvingSettings {
    HalvingSettings {
        metric: halving.metric.name().to_owned(),
        goal: match halving.goal {
            Goal::Min => "min",
            Goal::Max => "max",
        }
        .to_owned(),
        min_epochs: halving.min_epochs as usize,
        reduction_factor: halving.reduction_factor as usize,
        epochs: halving.epochs as usize,
        points: points.runs.len(),
        seeds_per_point: points.runs.first().map_or(1, Vec::len),
    }
}

/// A recorded decision is for this rung's epoch and the points this sweep brought to it.
fn check_recorded(
    recorded: &RungDecision,
    rung: usize,
    epoch: usize,
    alive: &[usize],
    path: &std::path::Path,
) -> Result<(), HalvingError> {
    let mut ranked: Vec<usize> = recorded.ranking.iter().map(|p| p.point - 1).collect();
    ranked.sort_unstable();
    if recorded.rung != rung || recorded.epoch != epoch || ranked != alive {
        return Err(HalvingError::Mismatch {
            path: path.display().to_string(),
            why: format!(
                "rung {rung} is recorded at epoch {} over points {:?}; this sweep reaches it at epoch {epoch} with points {:?}",
                recorded.epoch,
                ranked.iter().map(|p| p + 1).collect::<Vec<_>>(),
                alive.iter().map(|p| p + 1).collect::<Vec<_>>()
            ),
        });
    }
    Ok(())
}

/// Ranks the points by their value (the goal's end first; no value last; ties by point
/// number) and promotes the top `promoted_count` of those with a value.
fn decide(
    halving: &Halving,
    rung: usize,
    epoch: usize,
    values: Vec<(usize, Option<f64>)>,
    points: &Points,
) -> RungDecision {
    let mut ranked = values;
    ranked.sort_by(|(pa, a), (pb, b)| {
        let by_value = match (a, b) {
            (Some(a), Some(b)) => match halving.goal {
                Goal::Min => a.total_cmp(b),
                Goal::Max => b.total_cmp(a),
            },
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_value.then(pa.cmp(pb))
    });
    let keep = halving.promoted_count(ranked.len());
    let ranking = ranked
        .into_iter()
        .enumerate()
        .map(|(place, (p, value))| PointValue {
            point: p + 1,
            params: points.params[p].clone(),
            runs: points.run_ids[p].clone(),
            value,
            promoted: place < keep && value.is_some(),
        })
        .collect::<Vec<_>>();
    RungDecision {
        rung,
        epoch,
        promoted: ranking.iter().filter(|p| p.promoted).count(),
        ranking,
    }
}

/// The metric at `epoch` averaged over a point's runs; `None` when one has no such epoch.
fn mean_at(dirs: &[RunDir], metric: HalvingMetric, epoch: usize) -> Option<f64> {
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

/// Marks a paused run as stopped at its rung, under the run's lock (a run that another process
/// holds, or that is not paused, is left as it is).
fn mark_halted(dir: &RunDir, halted: HaltedAt) -> Result<(), StoreError> {
    let Some(_lock) = RunLock::acquire(dir)? else {
        tracing::warn!(
            "{}: held by another process; not marked {halted}",
            dir.path().display()
        );
        return Ok(());
    };
    let Ok(mut manifest) = dir.read_manifest() else {
        return Ok(());
    };
    if manifest.status == Status::Paused && manifest.halted != Some(halted) {
        manifest.halted = Some(halted);
        dir.write_manifest(&manifest)?;
    }
    Ok(())
}

/// The report of a run this invocation did not train (its rung was decided earlier), read back.
fn report_from_disk(dir: &RunDir, index: usize) -> RunReport {
    let manifest = dir.read_manifest().ok();
    let rows = manifest
        .as_ref()
        .and_then(|m| schema::read_epochs(&dir.metrics(), &m.classes).ok())
        .unwrap_or_default();
    let (run_id, swept, status) = match &manifest {
        Some(m) => (m.run_id.clone(), m.swept.clone(), m.status),
        None => (String::from("-"), Vec::new(), Status::Paused),
    };
    RunReport {
        best: schema::best_epoch(&rows).cloned(),
        last: rows.last().cloned(),
        reused: true,
        ..RunReport::new(index, run_id, dir.path().to_path_buf(), swept, status)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::HalvingMode;

    fn points(n: usize) -> Points {
        Points {
            runs: (0..n).map(|i| vec![i]).collect(),
            params: (0..n).map(|i| format!("p={i}")).collect(),
            run_ids: (0..n).map(|i| vec![format!("id{i}")]).collect(),
        }
    }

    fn halving(goal: Goal) -> Halving {
        Halving {
            metric: HalvingMetric::ValLoss,
            goal,
            min_epochs: 1,
            reduction_factor: 2,
            mode: HalvingMode::Sync,
            epochs: 4,
        }
    }

    #[test]
    fn the_best_share_goes_on_ties_by_point_number_missing_values_last() {
        let values = vec![(0, Some(0.5)), (1, None), (2, Some(0.3)), (3, Some(0.5))];
        let d = decide(&halving(Goal::Min), 0, 1, values, &points(4));
        let order: Vec<usize> = d.ranking.iter().map(|p| p.point).collect();
        assert_eq!(order, [3, 1, 4, 2]);
        assert_eq!(d.promoted_points().collect::<Vec<_>>(), [3, 1]);
        assert_eq!(d.promoted, 2);
    }

    #[test]
    fn max_goal_ranks_the_highest_first() {
        let values = vec![(0, Some(0.5)), (1, Some(0.9))];
        let d = decide(&halving(Goal::Max), 0, 1, values, &points(2));
        assert_eq!(d.promoted_points().collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_point_without_a_value_is_never_promoted() {
        let values = vec![(0, None), (1, None)];
        let d = decide(&halving(Goal::Min), 0, 1, values, &points(2));
        assert_eq!(d.promoted, 0);
    }
}
