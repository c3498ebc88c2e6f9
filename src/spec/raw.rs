//! Serde layer types: what one file (or `--set`, or sweep value) wrote. Every field is optional so
//! that layers can be stacked with `update`; every table denies unknown keys so that a typo is an
//! error rather than a silently ignored setting.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

use super::sweep_lists::{RawAxes, SweptValues};
use super::update::{update_leaves, Update};
use super::values::{
    ApplyTo, BackboneName, Device, Freeze, LossKind, OnBadImage, OptimizerKind, Precision,
    RegularizationKind,
};

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpec {
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
    pub schedule: Option<super::schedule::RawSchedule>,
    pub early_stopping: Option<super::schedule::RawEarlyStopping>,
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
        self.schedule.update(other.schedule);
        self.early_stopping.update(other.early_stopping);
    }
}

/// `backbone.weights` naming torchvision's cached ImageNet weights of the backbone.
pub const TORCHVISION_WEIGHTS: &str = "torchvision";
/// `backbone.weights = "hf:<org>/<model>"`: a model in the local Hugging Face hub cache.
pub const HF_WEIGHTS_PREFIX: &str = "hf:";

/// Whether a `backbone.weights` value names a cache ([`TORCHVISION_WEIGHTS`], `hf:…`) rather
/// than a file: such a value is kept as written, not made absolute.
pub fn names_a_weights_cache(value: &Path) -> bool {
    let text = value.to_string_lossy();
    text == TORCHVISION_WEIGHTS || text.starts_with(HF_WEIGHTS_PREFIX)
}

impl RawSpec {
    /// Makes the relative paths this layer set absolute, against `base` (the folder of the file
    /// that set them), so that a preset's `root = "../data/x"` means the same from any experiment.
    pub(crate) fn resolve_paths(&mut self, base: &Path) {
        let fix = |p: &mut Option<PathBuf>| {
            if let Some(p) = p.as_mut().filter(|p| !p.as_os_str().is_empty()) {
                *p = normalize(&base.join(&*p));
            }
        };
        if let Some(d) = &mut self.dataset {
            fix(&mut d.root);
            fix(&mut d.manifest);
        }
        if let Some(b) = &mut self.backbone {
            if !b.weights.as_deref().is_some_and(names_a_weights_cache) {
                fix(&mut b.weights);
            }
        }
        if let Some(c) = &mut self.cache {
            fix(&mut c.dir);
        }
    }
}

/// `base/../x` → `x`, lexically, so that paths print cleanly whether or not they exist.
pub(super) fn normalize(path: &Path) -> PathBuf {
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
pub(crate) struct RawExperiment {
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
pub(crate) struct RawDataset {
    pub root: Option<PathBuf>,
    pub train_dir: Option<String>,
    pub val_dir: Option<String>,
    pub test_dir: Option<String>,
    pub train_per_class: Option<usize>,
    pub val_per_class: Option<usize>,
    pub on_bad_image: Option<OnBadImage>,
    pub manifest: Option<PathBuf>,
    pub path_column: Option<String>,
    pub label_column: Option<String>,
    pub split_column: Option<String>,
    pub split: Option<RawDatasetSplit>,
}
update_leaves!(RawDataset {
    root,
    train_dir,
    val_dir,
    test_dir,
    train_per_class,
    val_per_class,
    on_bad_image,
    manifest,
    path_column,
    label_column,
    split_column
} tables { split });

/// `[dataset.split]`: the split made when the data does not say.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawDatasetSplit {
    pub val: Option<f64>,
    pub test: Option<f64>,
    pub seed: Option<u64>,
    pub stratify: Option<bool>,
}
update_leaves!(RawDatasetSplit {
    val,
    test,
    seed,
    stratify
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTransforms {
    pub resize: Option<u32>,
    pub crop: Option<u32>,
    pub random_crop: Option<bool>,
    pub hflip: Option<f64>,
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
    pub random_resized_crop: Option<super::augment::RawRandomResizedCrop>,
    pub color_jitter: Option<super::augment::RawColorJitter>,
}

update_leaves!(RawTransforms {
    resize,
    crop,
    random_crop,
    hflip,
    mean,
    std
} tables {
    random_resized_crop,
    color_jitter
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackbone {
    pub name: Option<BackboneName>,
    pub weights: Option<PathBuf>,
    pub freeze: Option<Freeze>,
}
update_leaves!(RawBackbone {
    name,
    weights,
    freeze
});

pub(super) use super::head::RawHead;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLoss {
    pub kind: Option<LossKind>,
    pub label_smoothing: Option<f64>,
}
update_leaves!(RawLoss {
    kind,
    label_smoothing
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawOptimizer {
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
pub(crate) struct RawRegularization {
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
pub(crate) struct RawTrain {
    pub epochs: Option<u32>,
    pub batch_size: Option<usize>,
    pub device: Option<Device>,
    pub grad_clip_norm: Option<f64>,
    pub precision: Option<Precision>,
}
update_leaves!(RawTrain {
    epochs,
    batch_size,
    device,
    grad_clip_norm,
    precision
});

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCache {
    pub features: Option<bool>,
    pub dir: Option<PathBuf>,
}
update_leaves!(RawCache { features, dir });

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSweep {
    pub grid: Option<RawAxes>,
    /// Swept as `experiment.seed`, so each value is checked like a seed.
    pub seeds: Option<SweptValues>,
    pub zip: Option<Vec<Spanned<RawAxes>>>,
    pub random: Option<super::random_space::RawRandom>,
    pub halving: Option<super::halving::RawHalving>,
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
