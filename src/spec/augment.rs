//! The random augmentations of `[transforms]` beyond crop and flip: `random_resized_crop` and
//! `color_jitter` (torchvision's), their layer types and resolved types (their checks are in
//! `validate/augment.rs`).

use serde::{Deserialize, Serialize};

use super::error::SpecError;
use super::update::{update_leaves, Update};

/// `transforms.random_resized_crop`. Writing the table in a file, `--set` or sweep turns it
/// on unless that layer also says `enabled = false`: `random_resized_crop = { scale = [0.08, 1.0] }`
/// means "on, with this scale" (the defaults set `enabled = false`).
#[derive(Debug, Clone, Default)]
pub(crate) struct RawRandomResizedCrop {
    pub enabled: Option<bool>,
    pub scale: Option<[f64; 2]>,
    pub ratio: Option<[f64; 2]>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RrcFields {
    enabled: Option<bool>,
    scale: Option<[f64; 2]>,
    ratio: Option<[f64; 2]>,
}

impl<'de> Deserialize<'de> for RawRandomResizedCrop {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = RrcFields::deserialize(d)?;
        Ok(RawRandomResizedCrop {
            enabled: f.enabled.or(Some(true)),
            scale: f.scale,
            ratio: f.ratio,
        })
    }
}

update_leaves!(RawRandomResizedCrop {
    enabled,
    scale,
    ratio
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawColorJitter {
    pub brightness: Option<f64>,
    pub contrast: Option<f64>,
    pub saturation: Option<f64>,
}

update_leaves!(RawColorJitter {
    brightness,
    contrast,
    saturation
});

/// torchvision's RandomResizedCrop to `crop`×`crop`: a random area fraction in `scale` and a
/// random aspect ratio (log-uniform) in `ratio`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RandomResizedCrop {
    pub enabled: bool,
    pub scale: [f64; 2],
    pub ratio: [f64; 2],
}

/// torchvision's ColorJitter: each factor uniform in [max(0, 1 − x), 1 + x]; 0 = off.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ColorJitter {
    pub brightness: f64,
    pub contrast: f64,
    pub saturation: f64,
}

fn get<T: Clone>(value: &Option<T>, key: &str) -> Result<T, SpecError> {
    value
        .clone()
        .ok_or_else(|| SpecError::Internal(format!("defaults.toml has no `{key}`")))
}

impl RandomResizedCrop {
    pub(super) fn from_raw(r: Option<&RawRandomResizedCrop>) -> Result<Self, SpecError> {
        let r = r.ok_or_else(|| {
            SpecError::Internal("defaults.toml has no [transforms.random_resized_crop]".into())
        })?;
        Ok(RandomResizedCrop {
            enabled: get(&r.enabled, "transforms.random_resized_crop.enabled")?,
            scale: get(&r.scale, "transforms.random_resized_crop.scale")?,
            ratio: get(&r.ratio, "transforms.random_resized_crop.ratio")?,
        })
    }
}

impl ColorJitter {
    pub(super) fn from_raw(r: Option<&RawColorJitter>) -> Result<Self, SpecError> {
        let r = r.ok_or_else(|| {
            SpecError::Internal("defaults.toml has no [transforms.color_jitter]".into())
        })?;
        Ok(ColorJitter {
            brightness: get(&r.brightness, "transforms.color_jitter.brightness")?,
            contrast: get(&r.contrast, "transforms.color_jitter.contrast")?,
            saturation: get(&r.saturation, "transforms.color_jitter.saturation")?,
        })
    }
}
