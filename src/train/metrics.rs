//! What the training loop measures each epoch.

/// One epoch's measurements, as the training loop produces them (one row of a run's metrics
/// table, `results::schema` writes and reads it).
#[derive(Debug, Clone, PartialEq)]
pub struct EpochMetrics {
    pub epoch: usize,
    /// Mean cross-entropy over the epoch's training samples (the penalty is not included).
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub val_class_acc: Vec<f64>,
    /// `confusion[true][predicted]` on val.
    pub confusion: Vec<Vec<u64>>,
    /// ‖w‖₂ of the tensors the penalty applies to, after the epoch.
    pub weight_norm: f64,
    pub lr: f64,
    pub epoch_seconds: f64,
    /// Training images per second of the training pass.
    pub images_per_second: f64,
    pub train_samples: usize,
    pub skipped: usize,
}
