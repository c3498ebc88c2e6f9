//! The datasets a spec's runs name: each split folder scanned once, checked where the spec set
//! it, and the content fingerprint a run id needs computed once, on first use.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::listed;
use crate::data::{
    fingerprint, scan_classes, split_fingerprint, split_list, ClassFiles, DataError, ImageFolder,
    Layout, Listed,
};
use crate::spec::{display_path, found_instead_of_folder, Diagnostic, Locator, RunSpec};

/// One run's images, and their content hash once asked for.
#[derive(Debug)]
pub struct Dataset {
    pub folder: ImageFolder,
    /// Where the files of a listed dataset lie (a manifest, or a split made from fractions);
    /// `None` for a folder with its own splits.
    pub listed: Option<Layout>,
    fingerprint: OnceLock<String>,
    test_fingerprint: OnceLock<Option<String>>,
}

impl Dataset {
    /// Which file went to which split (`split.csv`), for a listed dataset.
    pub fn split_list(&self) -> Option<String> {
        self.listed.as_ref().map(|_| split_list(&self.folder))
    }

    /// The spec a run id hashes. A listed dataset is named by what it holds, not by how the
    /// spec found it: its `[dataset]` becomes the folder spelling of its files (root, split
    /// folders, the per-class limits), the manifest keys their defaults. So a manifest of an
    /// image folder's files trains the run the folder trains, under the same id; the files,
    /// labels and splits themselves are in the content fingerprint.
    pub(crate) fn identity_spec(&self, spec: &RunSpec) -> RunSpec {
        let mut spec = spec.clone();
        if let Some(layout) = &self.listed {
            let defaults = &crate::spec::default_spec().dataset;
            spec.dataset = crate::spec::Dataset {
                root: layout.root.clone(),
                train_dir: layout.train_dir.clone(),
                val_dir: layout.val_dir.clone(),
                test_dir: layout.test_dir.clone(),
                manifest: None,
                path_column: defaults.path_column.clone(),
                label_column: defaults.label_column.clone(),
                split_column: defaults.split_column.clone(),
                split: defaults.split.clone(),
                ..spec.dataset
            };
        }
        spec
    }

    /// What a run id must hash beyond the content fingerprint: the class names, when the
    /// files' folders do not say them (the fingerprint has each image's class index only).
    pub(crate) fn classes_salt(&self) -> Option<String> {
        self.listed
            .as_ref()
            .filter(|l| !l.labels_in_paths)
            .map(|_| self.folder.classes.join("\n"))
    }

    /// SHA-256 over every file's path, size and content (computed once).
    pub fn fingerprint(&self) -> Result<String, DataError> {
        if let Some(f) = self.fingerprint.get() {
            return Ok(f.clone());
        }
        let f = fingerprint(&self.folder)?;
        Ok(self.fingerprint.get_or_init(|| f).clone())
    }

    /// The same hash of the test split, `None` without one (computed once).
    pub(crate) fn test_fingerprint(&self) -> Result<Option<String>, DataError> {
        if let Some(f) = self.test_fingerprint.get() {
            return Ok(f.clone());
        }
        let f = match &self.folder.test {
            Some(test) => Some(split_fingerprint(&self.folder.root, test, "test")?),
            None => None,
        };
        Ok(self.test_fingerprint.get_or_init(|| f).clone())
    }
}

/// Why a split folder could not be scanned.
#[derive(Debug, Clone)]
enum ScanError {
    NoClasses,
    Missing,
    Other(String),
}

/// What a run's dataset depends on: root, train, val and test folders, per-class limits, and
/// the manifest, its columns and the split's fractions (in their debug text).
pub(super) type DatasetKey = (PathBuf, String, String, String, usize, usize, String);

/// Every split folder scanned so far, by path.
#[derive(Default)]
pub(super) struct Scans {
    splits: HashMap<PathBuf, Result<Vec<ClassFiles>, ScanError>>,
}

/// The findings of checking one run's dataset.
pub(super) struct Checked {
    pub folder: Option<ImageFolder>,
    /// Where a listed dataset's files lie (see [`Dataset::listed`]).
    pub listed: Option<Layout>,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
}

