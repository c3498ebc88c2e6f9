//! How a run resumes: from its checkpoint when there is a usable one (no newer than the epochs
//! its metrics record), fitting with a checkpoint after every epoch, and the best epoch's
//! weights kept aside and restored under `early_stopping.restore_best`. The run's life
//! (`life.rs`) hands a [`Fitting`] to the model code, which only says what model and batches
//! to fit.

use std::path::Path;

use super::progress::Progress;
use super::record::Recorder;
use crate::durable::StoreError;
use crate::train::{checkpoint, fit, BatchSource, Dev, FitConfig, Net, Outcome, Start, TrainError};

/// Where a run keeps its checkpoint and final weights.
pub(super) struct Paths<'a> {
    pub checkpoint: &'a Path,
    pub model: &'a Path,
    /// The best epoch's weights while training with early stopping and `restore_best`.
    pub best: &'a Path,
    /// The experiment's store of frozen backbones its runs share.
    pub backbones: &'a Path,
}

/// What a run's model is fitted with: the fit config, the progress display, the run's files and
/// its recorder.
pub(super) struct Fitting<'a> {
    pub cfg: &'a FitConfig,
    pub progress: &'a Progress,
    pub paths: &'a Paths<'a>,
    pub rec: &'a mut dyn Recorder,
    /// Pause after this epoch (a successive-halving rung), whatever config is fitted.
    pub pause_after: Option<usize>,
}

impl Fitting<'_> {
    /// Fits `model` on `source`, resuming from the checkpoint when it can; returns the trained
    /// model.
    pub(super) fn fit<M: Net>(
        &mut self,
        dev: &Dev,
        model: M,
        source: &mut dyn BatchSource,
    ) -> Result<(Outcome, M), TrainError> {
        let cfg = self.cfg;
        self.fit_with(cfg, dev, model, source)
    }

    /// [`Fitting::fit`] with another fit config (frozen blocks).
    pub(super) fn fit_with<M: Net>(
        &mut self,
        cfg: &FitConfig,
        dev: &Dev,
        mut model: M,
        source: &mut dyn BatchSource,
    ) -> Result<(Outcome, M), TrainError> {
        let paused;
        let cfg = match self.pause_after {
            Some(epoch) => {
                paused = FitConfig {
                    pause_after: Some(epoch),
                    ..cfg.clone()
                };
                &paused
            }
            None => cfg,
        };
        let (progress, paths) = (self.progress, self.paths);
        let rec = &mut *self.rec;
        let mut start = Start::Fresh;
        if paths.checkpoint.exists() {
            match checkpoint::load(paths.checkpoint, &mut model, &cfg.optimizer) {
                Ok((epoch, optimizer, state)) if epoch <= rec.recorded() => {
                    tracing::info!(
                        "resuming after epoch {epoch} from {}",
                        paths.checkpoint.display()
                    );
                    rec.resumed(epoch);
                    start = Start::Resume {
                        epoch,
                        optimizer,
                        state: Box::new(state),
                    };
                }
                Ok((epoch, _, _)) => tracing::warn!(
                    "checkpoint {} is at epoch {epoch} but only {} epochs are recorded: starting over",
                    paths.checkpoint.display(),
                    rec.recorded()
                ),
                Err(why) => tracing::warn!(
                    "checkpoint {} is unusable ({why}): starting over",
                    paths.checkpoint.display()
                ),
            }
            if matches!(start, Start::Fresh) {
                rec.resumed(0);
            }
        }
        let batches = source.batches(crate::train::Phase::Train, 1).size_hint().0;
        let keep_best = cfg.early_stopping.as_ref().is_some_and(|e| e.restore_best);
        let outcome = fit(
            dev,
            &mut model,
            source,
            cfg,
            start,
            &mut |epoch, batch, loss| progress.batch(epoch, batch, batches, loss),
            &mut |m, model, opt, state| {
                // the epoch's files belong together: a second Ctrl-C waits until they are written
                let _whole = crate::durable::exit_guard::ExitGuard::hold();
                rec.epoch(m)?;
                if keep_best && state.stop.best_epoch == m.epoch {
                    // before the checkpoint that names this epoch the best: a kill between the two
                    // resumes before this epoch, which is trained again to the same weights
                    checkpoint::save_weights(paths.best, model)?;
                }
                checkpoint::save(paths.checkpoint, model, opt, m.epoch, state)
            },
        )?;
        if keep_best && matches!(outcome, Outcome::Done | Outcome::Stopped(_)) {
            checkpoint::load_weights(paths.best, &mut model).map_err(|why| StoreError::Read {
                path: paths.best.to_path_buf(),
                reason: format!("cannot restore the best epoch's weights: {why}"),
            })?;
            tracing::info!("restored the best epoch's weights (early_stopping.restore_best)");
        }
        Ok((outcome, model))
    }
}
