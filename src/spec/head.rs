//! The `[head]` table: the classification head as a declared stage (a linear layer, or an MLP
//! with dropout and BatchNorm) and the global pooling between a CNN backbone and it.
//!
//! Kept apart from `raw.rs` / `resolved.rs` so the head's serde layer, resolved type and
//! canonical form live together.

use serde::{Deserialize, Serialize};

use super::error::SpecError;
use super::raw::Update;

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
pub struct RawHead {
    pub replace: Option<bool>,
    pub kind: Option<HeadKind>,
    pub hidden: Option<Vec<usize>>,
    pub activation: Option<Activation>,
    pub dropout: Option<f64>,
    pub batch_norm: Option<bool>,
    pub pool: Option<Pool>,
}

impl Update for RawHead {
    fn update(&mut self, other: Self) {
        macro_rules! take {
            ($($f:ident),*) => { $(if other.$f.is_some() { self.$f = other.$f; })* };
        }
        take!(replace, kind, hidden, activation, dropout, batch_norm, pool);
    }
}

#[derive(Debug, Clone, PartialEq)]
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
    pub fn hidden_widths(&self) -> &[usize] {
        match self.kind {
            HeadKind::Linear => &[],
            HeadKind::Mlp => &self.hidden,
        }
    }
}

/// The canonical form (hashed into run ids) leaves out what does not change the model: the MLP
/// keys of a linear head, and `pool` at its default. A spec written before these keys existed
/// therefore keeps its run id, and two specs that build the same model share one.
impl Serialize for Head {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mlp = self.kind == HeadKind::Mlp;
        let pool = self.pool != Pool::Avg;
        let n = 1 + 5 * mlp as usize + pool as usize;
        let mut t = s.serialize_struct("Head", n)?;
        t.serialize_field("replace", &self.replace)?;
        if mlp {
            t.serialize_field("kind", &self.kind)?;
            t.serialize_field("hidden", &self.hidden)?;
            t.serialize_field("activation", &self.activation)?;
            t.serialize_field("dropout", &self.dropout)?;
            t.serialize_field("batch_norm", &self.batch_norm)?;
        }
        if pool {
            t.serialize_field("pool", &self.pool)?;
        }
        t.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(kind: HeadKind, pool: Pool) -> Head {
        Head {
            replace: true,
            kind,
            hidden: vec![256],
            activation: Activation::Relu,
            dropout: 0.2,
            batch_norm: false,
            pool,
        }
    }

    #[test]
    fn canonical_form_omits_what_does_not_build_anything() {
        let text = |h: &Head| toml::to_string(h).unwrap();
        assert_eq!(text(&head(HeadKind::Linear, Pool::Avg)), "replace = true\n");
        assert_eq!(
            text(&head(HeadKind::Linear, Pool::Max)),
            "replace = true\npool = \"max\"\n"
        );
        assert_eq!(
            text(&head(HeadKind::Mlp, Pool::Avg)),
            "replace = true\nkind = \"mlp\"\nhidden = [256]\nactivation = \"relu\"\ndropout = 0.2\nbatch_norm = false\n"
        );
        assert!(head(HeadKind::Linear, Pool::Avg).hidden_widths().is_empty());
    }
}
