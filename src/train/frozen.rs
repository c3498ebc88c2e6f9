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
        in_blocks(name, &self.0)
    }
}

/// Whether a dotted tensor or layer name (`layer1.0.conv1.weight`) lies in one of `blocks`
/// (`layer1`): equal to a block name or below it. `_blocks.1` does not hold `_blocks.10.…`.
pub fn in_blocks<S: AsRef<str>>(name: &str, blocks: &[S]) -> bool {
    blocks
        .iter()
        .map(AsRef::as_ref)
        .any(|b| name == b || (name.starts_with(b) && name.as_bytes().get(b.len()) == Some(&b'.')))
}
