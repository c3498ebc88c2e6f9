//! `backbone.weights` checked when the spec's runs are resolved, not when a run starts: the
//! file's tensors (safetensors, or a PyTorch checkpoint's state dict) must have the backbone's
//! names, shapes and dtypes (the head may differ in classes when it is replaced), so a wrong
//! file is a spec error and no run folder is created.

use std::path::Path;

use super::weights::{load_torchvision_file, WeightsError};
use super::{Arch, ArchVisitor, Backbone, Classifier};
use crate::durable::tensor_file::TensorFile;
use crate::train::Dev;

/// Why a weights file does not fit: one line, and the details (at most [`SHOWN`] of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Unfit {
    pub summary: String,
    pub details: Vec<String>,
}

/// Mismatches listed one by one; the rest are counted.
const SHOWN: usize = 5;

/// Checks the weights file at `path` (already read: `file`) against `arch` with `classes`
/// outputs by loading it into a fresh model, exactly as a run will.
pub(crate) fn check_weights(
    arch: Arch,
    path: &Path,
    file: &TensorFile,
    classes: usize,
    replace_head: bool,
) -> Result<(), Unfit> {
    arch.dispatch(Check {
        path,
        file,
        classes,
        replace_head,
    })
}

struct Check<'a> {
    path: &'a Path,
    file: &'a TensorFile,
    classes: usize,
    replace_head: bool,
}

impl ArchVisitor for Check<'_> {
    type Output = Result<(), Unfit>;

    fn visit<B: Backbone>(self) -> Self::Output {
        let mut model =
            Classifier::<B>::to_load(&Dev::default(), self.classes.max(1), &Default::default());
        match load_torchvision_file(&mut model, self.path, self.file, self.replace_head) {
            Ok(_) => Ok(()),
            Err(e) => Err(describe(&e, B::NAME)),
        }
    }
}

fn describe(e: &WeightsError, arch: &str) -> Unfit {
    match e {
        WeightsError::Format { message, .. } => Unfit {
            summary: message.clone(),
            details: Vec::new(),
        },
        WeightsError::Mismatch { problems, .. } => {
            let mut details: Vec<String> =
                problems.iter().take(SHOWN).map(|p| p.to_string()).collect();
            if problems.len() > SHOWN {
                details.push(format!("… and {} more", problems.len() - SHOWN));
            }
            Unfit {
                summary: format!(
                    "expected {arch} weights, found a file that does not fit it ({} problems)",
                    problems.len()
                ),
                details,
            }
        }
        WeightsError::HeadClasses {
            head,
            found,
            expected,
            ..
        } => Unfit {
            summary: format!(
                "expected a {expected}-class head `{head}` (the dataset's classes), found {found} classes"
            ),
            details: vec!["set head.replace = true to train a new head instead".into()],
        },
        other => Unfit {
            summary: other.to_string(),
            details: Vec::new(),
        },
    }
}
