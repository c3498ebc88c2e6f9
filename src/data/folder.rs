//! ImageFolder scanning: `<root>/<split>/<class>/<image>`, classes sorted by name like torchvision.

use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Extensions the loader decodes (compared case-insensitively).
pub const IMAGE_EXTENSIONS: &[&str] = &["png", "jpg", "jpeg"];

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read dataset folder {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("dataset folder {0} has no class folders")]
    NoClasses(PathBuf),
    #[error("class `{class}` has no images in {path}")]
    EmptyClass { class: String, path: PathBuf },
    #[error("train and val have different classes: only in train: [{only_train}], only in val: [{only_val}]")]
    ClassMismatch {
        only_train: String,
        only_val: String,
    },
    #[error("expected the classes [{}], found [{}]", expected.join(", "), found.join(", "))]
    ClassesDiffer {
        expected: Vec<String>,
        found: Vec<String>,
    },
    #[error("cannot decode image {path}: {reason}")]
    BadImage { path: PathBuf, reason: String },
    /// Decoded fine, but its size after the transforms differs from the batch's.
    #[error("image {path} is {}×{} after the transforms but the batch is {}×{}: set transforms.crop (or resize) so that every image has one size", size.0, size.1, batch.0, batch.1)]
    WrongSize {
        path: PathBuf,
        size: (u32, u32),
        batch: (usize, usize),
    },
}

/// One image file and its class index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub path: PathBuf,
    pub label: usize,
}

/// The images of one split, in a stable order: by class, then by file name.
#[derive(Debug, Clone)]
pub struct Split {
    pub samples: Vec<Sample>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.samples.len()
    }
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }
    /// Every image of a scanned split folder, labelled by the position of its class folder's
    /// name in `classes`; the folder must have exactly these classes (in any order on disk they
    /// sort the same), else [`DataError::ClassesDiffer`] lists both sides.
    pub(crate) fn of_classes(
        scanned: Vec<ClassFiles>,
        classes: &[String],
    ) -> Result<Split, DataError> {
        let names: Vec<String> = scanned.iter().map(|c| c.name.clone()).collect();
        if names != classes {
            return Err(DataError::ClassesDiffer {
                expected: classes.to_vec(),
                found: names,
            });
        }
        split_of(scanned, 0)
    }

    /// How many samples each class has.
    pub fn class_counts(&self, n_classes: usize) -> Vec<usize> {
        let mut counts = vec![0; n_classes];
        for s in &self.samples {
            counts[s.label] += 1;
        }
        counts
    }
}

/// A dataset of `train/<class>/*` and `val/<class>/*` image files, and optionally a held-out
/// `test/<class>/*` split.
#[derive(Debug, Clone)]
pub struct ImageFolder {
    pub root: PathBuf,
    pub classes: Vec<String>,
    pub train: Split,
    pub val: Split,
    /// Scored once after training, never seen by it (`dataset.test_dir`).
    pub test: Option<Split>,
}

impl ImageFolder {
    /// Scans `root/train_dir` and `root/val_dir`. `*_per_class` = 0 keeps every image, N keeps
    /// the first N (file names sorted) so a subset is the same on every machine.
    pub fn open(
        root: &Path,
        train_dir: &str,
        val_dir: &str,
        train_per_class: usize,
        val_per_class: usize,
    ) -> Result<Self, DataError> {
        let train = scan_classes(&root.join(train_dir))?;
        let val = scan_classes(&root.join(val_dir))?;
        Self::from_classes(root, train, val, train_per_class, val_per_class)
    }

    /// The dataset of two scanned splits (see [`scan_classes`]), with the same limits as
    /// [`ImageFolder::open`].
    pub(crate) fn from_classes(
        root: &Path,
        train: Vec<ClassFiles>,
        val: Vec<ClassFiles>,
        train_per_class: usize,
        val_per_class: usize,
    ) -> Result<Self, DataError> {
        let names = |s: &[ClassFiles]| s.iter().map(|c| c.name.clone()).collect::<Vec<_>>();
        let (train_classes, val_classes) = (names(&train), names(&val));
        if train_classes != val_classes {
            let only = |a: &[String], b: &[String]| {
                a.iter()
                    .filter(|c| !b.contains(c))
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            return Err(DataError::ClassMismatch {
                only_train: only(&train_classes, &val_classes),
                only_val: only(&val_classes, &train_classes),
            });
        }
        Ok(Self {
            root: root.to_path_buf(),
            classes: train_classes,
            train: split_of(train, train_per_class)?,
            val: split_of(val, val_per_class)?,
            test: None,
        })
    }

    /// Adds a held-out test split (every image of it), which must have the training classes.
    pub fn with_test(mut self, test: Vec<ClassFiles>) -> Result<Self, DataError> {
        let test = Split::of_classes(test, &self.classes)?;
        self.test = Some(test);
        Ok(self)
    }

    pub(crate) fn num_classes(&self) -> usize {
        self.classes.len()
    }
}

fn read_dir_sorted(dir: &Path) -> Result<Vec<PathBuf>, DataError> {
    let io = |source| DataError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut entries = std::fs::read_dir(dir)
        .map_err(io)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io)?;
    entries.sort();
    Ok(entries)
}

/// Hidden entries (`.ipynb_checkpoints/`, `.DS_Store`, macOS `._x.png`) are never classes or
/// images: tools create them next to the data.
fn is_hidden(path: &Path) -> bool {
    path.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with('.'))
}

pub(crate) fn is_image(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| x.eq_ignore_ascii_case(e)))
}

/// One class folder of a split and its image files, sorted by name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassFiles {
    pub name: String,
    pub dir: PathBuf,
    pub images: Vec<PathBuf>,
}

