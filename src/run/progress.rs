//! Progress display: a bar per run on a terminal, one log line per epoch otherwise.

use crate::train::EpochMetrics;

/// A progress bar per run on a terminal; plain log lines per epoch otherwise.
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
    head: String,
}

impl Progress {
    pub(super) fn new(enabled: bool, head: &str, epochs: usize) -> Self {
        let bar = enabled.then(|| {
            let bar = indicatif::ProgressBar::new(epochs as u64);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{prefix} epoch {pos}/{len} {bar:20} {msg} eta {eta}",
                )
                .expect("valid template"),
            );
            bar.set_prefix(head.to_string());
            bar
        });
        Self {
            bar,
            head: head.to_string(),
        }
    }

    /// Called after every training batch with the epoch's running loss.
    pub(crate) fn batch(&self, epoch: usize, batch: usize, batches: usize, loss: f64) {
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "(epoch {epoch}: batch {batch}/{batches}, loss {loss:.4})"
            ));
        }
    }

    pub(super) fn epoch(&self, m: &EpochMetrics, epochs: usize) {
        let line = format!(
            "{} epoch {}/{}: train loss {:.4} acc {:.3} | val loss {:.4} acc {:.3} | ‖w‖ {:.4} | {:.2}s, {:.1} img/s",
            self.head, m.epoch, epochs, m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.weight_norm,
            m.epoch_seconds, m.images_per_second
        );
        match &self.bar {
            Some(bar) => {
                bar.println(line);
                bar.inc(1);
            }
            None => tracing::info!("{line}"),
        }
    }

    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
