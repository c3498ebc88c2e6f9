//! Early stopping with Keras' EarlyStopping rules: an epoch improves when its metric beats the
//! best so far by more than `min_delta`; after `patience` epochs in a row without one, training
//! stops. The state is in the checkpoint, so a resumed run stops where an uninterrupted one does.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStopping {
    /// The metric's name, for the reason given (`val_loss`, `val_acc`).
    pub metric: &'static str,
    /// Higher is better (`val_acc`).
    pub maximize: bool,
    /// >= 1 (0, "off", is no `EarlyStopping` at all).
    pub patience: usize,
    pub min_delta: f64,
    /// The final weights are the best epoch's.
    pub restore_best: bool,
}

/// Why and where a run stopped early.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stopped {
    /// The last epoch trained.
    pub epoch: usize,
    /// The epoch with the best metric (the weights kept with `restore_best`).
    pub best_epoch: usize,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StopState {
    pub best: Option<f64>,
    pub best_epoch: usize,
    /// Epochs since the last improvement.
    pub wait: usize,
    pub stopped: Option<Stopped>,
}

impl EarlyStopping {
    /// Records how epoch `epoch` ended; sets `state.stopped` when training should stop.
    pub(crate) fn observe(&self, epoch: usize, val_loss: f64, val_acc: f64, state: &mut StopState) {
        let current = if self.maximize { val_acc } else { val_loss };
        let improved = match state.best {
            None => true,
            Some(best) if self.maximize => current - self.min_delta > best,
            Some(best) => current + self.min_delta < best,
        };
        state.wait += 1;
        if improved {
            state.best = Some(current);
            state.best_epoch = epoch;
            state.wait = 0;
            return;
        }
        if state.wait >= self.patience {
            let best = state.best.unwrap_or(current);
            state.stopped = Some(Stopped {
                epoch,
                best_epoch: state.best_epoch,
                reason: format!(
                    "{} did not improve by more than {} for {} epochs (best {best:.4} at epoch {})",
                    self.metric, self.min_delta, self.patience, state.best_epoch
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(es: &EarlyStopping, losses: &[f64]) -> StopState {
        let mut s = StopState::default();
        for (i, &l) in losses.iter().enumerate() {
            es.observe(i + 1, l, 1.0 - l, &mut s);
            if s.stopped.is_some() {
                break;
            }
        }
        s
    }

    #[test]
    fn stops_after_patience_epochs_without_improvement_like_keras() {
        let es = EarlyStopping {
            metric: "val_loss",
            maximize: false,
            patience: 2,
            min_delta: 0.01,
            restore_best: true,
        };
        // epoch 3 improves by less than min_delta: not an improvement
        let s = run(&es, &[1.0, 0.8, 0.795, 0.792, 0.5]);
        let stopped = s.stopped.unwrap();
        assert_eq!((stopped.epoch, stopped.best_epoch), (4, 2));
        assert_eq!(
            stopped.reason,
            "val_loss did not improve by more than 0.01 for 2 epochs (best 0.8000 at epoch 2)"
        );
        // higher is better for val_acc
        let acc = EarlyStopping {
            metric: "val_acc",
            maximize: true,
            min_delta: 0.0,
            ..es
        };
        let s = run(&acc, &[0.5, 0.4, 0.45, 0.3, 0.3]);
        assert_eq!(s.best_epoch, 4);
        assert!(s.stopped.is_none());
    }
}
