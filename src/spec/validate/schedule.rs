//! Checks of `[schedule]` and `[early_stopping]` (see `spec::schedule`).

use super::{quoted, Checker};
use crate::spec::resolved::RunSpec;
use crate::spec::schedule::ScheduleKind;

impl Checker<'_> {
    // Long: one check per `[schedule]` key, each with its located message.
    pub(super) fn schedule(&mut self, spec: &RunSpec) {
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
        let d = &crate::spec::default_spec().schedule;
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
                let label = format!("ignored by schedule {}", quoted(s.kind));
                self.warnings
                    .push(self.warning(key, format!("`{key}` has no effect"), label));
            }
        }
    }

    pub(super) fn early_stopping(&mut self, spec: &RunSpec) {
        let e = &spec.early_stopping;
        if e.patience == 0 {
            // patience 0 turns early stopping off: the other keys of the table then do nothing
            let d = &crate::spec::default_spec().early_stopping;
            for (key, changed) in [
                ("early_stopping.metric", e.metric != d.metric),
                ("early_stopping.min_delta", e.min_delta != d.min_delta),
                (
                    "early_stopping.restore_best",
                    e.restore_best != d.restore_best,
                ),
            ] {
                if changed {
                    self.warnings.push(
                        self.warning(
                            key,
                            format!("`{key}` has no effect"),
                            "ignored while early_stopping.patience = 0 (early stopping off)"
                                .to_owned(),
                        )
                        .help("set early_stopping.patience, e.g. 3, to stop after 3 epochs without improvement"),
                    );
                }
            }
        }
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
