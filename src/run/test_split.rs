//! The held-out test split (`dataset.test_dir`): once a run has finished training, the model it
//! keeps is scored on it, from `model.safetensors` as `runner evaluate` reads it. Nothing of
//! the split reaches training, early stopping, the schedules or the choice of the best epoch:
//! the loop never sees it: before training its images are only decoded (and dropped), to find
//! a damaged one when the run starts, and they are read only here, after the loop has returned.

use std::time::Instant;

use rayon::prelude::*;

use crate::data::{load_image, BadImagePolicy};
use crate::evaluate::{kept_model, write_tables, KeptWeights};
use crate::results::layout::RunDir;
use crate::results::store::{Manifest, TestScore};
use crate::setup::ResolvedRun;
use crate::train::{EpochMetrics, TrainError};

/// Decodes every image of the run's test split, if it has one, under `on_bad_image = "error"`:
/// an image that does not decode fails the run when it starts, as a training image does in the
/// first epoch, instead of after the last epoch. The first such image in the split's order is
/// named. Nothing decoded here is kept.
pub(super) fn check_images(run: &ResolvedRun) -> Result<(), TrainError> {
    let Some(test) = &run.dataset.folder.test else {
        return Ok(());
    };
    if run.bad_images == BadImagePolicy::Skip {
        return Ok(()); // skipped and counted when the split is scored
    }
    let bad: Vec<_> = test
        .samples
        .par_iter()
        .map(|s| load_image(&s.path).err())
        .collect();
    match bad.into_iter().flatten().next() {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}

/// Scores the kept model on the run's test split, if it has one: writes `test_metrics.parquet`,
/// `test_per_class.parquet` and `test_confusion.parquet`, and records the score and which
/// model it was in the manifest (written by the caller).
pub(super) fn score(
    run: &ResolvedRun,
    dir: &RunDir,
    manifest: &mut Manifest,
    rows: &[EpochMetrics],
    head: &str,
) -> Result<(), TrainError> {
    let Some(test) = &run.dataset.folder.test else {
        return Ok(());
    };
    let t = Instant::now();
    let (epoch, model) = kept_model(run.fit.early_stopping.as_ref(), rows);
    let kept = KeptWeights::of_spec(run.spec(), run.dataset.folder.classes.clone(), dir.model());
    let score = kept.score(test)?;
    write_tables(
        dir.path(),
        &dir.test_tables(),
        manifest,
        "test",
        epoch,
        &score,
    )?;
    tracing::info!(
        "{head}: test split: {} images, loss {:.4}, accuracy {:.4} (the {model} model, epoch {epoch}) in {:.2}s",
        score.images,
        score.loss,
        score.acc,
        t.elapsed().as_secs_f64()
    );
    manifest.test = Some(TestScore {
        epoch,
        model,
        images: score.images,
        loss: score.loss,
        acc: score.acc,
    });
    Ok(())
}
