//! The training stage: one generic loop over any [`Net`], whatever its architecture.
//!
//! Compile-time-shaped dfdx models are driven from a runtime spec the way candle's
//! mnist-training does it: the caller matches the spec's model name to a concrete type once and
//! hands it to [`fit`], which is generic over [`Net`].

pub mod checkpoint;
mod fit;
mod frozen;
mod net;
mod optim;
mod regularize;

pub use crate::results::schema::EpochMetrics;
pub use fit::{evaluate, fit, BatchSource, Evaluation, FitConfig, Outcome, Phase, Start};
pub use frozen::{in_blocks, Frozen};
pub use net::{Dev, Inputs, Logits, Net, TrainError};
pub use optim::{OptimizerConfig, OptimizerState};
pub use regularize::{penalised_norm, penalised_norm_except, Penalty, RegularizationKind};
