//! From one run's spec to the objects the program runs: its transforms, its bad-image policy, its
//! training configuration, its head. Pure functions of the spec: what needs the disk (the
//! dataset, the weights) is in [`super::Resolved`], which builds every run's objects here.

use crate::data::{BadImagePolicy, Transform};
use crate::spec::{self, RunSpec};
use crate::train::{
    EarlyStopping, FitConfig, Frozen, LrKind, LrSchedule, OptimizerConfig, Penalty, Plateau,
    RegularizationKind,
};

/// The transforms `[transforms]` declares (train side: random parts included).
pub fn transform(spec: &RunSpec) -> Transform {
    let t = &spec.transforms;
    Transform {
        resize: (t.resize > 0).then_some(t.resize),
        crop: (t.crop > 0).then_some(t.crop),
        random_crop: t.random_crop,
        hflip: t.hflip as f32,
        mean: t.mean,
        std: t.std,
        augment: augment(t),
    }
}

/// The training loop's configuration for a run with `classes` classes.
pub fn fit_config(spec: &RunSpec, classes: usize) -> FitConfig {
    let o = &spec.optimizer;
    let optimizer = match o.kind {
        spec::OptimizerKind::Sgd => OptimizerConfig::Sgd {
            lr: o.lr,
            momentum: o.momentum,
            nesterov: o.nesterov,
        },
        spec::OptimizerKind::Adam | spec::OptimizerKind::Adamw => OptimizerConfig::Adam {
            lr: o.lr,
            betas: o.betas,
            eps: o.eps,
        },
    };
    let r = &spec.regularization;
    let kind = match r.kind {
        spec::RegularizationKind::None => RegularizationKind::None,
        spec::RegularizationKind::L2 => RegularizationKind::L2,
        spec::RegularizationKind::L1 => RegularizationKind::L1,
        spec::RegularizationKind::Decoupled => RegularizationKind::Decoupled,
    };
    FitConfig {
        epochs: spec.train.epochs as usize,
        optimizer,
        regularization: Penalty {
            kind,
            lambda: r.lambda,
            apply_to_all: r.apply_to == spec::ApplyTo::All,
        },
        num_classes: classes,
        frozen: Frozen::none(),
        schedule: lr_schedule(spec),
        early_stopping: early_stopping(spec),
        label_smoothing: spec.loss.label_smoothing,
        grad_clip_norm: spec.train.grad_clip_norm,
        pause_after: None,
    }
}

/// `[schedule]` as the loop steps it.
fn lr_schedule(spec: &RunSpec) -> LrSchedule {
    let s = &spec.schedule;
    let kind = match s.kind {
        spec::ScheduleKind::Constant => LrKind::Constant,
        spec::ScheduleKind::Step => LrKind::Step {
            step_size: s.step_size as usize,
            gamma: s.gamma,
        },
        spec::ScheduleKind::Cosine => LrKind::Cosine { min_lr: s.min_lr },
        spec::ScheduleKind::Plateau => LrKind::Plateau(Plateau {
            maximize: s.metric == spec::Metric::ValAcc,
            patience: s.patience as usize,
            factor: s.factor,
            min_lr: s.min_lr,
        }),
    };
    LrSchedule {
        base_lr: spec.optimizer.lr,
        warmup_epochs: s.warmup_epochs as usize,
        epochs: spec.train.epochs as usize,
        kind,
    }
}

/// `[early_stopping]`; `None` when its patience is 0 (off).
fn early_stopping(spec: &RunSpec) -> Option<EarlyStopping> {
    let e = &spec.early_stopping;
    (e.patience > 0).then(|| EarlyStopping {
        metric: match e.metric {
            spec::Metric::ValLoss => "val_loss",
            spec::Metric::ValAcc => "val_acc",
        },
        maximize: e.metric == spec::Metric::ValAcc,
        patience: e.patience as usize,
        min_delta: e.min_delta,
        restore_best: e.restore_best,
    })
}

/// What the loaders do with an image that cannot be read (`dataset.on_bad_image`).
pub fn bad_image_policy(spec: &RunSpec) -> BadImagePolicy {
    match spec.dataset.on_bad_image {
        spec::OnBadImage::Error => BadImagePolicy::Error,
        spec::OnBadImage::Skip => BadImagePolicy::Skip,
    }
}

/// The random augmentations beyond crop and flip that `[transforms]` turns on.
pub fn augment(t: &spec::Transforms) -> crate::data::Augment {
    use crate::data::{Augment, ColorJitter, RandomResizedCrop};
    let r = &t.random_resized_crop;
    let j = &t.color_jitter;
    Augment {
        random_resized_crop: r.enabled.then_some(RandomResizedCrop {
            scale: r.scale,
            ratio: r.ratio,
        }),
        color_jitter: (j.brightness > 0.0 || j.contrast > 0.0 || j.saturation > 0.0).then_some(
            ColorJitter {
                brightness: j.brightness,
                contrast: j.contrast,
                saturation: j.saturation,
            },
        ),
    }
}

/// The head `[head]` declares, its dropout masks seeded by `seed`.
pub fn head_config(head: &spec::Head, seed: u64) -> crate::models::HeadConfig {
    crate::models::HeadConfig {
        widths: head.hidden_widths().to_vec(),
        activation: head.activation,
        dropout: head.dropout,
        batch_norm: head.batch_norm,
        pool: head.pool,
        seed,
    }
}
