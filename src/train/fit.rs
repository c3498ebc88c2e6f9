//! The training loop: per epoch one full pass over train, then one over val in eval mode.

use std::time::Instant;

use dfdx::prelude::*;

use serde::{Deserialize, Serialize};

use super::early_stopping::{EarlyStopping, StopState, Stopped};
use super::metrics::EpochMetrics;
use super::schedule::{LrSchedule, ScheduleState};
use super::{
    clip, loss, penalised_norm_except, Dev, Frozen, Inputs, Net, OptimizerConfig, OptimizerState,
    Penalty, TrainError,
};

/// A phase's batches: inputs and their labels.
pub type Batches<'a> = Box<dyn Iterator<Item = Result<(Inputs, Vec<usize>), TrainError>> + 'a>;

/// Where a run's batches come from: images through the transforms, or cached features.
pub trait BatchSource {
    /// The training batches of `epoch` (1-based) with their labels, shuffled and augmented
    /// from the run's seed.
    fn batches(&mut self, phase: Phase, epoch: usize) -> Batches<'_>;

    /// Images left out (undecodable and skipped by policy) since the last call.
    fn take_skipped(&mut self) -> usize {
        0
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Train,
    Val,
}

#[derive(Debug, Clone)]
pub struct FitConfig {
    pub epochs: usize,
    pub optimizer: OptimizerConfig,
    pub regularization: Penalty,
    pub num_classes: usize,
    /// Blocks of the model that do not train (`backbone.freeze = "until:<block>"`): no update,
    /// no penalty, not in the weight norm.
    pub frozen: Frozen,
    /// The rate of each epoch (base rate: the optimizer's).
    pub schedule: LrSchedule,
    /// `None` = train every epoch.
    pub early_stopping: Option<EarlyStopping>,
    /// ε of the training target (1 − ε)·one-hot + ε/K; 0 = plain one-hot.
    pub label_smoothing: f64,
    /// Clip the global gradient norm to this; 0 = off.
    pub grad_clip_norm: f64,
    /// Stop after this epoch, its checkpoint written, to go on later exactly where it left off
    /// (a successive-halving rung); `None` = train to `epochs`. The schedule still spans
    /// `epochs`, so the epochs before the pause are those of the whole run.
    pub pause_after: Option<usize>,
}

/// What the loop carries from epoch to epoch besides the model and optimizer, checkpointed with
/// them so a resumed run goes on exactly as an uninterrupted one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LoopState {
    pub schedule: ScheduleState,
    pub stop: StopState,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done,
    /// The loss became NaN or infinite during this epoch; it was not recorded.
    Diverged {
        epoch: usize,
    },
    /// Ctrl-C during this epoch: stopped after a batch; the epoch was not recorded, and the
    /// checkpoint of the one before stays (resuming there repeats the same batches exactly).
    Interrupted {
        epoch: usize,
    },
    /// Early stopping ended training (a finished run, like `Done`).
    Stopped(Stopped),
    /// Trained up to `FitConfig::pause_after`, this epoch recorded and checkpointed; the run
    /// goes on from there when it resumes.
    Paused {
        epoch: usize,
    },
}

/// Where training starts: a new run, or a checkpoint's completed epoch and optimizer state
/// (the model's weights already restored).
#[derive(Debug, Clone)]
pub enum Start {
    Fresh,
    Resume {
        epoch: usize,
        optimizer: OptimizerState,
        state: Box<LoopState>,
    },
}

/// What [`fit`] calls after each epoch: metrics, model, optimizer and loop state, to record and
/// checkpoint them.
pub(super) type OnEpoch<'a, M> =
    dyn FnMut(&EpochMetrics, &M, &OptimizerState, &LoopState) -> Result<(), TrainError> + 'a;

