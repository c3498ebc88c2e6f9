//! Serde layer types: what one file (or `--set`, or sweep value) wrote. Every field is optional so
//! that layers can be stacked with `update`; every table denies unknown keys so that a typo is an
//! error rather than a silently ignored setting.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::values::{
    ApplyTo, BackboneName, Device, Freeze, LossKind, OnBadImage, OptimizerKind, RegularizationKind,
};

/// Layers merge key by key: a key set in `other` replaces the one in `self`.
pub trait Update {
    fn update(&mut self, other: Self);
}

impl<T: Update> Update for Option<T> {
    fn update(&mut self, other: Self) {
        match (self.as_mut(), other) {
            (Some(mine), Some(theirs)) => mine.update(theirs),
            (None, Some(theirs)) => *self = Some(theirs),
            (_, None) => {}
        }
    }
}

/// Implements [`Update`] for a table of leaf keys: each key set in `other` wins.
macro_rules! update_leaves {
    ($ty:ty { $($field:ident),* $(,)? }) => {
        impl Update for $ty {
            fn update(&mut self, other: Self) {
                $(if other.$field.is_some() { self.$field = other.$field; })*
            }
        }
    };
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSpec {
    /// Presets this file builds on. Applied when the file is read, never merged.
    #[serde(rename = "use")]
    pub use_: Option<Vec<Spanned<String>>>,
    pub experiment: Option<RawExperiment>,
    pub dataset: Option<RawDataset>,
    pub transforms: Option<RawTransforms>,
    pub backbone: Option<RawBackbone>,
    pub head: Option<RawHead>,
    pub loss: Option<RawLoss>,
    pub optimizer: Option<RawOptimizer>,
    pub regularization: Option<RawRegularization>,
    pub train: Option<RawTrain>,
    pub cache: Option<RawCache>,
    /// Taken out of its layer when read (see `spec::sweep`), never merged.
    pub sweep: Option<RawSweep>,
}

impl Update for RawSpec {
    fn update(&mut self, other: Self) {
        self.experiment.update(other.experiment);
        self.dataset.update(other.dataset);
        self.transforms.update(other.transforms);
        self.backbone.update(other.backbone);
        self.head.update(other.head);
        self.loss.update(other.loss);
        self.optimizer.update(other.optimizer);
        self.regularization.update(other.regularization);
        self.train.update(other.train);
        self.cache.update(other.cache);
    }
}

impl RawSpec {
    /// Makes the relative paths this layer set absolute, against `base` (the folder of the file
    /// that set them), so that a preset's `root = "../data/x"` means the same from any experiment.
    pub fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(p) = p.as_mut().filter(|p| !p.as_os_str().is_empty()) {
                *p = normalize(&base.join(&*p));
            }
        };
        if let Some(d) = &mut self.dataset {
            fix(&mut d.root);
        }
        if let Some(b) = &mut self.backbone {
            fix(&mut b.weights);
        }
        if let Some(c) = &mut self.cache {
            fix(&mut c.dir);
        }
    }
}

