//! Partly frozen backbones (`backbone.freeze = "until:<block>"`): which top-level blocks a
//! freeze covers, and which tensors and layers lie in them.

use super::Arch;
#[cfg(test)]
use crate::train::in_blocks;

/// How many leading top-level blocks `until:<block>` freezes ([`Arch::frozen_blocks`]), or an
/// error naming the valid blocks.
pub(crate) fn frozen_prefix(arch: Arch, until: &str) -> Result<usize, String> {
    arch.frozen_blocks(until)
        .ok_or_else(|| not_a_block(arch.name(), arch.blocks(), until))
}

/// Why `until` cannot end a frozen prefix of a backbone with these `blocks` (head last): it is
/// the head (nothing would be left to train) or no block at all.
pub(crate) fn not_a_block(arch: &str, blocks: &[&str], until: &str) -> String {
    let (head, body) = blocks.split_last().expect("a backbone has blocks");
    if until == *head {
        format!("`{until}` is the head of {arch}: freezing it leaves nothing to train (use freeze = true to train only the head)")
    } else {
        format!(
            "unknown block `{until}` for {arch} (expected one of {})",
            body.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_and_membership() {
        assert_eq!(frozen_prefix(Arch::ResNet18, "layer3"), Ok(5));
        assert_eq!(frozen_prefix(Arch::ResNet18, "conv1"), Ok(1));
        assert_eq!(
            frozen_prefix(Arch::ResNet18, "layer5").unwrap_err(),
            "unknown block `layer5` for resnet18 (expected one of conv1, bn1, layer1, layer2, layer3, layer4)"
        );
        assert!(frozen_prefix(Arch::ResNet18, "fc")
            .unwrap_err()
            .contains("is the head"));
        let lite = Arch::EfficientNetLite0.blocks();
        assert!(in_blocks("_blocks.1._bn0.scale", &lite[..4]));
        assert!(!in_blocks("_blocks.10._bn0.scale", &lite[..4]));
        assert!(in_blocks("conv1", &["conv1"]) && !in_blocks("conv10.weight", &["conv1"]));
    }
}
