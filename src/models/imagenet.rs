//! The 1000 ImageNet-1k class names by index, for `runner predict` with ImageNet heads.
//! Source: torchvision's `_IMAGENET_CATEGORIES` (BSD-3-Clause, see `LICENSE-imagenet-classes`).

use std::sync::OnceLock;

const RAW: &str = include_str!("imagenet_classes.txt");

fn names() -> &'static [&'static str] {
    static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
    NAMES.get_or_init(|| RAW.lines().collect())
}

/// Number of ImageNet-1k classes.
pub const IMAGENET_CLASSES: usize = 1000;

/// Name of ImageNet class `i` (`"Egyptian cat"` for 285). Panics when `i >= 1000`.
pub fn imagenet_class_name(i: usize) -> &'static str {
    let n = names();
    assert!(
        i < n.len(),
        "ImageNet class index {i} out of range (0..{})",
        n.len()
    );
    n[i]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names() {
        assert_eq!(names().len(), IMAGENET_CLASSES);
        assert_eq!(imagenet_class_name(0), "tench");
        assert_eq!(imagenet_class_name(285), "Egyptian cat");
        assert_eq!(imagenet_class_name(999), "toilet tissue");
    }
}
