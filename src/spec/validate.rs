//! Semantic checks on one resolved run: what serde's types cannot say (ranges, relations between
//! keys, the file system). Every failed check is collected so the user fixes them in one go; each
//! points at the layer that set the offending key.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use super::error::{display_path, Diagnostic, Source, SpecError};
use super::resolved::RunSpec;
use super::sites::Sites;
use super::values::{OptimizerKind, RegularizationKind};

/// 2·lr·λ (or lr·λ for decoupled decay) at or above this warns: weights shrink fast per step.
const SHRINK_WARN: f64 = 0.1;
/// At or above this the step no longer shrinks the weights: it flips or zeroes them.
const SHRINK_ERROR: f64 = 1.0;

const IMAGE_EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Checks a run; returns its warnings, or every error found.
pub fn check(
    spec: &RunSpec,
    sites: &Sites,
    file: &Arc<Source>,
) -> Result<Vec<Diagnostic>, SpecError> {
    let mut c = Checker {
        sites,
        file,
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
    if c.errors.is_empty() {
        Ok(c.warnings)
    } else {
        Err(SpecError::Invalid(c.errors))
    }
}

struct Checker<'a> {
    sites: &'a Sites,
    file: &'a Arc<Source>,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

impl Checker<'_> {
    /// An error about `key`'s value, pointing where it was set.
    fn invalid(&self, key: &str, label: String) -> Diagnostic {
        self.locate(
            Diagnostic::error(format!("invalid value for `{key}`")).label(label),
            key,
        )
    }

    fn warning(&self, key: &str, message: String, label: String) -> Diagnostic {
        self.locate(Diagnostic::warning(message).label(label), key)
    }

    /// A required string key left at its empty default: point at the experiment file.
    fn missing(&mut self, key: &str, example: &str) {
        let (table, leaf) = key.split_once('.').expect("dotted key");
        let diag = Diagnostic::error(format!("missing `{key}`"))
            .in_file(self.file.clone())
            .label(format!("expected a value for `{leaf}` under [{table}]"))
            .help(format!(
                "add `{leaf} = \"{example}\"` under [{table}], or pass `--set {key}={example}`"
            ));
        self.errors.push(diag);
    }

    fn locate(&self, diag: Diagnostic, key: &str) -> Diagnostic {
        match self.sites.value(key) {
            Some(at) if !self.sites.is_default(key) => diag.at(Some(at)),
            // Left at the embedded default: say so, rather than point into a file the user never saw.
            at => diag.at(at).note(format!(
                "`{key}` keeps its default from pipeline/defaults.toml"
            )),
        }
    }

    /// "set at file:line:col", for notes about a second key.
    fn where_set(&self, key: &str) -> String {
        match self.sites.value(key) {
            Some(at) if !self.sites.is_default(key) => format!("`{key}` set at {}", at.location()),
            _ => format!("`{key}` keeps its default from pipeline/defaults.toml"),
        }
    }

    fn experiment(&mut self, spec: &RunSpec) {
        let name = &spec.experiment.name;
        if name.is_empty() && self.sites.is_default("experiment.name") {
            self.missing("experiment.name", "my_experiment");
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

    fn train(&mut self, spec: &RunSpec) {
        if spec.train.epochs < 1 {
            self.errors
                .push(self.invalid("train.epochs", "expected at least 1, found 0".to_owned()));
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
                None => Some("until:<block> needs a convolutional backbone (small_cnn, resnet18, resnet34, efficientnet_lite0)".to_owned()),
                Some(arch) => crate::models::freeze::frozen_prefix(arch, block).err(),
            };
            if let Some(why) = why {
                self.errors.push(self.invalid("backbone.freeze", why));
            }
        }
        if let Some(weights) = &spec.backbone.weights {
            if !weights.is_file() {
                self.errors.push(self.invalid(
                    "backbone.weights",
                    format!(
                        "expected a safetensors file, found no file {}",
                        display_path(weights)
                    ),
                ));
            }
        } else if spec.backbone.freeze != super::values::Freeze::No {
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
        if d.root.as_os_str().is_empty() {
            self.missing("dataset.root", "path/to/images");
            return;
        }
        if !d.root.is_dir() {
            self.errors.push(
                self.invalid(
                    "dataset.root",
                    format!(
                        "expected a folder, found nothing at {}",
                        display_path(&d.root)
                    ),
                )
                .help("relative paths resolve against the folder of the file that sets them"),
            );
            return;
        }
        let train = self.split(&d.root, &d.train_dir, "dataset.train_dir");
        let val = self.split(&d.root, &d.val_dir, "dataset.val_dir");
        let (Some(train), Some(val)) = (train, val) else {
            return;
        };
        if train.keys().ne(val.keys()) {
            let only = |a: &BTreeMap<String, usize>, b: &BTreeMap<String, usize>| {
                a.keys()
                    .filter(|k| !b.contains_key(*k))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (t, v) = (only(&train, &val), only(&val, &train));
            let mut diag = self.invalid(
                "dataset.root",
                "expected the same class folders in train and val".to_owned(),
            );
            if !t.is_empty() {
                diag = diag.note(format!("only in {}: {t}", d.train_dir));
            }
            if !v.is_empty() {
                diag = diag.note(format!("only in {}: {v}", d.val_dir));
            }
            self.errors.push(diag);
        }
        for (split, counts, wanted, key) in [
            (
                &d.train_dir,
                &train,
                d.train_per_class,
                "dataset.train_per_class",
            ),
            (&d.val_dir, &val, d.val_per_class, "dataset.val_per_class"),
        ] {
            let short: Vec<String> = counts
                .iter()
                .filter(|(_, n)| wanted > **n)
                .map(|(c, n)| format!("{c} ({n})"))
                .collect();
            if wanted > 0 && !short.is_empty() {
                self.warnings.push(self.warning(
                    key,
                    format!("fewer than {wanted} images per class in {split}"),
                    format!("these classes have fewer: {}", short.join(", ")),
                ));
            }
        }
    }

    /// Class folder → image count for one split; reports a missing split or an empty class.
    fn split(&mut self, root: &Path, dir: &str, dir_key: &str) -> Option<BTreeMap<String, usize>> {
        let path = root.join(dir);
        // Point at the folder name when a file chose it, else at the root that holds it.
        let key = if self.sites.is_default(dir_key) {
            "dataset.root"
        } else {
            dir_key
        };
        let Ok(entries) = std::fs::read_dir(&path) else {
            self.errors.push(self.invalid(
                key,
                format!(
                    "expected a folder, found nothing at {}",
                    display_path(&path)
                ),
            ));
            return None;
        };
        let mut classes = BTreeMap::new();
        for entry in entries.flatten().filter(|e| e.path().is_dir()) {
            let images = std::fs::read_dir(entry.path())
                .map(|files| files.flatten().filter(|f| is_image(&f.path())).count())
                .unwrap_or(0);
            classes.insert(entry.file_name().to_string_lossy().into_owned(), images);
        }
        if classes.is_empty() {
            self.errors.push(self.invalid(
                key,
                format!(
                    "expected class folders in {}, found none",
                    display_path(&path)
                ),
            ));
            return None;
        }
        let empty: Vec<&str> = classes
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(c, _)| c.as_str())
            .collect();
        if !empty.is_empty() {
            let empty = empty.join(", ");
            self.errors.push(
                self.invalid(
                    key,
                    format!("expected at least one image per class, found none in: {empty}"),
                )
                .note(format!(
                    "images are .png, .jpg or .jpeg files in {}/<class>/",
                    display_path(&path)
                )),
            );
        }
        Some(classes)
    }
}

/// An enum value as the user writes it in TOML, e.g. `"l2"`.
fn quoted(value: impl serde::Serialize) -> String {
    toml::Value::try_from(value)
        .map(|v| v.to_string())
        .unwrap_or_default()
}

fn is_image(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}
