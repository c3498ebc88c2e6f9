//! The model rows: real runs through the product's code path, not kernels on random tensors.
//! Each workload is an experiment spec that `runner SPEC` would accept, executed by
//! [`run::run_sweep`] (the project's loader on the committed images, its optimizer, L2 penalty,
//! BatchNorm, recording and checkpointing through `train::fit`) into a temporary results tree.
//!
//! Training rows read the training pass's images/s that the run recorded for its second epoch
//! (`metrics.parquet`'s `images_per_second`; the first warms up, on both sides); feature rows
//! read the run's "features" stage (frozen backbone over every train and val image, the
//! feature cache starting empty).
//! The PyTorch script runs the homework loop (ImageFolder → DataLoader → model →
//! CrossEntropyLoss → SGD) on the same copied files with the same transforms.

use std::path::{Path, PathBuf};

use super::busy::BusyMeter;
use super::Measure;
use crate::results::store::Status;
use crate::run::{self, RunOptions};
use crate::spec::{self, LoadOptions, Precision};

/// What a workload measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    /// Full fine-tuning: images/s of the training pass.
    Train,
    /// Frozen backbone: images/s of the feature extraction.
    Features,
}

/// One model workload; the PyTorch script receives the same list (as JSON).
#[derive(Clone, Copy, Debug)]
pub(super) struct Workload {
    pub key: &'static str,
    pub what: &'static str,
    pub kind: Kind,
    pub backbone: &'static str,
    pub resize: usize,
    pub crop: usize,
    pub batch: usize,
    /// Images per class copied for training (and, for feature rows, the val images too).
    pub train_per_class: usize,
    pub val_per_class: usize,
    /// `train.precision`; bf16-mixed rows run against PyTorch's bf16 autocast.
    pub precision: Precision,
}

/// The classic recipe's step: ResNet-34 fine-tuned at 224, batch 4.
const RESNET34_FIT: Workload = Workload {
    key: "resnet34_fit",
    what: "ResNet-34 @224 b4 fine-tune (runner SPEC loop)",
    kind: Kind::Train,
    backbone: "resnet34",
    resize: 256,
    crop: 224,
    batch: 4,
    train_per_class: 12,
    val_per_class: 2,
    precision: Precision::Full,
};

/// ResNet-18 fine-tuned at 64, batch 16.
const RESNET18_FIT: Workload = Workload {
    key: "resnet18_fit",
    what: "ResNet-18 @64 b16 fine-tune (runner SPEC loop)",
    kind: Kind::Train,
    backbone: "resnet18",
    resize: 64,
    crop: 64,
    batch: 16,
    train_per_class: 80,
    val_per_class: 8,
    precision: Precision::Full,
};

/// The main job's frozen Lite0 at 96 px.
const LITE0_FEATURES96: Workload = Workload {
    key: "lite0_features96",
    what: "Lite0 @96 frozen features (runner SPEC)",
    kind: Kind::Features,
    backbone: "efficientnet_lite0",
    resize: 96,
    crop: 96,
    batch: 16,
    train_per_class: 160,
    val_per_class: 40,
    precision: Precision::Full,
};

pub(super) const WORKLOADS: &[Workload] = &[
    RESNET34_FIT,
    RESNET18_FIT,
    LITE0_FEATURES96,
    Workload {
        key: "lite0_features224",
        what: "Lite0 @224 frozen features (runner SPEC)",
        kind: Kind::Features,
        backbone: "efficientnet_lite0",
        resize: 256,
        crop: 224,
        batch: 16,
        train_per_class: 32,
        val_per_class: 8,
        precision: Precision::Full,
    },
    RESNET34_FIT.in_bf16(
        "resnet34_fit_bf16",
        "ResNet-34 @224 b4 fine-tune, bf16-mixed",
    ),
    RESNET18_FIT.in_bf16(
        "resnet18_fit_bf16",
        "ResNet-18 @64 b16 fine-tune, bf16-mixed",
    ),
    LITE0_FEATURES96.in_bf16(
        "lite0_features96_bf16",
        "Lite0 @96 frozen features, bf16-mixed",
    ),
];

impl Workload {
    /// The same workload in bf16-mixed, under another key and name.
    const fn in_bf16(self, key: &'static str, what: &'static str) -> Workload {
        Workload {
            key,
            what,
            precision: Precision::Bf16Mixed,
            ..self
        }
    }

    pub(super) fn is_bf16(&self) -> bool {
        self.precision == Precision::Bf16Mixed
    }

    /// Training rows time their second epoch, on both sides: the first creates every
    /// primitive (oneDNN JIT-compiles a kernel per layer shape and pass) and warms the caches.
    pub(super) fn epochs(&self) -> usize {
        match self.kind {
            Kind::Train => 2,
            Kind::Features => 1,
        }
    }
    /// Fewer images with `--quick`, at least two batches of training.
    pub(super) fn scaled(&self, quick: bool) -> Workload {
        if !quick {
            return *self;
        }
        let half = |n: usize| (n / 2).max(1);
        Workload {
            train_per_class: half(self.train_per_class).max(self.batch),
            val_per_class: half(self.val_per_class),
            ..*self
        }
    }
    pub(super) fn to_json(self) -> serde_json::Value {
        serde_json::json!({
            "key": self.key,
            "kind": match self.kind { Kind::Train => "train", Kind::Features => "features" },
            "backbone": self.backbone,
            "resize": self.resize,
            "crop": self.crop,
            "batch": self.batch,
            "epochs": self.epochs(),
            "data": self.key,
            "precision": self.precision.as_str(),
        })
    }
}

