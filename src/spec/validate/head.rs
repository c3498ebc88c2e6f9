//! Checks of the `[head]` table (see `spec::head`).

use super::{quoted, Checker};
use crate::spec::resolved::RunSpec;
use crate::spec::BackboneName;
use crate::spec::{HeadKind, Pool};

/// The widest hidden layer of an MLP head.
pub(super) const MAX_HIDDEN_WIDTH: usize = 65_536;
/// The most weights between an MLP head's hidden layers (2²⁸, 1 GiB as f32, before gradients
/// and optimizer state).
pub(super) const MAX_HIDDEN_WEIGHTS: u64 = 1 << 28;

impl Checker<'_> {
    // Long: one check per `[head]` key, each with its located message.
    pub(super) fn head(&mut self, spec: &RunSpec) {
        let h = &spec.head;
        if !(0.0..1.0).contains(&h.dropout) {
            let mut e = self.invalid(
                "head.dropout",
                format!("expected a probability in [0, 1), found {}", h.dropout),
            );
            if h.dropout >= 1.0 {
                e = e.note("dropout 1 would zero every input of the layer");
            }
            self.errors.push(e);
        }
        let pixels = matches!(spec.backbone.name, BackboneName::Linear | BackboneName::Mlp);
        match h.kind {
            HeadKind::Mlp if h.hidden.is_empty() => self.errors.push(
                self.invalid(
                    "head.hidden",
                    "expected at least one hidden width, found []".to_owned(),
                )
                .help("e.g. hidden = [512], or kind = \"linear\" for no hidden layer"),
            ),
            HeadKind::Mlp => {
                if let Some(i) = h.hidden.iter().position(|w| *w == 0) {
                    self.errors.push(self.invalid(
                        "head.hidden",
                        format!("expected widths >= 1, found 0 at position {}", i + 1),
                    ));
                } else if let Some(i) = h.hidden.iter().position(|w| *w > MAX_HIDDEN_WIDTH) {
                    self.errors.push(self.invalid(
                        "head.hidden",
                        format!(
                            "expected widths of at most {MAX_HIDDEN_WIDTH}, found {} at position {}",
                            h.hidden[i],
                            i + 1
                        ),
                    ));
                } else {
                    let weights: u64 = h.hidden.windows(2).map(|w| w[0] as u64 * w[1] as u64).sum();
                    if weights > MAX_HIDDEN_WEIGHTS {
                        self.errors.push(
                            self.invalid(
                                "head.hidden",
                                format!(
                                    "expected at most {MAX_HIDDEN_WEIGHTS} weights between the hidden layers, found {weights}"
                                ),
                            )
                            .note("each pair of neighbouring widths a, b holds a × b weights"),
                        );
                    }
                }
            }
            HeadKind::Linear => {
                // Settings only an MLP head reads: harmless, but likely a mistake when changed.
                let d = &crate::spec::default_spec().head;
                for (key, changed) in [
                    ("head.hidden", h.hidden != d.hidden),
                    ("head.activation", h.activation != d.activation),
                    ("head.dropout", h.dropout != d.dropout),
                    ("head.batch_norm", h.batch_norm != d.batch_norm),
                ] {
                    if changed && !pixels {
                        let label = "ignored by a linear head".to_owned();
                        self.warnings.push(
                            self.warning(key, format!("`{key}` has no effect"), label)
                                .help("set head.kind = \"mlp\""),
                        );
                    }
                }
            }
        }
        if pixels {
            let d = &crate::spec::default_spec().head;
            for (key, changed) in [
                ("head.kind", h.kind != d.kind),
                ("head.pool", h.pool != Pool::Avg),
            ] {
                if changed {
                    let label = format!(
                        "ignored by backbone {}, which has its own classifier",
                        quoted(spec.backbone.name)
                    );
                    self.warnings
                        .push(self.warning(key, format!("`{key}` has no effect"), label));
                }
            }
        }
    }
}
