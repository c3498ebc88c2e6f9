//! `[schedule]` (learning-rate schedules) and `[early_stopping]`: their layer types and
//! resolved types (their checks are in `validate/schedule.rs`).

use serde::{Deserialize, Serialize};

use super::error::SpecError;
use super::update::{update_leaves, Update};

/// The metric a plateau schedule or early stopping watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Lower is better.
    ValLoss,
    /// Higher is better.
    ValAcc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    Constant,
    Step,
    Cosine,
    Plateau,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    pub kind: Option<ScheduleKind>,
    pub warmup_epochs: Option<u32>,
    pub step_size: Option<u32>,
    pub gamma: Option<f64>,
    pub min_lr: Option<f64>,
    pub metric: Option<Metric>,
    pub patience: Option<u32>,
    pub factor: Option<f64>,
}

update_leaves!(RawSchedule {
    kind,
    warmup_epochs,
    step_size,
    gamma,
    min_lr,
    metric,
    patience,
    factor
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawEarlyStopping {
    pub metric: Option<Metric>,
    pub patience: Option<u32>,
    pub min_delta: Option<f64>,
    pub restore_best: Option<bool>,
}

update_leaves!(RawEarlyStopping {
    metric,
    patience,
    min_delta,
    restore_best
});

/// How the learning rate moves from epoch to epoch (stepped once per epoch, like
/// `torch.optim.lr_scheduler` in the classic loop).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Schedule {
    pub kind: ScheduleKind,
    /// Epoch e ≤ W trains at lr·e/W; the schedule proper starts after them at lr.
    pub warmup_epochs: u32,
    /// `step`: multiply by `gamma` every `step_size` epochs.
    pub step_size: u32,
    pub gamma: f64,
    /// `cosine`: the rate annealed to; `plateau`: the floor.
    pub min_lr: f64,
    /// `plateau`: the metric watched, how many epochs without improvement are tolerated, and
    /// the factor the rate is multiplied by after them.
    pub metric: Metric,
    pub patience: u32,
    pub factor: f64,
}

/// Stop training when a metric stops improving (Keras' EarlyStopping).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EarlyStopping {
    pub metric: Metric,
    /// Epochs without an improvement larger than `min_delta` before stopping; 0 = off.
    pub patience: u32,
    pub min_delta: f64,
    /// The final weights are the best epoch's.
    pub restore_best: bool,
}

fn get<T: Clone>(value: &Option<T>, key: &str) -> Result<T, SpecError> {
    value
        .clone()
        .ok_or_else(|| SpecError::Internal(format!("defaults.toml has no `{key}`")))
}

impl Schedule {
    pub(super) fn from_raw(r: Option<&RawSchedule>) -> Result<Self, SpecError> {
        let r = r.ok_or_else(|| SpecError::Internal("defaults.toml has no [schedule]".into()))?;
        Ok(Schedule {
            kind: get(&r.kind, "schedule.kind")?,
            warmup_epochs: get(&r.warmup_epochs, "schedule.warmup_epochs")?,
            step_size: get(&r.step_size, "schedule.step_size")?,
            gamma: get(&r.gamma, "schedule.gamma")?,
            min_lr: get(&r.min_lr, "schedule.min_lr")?,
            metric: get(&r.metric, "schedule.metric")?,
            patience: get(&r.patience, "schedule.patience")?,
            factor: get(&r.factor, "schedule.factor")?,
        })
    }
}

impl EarlyStopping {
    pub(super) fn from_raw(r: Option<&RawEarlyStopping>) -> Result<Self, SpecError> {
        let r =
            r.ok_or_else(|| SpecError::Internal("defaults.toml has no [early_stopping]".into()))?;
        Ok(EarlyStopping {
            metric: get(&r.metric, "early_stopping.metric")?,
            patience: get(&r.patience, "early_stopping.patience")?,
            min_delta: get(&r.min_delta, "early_stopping.min_delta")?,
            restore_best: get(&r.restore_best, "early_stopping.restore_best")?,
        })
    }
}
