//! Semantic checks on one resolved run: what serde's types cannot say (ranges, relations between
//! keys). Every failed check is collected so the user fixes them in one go; each points at the
//! layer that set the offending key. What the keys name on disk (the dataset's folders, the
//! weights file) is checked by `crate::setup`, once per invocation.

use super::error::{Diagnostic, SpecError};
use super::locate::Locator;
use super::resolved::RunSpec;
use super::values::{OptimizerKind, RegularizationKind};

/// The largest `transforms.resize` and `transforms.crop`, in pixels: beyond, one batch of
/// images and the activations over it take more memory than a machine has.
pub(super) const MAX_IMAGE_SIDE: u32 = 4096;

mod augment;
mod head;
mod schedule;

/// 2·lr·λ (or lr·λ for decoupled decay) at or above this warns: weights shrink fast per step.
const SHRINK_WARN: f64 = 0.1;
/// At or above this the step no longer shrinks the weights: it flips or zeroes them.
const SHRINK_ERROR: f64 = 1.0;

/// Checks a run; returns its warnings, or every error found.
pub(super) fn check(spec: &RunSpec, at: &Locator) -> Result<Vec<Diagnostic>, SpecError> {
    let mut c = Checker {
        at,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    c.experiment(spec);
    c.transforms(spec);
    c.optimizer(spec);
    c.regularization(spec);
    c.train(spec);
    c.dataset(spec);
    c.backbone(spec);
    c.head(spec);
    c.augment(spec);
    c.loss(spec);
    c.schedule(spec);
    c.early_stopping(spec);
    if c.errors.is_empty() {
        Ok(c.warnings)
    } else {
        Err(at.rejected(c.errors))
    }
}

pub(super) struct Checker<'a> {
    at: &'a Locator,
    pub(super) errors: Vec<Diagnostic>,
    pub(super) warnings: Vec<Diagnostic>,
}