/// The learning rate and L2 strength of the training rows (PyTorch: weight_decay = 2λ, the
/// same gradient; see `regularization.kind = "l2"` in pipeline/defaults.toml).
pub(super) const LR: f64 = 0.01;
pub(super) const L2: f64 = 5e-5;

/// Copies the first `n` files (sorted) of every class folder of `src` into `dst`.
fn copy_split(src: &Path, dst: &Path, n: usize) -> Result<usize, String> {
    let mut classes: Vec<PathBuf> = std::fs::read_dir(src)
        .map_err(|e| format!("{}: {e}", src.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir())
        .collect();
    classes.sort();
    let mut copied = 0;
    for c in classes {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&c)
            .map_err(|e| format!("{}: {e}", c.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        let out = dst.join(c.file_name().expect("a class folder has a name"));
        std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
        for f in files.iter().take(n) {
            let to = out.join(f.file_name().expect("a file has a name"));
            std::fs::copy(f, &to).map_err(|e| format!("copying {}: {e}", f.display()))?;
            copied += 1;
        }
    }
    Ok(copied)
}

/// The workload's dataset (`train/` and `val/` with the first files of each class of `data`),
/// under `root/<key>`. Returns (its path, train images, val images).
pub(super) fn prepare_data(
    w: &Workload,
    data: &Path,
    root: &Path,
) -> Result<(PathBuf, usize, usize), String> {
    let dir = root.join(w.key);
    let train = copy_split(&data.join("train"), &dir.join("train"), w.train_per_class)?;
    let val = copy_split(&data.join("val"), &dir.join("val"), w.val_per_class)?;
    Ok((dir, train, val))
}

fn spec_text(w: &Workload, data: &Path, weights: &Path, cache: &Path) -> String {
    let (backbone, freeze, head, weights) = match w.kind {
        Kind::Train => (w.backbone, "false", "false", String::new()),
        Kind::Features => (w.backbone, "true", "true", weights.display().to_string()),
    };
    format!(
        r#"[experiment]
name = "bench_{key}"
seed = 0

[dataset]
root = {data:?}
train_dir = "train"
val_dir = "val"

[transforms]
resize = {resize}
crop = {crop}
random_crop = false
hflip = 0.0
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]

[backbone]
name = "{backbone}"
weights = {weights:?}
freeze = {freeze}

[head]
replace = {head}

[optimizer]
kind = "sgd"
lr = {LR}
momentum = 0.9

[regularization]
kind = "l2"
lambda = {L2}
apply_to = "all"

[train]
epochs = {epochs}
batch_size = {batch}
precision = "{precision}"

[cache]
features = true
dir = {cache:?}
"#,
        key = w.key,
        data = data.display().to_string(),
        resize = w.resize,
        crop = w.crop,
        batch = w.batch,
        epochs = w.epochs(),
        precision = w.precision,
        cache = cache.display().to_string(),
    )
}

/// Runs the workload as `runner SPEC` would, in `root`; images/s and the busy share.
pub(super) fn measure(
    w: &Workload,
    data: &Path,
    images: (usize, usize),
    weights: &Path,
    root: &Path,
) -> Result<Measure, String> {
    let spec_path = root.join(format!("{}.toml", w.key));
    let cache = root.join(format!("{}.cache", w.key));
    std::fs::write(&spec_path, spec_text(w, data, weights, &cache))
        .map_err(|e| format!("{}: {e}", spec_path.display()))?;
    let opts = LoadOptions {
        overrides: Vec::new(),
        pipeline_dir: None,
    };
    let exp = spec::load(&spec_path, &opts).map_err(|e| e.to_string())?;
    let resolved = crate::setup::Resolved::new(&exp).map_err(|e| e.to_string())?;
    let every: Vec<usize> = (0..resolved.runs.len()).collect();
    let run_opts = RunOptions {
        results: root.join("results"),
        rerun: true,
        progress: false,
        pause_after: None,
    };
    let meter = BusyMeter::start();
    let reports = run::run_sweep(&resolved, &every, &run_opts);
    let busy = meter.stop();
    let r = reports.first().ok_or("the bench spec planned no run")?;
    if r.status != Status::Done {
        return Err(format!(
            "bench run {} ended {:?}: {}",
            w.key,
            r.status,
            r.error.as_deref().unwrap_or("")
        ));
    }
    let value = match w.kind {
        Kind::Train => r
            .last
            .as_ref()
            .map(|m| m.images_per_second)
            .ok_or("the bench run recorded no epoch")?,
        Kind::Features => {
            let secs = r
                .stages
                .iter()
                .find(|(n, _)| *n == "features")
                .map(|(_, s)| *s)
                .ok_or("the bench run has no features stage")?;
            (images.0 + images.1) as f64 / secs
        }
    };
    Ok(Measure::new(value, busy))
}
