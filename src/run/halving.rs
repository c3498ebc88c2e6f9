//! Synchronous successive halving over a sweep: every point trains up to the first rung and
//! pauses there with its checkpoint; once all have, the best 1/rf by the metric at that epoch
//! go on from their checkpoints to the next rung, the others stop; and so on until the last
//! points train to `train.epochs`.
//!
//! One process may train the whole sweep, or many (`--index` tasks of a cluster array) each
//! its own points: a rung is decided by whichever process finds, under the experiment's
//! halving lock, that every point has reached it, and a process whose points wait for others
//! returns and says so; run again, it goes on from there.
//!
//! Decisions are data: each rung's decision is written to the experiment's `halving.json`
//! before any run is stopped or trained on, and a process that finds a rung decided there
//! applies that decision instead of deciding again. Ranking uses only recorded metrics, with
//! ties broken by point number, so the same spec takes the same decisions on any machine and
//! in any order of tasks.

use std::collections::BTreeMap;

mod disk;

use super::{run_sweep, RunOptions, RunReport};
use crate::durable::lock::FileLock;
use crate::durable::StoreError;
use crate::results::halving::{Decisions, HalvingSettings, PointValue, RungDecision};
use crate::results::layout::{ExperimentDir, ResultsRoot, RunDir};
use crate::results::store::{HaltedAt, Status};
use crate::setup::Resolved;
use crate::spec::{Goal, Halving};

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
    /// The point and seed of the run at position `run`.
    fn position(&self, run: usize) -> (usize, usize) {
        let seeds = self.runs.first().map_or(1, Vec::len);
        (run / seeds, run % seeds)
    }

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

/// Where a halving invocation left its points.
pub(crate) struct HalvingOutcome {
    /// One report per run it trained or stopped, in plan order.
    pub reports: Vec<RunReport>,
    /// Its points wait at a rung that other points have not reached yet.
    pub waiting: Option<Waiting>,
}

/// A rung that cannot be decided yet: `reached` of its `points` are there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Waiting {
    pub rung: usize,
    pub epoch: usize,
    pub reached: usize,
    pub points: usize,
}

/// Trains the runs at positions `selected` (the whole sweep, or the points of `--index` /
/// `--shard` tasks) under `halving`, rung by rung: each point up to the next rung its point may
/// reach; a rung decided in the decisions file is applied; an undecided one is decided, once,
/// under the experiment's halving lock, when every point of the sweep has reached it (this
/// process's or others'), and otherwise the points wait there ([`HalvingOutcome::waiting`]).
pub(crate) fn run_halving(
    resolved: &Resolved,
    halving: &Halving,
    opts: &RunOptions,
    selected: &[usize],
) -> Result<HalvingOutcome, HalvingError> {
    let exp = resolved.exp;
    let points = Points::of(resolved)?;
    let experiment = ResultsRoot::new(&opts.results).experiment(&exp.name);
    let path = experiment.halving();
    let settings = settings(halving, &points);
    let mut decisions = read_decisions(&path, &settings)?;
    let mut sweep = Sweep {
        resolved,
        halving,
        opts,
        points: &points,
        selected,
        reports: BTreeMap::new(),
    };
    let mut alive: Vec<usize> = (0..points.runs.len()).collect();
    for (rung, &epoch) in halving.rungs().iter().enumerate() {
        let epoch = epoch as usize;
        let mine = sweep.mine(&alive);
        if mine.is_empty() {
            // this invocation's points were stopped at an earlier rung
            return Ok(sweep.outcome(None));
        }
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
                if !sweep.train_to(rung, epoch, &mine) {
                    tracing::warn!(
                        "halving: rung {rung} not decided: some of this invocation's runs did not reach epoch {epoch}"
                    );
                    return Ok(sweep.outcome(None));
                }
                let _lock = lock_decisions(&experiment)?;
                // another process may have decided the rung while this one trained
                decisions = read_decisions(&path, &settings)?;
                match decisions.rungs.get(rung) {
                    Some(recorded) => {
                        check_recorded(recorded, rung, epoch, &alive, &path)?;
                        recorded.clone()
                    }
                    None => {
                        let reached = sweep.reached(epoch, &alive);
                        if reached < alive.len() {
                            let waiting = Waiting {
                                rung,
                                epoch,
                                reached,
                                points: alive.len(),
                            };
                            return Ok(sweep.outcome(Some(waiting)));
                        }
                        let decision = sweep.decide_rung(rung, epoch, &alive);
                        // recorded before it takes effect: a kill from here on resumes with it
                        decisions.rungs.push(decision.clone());
                        decisions.write(&path)?;
                        tracing::info!(
                            "halving: rung {rung} (epoch {epoch}) decided by this process ({})",
                            crate::durable::lock::this_process()
                        );
                        decision
                    }
                }
            }
        };
        alive = sweep.apply(&decision, &alive)?;
    }
    let selected = sweep.mine(&alive);
    if !selected.is_empty() {
        tracing::info!(
            "halving: training {} point(s) to epoch {}",
            alive.len(),
            halving.epochs
        );
        let last = run_sweep(resolved, &selected, opts);
        sweep.reports.extend(last.into_iter().map(|r| (r.index, r)));
    }
    Ok(sweep.outcome(None))
}