/// `base/../x` → `x`, lexically, so that paths print cleanly whether or not they exist.
pub fn normalize(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawExperiment {
    pub name: Option<String>,
    pub description: Option<String>,
    pub seed: Option<u64>,
}
update_leaves!(RawExperiment {
    name,
    description,
    seed
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDataset {
    pub root: Option<PathBuf>,
    pub train_dir: Option<String>,
    pub val_dir: Option<String>,
    pub train_per_class: Option<usize>,
    pub val_per_class: Option<usize>,
    pub on_bad_image: Option<OnBadImage>,
}
update_leaves!(RawDataset {
    root,
    train_dir,
    val_dir,
    train_per_class,
    val_per_class,
    on_bad_image
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTransforms {
    pub resize: Option<u32>,
    pub crop: Option<u32>,
    pub random_crop: Option<bool>,
    pub hflip: Option<f64>,
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
}
update_leaves!(RawTransforms {
    resize,
    crop,
    random_crop,
    hflip,
    mean,
    std
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawBackbone {
    pub name: Option<BackboneName>,
    pub weights: Option<PathBuf>,
    pub freeze: Option<Freeze>,
}
update_leaves!(RawBackbone {
    name,
    weights,
    freeze
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHead {
    pub replace: Option<bool>,
}
update_leaves!(RawHead { replace });

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLoss {
    pub kind: Option<LossKind>,
}
update_leaves!(RawLoss { kind });

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOptimizer {
    pub kind: Option<OptimizerKind>,
    pub lr: Option<f64>,
    pub momentum: Option<f64>,
    pub nesterov: Option<bool>,
    pub betas: Option<[f64; 2]>,
    pub eps: Option<f64>,
}
update_leaves!(RawOptimizer {
    kind,
    lr,
    momentum,
    nesterov,
    betas,
    eps
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRegularization {
    pub kind: Option<RegularizationKind>,
    pub lambda: Option<f64>,
    pub apply_to: Option<ApplyTo>,
    pub allow_unstable: Option<bool>,
}
update_leaves!(RawRegularization {
    kind,
    lambda,
    apply_to,
    allow_unstable
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTrain {
    pub epochs: Option<u32>,
    pub batch_size: Option<usize>,
    pub device: Option<Device>,
}
update_leaves!(RawTrain {
    epochs,
    batch_size,
    device
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCache {
    pub features: Option<bool>,
    pub dir: Option<PathBuf>,
}
update_leaves!(RawCache { features, dir });

/// Swept key → its values, each with its place in the file. Keys come back sorted by name;
/// their spans give the file order.
pub type RawAxes = BTreeMap<Spanned<String>, Spanned<AxisEntry>>;

/// The list of values swept for one key, each value with its span.
pub type SweptValues = Spanned<Vec<Spanned<toml::Value>>>;

/// What a sweep table holds under a key: the values, or, where the dotted key was written
/// unquoted (`regularization.lambda = [...]` makes nested tables in TOML), entries one level down.
/// A hand-written `Deserialize` (not `untagged`) so that other types fail with a clear expectation.
#[derive(Debug, Clone)]
pub enum AxisEntry {
    Values(Vec<Spanned<toml::Value>>),
    Nested(RawAxes),
}

impl<'de> Deserialize<'de> for AxisEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> serde::de::Visitor<'de> for EntryVisitor {
            type Value = AxisEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of values to sweep")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<AxisEntry, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element()? {
                    values.push(value);
                }
                Ok(AxisEntry::Values(values))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<AxisEntry, A::Error> {
                let mut nested = RawAxes::new();
                while let Some((key, entry)) = map.next_entry()? {
                    nested.insert(key, entry);
                }
                Ok(AxisEntry::Nested(nested))
            }
        }
        d.deserialize_any(EntryVisitor)
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSweep {
    pub grid: Option<RawAxes>,
    /// Swept as `experiment.seed`, so each value is checked like a seed.
    pub seeds: Option<SweptValues>,
    pub zip: Option<Vec<Spanned<RawAxes>>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn update_keeps_keys_the_newer_layer_left_unset() {
        let mut base: RawSpec = toml::from_str("[optimizer]\nlr = 0.1\nmomentum = 0.5").unwrap();
        let top: RawSpec = toml::from_str("[optimizer]\nlr = 0.2").unwrap();
        base.update(top);
        let o = base.optimizer.unwrap();
        assert_eq!((o.lr, o.momentum), (Some(0.2), Some(0.5)));
    }

    #[test]
    fn relative_paths_resolve_against_the_setting_file() {
        let mut raw: RawSpec = toml::from_str("[dataset]\nroot = \"../data/x\"").unwrap();
        raw.resolve_paths(Path::new("/p/pipeline/datasets"));
        assert_eq!(
            raw.dataset.unwrap().root.unwrap(),
            PathBuf::from("/p/pipeline/data/x")
        );
    }
}
