//! `runner evaluate RUN_DIR --data DIR|MANIFEST`: a recorded run's kept model scored on another
//! labelled folder (one sub-folder per class) or a manifest's rows with the run's own
//! transforms; the tables are written next to the run, in `evaluate/<data>/`, a name made from
//! the data's path (and `--split`).

use std::path::{Path, PathBuf};

use super::render::{render, Format};
use super::{KeptWeights, Score};
use crate::data::{scan_classes, DataError, Part, Split};
use crate::durable;
use crate::results::layout::{RunDir, Tables};
use crate::results::schema::{self, RunKey};
use crate::results::store::{KeptModel, Manifest};
use crate::spec::display_path;

/// What to evaluate, on what.
#[derive(Debug, Clone)]
pub struct EvaluateOptions {
    pub run: PathBuf,
    /// A folder with one sub-folder of images per class.
    pub data: PathBuf,
    /// For a manifest: the split whose rows are scored (`None`: `test` where there is one,
    /// else every row).
    pub split: Option<Part>,
    pub format: Format,
}

/// The printed table and where the tables went.
#[derive(Debug, Clone)]
pub struct Evaluated {
    pub text: String,
    pub dir: PathBuf,
    pub score: Score,
}

#[derive(Debug, thiserror::Error)]
pub enum EvaluateError {
    /// The run folder or the data folder is not what the command needs; nothing was written.
    #[error("{0}")]
    Input(String),
    /// Scoring or writing failed.
    #[error("{0}")]
    Failed(String),
    /// A manifest's problems, rendered at their lines; nothing was written.
    #[error("{0}")]
    Manifest(String),
}

/// Scores the run's model on the folder and writes `metrics.parquet`, `per_class.parquet` and
/// `confusion.parquet` (the test split's conventions, columns `eval_*`) to
/// `<run>/evaluate/<data>/`.
pub fn evaluate_run(opts: &EvaluateOptions) -> Result<Evaluated, EvaluateError> {
    let (manifest, spec, kept, project) = open_run(&opts.run)?;
    let run = &opts.run;
    let (split, rows) = if opts.data.is_file() {
        let (split, rows) =
            crate::setup::evaluation_rows(&opts.data, &spec.dataset, &manifest.classes, opts.split)
                .map_err(EvaluateError::Manifest)?;
        (split, format!(" ({rows})"))
    } else {
        (open_split(&opts.data, &manifest.classes)?, String::new())
    };
    let score = kept
        .score(&split)
        .map_err(|e| EvaluateError::Failed(e.to_string()))?;
    let (epoch, model) = kept_epoch(&manifest, &spec, run)?;
    let mut name = slug(&opts.data, &project);
    if let Some(part) = opts.split {
        name = format!("{name}-{}", part.name());
    }
    let dir = RunDir::at(run).evaluate(&name);
    write_tables(dir.path(), &dir.tables(), &manifest, "eval", epoch, &score)
        .map_err(|e| EvaluateError::Failed(e.to_string()))?;
    let mut text = String::new();
    if matches!(opts.format, Format::Table | Format::Markdown) {
        text.push_str(&format!(
            "{} {} on {}{rows}: {} images, the {model} model (epoch {epoch})\n",
            manifest.experiment,
            manifest.run_id,
            display_path(&opts.data),
            score.images
        ));
    }
    text.push_str(&render(&manifest.classes, &score, opts.format));
    Ok(Evaluated {
        text,
        dir: dir.path().to_path_buf(),
        score,
    })
}

/// A finished run's manifest, stored spec, kept weights and project folder.
pub fn open_run(
    run: &Path,
) -> Result<(Manifest, crate::spec::RunSpec, KeptWeights, PathBuf), EvaluateError> {
    use crate::setup::{FinishedRun, Opening};
    let r = FinishedRun::open(&RunDir::at(run), Opening::FINISHED)
        .map_err(|e| EvaluateError::Input(e.explain()))?;
    let kept = KeptWeights::of_spec(r.spec(), r.manifest.classes.clone(), r.weights());
    Ok((r.manifest, r.experiment.base, kept, r.project))
}