impl Checked {
    /// A listed dataset, or its problems.
    fn take(&mut self, found: Result<Listed, Vec<Diagnostic>>) {
        match found {
            Ok(listed) => {
                self.folder = Some(listed.folder);
                self.listed = Some(listed.layout);
            }
            Err(errors) => self.errors.extend(errors),
        }
    }
}

impl Scans {
    fn scan(&mut self, path: &Path) -> Result<Vec<ClassFiles>, ScanError> {
        self.splits
            .entry(path.to_path_buf())
            .or_insert_with(|| match scan_classes(path) {
                Ok(classes) => Ok(classes),
                Err(DataError::NoClasses(_)) => Err(ScanError::NoClasses),
                Err(DataError::Io { path: p, .. }) if p == path => Err(ScanError::Missing),
                Err(e) => Err(ScanError::Other(e.to_string())),
            })
            .clone()
    }

    /// [`Self::check`], as the dataset or the spec error at `at`; the warnings go to `warnings`.
    pub(super) fn open(
        &mut self,
        d: &crate::spec::Dataset,
        at: &Locator,
        warnings: &mut Vec<String>,
    ) -> Result<Dataset, crate::spec::SpecError> {
        let checked = self.check(d, at);
        warnings.extend(checked.warnings.iter().map(ToString::to_string));
        match checked.folder.filter(|_| checked.errors.is_empty()) {
            Some(folder) => Ok(Dataset {
                listed: checked.listed,
                ..dataset(folder)
            }),
            None => Err(at.rejected(checked.errors)),
        }
    }

    /// Scans (once per folder) and checks the dataset `d` names, reporting at the keys that
    /// chose its folders: the folders exist, every class has images, train and val have the
    /// same classes; fewer images than a per-class limit asks for is a warning.
    // Long: each check of a dataset's folders with its located message, in the order the messages
    // are reported.
    pub(super) fn check(&mut self, d: &crate::spec::Dataset, at: &Locator) -> Checked {
        let mut out = Checked {
            folder: None,
            listed: None,
            errors: Vec::new(),
            warnings: Vec::new(),
        };
        if let Some(manifest) = &d.manifest {
            out.take(listed::check_manifest(d, manifest, at));
            return out;
        }
        if d.root.as_os_str().is_empty() {
            return out; // the spec's own check says it is missing
        }
        if !d.root.is_dir() {
            out.errors.push(
                at.invalid(
                    "dataset.root",
                    format!(
                        "expected a folder, found {}",
                        found_instead_of_folder(&d.root)
                    ),
                )
                .help("relative paths resolve against the folder of the file that sets them"),
            );
            return out;
        }
        let train = self.split(&d.root, &d.train_dir, "dataset.train_dir", at, &mut out);
        // A folder without a validation folder (of the default name, `val`) gets a split made
        // from [dataset.split]'s fractions.
        let default_val = crate::spec::default_spec().dataset.val_dir == d.val_dir;
        if default_val && !d.root.join(&d.val_dir).exists() {
            let test = (!d.test_dir.is_empty())
                .then(|| self.split(&d.root, &d.test_dir, "dataset.test_dir", at, &mut out))
                .flatten();
            if let Some((_, train_files)) = train.filter(|_| out.errors.is_empty()) {
                out.take(listed::split_folder(d, train_files, test.map(|t| t.1), at));
            }
            return out;
        }
        let val = self.split(&d.root, &d.val_dir, "dataset.val_dir", at, &mut out);
        let test = (!d.test_dir.is_empty())
            .then(|| self.split(&d.root, &d.test_dir, "dataset.test_dir", at, &mut out))
            .flatten();
        let (Some((train, train_files)), Some((val, val_files))) = (train, val) else {
            return out;
        };
        if let Some((test, _)) = &test {
            if train.keys().ne(test.keys()) {
                let mut diag = at.invalid(
                    "dataset.test_dir",
                    "expected the same class folders in test as in train".to_owned(),
                );
                for (a, b, name) in [(&train, test, &d.train_dir), (test, &train, &d.test_dir)] {
                    let only: Vec<&str> = a
                        .keys()
                        .filter(|k| !b.contains_key(*k))
                        .map(String::as_str)
                        .collect();
                    if !only.is_empty() {
                        diag = diag.note(format!("only in {name}: {}", only.join(", ")));
                    }
                }
                out.errors.push(diag);
            }
        }
        if train.keys().ne(val.keys()) {
            let only = |a: &BTreeMap<String, usize>, b: &BTreeMap<String, usize>| {
                a.keys()
                    .filter(|k| !b.contains_key(*k))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let (t, v) = (only(&train, &val), only(&val, &train));
            let mut diag = at.invalid(
                "dataset.root",
                "expected the same class folders in train and val".to_owned(),
            );
            if !t.is_empty() {
                diag = diag.note(format!("only in {}: {t}", d.train_dir));
            }
            if !v.is_empty() {
                diag = diag.note(format!("only in {}: {v}", d.val_dir));
            }
            out.errors.push(diag);
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
                out.warnings.push(at.warning(
                    key,
                    format!("fewer than {wanted} images per class in {split}"),
                    format!("these classes have fewer: {}", short.join(", ")),
                ));
            }
        }
        if out.errors.is_empty() {
            match ImageFolder::from_classes(
                &d.root,
                train_files,
                val_files,
                d.train_per_class,
                d.val_per_class,
            )
            .and_then(|folder| match test {
                Some((_, files)) => folder.with_test(files),
                None => Ok(folder),
            }) {
                Ok(folder) => out.folder = Some(folder),
                Err(e) => out.errors.push(at.invalid("dataset.root", e.to_string())),
            }
        }
        out
    }

