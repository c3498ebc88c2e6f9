//! The training stage: one generic loop over any [`Net`], whatever its architecture.
//!
//! Compile-time-shaped dfdx models are driven from a runtime spec the way candle's
//! mnist-training does it: the caller matches the spec's model name to a concrete type once and
//! hands it to [`fit`], which is generic over [`Net`].

pub mod checkpoint;
mod clip;
pub mod early_stopping;
mod fit;
mod frozen;
pub mod interrupt;
mod loss;
mod metrics;
mod net;
mod optim;
mod regularize;
pub mod schedule;

pub use clip::clip_grad_norm;
pub use early_stopping::{EarlyStopping, Stopped};
pub use fit::{
    evaluate, fit, BatchSource, Batches, Evaluation, FitConfig, LoopState, Outcome, Phase, Start,
};
pub use frozen::{in_blocks, Frozen};
pub use metrics::EpochMetrics;
pub use net::{Dev, ImageBatch, Inputs, Logits, Net, TrainError};
pub use optim::{OptimizerConfig, OptimizerState};
pub use regularize::{penalised_norm, penalised_norm_except, Penalty, RegularizationKind};
pub use schedule::{LrKind, LrSchedule, Plateau};
