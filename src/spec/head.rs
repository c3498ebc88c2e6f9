//! The `[head]` table: the classification head as a declared stage (a linear layer, or an MLP
//! with dropout and BatchNorm) and the global pooling between a CNN backbone and it.
//!
//! Kept apart from `raw.rs` / `resolved.rs` so the head's serde layer, resolved type and
//! canonical form live together.

use serde::{Deserialize, Serialize};

use super::error::SpecError;
use super::update::{update_leaves, Update};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HeadKind {
    /// One `nn.Linear` (features → classes).
    Linear,
    /// Hidden layers `[Dropout, Linear, (BatchNorm1d), activation]` per width, then
    /// `[Dropout, Linear]` to the classes.
    Mlp,
}

pub use crate::nn::head_kinds::{Activation, Pool};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawHead {
    pub replace: Option<bool>,
    pub kind: Option<HeadKind>,
    pub hidden: Option<Vec<usize>>,
    pub activation: Option<Activation>,
    pub dropout: Option<f64>,
    pub batch_norm: Option<bool>,
    pub pool: Option<Pool>,
}

update_leaves!(RawHead {
    replace,
    kind,
    hidden,
    activation,
    dropout,
    batch_norm,
    pool
});

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Head {
    pub replace: bool,
    pub kind: HeadKind,
    /// Widths of the hidden layers (`mlp` only).
    pub hidden: Vec<usize>,
    pub activation: Activation,
    /// Probability of zeroing an input of each linear layer in training (`mlp` only).
    pub dropout: f64,
    /// BatchNorm1d after each hidden linear layer (`mlp` only).
    pub batch_norm: bool,
    pub pool: Pool,
}

impl Head {
    pub(crate) fn from_raw(h: &RawHead) -> Result<Head, SpecError> {
        fn get<T: Clone>(value: &Option<T>, key: &str) -> Result<T, SpecError> {
            value
                .clone()
                .ok_or_else(|| SpecError::Internal(format!("defaults.toml has no `{key}`")))
        }
        Ok(Head {
            replace: get(&h.replace, "head.replace")?,
            kind: get(&h.kind, "head.kind")?,
            hidden: get(&h.hidden, "head.hidden")?,
            activation: get(&h.activation, "head.activation")?,
            dropout: get(&h.dropout, "head.dropout")?,
            batch_norm: get(&h.batch_norm, "head.batch_norm")?,
            pool: get(&h.pool, "head.pool")?,
        })
    }

    /// The hidden widths the model builds: none for a linear head, whatever `hidden` says.
    pub(crate) fn hidden_widths(&self) -> &[usize] {
        match self.kind {
            HeadKind::Linear => &[],
            HeadKind::Mlp => &self.hidden,
        }
    }
}
