//! A dataset from a list of images: a manifest's rows, or a folder's images when the folder has
//! no validation split. Classes are the sorted label names (ImageFolder's order), each split's
//! samples sorted by class then path (ImageFolder's order too), so a list of a folder's files
//! gives the folder's dataset exactly, down to its content fingerprint.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Component, Path, PathBuf};

use super::folder::{is_image, ClassFiles, ImageFolder, Sample, Split, IMAGE_EXTENSIONS};
use super::manifest::{Issue, Row, Where};
use super::split::{assign, Fractions, Part};

/// A dataset made from a list, and where its files lie.
#[derive(Debug, Clone)]
pub struct Listed {
    pub folder: ImageFolder,
    pub layout: Layout,
}

/// Where a listed dataset's files lie. When every image is at `<root>/<dir>/<label>/<file>`
/// with one `dir` per split, the list is the folder dataset `root` with these dirs and
/// `labels_in_paths`; otherwise `root` is the images' common folder and the dirs are empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    pub root: PathBuf,
    pub train_dir: String,
    pub val_dir: String,
    /// "" without test images.
    pub test_dir: String,
    /// Every image's parent folder is named after its label, as in an image folder.
    pub labels_in_paths: bool,
}

/// How a listed dataset is cut: the split the rows say or the fractions, and the per-class
/// limits of `train_per_class` / `val_per_class`.
#[derive(Debug, Clone, Copy)]
pub struct Cut<'a> {
    /// `None`: the rows carry their split.
    pub fractions: Option<&'a Fractions>,
    /// The spec key a problem of the fractions is reported at.
    pub fractions_key: &'static str,
    pub train_per_class: usize,
    pub val_per_class: usize,
}

/// One row, checked: the image file and its label and split.
#[derive(Debug, Clone)]
struct Checked<'r> {
    row: &'r Row,
    path: PathBuf,
    part: Option<Part>,
}

/// The rows of a folder's scanned class folders, paths relative to `root` (for a split made
/// from fractions: the path decides an image's place).
pub fn rows_of_classes(root: &Path, classes: &[ClassFiles]) -> Vec<Row> {
    classes
        .iter()
        .flat_map(|c| {
            c.images.iter().map(|path| Row {
                line: 0,
                path: slash_path(path.strip_prefix(root).unwrap_or(path)),
                label: c.name.clone(),
                split: None,
                spans: Default::default(),
            })
        })
        .collect()
}