/// The classes of a split folder: its non-hidden sub-folders sorted by name (torchvision's
/// order), each with its non-hidden image files. The one scanner behind the loader and the
/// checks of `runner check`, so both see the same classes. No class folder is [`DataError::NoClasses`];
/// a class without images comes back with none (the caller says how that is wrong).
pub fn scan_classes(split_root: &Path) -> Result<Vec<ClassFiles>, DataError> {
    let mut classes = Vec::new();
    for dir in read_dir_sorted(split_root)? {
        if !dir.is_dir() || is_hidden(&dir) {
            continue;
        }
        let images = read_dir_sorted(&dir)?
            .into_iter()
            .filter(|p| p.is_file() && !is_hidden(p) && is_image(p))
            .collect();
        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        classes.push(ClassFiles {
            name: name.unwrap_or_default(),
            dir,
            images,
        });
    }
    if classes.is_empty() {
        return Err(DataError::NoClasses(split_root.to_path_buf()));
    }
    Ok(classes)
}

/// The samples of a scanned split, the first `per_class` files of each class (0 = all).
fn split_of(classes: Vec<ClassFiles>, per_class: usize) -> Result<Split, DataError> {
    let mut samples = Vec::new();
    for (label, class) in classes.into_iter().enumerate() {
        let ClassFiles {
            name,
            dir,
            mut images,
        } = class;
        if images.is_empty() {
            return Err(DataError::EmptyClass {
                class: name,
                path: dir,
            });
        }
        if per_class > 0 {
            images.truncate(per_class);
        }
        samples.extend(images.into_iter().map(|path| Sample { path, label }));
    }
    Ok(Split { samples })
}

/// A content fingerprint of the files a run reads: relative path, size and SHA-256 of every
/// file. Content rather than modification times, because a fresh clone rewrites every mtime.
/// The train and val splits only: the features cached for them, and the runs trained on them,
/// do not depend on a test split (see [`split_fingerprint`]).
pub fn fingerprint(folder: &ImageFolder) -> Result<String, DataError> {
    let mut h = Sha256::new();
    for (split, name) in [(&folder.train, "train"), (&folder.val, "val")] {
        hash_split(&mut h, &folder.root, split, name)?;
    }
    Ok(format!("{:x}", h.finalize()))
}

/// The same content fingerprint of one split, its paths relative to `root`.
pub fn split_fingerprint(root: &Path, split: &Split, name: &str) -> Result<String, DataError> {
    let mut h = Sha256::new();
    hash_split(&mut h, root, split, name)?;
    Ok(format!("{:x}", h.finalize()))
}

fn hash_split(h: &mut Sha256, root: &Path, split: &Split, name: &str) -> Result<(), DataError> {
    h.update(name.as_bytes());
    for s in &split.samples {
        let bytes = std::fs::read(&s.path).map_err(|source| DataError::Io {
            path: s.path.clone(),
            source,
        })?;
        let rel = s.path.strip_prefix(root).unwrap_or(&s.path);
        h.update(rel.to_string_lossy().as_bytes());
        h.update(s.label.to_le_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(Sha256::digest(&bytes));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catdog-tiny")
    }

    #[test]
    fn scans_classes_sorted_and_limits_per_class() {
        let f = ImageFolder::open(&tiny(), "train", "val", 0, 0).unwrap();
        assert_eq!(f.classes, vec!["cat", "dog"]);
        assert_eq!(f.train.class_counts(2), vec![8, 8]);
        assert_eq!(f.val.class_counts(2), vec![4, 4]);
        let sub = ImageFolder::open(&tiny(), "train", "val", 3, 2).unwrap();
        assert_eq!(sub.train.class_counts(2), vec![3, 3]);
        // the subset is the first files by name
        assert_eq!(sub.train.samples[..3], f.train.samples[..3]);
    }

    #[test]
    fn class_mismatch_names_the_difference() {
        let dir = tempfile::tempdir().unwrap();
        for (split, class) in [
            ("train", "cat"),
            ("train", "dog"),
            ("val", "cat"),
            ("val", "cow"),
        ] {
            let d = dir.path().join(split).join(class);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(tiny().join("train/cat/cat_02000.png"), d.join("a.png")).unwrap();
        }
        let err = ImageFolder::open(dir.path(), "train", "val", 0, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "train and val have different classes: only in train: [dog], only in val: [cow]"
        );
    }

    #[test]
    fn a_test_split_must_have_the_training_classes() {
        let f = ImageFolder::open(&tiny(), "train", "val", 0, 0).unwrap();
        let with = f
            .clone()
            .with_test(scan_classes(&tiny().join("val")).unwrap())
            .unwrap();
        assert_eq!(with.test.unwrap().class_counts(2), vec![4, 4]);
        // the train/val fingerprint does not see the test split
        let plain = ImageFolder::open(&tiny(), "train", "val", 0, 0).unwrap();
        assert_eq!(fingerprint(&plain).unwrap(), fingerprint(&f).unwrap());
        let dir = tempfile::tempdir().unwrap();
        for class in ["cat", "cow"] {
            let d = dir.path().join(class);
            std::fs::create_dir_all(&d).unwrap();
            std::fs::copy(tiny().join("train/cat/cat_02000.png"), d.join("a.png")).unwrap();
        }
        let err = f.with_test(scan_classes(dir.path()).unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "expected the classes [cat, dog], found [cat, cow]"
        );
    }

    #[test]
    fn fingerprint_changes_with_content() {
        let f = ImageFolder::open(&tiny(), "train", "val", 2, 1).unwrap();
        let a = fingerprint(&f).unwrap();
        assert_eq!(a, fingerprint(&f).unwrap());
        let g = ImageFolder::open(&tiny(), "train", "val", 3, 1).unwrap();
        assert_ne!(a, fingerprint(&g).unwrap());
    }
}
