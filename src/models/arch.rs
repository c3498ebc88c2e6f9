//! Choosing a backbone by name at run time, and dispatching generic code on it.

use super::{Backbone, EfficientNetLite0, ResNet18, ResNet34, ResNet50, SmallCnn};

/// The architectures a spec can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    ResNet18,
    ResNet34,
    ResNet50,
    EfficientNetLite0,
    SmallCnn,
}

#[derive(Debug, thiserror::Error)]
#[error("unknown architecture `{0}` (expected one of resnet18, resnet34, resnet50, efficientnet_lite0, small_cnn)")]
pub struct UnknownArch(pub String);

/// Generic code to run with the backbone type an [`Arch`] stands for:
/// `arch.dispatch(MyVisitor { .. })` calls `MyVisitor::visit::<ResNet18>()` etc.
pub trait ArchVisitor {
    type Output;
    fn visit<B: Backbone>(self) -> Self::Output;
}

impl Arch {
    pub const ALL: [Arch; 5] = [
        Arch::ResNet18,
        Arch::ResNet34,
        Arch::ResNet50,
        Arch::EfficientNetLite0,
        Arch::SmallCnn,
    ];

    /// Accepts the canonical names and `-`/`_` spelling variants, case-insensitively.
    pub(crate) fn from_name(name: &str) -> Result<Arch, UnknownArch> {
        let n = name.trim().to_ascii_lowercase().replace('-', "_");
        match n.as_str() {
            "resnet18" | "resnet_18" => Ok(Arch::ResNet18),
            "resnet34" | "resnet_34" => Ok(Arch::ResNet34),
            "resnet50" | "resnet_50" => Ok(Arch::ResNet50),
            "efficientnet_lite0" | "efficientnetlite0" => Ok(Arch::EfficientNetLite0),
            "small_cnn" | "smallcnn" => Ok(Arch::SmallCnn),
            _ => Err(UnknownArch(name.to_string())),
        }
    }

    pub(crate) fn dispatch<V: ArchVisitor>(self, v: V) -> V::Output {
        match self {
            Arch::ResNet18 => v.visit::<ResNet18>(),
            Arch::ResNet34 => v.visit::<ResNet34>(),
            Arch::ResNet50 => v.visit::<ResNet50>(),
            Arch::EfficientNetLite0 => v.visit::<EfficientNetLite0>(),
            Arch::SmallCnn => v.visit::<SmallCnn>(),
        }
    }

    pub fn name(self) -> &'static str {
        struct Name;
        impl ArchVisitor for Name {
            type Output = &'static str;
            fn visit<B: Backbone>(self) -> &'static str {
                B::NAME
            }
        }
        self.dispatch(Name)
    }

    /// Width of the pooled features the head sees ([`Backbone::FEATURES`]).
    pub fn features(self) -> usize {
        struct Features;
        impl ArchVisitor for Features {
            type Output = usize;
            fn visit<B: Backbone>(self) -> usize {
                B::FEATURES
            }
        }
        self.dispatch(Features)
    }

    /// Named top-level blocks in forward order, head last.
    pub fn blocks(self) -> &'static [&'static str] {
        struct Blocks;
        impl ArchVisitor for Blocks {
            type Output = &'static [&'static str];
            fn visit<B: Backbone>(self) -> Self::Output {
                B::BLOCKS
            }
        }
        self.dispatch(Blocks)
    }
}

impl Arch {
    /// Leading blocks frozen by `freeze = "until:<block>"` (see [`Backbone::frozen_blocks`]).
    pub fn frozen_blocks(self, until: &str) -> Option<usize> {
        struct Frozen<'a>(&'a str);
        impl ArchVisitor for Frozen<'_> {
            type Output = Option<usize>;
            fn visit<B: Backbone>(self) -> Option<usize> {
                B::frozen_blocks(self.0)
            }
        }
        self.dispatch(Frozen(until))
    }
}

impl std::str::FromStr for Arch {
    type Err = UnknownArch;
    fn from_str(s: &str) -> Result<Arch, UnknownArch> {
        Arch::from_name(s)
    }
}

impl std::fmt::Display for Arch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}
