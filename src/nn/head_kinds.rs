//! The choices a head's layers take (`head.activation`, `head.pool`): plain values of the
//! modules here, which the spec reads as its key types (so `nn` and `models` never import `spec`).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Activation {
    #[default]
    Relu,
    /// PyTorch's default `nn.GELU()`: the exact x·Φ(x) with erf, not the tanh approximation.
    Gelu,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pool {
    /// `AdaptiveAvgPool2d(1)`.
    #[default]
    Avg,
    /// `AdaptiveMaxPool2d(1)`.
    Max,
}
