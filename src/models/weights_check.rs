//! `backbone.weights` checked when the spec is, not when a run starts: the file must be
//! safetensors whose tensor names, shapes and dtypes are the backbone's (the head may differ in
//! classes when it is replaced), so a wrong file is a spec error and no run folder is created.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::weights::{load_torchvision_weights, WeightsError};
use super::{Arch, ArchVisitor, Backbone, Classifier};
use crate::train::Dev;

/// Why a weights file does not fit: one line, and the details (at most [`SHOWN`] of them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfit {
    pub summary: String,
    pub details: Vec<String>,
}

/// Mismatches listed one by one; the rest are counted.
const SHOWN: usize = 5;

type Key = (
    PathBuf,
    Arch,
    usize,
    bool,
    Option<(u64, std::time::SystemTime)>,
);

/// Checks `path` against `arch` with `classes` outputs by loading it into a fresh model, exactly
/// as a run will. Every point of a sweep names the same file, so results are kept per file
/// (and its size and modification time), per backbone, class count and `head.replace`.
pub fn check_weights(
    arch: Arch,
    path: &Path,
    classes: usize,
    replace_head: bool,
) -> Result<(), Unfit> {
    static SEEN: Mutex<Option<HashMap<Key, Result<(), Unfit>>>> = Mutex::new(None);
    let stamp = std::fs::metadata(path)
        .ok()
        .and_then(|m| Some((m.len(), m.modified().ok()?)));
    let key = (path.to_path_buf(), arch, classes, replace_head, stamp);
    if let Some(seen) = SEEN.lock().unwrap().as_ref().and_then(|m| m.get(&key)) {
        return seen.clone();
    }
    let result = arch.dispatch(Check {
        path,
        classes,
        replace_head,
    });
    SEEN.lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(key, result.clone());
    result
}

struct Check<'a> {
    path: &'a Path,
    classes: usize,
    replace_head: bool,
}

impl ArchVisitor for Check<'_> {
    type Output = Result<(), Unfit>;

    fn visit<B: Backbone>(self) -> Self::Output {
        let mut model = Classifier::<B>::new(&Dev::default(), self.classes.max(1));
        match load_torchvision_weights(&mut model, self.path, self.replace_head) {
            Ok(_) => Ok(()),
            Err(e) => Err(describe(&e, B::NAME)),
        }
    }
}

fn describe(e: &WeightsError, arch: &str) -> Unfit {
    match e {
        WeightsError::Format { message, .. } => Unfit {
            summary: format!("expected a safetensors file, found one that is not ({message})"),
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