/// Every image of a folder of class folders, which must be the run's classes.
fn open_split(data: &Path, classes: &[String]) -> Result<Split, EvaluateError> {
    let input = EvaluateError::Input;
    let scanned = scan_classes(data).map_err(|e| match e {
        DataError::Io { path, .. } if path == data => input(format!(
            "expected a folder of class folders, found {}",
            crate::spec::found_instead_of_folder(data)
        )),
        other => input(other.to_string()),
    })?;
    let empty: Vec<&str> = scanned
        .iter()
        .filter(|c| c.images.is_empty())
        .map(|c| c.name.as_str())
        .collect();
    if !empty.is_empty() {
        return Err(input(format!(
            "{}: expected at least one image per class, found none in: {}",
            display_path(data),
            empty.join(", ")
        )));
    }
    Split::of_classes(scanned, classes).map_err(|e| match e {
        DataError::ClassesDiffer { expected, found } => {
            let data = display_path(data);
            let mut msg = format!(
                "the classes of {data} differ from the run's\n  the run's: {}\n  {data}: {}",
                expected.join(", "),
                found.join(", ")
            );
            for (a, b, side) in [(&expected, &found, "the run"), (&found, &expected, &data)] {
                let only: Vec<&str> = a
                    .iter()
                    .filter(|c| !b.contains(c))
                    .map(String::as_str)
                    .collect();
                if !only.is_empty() {
                    msg += &format!("\n  only in {side}: {}", only.join(", "));
                }
            }
            input(msg)
        }
        other => input(other.to_string()),
    })
}

/// Which epoch's weights `model.safetensors` holds: the test split's record when the run has
/// one, else the best epoch by early stopping's metric under `restore_best`, else the last.
fn kept_epoch(
    manifest: &Manifest,
    spec: &crate::spec::RunSpec,
    run: &Path,
) -> Result<(usize, KeptModel), EvaluateError> {
    if let Some(t) = &manifest.test {
        return Ok((t.epoch, t.model));
    }
    let rows = schema::read_epochs(&RunDir::at(run).metrics(), &manifest.classes)
        .map_err(|e| EvaluateError::Failed(format!("{}: {e}", display_path(run))))?;
    let fit = crate::setup::fit_config(spec, manifest.classes.len());
    Ok(super::kept_model(fit.early_stopping.as_ref(), &rows))
}

/// Writes a score's three tables (in `dir`, created first) with columns named after `split`
/// (`test`, `eval`).
pub fn write_tables(
    dir: &Path,
    tables: &Tables,
    manifest: &Manifest,
    split: &str,
    epoch: usize,
    score: &Score,
) -> Result<(), durable::StoreError> {
    RunDir::at(dir).create()?;
    let key = RunKey {
        experiment: &manifest.experiment,
        run_id: &manifest.run_id,
        swept: &manifest.swept,
        classes: &manifest.classes,
    };
    let frames = [
        (
            &tables.metrics,
            schema::score_frame(&key, split, epoch, score.loss, &score.confusion),
        ),
        (
            &tables.per_class,
            schema::per_class_frame_of(&key, epoch, &score.confusion),
        ),
        (
            &tables.confusion,
            schema::confusion_frame_of(&key, epoch, &score.confusion),
        ),
    ];
    for (path, frame) in frames {
        let mut df = frame.map_err(|source| durable::StoreError::Polars {
            path: path.clone(),
            source,
        })?;
        durable::write_parquet(path, &mut df)?;
    }
    Ok(())
}

/// A folder name for the data: its path relative to the project (else absolute), `/` as `-`,
/// any other character but letters, digits, `.`, `_` and `-` as `_`.
fn slug(data: &Path, project: &Path) -> String {
    let abs = std::fs::canonicalize(data).unwrap_or_else(|_| data.to_path_buf());
    let project = std::fs::canonicalize(project).unwrap_or_else(|_| project.to_path_buf());
    let rel = abs.strip_prefix(&project).unwrap_or(&abs);
    let text: String = rel
        .to_string_lossy()
        .chars()
        .map(|c| match c {
            '/' | '\\' => '-',
            c if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') => c,
            _ => '_',
        })
        .collect();
    let text = text.trim_matches('-');
    if text.is_empty() {
        "data".into()
    } else {
        text.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_folder_name_says_which_data() {
        let project = Path::new(env!("CARGO_MANIFEST_DIR"));
        assert_eq!(
            slug(&project.join("tests/fixtures/catdog-tiny/val"), project),
            "tests-fixtures-catdog-tiny-val"
        );
        assert_eq!(slug(Path::new("/no/such place"), project), "no-such_place");
    }
}
