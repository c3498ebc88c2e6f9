//! Resolved domain types: what the program uses once every layer is applied. No field is optional
//! where a default exists; paths are absolute.

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use super::augment::{ColorJitter, RandomResizedCrop};
use super::error::SpecError;
use super::raw::RawSpec;
pub use super::schedule::{EarlyStopping, Metric, Schedule, ScheduleKind};
use super::values::{
    ApplyTo, BackboneName, Device, Freeze, LossKind, OnBadImage, OptimizerKind, Precision,
    RegularizationKind,
};

/// One run, fully resolved. `to_toml` gives its canonical text, which [`crate::spec::expand::run_id`] hashes.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RunSpec {
    pub experiment: ExperimentInfo,
    pub dataset: Dataset,
    pub transforms: Transforms,
    pub backbone: Backbone,
    pub head: Head,
    pub loss: Loss,
    pub optimizer: Optimizer,
    pub regularization: Regularization,
    pub train: Train,
    pub cache: Cache,
    /// Keys added after run ids were first recorded are left out of the canonical text while
    /// they change nothing (see `spec::canonical`), so that older run ids stay valid.
    pub schedule: Schedule,
    pub early_stopping: EarlyStopping,
    /// The folder holding `pipeline/` (else the spec's folder): results go under it, and the
    /// canonical TOML writes paths relative to it so that run ids do not depend on where the
    /// project is checked out.
    #[serde(skip)]
    pub project_dir: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExperimentInfo {
    pub name: String,
    pub description: String,
    pub seed: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Dataset {
    pub root: PathBuf,
    pub train_dir: String,
    pub val_dir: String,
    /// Subfolder of `root` with the held-out test images; "" = no test split.
    pub test_dir: String,
    /// 0 = every image; N = the first N of each class, file names sorted.
    pub train_per_class: usize,
    pub val_per_class: usize,
    pub on_bad_image: OnBadImage,
    /// A CSV or Parquet file of images and labels instead of `root`'s folders; `None` = none.
    #[serde(serialize_with = "path_or_empty")]
    pub manifest: Option<PathBuf>,
    pub path_column: String,
    pub label_column: String,
    pub split_column: String,
    /// The split made when the data does not say (no split column, no `val_dir` folder).
    pub split: DatasetSplit,
}

/// `[dataset.split]`: fractions of each class (or of all images when not `stratify`), and the
/// seed that decides which images they are.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetSplit {
    pub val: f64,
    pub test: f64,
    pub seed: u64,
    pub stratify: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transforms {
    /// Short side in pixels; 0 = keep the size.
    pub resize: u32,
    /// Square crop side; 0 = no crop.
    pub crop: u32,
    pub random_crop: bool,
    pub hflip: f64,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Train only; replaces resize + crop for training when enabled.
    pub random_resized_crop: RandomResizedCrop,
    /// Train only.
    pub color_jitter: ColorJitter,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Backbone {
    pub name: BackboneName,
    /// `None` = random init; a file, or a cache name ([`names_a_weights_cache`]).
    #[serde(serialize_with = "path_or_empty")]
    pub weights: Option<PathBuf>,
    pub freeze: Freeze,
}

pub use super::head::Head;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Loss {
    pub kind: LossKind,
    /// torch's CrossEntropyLoss(label_smoothing): the target is (1 − ε)·one-hot + ε/K.
    pub label_smoothing: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Optimizer {
    pub kind: OptimizerKind,
    pub lr: f64,
    pub momentum: f64,
    pub nesterov: bool,
    pub betas: [f64; 2],
    pub eps: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Regularization {
    pub kind: RegularizationKind,
    pub lambda: f64,
    pub apply_to: ApplyTo,
    pub allow_unstable: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Train {
    pub epochs: u32,
    pub batch_size: usize,
    pub device: Device,
    /// Clip the global L2 norm of the gradients to this; 0 = off.
    pub grad_clip_norm: f64,
    pub precision: Precision,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cache {
    pub features: bool,
    /// `None` = `<results dir>/.cache`.
    #[serde(serialize_with = "path_or_empty")]
    pub dir: Option<PathBuf>,
}

fn path_or_empty<S: serde::Serializer>(path: &Option<PathBuf>, s: S) -> Result<S::Ok, S::Error> {
    match path {
        Some(path) => path.serialize(s),
        None => s.serialize_str(""),
    }
}

impl RunSpec {
    /// Builds the run from merged layers. Every key has a value because `defaults.toml` sets them
    /// all; a missing one is a bug in that file, reported as [`SpecError::Internal`].
    // Long: one field per key of the resolved spec, read from the merged layers.
    pub(crate) fn from_raw(raw: &RawSpec, project_dir: &Path) -> Result<RunSpec, SpecError> {
        fn get<T: Clone>(value: &Option<T>, key: &str) -> Result<T, SpecError> {
            value
                .clone()
                .ok_or_else(|| SpecError::Internal(format!("defaults.toml has no `{key}`")))
        }
        fn section<'a, T>(value: &'a Option<T>, key: &str) -> Result<&'a T, SpecError> {
            value
                .as_ref()
                .ok_or_else(|| SpecError::Internal(format!("defaults.toml has no [{key}]")))
        }
        let path = |p: PathBuf| (!p.as_os_str().is_empty()).then_some(p);

        let e = section(&raw.experiment, "experiment")?;
        let d = section(&raw.dataset, "dataset")?;
        let t = section(&raw.transforms, "transforms")?;
        let b = section(&raw.backbone, "backbone")?;
        let h = section(&raw.head, "head")?;
        let l = section(&raw.loss, "loss")?;
        let o = section(&raw.optimizer, "optimizer")?;
        let r = section(&raw.regularization, "regularization")?;
        let tr = section(&raw.train, "train")?;
        let c = section(&raw.cache, "cache")?;
        Ok(RunSpec {
            experiment: ExperimentInfo {
                name: get(&e.name, "experiment.name")?,
                description: get(&e.description, "experiment.description")?,
                seed: get(&e.seed, "experiment.seed")?,
            },
            dataset: Dataset {
                root: get(&d.root, "dataset.root")?,
                train_dir: get(&d.train_dir, "dataset.train_dir")?,
                val_dir: get(&d.val_dir, "dataset.val_dir")?,
                test_dir: get(&d.test_dir, "dataset.test_dir")?,
                train_per_class: get(&d.train_per_class, "dataset.train_per_class")?,
                val_per_class: get(&d.val_per_class, "dataset.val_per_class")?,
                on_bad_image: get(&d.on_bad_image, "dataset.on_bad_image")?,
                manifest: path(get(&d.manifest, "dataset.manifest")?),
                path_column: get(&d.path_column, "dataset.path_column")?,
                label_column: get(&d.label_column, "dataset.label_column")?,
                split_column: get(&d.split_column, "dataset.split_column")?,
                split: {
                    let s = section(&d.split, "dataset.split")?;
                    DatasetSplit {
                        val: get(&s.val, "dataset.split.val")?,
                        test: get(&s.test, "dataset.split.test")?,
                        seed: get(&s.seed, "dataset.split.seed")?,
                        stratify: get(&s.stratify, "dataset.split.stratify")?,
                    }
                },
            },
            transforms: Transforms {
                resize: get(&t.resize, "transforms.resize")?,
                crop: get(&t.crop, "transforms.crop")?,
                random_crop: get(&t.random_crop, "transforms.random_crop")?,
                hflip: get(&t.hflip, "transforms.hflip")?,
                mean: get(&t.mean, "transforms.mean")?,
                std: get(&t.std, "transforms.std")?,
                random_resized_crop: RandomResizedCrop::from_raw(t.random_resized_crop.as_ref())?,
                color_jitter: ColorJitter::from_raw(t.color_jitter.as_ref())?,
            },
            backbone: Backbone {
                name: get(&b.name, "backbone.name")?,
                weights: path(get(&b.weights, "backbone.weights")?),
                freeze: get(&b.freeze, "backbone.freeze")?,
            },
            head: Head::from_raw(h)?,
            loss: Loss {
                kind: get(&l.kind, "loss.kind")?,
                label_smoothing: get(&l.label_smoothing, "loss.label_smoothing")?,
            },
            optimizer: Optimizer {
                kind: get(&o.kind, "optimizer.kind")?,
                lr: get(&o.lr, "optimizer.lr")?,
                momentum: get(&o.momentum, "optimizer.momentum")?,
                nesterov: get(&o.nesterov, "optimizer.nesterov")?,
                betas: get(&o.betas, "optimizer.betas")?,
                eps: get(&o.eps, "optimizer.eps")?,
            },
            regularization: Regularization {
                kind: get(&r.kind, "regularization.kind")?,
                lambda: get(&r.lambda, "regularization.lambda")?,
                apply_to: get(&r.apply_to, "regularization.apply_to")?,
                allow_unstable: get(&r.allow_unstable, "regularization.allow_unstable")?,
            },
            train: Train {
                epochs: get(&tr.epochs, "train.epochs")?,
                batch_size: get(&tr.batch_size, "train.batch_size")?,
                device: get(&tr.device, "train.device")?,
                grad_clip_norm: get(&tr.grad_clip_norm, "train.grad_clip_norm")?,
                precision: get(&tr.precision, "train.precision")?,
            },
            cache: Cache {
                features: get(&c.features, "cache.features")?,
                dir: path(get(&c.dir, "cache.dir")?),
            },
            schedule: Schedule::from_raw(raw.schedule.as_ref())?,
            early_stopping: EarlyStopping::from_raw(raw.early_stopping.as_ref())?,
            project_dir: project_dir.to_path_buf(),
        })
    }

    /// Canonical TOML of this run: every key in schema order (but the later keys that change
    /// nothing, see `spec::canonical`), paths relative to the project folder when inside it, so
    /// the text, and the run id hashed from it, are the same in every checkout.
    pub fn to_toml(&self) -> String {
        let mut portable = self.clone();
        let relative = |p: &mut PathBuf| {
            if let Ok(rel) = p.strip_prefix(&self.project_dir) {
                *p = if rel.as_os_str().is_empty() {
                    PathBuf::from(".")
                } else {
                    rel.to_path_buf()
                };
            }
        };
        relative(&mut portable.dataset.root);
        portable.dataset.manifest.as_mut().map(relative);
        portable.backbone.weights.as_mut().map(relative);
        portable.cache.dir.as_mut().map(relative);
        let text = |spec: &RunSpec| toml::to_string(spec).expect("a RunSpec serialises to TOML");
        super::canonical::canonical(&text(&portable), &text(super::default_spec()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn freeze_reads_both_forms() {
        #[derive(Deserialize)]
        struct T {
            freeze: Freeze,
        }
        let read = |s: &str| toml::from_str::<T>(s).map(|t| t.freeze);
        assert_eq!(read("freeze = true").unwrap(), Freeze::All);
        assert_eq!(read("freeze = false").unwrap(), Freeze::No);
        assert_eq!(
            read("freeze = \"until:layer3\"").unwrap(),
            Freeze::Until("layer3".into())
        );
        let err = read("freeze = \"layer3\"").unwrap_err();
        assert!(
            err.message()
                .contains("expected true, false or \"until:<block>\""),
            "{err}"
        );
        assert!(read("freeze = 3").is_err());
    }
}
