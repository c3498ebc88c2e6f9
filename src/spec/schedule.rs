//! `[schedule]` (learning-rate schedules) and `[early_stopping]`: their layer types, resolved
//! types and checks. Kept apart from the other tables so that each owns one concept.

use serde::{Deserialize, Serialize};

use super::error::SpecError;
use super::raw::Update;
use super::validate::Checker;

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
pub struct RawSchedule {
    pub kind: Option<ScheduleKind>,
    pub warmup_epochs: Option<u32>,
    pub step_size: Option<u32>,
    pub gamma: Option<f64>,
    pub min_lr: Option<f64>,
    pub metric: Option<Metric>,
    pub patience: Option<u32>,
    pub factor: Option<f64>,
}

impl Update for RawSchedule {
    fn update(&mut self, o: Self) {
        macro_rules! take { ($($f:ident),*) => { $(if o.$f.is_some() { self.$f = o.$f; })* } }
        take!(
            kind,
            warmup_epochs,
            step_size,
            gamma,
            min_lr,
            metric,
            patience,
            factor
        );
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEarlyStopping {
    pub metric: Option<Metric>,
    pub patience: Option<u32>,
    pub min_delta: Option<f64>,
    pub restore_best: Option<bool>,
}

impl Update for RawEarlyStopping {
    fn update(&mut self, o: Self) {
        macro_rules! take { ($($f:ident),*) => { $(if o.$f.is_some() { self.$f = o.$f; })* } }
        take!(metric, patience, min_delta, restore_best);
    }
}

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

impl Checker<'_> {
    pub(super) fn schedule(&mut self, spec: &super::RunSpec) {
        let s = &spec.schedule;
        let lr = spec.optimizer.lr;
        if s.warmup_epochs >= spec.train.epochs && s.warmup_epochs > 0 {
            let note = self.where_set("train.epochs");
            self.errors.push(
                self.invalid(
                    "schedule.warmup_epochs",
                    format!(
                        "expected fewer warmup epochs than train.epochs ({}), found {}",
                        spec.train.epochs, s.warmup_epochs
                    ),
                )
                .note(note),
            );
        }
        match s.kind {
            ScheduleKind::Constant => {}
            ScheduleKind::Step => {
                if s.step_size < 1 {
                    self.errors.push(self.invalid(
                        "schedule.step_size",
                        "expected at least 1, found 0".to_owned(),
                    ));
                }
                if !(s.gamma > 0.0 && s.gamma <= 1.0) {
                    self.errors.push(self.invalid(
                        "schedule.gamma",
                        format!("expected a number in (0, 1], found {}", s.gamma),
                    ));
                }
            }
            ScheduleKind::Cosine | ScheduleKind::Plateau => {
                if !(s.min_lr >= 0.0 && s.min_lr < lr) {
                    let note = self.where_set("optimizer.lr");
                    self.errors.push(
                        self.invalid(
                            "schedule.min_lr",
                            format!(
                                "expected a number >= 0 and below optimizer.lr ({lr}), found {}",
                                s.min_lr
                            ),
                        )
                        .note(note),
                    );
                }
                if s.kind == ScheduleKind::Plateau && !(s.factor > 0.0 && s.factor < 1.0) {
                    // torch: "Factor should be < 1.0."
                    self.errors.push(self.invalid(
                        "schedule.factor",
                        format!("expected a number in (0, 1), found {}", s.factor),
                    ));
                }
            }
        }
        // Keys the chosen kind ignores: likely a mistake when changed from the default.
        let d = &super::default_spec().schedule;
        let unused: &[(&str, bool)] = match s.kind {
            ScheduleKind::Constant => &[
                ("schedule.step_size", s.step_size != d.step_size),
                ("schedule.gamma", s.gamma != d.gamma),
                ("schedule.min_lr", s.min_lr != d.min_lr),
                ("schedule.metric", s.metric != d.metric),
                ("schedule.patience", s.patience != d.patience),
                ("schedule.factor", s.factor != d.factor),
            ],
            ScheduleKind::Step => &[
                ("schedule.min_lr", s.min_lr != d.min_lr),
                ("schedule.metric", s.metric != d.metric),
                ("schedule.patience", s.patience != d.patience),
                ("schedule.factor", s.factor != d.factor),
            ],
            ScheduleKind::Cosine => &[
                ("schedule.step_size", s.step_size != d.step_size),
                ("schedule.gamma", s.gamma != d.gamma),
                ("schedule.metric", s.metric != d.metric),
                ("schedule.patience", s.patience != d.patience),
                ("schedule.factor", s.factor != d.factor),
            ],
            ScheduleKind::Plateau => &[
                ("schedule.step_size", s.step_size != d.step_size),
                ("schedule.gamma", s.gamma != d.gamma),
            ],
        };
        for &(key, changed) in unused {
            if changed {
                let label = format!("ignored by schedule {}", super::validate::quoted(s.kind));
                self.warnings
                    .push(self.warning(key, format!("`{key}` has no effect"), label));
            }
        }
    }

    pub(super) fn early_stopping(&mut self, spec: &super::RunSpec) {
        let e = &spec.early_stopping;
        if !(e.min_delta >= 0.0 && e.min_delta.is_finite()) {
            self.errors.push(self.invalid(
                "early_stopping.min_delta",
                format!("expected a number >= 0, found {}", e.min_delta),
            ));
        }
        if e.patience >= spec.train.epochs && e.patience > 0 {
            let note = self.where_set("train.epochs");
            self.warnings.push(
                self.warning(
                    "early_stopping.patience",
                    "early stopping can never trigger".to_owned(),
                    format!(
                        "a patience of {} epochs is not below train.epochs ({})",
                        e.patience, spec.train.epochs
                    ),
                )
                .note(note),
            );
        }
    }
}
