//! Learning-rate schedules stepped once per epoch, with `torch.optim.lr_scheduler`'s numbers:
//! StepLR, CosineAnnealingLR and ReduceLROnPlateau (threshold 1e-4 relative, no cooldown, eps
//! 1e-8: torch's defaults), each after an optional linear warmup (epoch e ≤ W at lr·e/W).
//!
//! The rate of an epoch is a pure function of the epoch and [`ScheduleState`]; only plateau has
//! state (it depends on the metrics seen), which the checkpoint keeps so a resumed run continues
//! the same curve.

use serde::{Deserialize, Serialize};

/// torch's ReduceLROnPlateau defaults that the spec does not expose.
const PLATEAU_THRESHOLD: f64 = 1e-4;
const PLATEAU_EPS: f64 = 1e-8;

#[derive(Debug, Clone, PartialEq)]
pub enum LrKind {
    Constant,
    Step {
        step_size: usize,
        gamma: f64,
    },
    /// Annealed over the epochs after warmup.
    Cosine {
        min_lr: f64,
    },
    Plateau(Plateau),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plateau {
    /// `val_acc`: higher is better; `val_loss`: lower.
    pub maximize: bool,
    pub patience: usize,
    pub factor: f64,
    pub min_lr: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LrSchedule {
    pub base_lr: f64,
    pub warmup_epochs: usize,
    /// Epochs of the run (cosine anneals over those after warmup).
    pub epochs: usize,
    pub kind: LrKind,
}

/// What a schedule remembers between epochs (plateau only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// The current rate once plateau has lowered it.
    pub lr: Option<f64>,
    pub best: Option<f64>,
    pub bad_epochs: usize,
}

impl LrSchedule {
    pub fn constant(lr: f64) -> Self {
        LrSchedule {
            base_lr: lr,
            warmup_epochs: 0,
            epochs: 1,
            kind: LrKind::Constant,
        }
    }

    /// The rate epoch `epoch` (1-based) trains at.
    pub fn lr(&self, epoch: usize, state: &ScheduleState) -> f64 {
        let base = self.base_lr;
        let w = self.warmup_epochs;
        if w > 0 && epoch <= w {
            return base * epoch as f64 / w as f64;
        }
        // epochs since the schedule proper started, from 0
        let k = epoch.saturating_sub(w + 1);
        match &self.kind {
            LrKind::Constant => base,
            LrKind::Step { step_size, gamma } => base * gamma.powi((k / step_size.max(&1)) as i32),
            LrKind::Cosine { min_lr } => {
                let t = self.epochs.saturating_sub(w).max(1) as f64;
                min_lr + (base - min_lr) * (1.0 + (std::f64::consts::PI * k as f64 / t).cos()) / 2.0
            }
            LrKind::Plateau(_) => state.lr.unwrap_or(base),
        }
    }

