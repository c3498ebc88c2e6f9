//! The random augmentations of `[transforms]` beyond crop and flip: `random_resized_crop` and
//! `color_jitter` (torchvision's), their layer types, resolved types and checks.

use serde::{Deserialize, Serialize};

use super::error::SpecError;
use super::raw::Update;
use super::validate::Checker;

/// `transforms.random_resized_crop`. Writing the table in a file, `--set` or sweep turns it
/// on unless that layer also says `enabled = false`: `random_resized_crop = { scale = [0.08, 1.0] }`
/// means "on, with this scale" (the defaults set `enabled = false`).
#[derive(Debug, Clone, Default)]
pub struct RawRandomResizedCrop {
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

impl Update for RawRandomResizedCrop {
    fn update(&mut self, o: Self) {
        macro_rules! take { ($($f:ident),*) => { $(if o.$f.is_some() { self.$f = o.$f; })* } }
        take!(enabled, scale, ratio);
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawColorJitter {
    pub brightness: Option<f64>,
    pub contrast: Option<f64>,
    pub saturation: Option<f64>,
}

impl Update for RawColorJitter {
    fn update(&mut self, o: Self) {
        macro_rules! take { ($($f:ident),*) => { $(if o.$f.is_some() { self.$f = o.$f; })* } }
        take!(brightness, contrast, saturation);
    }
}

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

impl Checker<'_> {
    pub(super) fn augment(&mut self, spec: &super::RunSpec) {
        let t = &spec.transforms;
        let r = &t.random_resized_crop;
        if r.enabled {
            if t.crop == 0 {
                self.errors.push(
                    self.invalid(
                        "transforms.random_resized_crop",
                        "expected transforms.crop > 0: the crop's output side".to_owned(),
                    )
                    .note(self.where_set("transforms.crop"))
                    .help("set transforms.crop, e.g. 224 (val keeps resize + center crop)"),
                );
            }
            if t.random_crop {
                self.errors.push(
                    self.invalid(
                        "transforms.random_resized_crop",
                        "expected random_crop = false: both choose the train crop".to_owned(),
                    )
                    .note(self.where_set("transforms.random_crop")),
                );
            }
            let [lo, hi] = r.scale;
            if !(lo > 0.0 && lo <= hi && hi <= 1.0) {
                self.errors.push(self.invalid(
                    "transforms.random_resized_crop.scale",
                    format!("expected [min, max] with 0 < min <= max <= 1, found [{lo}, {hi}]"),
                ));
            }
            let [lo, hi] = r.ratio;
            if !(lo > 0.0 && lo <= hi && hi.is_finite()) {
                self.errors.push(self.invalid(
                    "transforms.random_resized_crop.ratio",
                    format!("expected [min, max] with 0 < min <= max, found [{lo}, {hi}]"),
                ));
            }
        }
        let j = &t.color_jitter;
        for (key, v) in [
            ("transforms.color_jitter.brightness", j.brightness),
            ("transforms.color_jitter.contrast", j.contrast),
            ("transforms.color_jitter.saturation", j.saturation),
        ] {
            if !(v >= 0.0 && v.is_finite()) {
                self.errors.push(
                    self.invalid(key, format!("expected a number >= 0, found {v}"))
                        .note("the factor is drawn uniformly from [max(0, 1 − x), 1 + x]"),
                );
            }
        }
    }
}
