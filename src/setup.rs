//! From a resolved run spec to the objects the program runs: its transforms, its bad-image
//! policy, its training configuration. This is the one factory of runtime objects (ripgrep's
//! `HiArgs`): `run`, `views::summary`, `views::preview` and `views::predict` all build them here,
//! so a spec key means the same thing in every command. (It sits beside `spec`, not in it, so
//! that `spec` stays a leaf that depends on no runtime module.)

use crate::data::{BadImagePolicy, Transform};
use crate::spec::{self, RunSpec};
use crate::train::{FitConfig, Frozen, OptimizerConfig, Penalty, RegularizationKind};

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
    }
}

/// What the loaders do with an image that cannot be read (`dataset.on_bad_image`).
pub fn bad_image_policy(spec: &RunSpec) -> BadImagePolicy {
    match spec.dataset.on_bad_image {
        spec::OnBadImage::Error => BadImagePolicy::Error,
        spec::OnBadImage::Skip => BadImagePolicy::Skip,
    }
}