/// Trains `model` up to `cfg.epochs` (or until early stopping), calling `on_epoch` with each
/// epoch's metrics, the model, the optimizer and the loop state as soon as the epoch ends (to
/// record and checkpoint), and `on_batch` with (epoch, batch, running loss) for progress display.
// Long: the training loop itself (resume state, epochs, batches, evaluation, schedules, early
// stopping), read top to bottom.
pub fn fit<M: Net>(
    dev: &Dev,
    model: &mut M,
    source: &mut dyn BatchSource,
    cfg: &FitConfig,
    start: Start,
    on_batch: &mut dyn FnMut(usize, usize, f64),
    on_epoch: &mut OnEpoch<'_, M>,
) -> Result<Outcome, TrainError> {
    let (first_epoch, mut opt, mut state) = match start {
        Start::Fresh => (
            1,
            OptimizerState::new(cfg.optimizer.clone()),
            LoopState::default(),
        ),
        Start::Resume {
            epoch,
            optimizer,
            state,
        } => (epoch + 1, optimizer, *state),
    };
    if let Some(stopped) = &state.stop.stopped {
        // killed after the stopping epoch was checkpointed, before the run was marked done
        return Ok(Outcome::Stopped(stopped.clone()));
    }
    if cfg
        .pause_after
        .is_some_and(|p| first_epoch > p && p < cfg.epochs)
    {
        // resumed at or past the pause: nothing to train now
        return Ok(Outcome::Paused {
            epoch: first_epoch - 1,
        });
    }
    for epoch in first_epoch..=cfg.epochs {
        let lr = cfg.schedule.lr(epoch, &state.schedule);
        opt.lr = lr;
        let start = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0f64, 0usize, 0usize);
        for (i, batch) in source.batches(Phase::Train, epoch).enumerate() {
            let (x, labels) = batch?;
            if labels.is_empty() {
                continue;
            }
            let n = labels.len();
            model.begin_batch(epoch, i);
            let logits = model.logits_train(dev, x, model.alloc_grads())?;
            correct += count_correct(&logits.as_vec(), &labels, cfg.num_classes);
            let target = loss::targets(dev, &labels, cfg.num_classes, cfg.label_smoothing);
            let loss = cross_entropy_with_logits_loss(logits, target);
            let loss_value = loss.array() as f64;
            if !loss_value.is_finite() {
                return Ok(Outcome::Diverged { epoch });
            }
            let mut grads = loss.backward();
            if cfg.grad_clip_norm > 0.0 {
                cfg.regularization
                    .add_gradients_except(model, &mut grads, &cfg.frozen);
                // after the penalty's gradient: the penalty is part of the loss
                clip::clip_grad_norm(model, &mut grads, &cfg.frozen, cfg.grad_clip_norm);
                cfg.regularization.decay_except(model, lr, &cfg.frozen);
                opt.update_except(model, &mut grads, &cfg.frozen);
            } else {
                // the same arithmetic, one pass over the weights
                opt.update_with_penalty(model, &mut grads, &cfg.frozen, &cfg.regularization);
            }
            loss_sum += loss_value * n as f64;
            seen += n;
            on_batch(epoch, i + 1, loss_sum / seen as f64);
            crate::fault::point("after-batch");
            if crate::train::interrupt::requested() {
                return Ok(Outcome::Interrupted { epoch });
            }
        }
        let train_seconds = start.elapsed().as_secs_f64();
        let val = evaluate(dev, model, source, cfg.num_classes)?;
        if !val.loss.is_finite() {
            return Ok(Outcome::Diverged { epoch });
        }
        let metrics = EpochMetrics {
            epoch,
            train_loss: loss_sum / seen.max(1) as f64,
            train_acc: correct as f64 / seen.max(1) as f64,
            val_loss: val.loss,
            val_acc: val.acc,
            val_class_acc: val.class_acc(),
            confusion: val.confusion,
            weight_norm: penalised_norm_except(model, cfg.regularization.apply_to_all, &cfg.frozen),
            lr,
            epoch_seconds: start.elapsed().as_secs_f64(),
            images_per_second: seen as f64 / train_seconds.max(1e-9),
            train_samples: seen,
            skipped: source.take_skipped(),
        };
        cfg.schedule
            .observe(epoch, val.loss, val.acc, &mut state.schedule);
        if let Some(es) = &cfg.early_stopping {
            es.observe(epoch, val.loss, val.acc, &mut state.stop);
        }
        on_epoch(&metrics, model, &opt, &state)?;
        if let Some(stopped) = &state.stop.stopped {
            return Ok(Outcome::Stopped(stopped.clone()));
        }
        if cfg.pause_after == Some(epoch) && epoch < cfg.epochs {
            return Ok(Outcome::Paused { epoch });
        }
    }
    Ok(Outcome::Done)
}

/// Loss, accuracy and confusion matrix of a pass over val in eval mode.
pub struct Evaluation {
    pub loss: f64,
    pub acc: f64,
    pub confusion: Vec<Vec<u64>>,
}

impl Evaluation {
    pub(crate) fn class_acc(&self) -> Vec<f64> {
        self.confusion
            .iter()
            .enumerate()
            .map(|(c, row)| row[c] as f64 / row.iter().sum::<u64>().max(1) as f64)
            .collect()
    }
}

pub fn evaluate<M: Net>(
    dev: &Dev,
    model: &M,
    source: &mut dyn BatchSource,
    classes: usize,
) -> Result<Evaluation, TrainError> {
    let mut confusion = vec![vec![0u64; classes]; classes];
    let (mut loss_sum, mut n) = (0.0f64, 0usize);
    for batch in source.batches(Phase::Val, 0) {
        let (x, labels) = batch?;
        if labels.is_empty() {
            continue;
        }
        let logits = model.logits(dev, x)?.as_vec();
        for (row, &y) in logits.chunks(classes).zip(&labels) {
            // cross-entropy in f64 from the log-sum-exp of the row
            let max = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max) as f64;
            let lse = max
                + row
                    .iter()
                    .map(|&v| (v as f64 - max).exp())
                    .sum::<f64>()
                    .ln();
            loss_sum += lse - row[y] as f64;
            confusion[y][argmax(row)] += 1;
            n += 1;
        }
    }
    let correct: u64 = (0..classes).map(|c| confusion[c][c]).sum();
    Ok(Evaluation {
        loss: loss_sum / n.max(1) as f64,
        acc: correct as f64 / n.max(1) as f64,
        confusion,
    })
}

fn argmax(row: &[f32]) -> usize {
    let mut best = 0;
    for (i, v) in row.iter().enumerate() {
        if *v > row[best] {
            best = i;
        }
    }
    best
}

fn count_correct(logits: &[f32], labels: &[usize], classes: usize) -> usize {
    logits
        .chunks(classes)
        .zip(labels)
        .filter(|(row, &y)| argmax(row) == y)
        .count()
}