    /// Class folder → image count for one split (and its files); reports a missing split or an
    /// empty class.
    fn split(
        &mut self,
        root: &Path,
        dir: &str,
        dir_key: &str,
        at: &Locator,
        out: &mut Checked,
    ) -> Option<(BTreeMap<String, usize>, Vec<ClassFiles>)> {
        let path = root.join(dir);
        // Point at the folder name when a file chose it, else at the root that holds it.
        let key = if at.is_default(dir_key) {
            "dataset.root"
        } else {
            dir_key
        };
        let scanned = match self.scan(&path) {
            Ok(scanned) => scanned,
            Err(ScanError::NoClasses) => {
                out.errors.push(at.invalid(
                    key,
                    format!(
                        "expected class folders in {}, found none",
                        display_path(&path)
                    ),
                ));
                return None;
            }
            Err(ScanError::Missing) => {
                out.errors.push(at.invalid(
                    key,
                    format!(
                        "expected a folder, found {}",
                        found_instead_of_folder(&path)
                    ),
                ));
                return None;
            }
            Err(ScanError::Other(e)) => {
                out.errors.push(at.invalid(key, e));
                return None;
            }
        };
        let classes: BTreeMap<String, usize> = scanned
            .iter()
            .map(|c| (c.name.clone(), c.images.len()))
            .collect();
        let empty: Vec<&str> = classes
            .iter()
            .filter(|(_, n)| **n == 0)
            .map(|(c, _)| c.as_str())
            .collect();
        if !empty.is_empty() {
            let empty = empty.join(", ");
            out.errors.push(
                at.invalid(
                    key,
                    format!("expected at least one image per class, found none in: {empty}"),
                )
                .note(format!(
                    "images are .png, .jpg or .jpeg files in {}/<class>/",
                    display_path(&path)
                )),
            );
        }
        Some((classes, scanned))
    }
}

/// A dataset ready for the runs that name it.
pub(super) fn dataset(folder: ImageFolder) -> Dataset {
    Dataset {
        folder,
        listed: None,
        fingerprint: OnceLock::new(),
        test_fingerprint: OnceLock::new(),
    }
}

/// The key of the dataset a run names.
pub(super) fn key(d: &crate::spec::Dataset) -> DatasetKey {
    (
        d.root.clone(),
        d.train_dir.clone(),
        d.val_dir.clone(),
        d.test_dir.clone(),
        d.train_per_class,
        d.val_per_class,
        format!(
            "{:?} {:?} {:?} {:?} {:?}",
            d.manifest, d.path_column, d.label_column, d.split_column, d.split
        ),
    )
}