    /// Tells the schedule how epoch `epoch` ended (after its val pass), as
    /// `ReduceLROnPlateau.step(metric)` does; warmup epochs are not counted.
    pub(crate) fn observe(
        &self,
        epoch: usize,
        val_loss: f64,
        val_acc: f64,
        state: &mut ScheduleState,
    ) {
        let LrKind::Plateau(p) = &self.kind else {
            return;
        };
        if epoch <= self.warmup_epochs {
            return;
        }
        let current = if p.maximize { val_acc } else { val_loss };
        let better = match state.best {
            None => true,
            Some(best) if p.maximize => current > best * (1.0 + PLATEAU_THRESHOLD),
            Some(best) => current < best * (1.0 - PLATEAU_THRESHOLD),
        };
        if better {
            state.best = Some(current);
            state.bad_epochs = 0;
        } else {
            state.bad_epochs += 1;
        }
        if state.bad_epochs > p.patience {
            let old = state.lr.unwrap_or(self.base_lr);
            let new = (old * p.factor).max(p.min_lr);
            if old - new > PLATEAU_EPS {
                state.lr = Some(new);
            }
            state.bad_epochs = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rate of each epoch through the classic loop: train at `lr`, then step the schedule.
    fn curve(s: &LrSchedule, epochs: usize, metrics: Option<&[f64]>) -> Vec<f64> {
        let mut state = ScheduleState::default();
        (1..=epochs)
            .map(|e| {
                let lr = s.lr(e, &state);
                if let Some(m) = metrics {
                    s.observe(e, m[e - 1], m[e - 1], &mut state);
                }
                lr
            })
            .collect()
    }

    fn assert_close(ours: &[f64], torch: &[f64]) {
        assert_eq!(ours.len(), torch.len());
        for (e, (a, b)) in ours.iter().zip(torch).enumerate() {
            assert!(
                (a - b).abs() <= 1e-12 * b.abs().max(1e-12),
                "epoch {}: ours {a}, torch {b}\nours  {ours:?}\ntorch {torch:?}",
                e + 1
            );
        }
    }

    fn schedule(kind: LrKind, warmup: usize, epochs: usize) -> LrSchedule {
        LrSchedule {
            base_lr: 0.1,
            warmup_epochs: warmup,
            epochs,
            kind,
        }
    }

    fn plateau(maximize: bool, patience: usize, factor: f64, min_lr: f64) -> LrKind {
        LrKind::Plateau(Plateau {
            maximize,
            patience,
            factor,
            min_lr,
        })
    }

    #[test]
    fn matches_torch_lr_schedulers() {
        let step = LrKind::Step {
            step_size: 3,
            gamma: 0.5,
        };
        assert_close(&curve(&schedule(step, 0, 10), 10, None), &STEP_3_HALF);
        let cosine = LrKind::Cosine { min_lr: 0.001 };
        assert_close(&curve(&schedule(cosine, 0, 10), 10, None), &COSINE_MIN_1E3);
        let cosine = LrKind::Cosine { min_lr: 0.0 };
        assert_close(&curve(&schedule(cosine, 3, 10), 10, None), &WARMUP3_COSINE);
        let s = schedule(plateau(false, 2, 0.5, 0.02), 0, 14);
        assert_close(&curve(&s, 14, Some(&PLATEAU_LOSS_METRICS)), &PLATEAU_LOSS);
        let s = schedule(plateau(true, 1, 0.1, 0.0), 0, 14);
        assert_close(&curve(&s, 14, Some(&PLATEAU_ACC_METRICS)), &PLATEAU_ACC);
        let s = schedule(plateau(false, 10, 0.1, 0.0), 0, 14);
        assert_close(&curve(&s, 14, Some(&[1.0; 14])), &PLATEAU_DEFAULTS);
    }

    #[test]
    fn warmup_ramps_linearly_then_hands_over() {
        let s = schedule(LrKind::Constant, 4, 6);
        assert_close(&curve(&s, 6, None), &[0.025, 0.05, 0.075, 0.1, 0.1, 0.1]);
        // plateau ignores the warmup epochs' metrics
        let s = schedule(plateau(false, 0, 0.5, 0.0), 2, 5);
        let m = [1.0, 2.0, 3.0, 3.0, 3.0];
        assert_close(&curve(&s, 5, Some(&m)), &[0.05, 0.1, 0.1, 0.1, 0.05]);
    }

    // Printed by tests/golden/torch_reference.py (torch 2.15.0, base lr 0.1).
    const STEP_3_HALF: [f64; 10] = [0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125];
    const COSINE_MIN_1E3: [f64; 10] = [
        0.1,
        0.09757729755661011,
        0.0905463412215599,
        0.07959536998847742,
        0.0657963412215599,
        0.0505,
        0.03520365877844011,
        0.02140463001152259,
        0.010453658778440109,
        0.0034227024433899004,
    ];
    const WARMUP3_COSINE: [f64; 10] = [
        0.03333333333333333,
        0.06666666666666667,
        0.1,
        0.1,
        0.09504844339512096,
        0.08117449009293669,
        0.061126046697815725,
        0.03887395330218429,
        0.018825509907063328,
        0.004951556604879048,
    ];
    const PLATEAU_LOSS_METRICS: [f64; 14] = [
        1.0, 0.9, 0.95, 0.92, 0.91, 0.9, 0.89999, 0.95, 0.7, 0.71, 0.72, 0.73, 0.74, 0.75,
    ];
    const PLATEAU_LOSS: [f64; 14] = [
        0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.02, 0.02,
    ];
    const PLATEAU_ACC_METRICS: [f64; 14] = [
        0.5, 0.6, 0.6, 0.55, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7, 0.7,
    ];
    const PLATEAU_ACC: [f64; 14] = [
        0.1,
        0.1,
        0.1,
        0.1,
        0.010000000000000002,
        0.010000000000000002,
        0.010000000000000002,
        0.010000000000000002,
        0.0010000000000000002,
        0.0010000000000000002,
        0.00010000000000000003,
        0.00010000000000000003,
        1.0000000000000004e-05,
        1.0000000000000004e-05,
    ];
    const PLATEAU_DEFAULTS: [f64; 14] = [
        0.1,
        0.1,
        0.1,
        0.1,
        0.1,
        0.1,
        0.1,
        0.1,
        0.1,
        0.1,
        0.1,
        0.1,
        0.010000000000000002,
        0.010000000000000002,
    ];
}