/// The decisions file at `path`, checked against this sweep's settings; empty when none.
fn read_decisions(
    path: &std::path::Path,
    settings: &HalvingSettings,
) -> Result<Decisions, HalvingError> {
    match Decisions::read(path)? {
        Some(found) if &found.settings != settings => Err(HalvingError::Mismatch {
            path: path.display().to_string(),
            why: format!(
                "recorded with other halving settings: {:?}, this sweep has {:?}",
                found.settings, settings
            ),
        }),
        Some(found) => Ok(found),
        None => Ok(Decisions {
            settings: settings.clone(),
            rungs: Vec::new(),
        }),
    }
}

/// Takes the experiment's halving lock, waiting while another process holds it (it decides
/// a rung in well under a second).
fn lock_decisions(experiment: &ExperimentDir) -> Result<FileLock, HalvingError> {
    let path = experiment.halving_lock();
    let io = |source| StoreError::Io {
        path: path.clone(),
        source,
    };
    std::fs::create_dir_all(experiment.path()).map_err(io)?;
    let lock = FileLock::acquire_waiting(&path, |busy| {
        tracing::info!(
            "halving: {} holds {}; this process ({}) waits",
            busy.describe(),
            path.display(),
            crate::durable::lock::this_process()
        );
    })
    .map_err(io)?;
    crate::durable::lock::remove_orphaned_private_files(experiment.path());
    Ok(lock)
}

/// One halving invocation under way: what it trains with, and the latest report of each of
/// its runs.
struct Sweep<'a, 'r> {
    resolved: &'a Resolved<'r>,
    halving: &'a Halving,
    opts: &'a RunOptions,
    points: &'a Points,
    /// The run positions this invocation trains.
    selected: &'a [usize],
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

    fn dirs(&self, point: usize) -> Vec<RunDir> {
        (0..self.points.runs[point].len())
            .map(|s| self.dir(point, s))
            .collect()
    }

    /// This invocation's runs among the points' runs, in plan order.
    fn mine(&self, points: &[usize]) -> Vec<usize> {
        let mut runs = self.points.runs_of(points);
        runs.retain(|r| self.selected.contains(r));
        runs
    }

    fn outcome(self, waiting: Option<Waiting>) -> HalvingOutcome {
        HalvingOutcome {
            reports: self.reports.into_values().collect(),
            waiting,
        }
    }

    /// Trains the runs `mine` up to the rung's epoch (those already paused there are read
    /// back); `false` when some did not get there (interrupted, failed to start, held by
    /// another process).
    fn train_to(&mut self, rung: usize, epoch: usize, mine: &[usize]) -> bool {
        let (waiting, to_train): (Vec<usize>, Vec<usize>) = mine.iter().partition(|&&r| {
            let (p, s) = self.points.position(r);
            disk::waits_at(&self.dir(p, s), epoch)
        });
        for r in waiting {
            let (p, s) = self.points.position(r);
            self.reports
                .insert(r, disk::report_from_disk(&self.dir(p, s), r));
        }
        if to_train.is_empty() {
            return true;
        }
        tracing::info!(
            "halving: rung {rung}: training {} run(s) to epoch {epoch}",
            to_train.len()
        );
        let capped = RunOptions {
            pause_after: Some(epoch),
            ..self.opts.clone()
        };
        let trained = run_sweep(self.resolved, &to_train, &capped);
        let unfinished = trained.len() < to_train.len()
            || trained
                .iter()
                .any(|r| matches!(r.status, Status::Interrupted | Status::Running));
        self.reports
            .extend(trained.into_iter().map(|r| (r.index, r)));
        !unfinished && !crate::train::interrupt::requested()
    }

    /// How many of the `alive` points have every run through the rung at `epoch`: this
    /// invocation's by their reports, the others' by their manifests.
    fn reached(&self, epoch: usize, alive: &[usize]) -> usize {
        alive
            .iter()
            .filter(|&&p| {
                self.points.runs[p]
                    .iter()
                    .enumerate()
                    .all(|(s, r)| match self.reports.get(r) {
                        Some(report) if report.status != Status::Paused => {
                            disk::through(report.status, 0, epoch)
                        }
                        _ => disk::reached(&self.dir(p, s), epoch),
                    })
            })
            .count()
    }

    /// Ranks the `alive` points by what they recorded at the rung's epoch.
    fn decide_rung(&self, rung: usize, epoch: usize, alive: &[usize]) -> RungDecision {
        let values = alive
            .iter()
            .map(|&p| (p, disk::mean_at(&self.dirs(p), self.halving.metric, epoch)))
            .collect();
        decide(self.halving, rung, epoch, values, self.points)
    }

    /// Stops the points the decision does not promote (their manifests marked; this
    /// invocation's reports saying where) and returns the promoted ones, in plan order.
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
                let index = self.points.runs[p][seed];
                let ours = self.selected.contains(&index);
                disk::mark_halted(&dir, halted, !ours)?;
                if !ours {
                    continue;
                }
                let report = self
                    .reports
                    .remove(&index)
                    .unwrap_or_else(|| disk::report_from_disk(&dir, index));
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{HalvingMetric, HalvingMode};

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