/// A path with `/` between its components, the same on every system.
fn slash_path(path: &Path) -> String {
    path.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// `base/./a/../b` → `base/b`, lexically, so that one file listed two ways is one path.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// A path for messages: relative to the current folder when under it.
fn shown(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_default();
    path.strip_prefix(&cwd)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// The dataset of `rows` (paths relative to `base`, or absolute), cut as `cut` says. Every
/// problem is an issue at its row: a missing path or label, an unknown split, a path listed
/// twice, a file that is not there or not an image; then a class left without training or
/// validation images.
pub fn open_listed(base: &Path, rows: &[Row], cut: &Cut) -> Result<Listed, Vec<Issue>> {
    let (checked, mut issues) = check_rows(base, rows, cut.fractions.is_none());
    if !issues.is_empty() {
        return Err(issues);
    }
    let classes: Vec<String> = checked
        .iter()
        .map(|c| c.row.label.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    if classes.is_empty() {
        return Err(vec![Issue::new(
            Where::File,
            "the manifest lists no images",
            "expected a header line and one row per image",
        )]);
    }
    let index: HashMap<&str, usize> = classes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.as_str(), i))
        .collect();
    let labels: Vec<usize> = checked
        .iter()
        .map(|c| index[c.row.label.as_str()])
        .collect();
    let parts = parts_of(&checked, &labels, cut);
    issues.extend(empty_classes(&checked, &labels, &parts, &classes, cut));
    if !issues.is_empty() {
        return Err(issues);
    }
    let split = |part: Part, per_class: usize| {
        split_of_part(&checked, &labels, &parts, part, per_class, classes.len())
    };
    let train = split(Part::Train, cut.train_per_class);
    let val = split(Part::Val, cut.val_per_class);
    let test = split(Part::Test, 0);
    let layout = layout_of(&classes, &train, &val, &test);
    let folder = ImageFolder {
        root: layout.root.clone(),
        classes,
        train,
        val,
        test: (!test.is_empty()).then_some(test),
    };
    Ok(Listed { folder, layout })
}

/// Each checked row's part: the one its row names, or the one the fractions assign it.
fn parts_of(checked: &[Checked], labels: &[usize], cut: &Cut) -> Vec<Part> {
    match cut.fractions {
        None => checked
            .iter()
            .map(|c| {
                c.part
                    .expect("checked rows with a split column have a split")
            })
            .collect(),
        Some(fractions) => {
            let items: Vec<(&str, usize)> = checked
                .iter()
                .zip(labels)
                .map(|(c, &l)| (c.row.path.as_str(), l))
                .collect();
            assign(&items, fractions)
        }
    }
}

/// The samples of `part`, sorted by class then path; the first `per_class` of each class when
/// that is not 0.
fn split_of_part(
    checked: &[Checked],
    labels: &[usize],
    parts: &[Part],
    part: Part,
    per_class: usize,
    n_classes: usize,
) -> Split {
    let mut samples: Vec<Sample> = checked
        .iter()
        .zip(labels)
        .zip(parts)
        .filter(|(_, p)| **p == part)
        .map(|((c, &label), _)| Sample {
            path: c.path.clone(),
            label,
        })
        .collect();
    samples.sort_by(|a, b| (a.label, &a.path).cmp(&(b.label, &b.path)));
    if per_class > 0 {
        let mut kept = vec![0; n_classes];
        samples.retain(|s| {
            kept[s.label] += 1;
            kept[s.label] <= per_class
        });
    }
    Split { samples }
}

/// The rows of a manifest scored against a run's `classes`: those of split `part` (every row
/// when `None`), checked as [`open_listed`] checks them, each label one of `classes`.
pub fn split_of_rows(
    base: &Path,
    rows: &[Row],
    classes: &[String],
    part: Option<Part>,
) -> Result<Split, Vec<Issue>> {
    let (checked, mut issues) = check_rows(base, rows, false);
    let mut samples = Vec::new();
    for c in checked {
        if part.is_some() && c.part != part {
            continue;
        }
        match classes.iter().position(|k| *k == c.row.label) {
            Some(label) => samples.push(Sample {
                path: c.path,
                label,
            }),
            None => issues.push(
                Issue::new(
                    at_cell(c.row, c.row.spans.label.clone()),
                    format!("label `{}` is not a class of the run", c.row.label),
                    "expected one of the run's classes",
                )
                .note(format!("the run's classes: {}", classes.join(", "))),
            ),
        }
    }
    if !issues.is_empty() {
        return Err(issues);
    }
    samples.sort_by(|a, b| (a.label, &a.path).cmp(&(b.label, &b.path)));
    Ok(Split { samples })
}

fn at_cell(row: &Row, span: Option<std::ops::Range<usize>>) -> Where {
    Where::Row {
        line: row.line,
        span,
    }
}

/// Each row's file and split, and the issues of the rows that have none.
fn check_rows<'r>(
    base: &Path,
    rows: &'r [Row],
    split_needed: bool,
) -> (Vec<Checked<'r>>, Vec<Issue>) {
    let mut checked = Vec::with_capacity(rows.len());
    let mut issues = Vec::new();
    let mut first_line: HashMap<PathBuf, usize> = HashMap::new();
    for row in rows {
        match check_row(base, row, split_needed, &mut first_line) {
            Ok(c) => checked.push(c),
            Err(issue) => issues.push(issue),
        }
    }
    (checked, issues)
}

/// One row's file and split, or its first problem; `first_line` holds the line each file was
/// first listed at, to catch a file listed twice.
fn check_row<'r>(
    base: &Path,
    row: &'r Row,
    split_needed: bool,
    first_line: &mut HashMap<PathBuf, usize>,
) -> Result<Checked<'r>, Issue> {
    let path_at = at_cell(row, row.spans.path.clone());
    if row.path.is_empty() {
        return Err(Issue::new(
            path_at,
            "manifest row without an image path",
            "expected the path of an image",
        ));
    }
    if row.label.is_empty() {
        return Err(Issue::new(
            at_cell(row, row.spans.label.clone()),
            format!("image `{}` has no label", row.path),
            "expected a label",
        ));
    }
    let part = part_of_row(row, split_needed)?;
    let path = normalize(&base.join(&row.path));
    if let Some(first) = first_line.get(&path) {
        return Err(Issue::new(
            path_at,
            format!("image `{}` is listed twice", row.path),
            "listed again here",
        )
        .note(format!("first listed at line {first}")));
    }
    first_line.insert(path.clone(), row.line);
    image_at(row, &path)?;
    Ok(Checked { row, path, part })
}