impl Checker<'_> {
    pub(super) fn invalid(&self, key: &str, label: String) -> Diagnostic {
        self.at.invalid(key, label)
    }

    pub(super) fn warning(&self, key: &str, message: String, label: String) -> Diagnostic {
        self.at.warning(key, message, label)
    }

    pub(super) fn where_set(&self, key: &str) -> String {
        self.at.where_set(key)
    }

    fn experiment(&mut self, spec: &RunSpec) {
        let name = &spec.experiment.name;
        if name.is_empty() && self.at.is_default("experiment.name") {
            self.errors
                .push(self.at.missing("experiment.name", "my_experiment"));
        } else if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        {
            self.errors.push(
                self.invalid(
                    "experiment.name",
                    format!("expected lowercase letters, digits, `_` and `-` only, found {name:?}"),
                )
                .note("the name becomes the folder results/<name>/"),
            );
        }
    }

    fn transforms(&mut self, spec: &RunSpec) {
        let t = &spec.transforms;
        for (key, side) in [("transforms.resize", t.resize), ("transforms.crop", t.crop)] {
            if side > MAX_IMAGE_SIDE {
                self.errors.push(
                    self.invalid(
                        key,
                        format!("expected at most {MAX_IMAGE_SIDE} pixels, found {side}"),
                    )
                    .note(format!(
                        "one {side}×{side} RGB image alone takes {} MiB as f32",
                        (side as u64 * side as u64 * 12) >> 20
                    )),
                );
            }
        }
        if t.crop > 0 && t.resize > 0 && t.crop > t.resize {
            let note = self.where_set("transforms.resize");
            self.errors.push(
                self.invalid(
                    "transforms.crop",
                    format!(
                        "expected a crop no larger than resize ({}), found {}",
                        t.resize, t.crop
                    ),
                )
                .note(note),
            );
        }
        if t.random_crop && t.crop == 0 {
            self.warnings.push(
                self.warning(
                    "transforms.random_crop",
                    "`transforms.random_crop` has no effect".to_owned(),
                    "ignored while transforms.crop = 0 (no crop)".to_owned(),
                )
                .help("set transforms.crop to the crop's side, e.g. 224"),
            );
        }
        if !(0.0..=1.0).contains(&t.hflip) {
            self.errors.push(self.invalid(
                "transforms.hflip",
                format!("expected a probability in [0, 1], found {}", t.hflip),
            ));
        }
        if let Some(bad) = t.std.iter().find(|s| s.is_nan() || **s <= 0.0) {
            self.errors.push(self.invalid(
                "transforms.std",
                format!("expected every value > 0, found {bad}"),
            ));
        }
        if t.mean.iter().any(|m| !m.is_finite()) {
            self.errors
                .push(self.invalid("transforms.mean", "expected finite numbers".to_owned()));
        }
    }

    fn optimizer(&mut self, spec: &RunSpec) {
        let o = &spec.optimizer;
        if !(o.lr > 0.0 && o.lr.is_finite()) {
            self.errors.push(self.invalid(
                "optimizer.lr",
                format!("expected a number > 0, found {}", o.lr),
            ));
        }
        if !(0.0..1.0).contains(&o.momentum) {
            self.errors.push(self.invalid(
                "optimizer.momentum",
                format!("expected a number in [0, 1), found {}", o.momentum),
            ));
        }
        if let Some(bad) = o.betas.iter().find(|b| !(0.0..1.0).contains(*b)) {
            self.errors.push(self.invalid(
                "optimizer.betas",
                format!("expected numbers in [0, 1), found {bad}"),
            ));
        }
        if o.eps.is_nan() || o.eps <= 0.0 {
            self.errors.push(self.invalid(
                "optimizer.eps",
                format!("expected a number > 0, found {}", o.eps),
            ));
        }
        // Settings the chosen optimizer ignores: harmless, but likely a mistake when changed from
        // the default (a preset restating the default, e.g. sgd's momentum, is not worth a warning).
        let d = &super::default_spec().optimizer;
        let unused = match o.kind {
            OptimizerKind::Sgd => [
                ("optimizer.betas", o.betas != d.betas),
                ("optimizer.eps", o.eps != d.eps),
            ],
            OptimizerKind::Adam | OptimizerKind::Adamw => [
                ("optimizer.momentum", o.momentum != d.momentum),
                ("optimizer.nesterov", o.nesterov != d.nesterov),
            ],
        };
        for (key, changed) in unused {
            if changed {
                let label = format!("ignored by optimizer {}", quoted(o.kind));
                self.warnings
                    .push(self.warning(key, format!("`{key}` has no effect"), label));
            }
        }
    }

    fn regularization(&mut self, spec: &RunSpec) {
        let (r, lr) = (&spec.regularization, spec.optimizer.lr);
        if !(r.lambda >= 0.0 && r.lambda.is_finite()) {
            self.errors.push(self.invalid(
                "regularization.lambda",
                format!("expected a number >= 0, found {}", r.lambda),
            ));
            return;
        }
        if spec.optimizer.kind == OptimizerKind::Adamw
            && matches!(r.kind, RegularizationKind::L1 | RegularizationKind::L2)
        {
            let note = self.where_set("optimizer.kind");
            self.errors.push(self.invalid(
                "regularization.kind",
                format!("expected \"decoupled\" or \"none\" with optimizer \"adamw\", found {}", quoted(r.kind)),
            )
            .note(note)
            .note("adamw is adam whose weight decay is decoupled: it cannot also add a penalty to the loss")
            .help("use optimizer.kind = \"adam\" for l1/l2, or regularization.kind = \"decoupled\""));
        }
        if r.kind == RegularizationKind::None && r.lambda > 0.0 {
            self.warnings.push(
                self.warning(
                    "regularization.lambda",
                    "`regularization.lambda` has no effect".to_owned(),
                    "ignored while regularization.kind = \"none\"".to_owned(),
                )
                .help("set regularization.kind = \"l2\" (or \"l1\", \"decoupled\")"),
            );
        }
        if r.kind == RegularizationKind::None {
            let d = &super::default_spec().regularization;
            for (key, changed) in [
                ("regularization.apply_to", r.apply_to != d.apply_to),
                (
                    "regularization.allow_unstable",
                    r.allow_unstable != d.allow_unstable,
                ),
            ] {
                if changed {
                    self.warnings.push(self.warning(
                        key,
                        format!("`{key}` has no effect"),
                        "ignored while regularization.kind = \"none\"".to_owned(),
                    ));
                }
            }
        }
        let (factor, formula) = match r.kind {
            RegularizationKind::L2 => (2.0 * lr * r.lambda, "2·lr·λ"),
            RegularizationKind::Decoupled => (lr * r.lambda, "lr·λ"),
            RegularizationKind::None | RegularizationKind::L1 => return,
        };
        let shown = format!("{formula} = {factor} (lr = {lr}, λ = {})", r.lambda);
        let lr_note = self.where_set("optimizer.lr");
        if factor >= SHRINK_ERROR && !r.allow_unstable {
            self.errors.push(self.invalid("regularization.lambda", format!("expected {formula} < 1, found {shown}"))
                .note(lr_note)
                .note(format!(
                    "each step multiplies the weights by (1 − {formula}) = {}: at or below 0 it no longer shrinks them",
                    1.0 - factor
                ))
                .help("lower λ or lr, or set regularization.allow_unstable = true"));
        } else if factor >= SHRINK_WARN {
            self.warnings.push(
                self.warning(
                    "regularization.lambda",
                    format!("strong weight decay: {shown}"),
                    format!("each step multiplies the weights by {}", 1.0 - factor),
                )
                .note(lr_note),
            );
        }
    }

    fn loss(&mut self, spec: &RunSpec) {
        let e = spec.loss.label_smoothing;
        if !(0.0..=1.0).contains(&e) {
            self.errors.push(
                self.invalid(
                    "loss.label_smoothing",
                    format!("expected a number in [0, 1], found {e}"),
                )
                .note("the target becomes (1 − ε)·one-hot + ε/classes, as in torch's CrossEntropyLoss"),
            );
        }
    }

    fn train(&mut self, spec: &RunSpec) {
        let clip = spec.train.grad_clip_norm;
        if !(clip >= 0.0 && clip.is_finite()) {
            self.errors.push(self.invalid(
                "train.grad_clip_norm",
                format!("expected a number >= 0 (0 = off), found {clip}"),
            ));
        }
        if spec.train.epochs < 1 {
            self.errors
                .push(self.invalid("train.epochs", "expected at least 1, found 0".to_owned()));
        }
        if spec.train.device == super::values::Device::Cuda {
            self.errors.push(
                self.invalid(
                    "train.device",
                    "expected \"cpu\", found \"cuda\": not supported yet".to_owned(),
                )
                .note("the conv, pooling and BatchNorm ops have CPU kernels only"),
            );
        }
        if spec.train.batch_size < 1 {
            self.errors.push(self.invalid(
                "train.batch_size",
                "expected at least 1, found 0".to_owned(),
            ));
        }
    }

    fn backbone(&mut self, spec: &RunSpec) {
        if let super::values::Freeze::Until(block) = &spec.backbone.freeze {
            let arch = spec.backbone.name.arch();
            let why = match arch {
                None => Some("until:<block> needs a convolutional backbone (small_cnn, resnet18, resnet34, resnet50, efficientnet_lite0)".to_owned()),
                Some(arch) => crate::models::freeze::frozen_prefix(arch, block).err(),
            };
            if let Some(why) = why {
                self.errors.push(self.invalid("backbone.freeze", why));
            }
        }
        if spec.backbone.weights.is_none() && spec.backbone.freeze != super::values::Freeze::No {
            self.warnings.push(
                self.warning(
                    "backbone.freeze",
                    "frozen backbone without weights".to_owned(),
                    "a randomly initialised backbone stays random".to_owned(),
                )
                .help("set backbone.weights, or backbone.freeze = false"),
            );
        }
    }

    fn dataset(&mut self, spec: &RunSpec) {
        let d = &spec.dataset;
        match (d.root.as_os_str().is_empty(), &d.manifest) {
            (true, None) => self
                .errors
                .push(self.at.missing("dataset.root", "path/to/images")),
            (false, Some(_)) => self.errors.push(
                self.invalid(
                    "dataset.manifest",
                    "expected either `dataset.root` or `dataset.manifest`, not both".to_owned(),
                )
                .note(self.where_set("dataset.root"))
                .help("set `dataset.root = \"\"` where the manifest is set"),
            ),
            _ => {}
        }
        for (key, name) in [
            ("dataset.path_column", &d.path_column),
            ("dataset.label_column", &d.label_column),
            ("dataset.split_column", &d.split_column),
        ] {
            if name.is_empty() {
                self.errors
                    .push(self.invalid(key, "expected a column name".to_owned()));
            }
        }
        let s = &d.split;
        for (key, value) in [("dataset.split.val", s.val), ("dataset.split.test", s.test)] {
            if !(0.0..1.0).contains(&value) {
                self.errors.push(
                    self.invalid(key, format!("expected a fraction in [0, 1), found {value}")),
                );
            }
        }
        if s.val + s.test >= 1.0 && s.val < 1.0 && s.test < 1.0 {
            self.errors.push(
                self.invalid(
                    "dataset.split.val",
                    format!(
                        "expected val + test < 1 so that training keeps images, found {} + {}",
                        s.val, s.test
                    ),
                )
                .note(self.where_set("dataset.split.test")),
            );
        }
    }
}

/// An enum value as the user writes it in TOML, e.g. `"l2"`.
pub(super) fn quoted(value: impl serde::Serialize) -> String {
    toml::Value::try_from(value)
        .map(|v| v.to_string())
        .unwrap_or_default()
}
