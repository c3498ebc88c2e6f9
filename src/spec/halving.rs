//! `[sweep.halving]`: successive halving over epochs. Every point of the sweep trains to
//! `min_epochs`; then only the best 1/`reduction_factor` of them by `metric` go on, to
//! `min_epochs · reduction_factor`, and so on up to `train.epochs`.
//!
//! The halving settings belong to the sweep, not to a run: a point trained to the end under
//! halving is the same run (the same id, the same numbers) as without it, so nothing here
//! reaches the canonical text a run id hashes. Checked against the sweep in `halving_check`.

use serde::{Deserialize, Serialize};

use super::update::{update_leaves, Update};

/// The per-epoch metric that ranks the points at a rung (a column of `metrics.parquet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HalvingMetric {
    ValLoss,
    ValAcc,
    TrainLoss,
    TrainAcc,
}

impl HalvingMetric {
    /// Its column name in `metrics.parquet`.
    pub fn name(self) -> &'static str {
        match self {
            HalvingMetric::ValLoss => "val_loss",
            HalvingMetric::ValAcc => "val_acc",
            HalvingMetric::TrainLoss => "train_loss",
            HalvingMetric::TrainAcc => "train_acc",
        }
    }

    /// A loss is better lower, an accuracy higher.
    pub(super) fn natural_goal(self) -> Goal {
        match self {
            HalvingMetric::ValLoss | HalvingMetric::TrainLoss => Goal::Min,
            HalvingMetric::ValAcc | HalvingMetric::TrainAcc => Goal::Max,
        }
    }
}

/// Which end of the metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    Min,
    Max,
}

/// `goal` as written: `"auto"` takes the metric's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum RawGoal {
    Auto,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HalvingMode {
    /// A rung is decided once every point reached it.
    Sync,
    /// ASHA: a point is promoted as soon as it ranks in the top of what its rung has seen.
    Async,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHalving {
    pub min_epochs: Option<u32>,
    pub metric: Option<HalvingMetric>,
    pub goal: Option<RawGoal>,
    pub reduction_factor: Option<u32>,
    pub mode: Option<HalvingMode>,
}
update_leaves!(RawHalving {
    min_epochs,
    metric,
    goal,
    reduction_factor,
    mode
});

/// Successive halving, resolved and checked against the sweep it prunes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Halving {
    pub metric: HalvingMetric,
    pub goal: Goal,
    /// Epochs every point trains before the first decision (the grace period).
    pub min_epochs: u32,
    pub reduction_factor: u32,
    pub mode: HalvingMode,
    /// `train.epochs`, the same for every point: where the last promoted points end.
    pub epochs: u32,
}

impl Halving {
    /// The epochs at which a decision is taken: `min_epochs · rf^k` below `train.epochs`.
    pub fn rungs(&self) -> Vec<u32> {
        let mut rungs = Vec::new();
        let mut epoch = self.min_epochs;
        while epoch < self.epochs {
            rungs.push(epoch);
            if self.reduction_factor < 2 {
                break; // refused by `resolve`; no endless list meanwhile
            }
            epoch = epoch.saturating_mul(self.reduction_factor);
        }
        rungs
    }

    /// How many of `alive` points a rung promotes: the top 1/rf, at least one.
    pub fn promoted_count(&self, alive: usize) -> usize {
        (alive / self.reduction_factor as usize).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn halving(min_epochs: u32, rf: u32, epochs: u32) -> Halving {
        Halving {
            metric: HalvingMetric::ValLoss,
            goal: Goal::Min,
            min_epochs,
            reduction_factor: rf,
            mode: HalvingMode::Sync,
            epochs,
        }
    }

    #[test]
    fn rungs_grow_by_the_factor_below_the_last_epoch() {
        assert_eq!(halving(1, 3, 9).rungs(), vec![1, 3]);
        assert_eq!(halving(1, 3, 10).rungs(), vec![1, 3, 9]);
        assert_eq!(halving(2, 2, 9).rungs(), vec![2, 4, 8]);
        assert_eq!(halving(5, 3, 6).rungs(), vec![5]);
    }

    #[test]
    fn a_rung_keeps_a_share_of_at_least_one() {
        let h = halving(1, 3, 9);
        assert_eq!(h.promoted_count(27), 9);
        assert_eq!(h.promoted_count(10), 3);
        assert_eq!(h.promoted_count(2), 1);
        assert_eq!(h.promoted_count(1), 1);
    }

    #[test]
    fn goal_defaults_from_the_metric() {
        assert_eq!(HalvingMetric::ValLoss.natural_goal(), Goal::Min);
        assert_eq!(HalvingMetric::ValAcc.natural_goal(), Goal::Max);
    }
}