/// The split a row names; `None` when it names none and none is needed.
fn part_of_row(row: &Row, split_needed: bool) -> Result<Option<Part>, Issue> {
    match row.split.as_deref() {
        Some(name) => match Part::parse(name) {
            Some(p) => Ok(Some(p)),
            None => {
                let mut issue = Issue::new(
                    at_cell(row, row.spans.split.clone()),
                    format!("unknown split `{name}`"),
                    "expected `train`, `val` or `test`",
                );
                // other tools' names for the validation split
                if ["valid", "validation", "dev"].contains(&name.to_lowercase().as_str()) {
                    issue = issue.note("the validation split is called `val`");
                }
                Err(issue)
            }
        },
        None if split_needed => Err(Issue::new(
            at_cell(row, row.spans.path.clone()),
            format!("image `{}` has no split", row.path),
            "expected `train`, `val` or `test`",
        )),
        None => Ok(None),
    }
}

/// That a row's `path` is an image file: there, a file, and with an image's extension.
fn image_at(row: &Row, path: &Path) -> Result<(), Issue> {
    let path_at = at_cell(row, row.spans.path.clone());
    if !path.is_file() {
        let found = if path.exists() {
            "something that is not a file"
        } else {
            "nothing"
        };
        return Err(Issue::new(
            path_at,
            format!("no image at `{}`", row.path),
            "expected an image file",
        )
        .note(format!("found {found} at {}", shown(path))));
    }
    if !is_image(path) {
        return Err(Issue::new(
            path_at,
            format!("`{}` is not an image", row.path),
            format!(
                "expected a file ending in {}",
                IMAGE_EXTENSIONS
                    .iter()
                    .map(|e| format!(".{e}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    Ok(())
}

/// A class with no training or no validation image, at its first row (or at the fractions'
/// key, when a split made from them left it none).
fn empty_classes(
    checked: &[Checked],
    labels: &[usize],
    parts: &[Part],
    classes: &[String],
    cut: &Cut,
) -> Vec<Issue> {
    let mut counts: BTreeMap<(usize, Part), usize> = BTreeMap::new();
    let mut first: HashMap<usize, &Row> = HashMap::new();
    let mut total = vec![0; classes.len()];
    for ((c, &label), &part) in checked.iter().zip(labels).zip(parts) {
        *counts.entry((label, part)).or_default() += 1;
        first.entry(label).or_insert(c.row);
        total[label] += 1;
    }
    let mut issues = Vec::new();
    for (label, class) in classes.iter().enumerate() {
        for (part, what) in [(Part::Train, "training"), (Part::Val, "validation")] {
            if counts.contains_key(&(label, part)) {
                continue;
            }
            let n = total[label];
            let issue = match cut.fractions {
                Some(f) => Issue::new(
                    Where::Key(cut.fractions_key),
                    format!("the split leaves class `{class}` without a {what} image"),
                    format!(
                        "val = {} and test = {} of {n} image{} leave none for {what}",
                        f.val,
                        f.test,
                        if n == 1 { "" } else { "s" }
                    ),
                ),
                None => {
                    let row = first[&label];
                    Issue::new(
                        at_cell(row, row.spans.label.clone()),
                        format!("class `{class}` has no {what} images"),
                        format!("no row of label `{class}` has split `{}`", part.name()),
                    )
                    .note(format!(
                        "every class needs `train` and `val` rows; `{class}` has {n} row{}, none `{}`",
                        if n == 1 { "" } else { "s" },
                        part.name()
                    ))
                }
            };
            let issue = match (cut.fractions, first[&label].line) {
                (Some(_), line) if line > 0 => {
                    issue.note(format!("class `{class}` is first listed at line {line}"))
                }
                _ => issue,
            };
            issues.push(issue);
        }
    }
    issues
}

/// Where the samples' files lie (see [`Layout`]).
fn layout_of(classes: &[String], train: &Split, val: &Split, test: &Split) -> Layout {
    let split_dir = |split: &Split| -> Option<Option<PathBuf>> {
        let mut dir: Option<&Path> = None;
        for s in &split.samples {
            let parent = s.path.parent()?;
            if parent.file_name()?.to_string_lossy() != classes[s.label] {
                return None;
            }
            let grand = parent.parent()?;
            match dir {
                Some(d) if d != grand => return None,
                _ => dir = Some(grand),
            }
        }
        Some(dir.map(Path::to_path_buf))
    };
    if let (Some(Some(t)), Some(Some(v)), Some(x)) =
        (split_dir(train), split_dir(val), split_dir(test))
    {
        let mut dirs = vec![t.clone(), v.clone()];
        dirs.extend(x.clone());
        let root = common_folder(dirs.iter().map(PathBuf::as_path));
        let rel = |d: &Path| slash_path(d.strip_prefix(&root).unwrap_or(d));
        return Layout {
            train_dir: rel(&t),
            val_dir: rel(&v),
            test_dir: x.as_deref().map(rel).unwrap_or_default(),
            root,
            labels_in_paths: true,
        };
    }
    let parents = [train, val, test]
        .into_iter()
        .flat_map(|s| &s.samples)
        .filter_map(|s| s.path.parent());
    Layout {
        root: common_folder(parents),
        train_dir: String::new(),
        val_dir: String::new(),
        test_dir: String::new(),
        labels_in_paths: false,
    }
}

/// The deepest folder holding every path.
fn common_folder<'p>(paths: impl IntoIterator<Item = &'p Path>) -> PathBuf {
    let mut common: Option<Vec<Component<'p>>> = None;
    for path in paths {
        let parts: Vec<Component> = path.components().collect();
        common = Some(match common {
            None => parts,
            Some(c) => c
                .into_iter()
                .zip(parts)
                .take_while(|(a, b)| a == b)
                .map(|(a, _)| a)
                .collect(),
        });
    }
    common.unwrap_or_default().into_iter().collect()
}

/// Which file went where: `path,label,split`, one row per image the run uses (paths relative
/// to the dataset's root), by split, then class, then path.
pub fn split_list(folder: &ImageFolder) -> String {
    let mut out = csv::Writer::from_writer(Vec::new());
    let header = out.write_record(["path", "label", "split"]);
    let mut rows = Vec::new();
    for (part, split) in [
        (Part::Train, Some(&folder.train)),
        (Part::Val, Some(&folder.val)),
        (Part::Test, folder.test.as_ref()),
    ] {
        for s in split.into_iter().flat_map(|s| &s.samples) {
            let rel = slash_path(s.path.strip_prefix(&folder.root).unwrap_or(&s.path));
            rows.push([rel, folder.classes[s.label].clone(), part.name().to_owned()]);
        }
    }
    let written = rows.iter().try_for_each(|r| out.write_record(r));
    header
        .and(written)
        .expect("writing CSV to memory cannot fail");
    let bytes = out.into_inner().expect("writing CSV to memory cannot fail");
    String::from_utf8(bytes).expect("the CSV of UTF-8 fields is UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{fingerprint, scan_classes};

    fn tiny() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catdog-tiny")
    }

    fn row(line: usize, path: &str, label: &str, split: Option<&str>) -> Row {
        Row {
            line,
            path: path.into(),
            label: label.into(),
            split: split.map(Into::into),
            spans: Default::default(),
        }
    }

    const AS_LISTED: Cut = Cut {
        fractions: None,
        fractions_key: "dataset.split.val",
        train_per_class: 0,
        val_per_class: 0,
    };

    /// The rows of the tiny fixture's train and val folders, with their split.
    fn tiny_rows() -> Vec<Row> {
        let mut rows = Vec::new();
        for split in ["val", "train"] {
            let classes = scan_classes(&tiny().join(split)).unwrap();
            for mut r in rows_of_classes(&tiny(), &classes) {
                r.split = Some(split.into());
                rows.push(r);
            }
        }
        rows.reverse(); // the order of the rows does not matter
        rows
    }

    #[test]
    fn a_list_of_a_folders_files_is_that_folder() {
        let listed = open_listed(&tiny(), &tiny_rows(), &AS_LISTED).unwrap();
        let folder = ImageFolder::open(&tiny(), "train", "val", 0, 0).unwrap();
        assert_eq!(listed.folder.classes, folder.classes);
        assert_eq!(listed.folder.train.samples, folder.train.samples);
        assert_eq!(listed.folder.val.samples, folder.val.samples);
        assert_eq!(
            fingerprint(&listed.folder).unwrap(),
            fingerprint(&folder).unwrap()
        );
        assert_eq!(
            listed.layout,
            Layout {
                root: tiny(),
                train_dir: "train".into(),
                val_dir: "val".into(),
                test_dir: String::new(),
                labels_in_paths: true,
            }
        );
        // the per-class limits keep the first files by name, as for folders
        let cut = Cut {
            train_per_class: 3,
            val_per_class: 2,
            ..AS_LISTED
        };
        let listed = open_listed(&tiny(), &tiny_rows(), &cut).unwrap();
        let folder = ImageFolder::open(&tiny(), "train", "val", 3, 2).unwrap();
        assert_eq!(listed.folder.train.samples, folder.train.samples);
        assert_eq!(listed.folder.val.samples, folder.val.samples);
    }

    #[test]
    fn labels_not_in_the_paths_make_no_folder_layout() {
        let mut rows = tiny_rows();
        for r in &mut rows {
            r.label = if r.path.contains("/cat/") { "a" } else { "b" }.into();
        }
        let listed = open_listed(&tiny(), &rows, &AS_LISTED).unwrap();
        assert_eq!(listed.folder.classes, vec!["a", "b"]);
        assert!(!listed.layout.labels_in_paths);
        assert_eq!(listed.layout.root, tiny());
    }

    #[test]
    fn each_bad_row_is_named_by_its_line() {
        let rows = vec![
            row(2, "train/cat/cat_02000.png", "cat", Some("train")),
            row(3, "train/cat/cat_02000.png", "cat", Some("train")),
            row(4, "train/cat/nope.png", "cat", Some("train")),
            row(5, "train/dog/dog_04000.png", "dog", Some("valid")),
            row(6, "", "dog", Some("val")),
            row(7, "LICENSE", "dog", Some("val")),
            row(8, "val/cat/cat_02800.png", "", Some("val")),
        ];
        let issues = open_listed(&tiny(), &rows, &AS_LISTED).unwrap_err();
        let found: Vec<(usize, &str)> = issues
            .iter()
            .map(|i| match &i.at {
                Where::Row { line, .. } => (*line, i.message.as_str()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            found,
            vec![
                (3, "image `train/cat/cat_02000.png` is listed twice"),
                (4, "no image at `train/cat/nope.png`"),
                (5, "unknown split `valid`"),
                (6, "manifest row without an image path"),
                (7, "`LICENSE` is not an image"),
                (8, "image `val/cat/cat_02800.png` has no label"),
            ]
        );
    }

    #[test]
    fn a_class_without_training_or_validation_images_is_an_error() {
        let rows = vec![
            row(2, "train/cat/cat_02000.png", "cat", Some("train")),
            row(3, "val/cat/cat_02800.png", "cat", Some("val")),
            row(4, "train/dog/dog_04000.png", "dog", Some("val")),
        ];
        let issues = open_listed(&tiny(), &rows, &AS_LISTED).unwrap_err();
        assert_eq!(issues.len(), 1);
        assert_eq!(issues[0].message, "class `dog` has no training images");
        // fractions that leave a class nothing to train on
        let f = Fractions {
            val: 0.5,
            test: 0.4,
            seed: 0,
            stratify: true,
        };
        // 8 cats keep one training image; 2 dogs give one to val and one to test
        let rows: Vec<Row> = tiny_rows()
            .into_iter()
            .filter(|r| {
                r.path.starts_with("train/cat/")
                    || r.path.ends_with("dog_04000.png")
                    || r.path.ends_with("dog_04001.png")
            })
            .map(|r| Row { split: None, ..r })
            .collect();
        let cut = Cut {
            fractions: Some(&f),
            ..AS_LISTED
        };
        let issues = open_listed(&tiny(), &rows, &cut).unwrap_err();
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(
            issues[0].message,
            "the split leaves class `dog` without a training image"
        );
        assert_eq!(issues[0].at, Where::Key("dataset.split.val"));
    }

    #[test]
    fn the_split_list_says_where_each_file_went() {
        let listed = open_listed(
            &tiny(),
            &tiny_rows(),
            &Cut {
                train_per_class: 1,
                val_per_class: 1,
                ..AS_LISTED
            },
        )
        .unwrap();
        assert_eq!(
            split_list(&listed.folder),
            "path,label,split\ntrain/cat/cat_02000.png,cat,train\ntrain/dog/dog_04000.png,dog,train\n\
             val/cat/cat_02800.png,cat,val\nval/dog/dog_04800.png,dog,val\n"
        );
    }
}
