//! Tensors that do not train inside a trained model (`backbone.freeze = "until:<block>"`): the
//! optimizer, the weight penalties and the reported weight norm all skip them by name.

/// Top-level blocks (tensor-name prefixes such as `layer1`) whose tensors are frozen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frozen(pub Vec<String>);

impl Frozen {
    /// Nothing frozen.
    pub fn none() -> Self {
        Frozen(Vec::new())
    }

    /// Whether the tensor `name` (`layer1.0.conv1.weight`) lies in a frozen block.
    pub fn holds(&self, name: &str) -> bool {
        crate::models::freeze::in_blocks(name, &self.0)
    }
}
