//! The spec's value types: the enums a key takes (`backbone.name`, `optimizer.kind`, …), shared
//! by the strict serde layer (`raw.rs`) and the resolved run (`resolved.rs`), so neither imports
//! the other for them.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackboneName {
    Linear,
    Mlp,
    SmallCnn,
    Resnet18,
    Resnet34,
    Resnet50,
    EfficientnetLite0,
}

impl BackboneName {
    /// The convolutional architecture this names; `None` for the pixel models (linear, mlp).
    pub fn arch(self) -> Option<crate::models::Arch> {
        use crate::models::Arch;
        match self {
            BackboneName::Linear | BackboneName::Mlp => None,
            BackboneName::SmallCnn => Some(Arch::SmallCnn),
            BackboneName::Resnet18 => Some(Arch::ResNet18),
            BackboneName::Resnet34 => Some(Arch::ResNet34),
            BackboneName::Resnet50 => Some(Arch::ResNet50),
            BackboneName::EfficientnetLite0 => Some(Arch::EfficientNetLite0),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LossKind {
    CrossEntropy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    Sgd,
    Adam,
    /// Adam with decoupled weight decay (`regularization.kind = "decoupled"`).
    Adamw,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegularizationKind {
    None,
    /// λ‖w‖² added to the loss: the gradient gains 2λw.
    L2,
    /// λ‖w‖₁ added to the loss.
    L1,
    /// w ← w − lr·λ·w after each step.
    Decoupled,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApplyTo {
    /// Conv and linear weights; not biases, not BatchNorm.
    Weights,
    /// Every trainable tensor.
    All,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnBadImage {
    Error,
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    Cpu,
    Cuda,
}

/// What the convolutions compute in, named as Lightning's `precision` names it: `"32"` (f32
/// throughout) or `"bf16-mixed"` (convolutions read bf16 inputs and weights and accumulate in
/// f32; master weights, BatchNorm, the loss and the optimizer stay f32).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    #[default]
    Full,
    Bf16Mixed,
}

impl Precision {
    pub fn as_str(self) -> &'static str {
        match self {
            Precision::Full => "32",
            Precision::Bf16Mixed => "bf16-mixed",
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Precision {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Precision {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct PrecisionVisitor;
        impl serde::de::Visitor<'_> for PrecisionVisitor {
            type Value = Precision;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("\"32\" or \"bf16-mixed\"")
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Precision, E> {
                match v {
                    32 => Ok(Precision::Full),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Signed(v), &self)),
                }
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Precision, E> {
                match v {
                    "32" | "32-true" => Ok(Precision::Full),
                    "bf16-mixed" => Ok(Precision::Bf16Mixed),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(PrecisionVisitor)
    }
}

/// Which part of the backbone is frozen. Written `false`, `true` or `"until:<block>"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Freeze {
    No,
    All,
    /// Frozen up to and including the named block.
    Until(String),
}

impl Serialize for Freeze {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Freeze::No => s.serialize_bool(false),
            Freeze::All => s.serialize_bool(true),
            Freeze::Until(block) => s.serialize_str(&format!("until:{block}")),
        }
    }
}

impl<'de> Deserialize<'de> for Freeze {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FreezeVisitor;
        impl serde::de::Visitor<'_> for FreezeVisitor {
            type Value = Freeze;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("true, false or \"until:<block>\"")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Freeze, E> {
                Ok(if v { Freeze::All } else { Freeze::No })
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Freeze, E> {
                match v.strip_prefix("until:") {
                    Some(block) if !block.trim().is_empty() => {
                        Ok(Freeze::Until(block.trim().to_owned()))
                    }
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
        }
        d.deserialize_any(FreezeVisitor)
    }
}
