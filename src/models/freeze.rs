//! Partly frozen backbones (`backbone.freeze = "until:<block>"`): which top-level blocks a
//! freeze covers, and which tensors and layers lie in them.

/// How many leading top-level blocks `until:<block>` freezes: `block` and every block before
/// it. `blocks` is a backbone's `BLOCKS` (head last); the head cannot be frozen this way, since
/// nothing would be left to train.
pub fn frozen_prefix(arch: &str, blocks: &[&str], until: &str) -> Result<usize, String> {
    let (head, body) = blocks.split_last().expect("a backbone has blocks");
    if until == *head {
        return Err(format!(
            "`{until}` is the head of {arch}: freezing it leaves nothing to train (use freeze = true to train only the head)"
        ));
    }
    match body.iter().position(|b| *b == until) {
        Some(i) => Ok(i + 1),
        None => Err(format!("unknown block `{until}` for {arch} (expected one of {})", body.join(", "))),
    }
}

/// Whether a dotted tensor or layer name (`layer1.0.conv1.weight`) lies in one of `blocks`
/// (`layer1`): equal to a block name or below it. `_blocks.1` does not hold `_blocks.10.…`.
pub fn in_blocks<S: AsRef<str>>(name: &str, blocks: &[S]) -> bool {
    blocks.iter().map(AsRef::as_ref).any(|b| name == b || (name.starts_with(b) && name.as_bytes().get(b.len()) == Some(&b'.')))
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::Arch;

    #[test]
    fn prefix_and_membership() {
        let blocks = Arch::ResNet18.blocks();
        assert_eq!(frozen_prefix("resnet18", blocks, "layer3"), Ok(5));
        assert_eq!(frozen_prefix("resnet18", blocks, "conv1"), Ok(1));
        assert_eq!(
            frozen_prefix("resnet18", blocks, "layer5").unwrap_err(),
            "unknown block `layer5` for resnet18 (expected one of conv1, bn1, layer1, layer2, layer3, layer4)"
        );
        assert!(frozen_prefix("resnet18", blocks, "fc").unwrap_err().contains("is the head"));
        let lite = Arch::EfficientNetLite0.blocks();
        assert!(in_blocks("_blocks.1._bn0.scale", &lite[..4]));
        assert!(!in_blocks("_blocks.10._bn0.scale", &lite[..4]));
        assert!(in_blocks("conv1", &["conv1"]) && !in_blocks("conv10.weight", &["conv1"]));
    }
}
