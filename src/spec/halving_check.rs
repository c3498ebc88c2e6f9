//! `[sweep.halving]` checked against the base run and the sweep it prunes: each refusal at the
//! key that asks for it.

use super::axes::Sweep;
use super::error::{Diagnostic, SpecError};
use super::halving::{Goal, Halving, HalvingMode, RawGoal, RawHalving};
use super::locate::Locator;
use super::resolved::RunSpec;

const KEY_MIN_EPOCHS: &str = "sweep.halving.min_epochs";

/// The halving the merged `[sweep.halving]` asks for (`None` with `min_epochs = 0`), checked
/// against the base run and the sweep: every error found, each at its key.
pub(super) fn resolve(
    raw: &RawHalving,
    base: &RunSpec,
    sweep: &Sweep,
    at: &Locator,
) -> Result<Option<Halving>, SpecError> {
    let internal = |key: &str| SpecError::Internal(format!("defaults.toml has no `{key}`"));
    let min_epochs = raw.min_epochs.ok_or_else(|| internal(KEY_MIN_EPOCHS))?;
    if min_epochs == 0 {
        return Ok(None);
    }
    let metric = raw.metric.ok_or_else(|| internal("sweep.halving.metric"))?;
    let goal = match raw.goal.ok_or_else(|| internal("sweep.halving.goal"))? {
        RawGoal::Auto => metric.natural_goal(),
        RawGoal::Min => Goal::Min,
        RawGoal::Max => Goal::Max,
    };
    let reduction_factor = raw
        .reduction_factor
        .ok_or_else(|| internal("sweep.halving.reduction_factor"))?;
    let mode = raw.mode.ok_or_else(|| internal("sweep.halving.mode"))?;
    let epochs = base.train.epochs;

    let mut errors: Vec<Diagnostic> = Vec::new();
    if mode == HalvingMode::Async {
        errors.push(
            at.invalid(
                "sweep.halving.mode",
                "asynchronous halving (ASHA) is not built yet".into(),
            )
            .help("use mode = \"sync\": each rung is decided once every point reached it"),
        );
    }
    if reduction_factor <= 1 {
        errors.push(at.invalid(
            "sweep.halving.reduction_factor",
            format!("expected an integer of at least 2 (the share of points kept at each rung is 1/reduction_factor), found {reduction_factor}"),
        ));
    }
    if min_epochs >= epochs {
        errors.push(
            at.invalid(
                KEY_MIN_EPOCHS,
                format!(
                    "expected fewer epochs than train.epochs ({epochs}): the first decision comes after {min_epochs}"
                ),
            )
            .note(at.where_set("train.epochs")),
        );
    }
    errors.extend(sweep_refusals(sweep, at));
    if !errors.is_empty() {
        return Err(at.rejected(errors));
    }
    Ok(Some(Halving {
        metric,
        goal,
        min_epochs,
        reduction_factor,
        mode,
        epochs,
    }))
}

/// What the sweep itself does wrong under halving: a swept `train.epochs` (the rungs end there),
/// or fewer than two points to choose from.
fn sweep_refusals(sweep: &Sweep, at: &Locator) -> Vec<Diagnostic> {
    let mut errors = Vec::new();
    if let Some(axis) = sweep
        .axes
        .iter()
        .find(|a| a.keys.iter().any(|k| k.key == "train.epochs"))
    {
        let swept = axis
            .keys
            .iter()
            .find(|k| k.key == "train.epochs")
            .expect("found above");
        errors.push(
            Diagnostic::error("`train.epochs` is swept under halving")
                .at(Some(swept.key_at.clone()))
                .label("halving needs one train.epochs for every point: its rungs end there")
                .note(at.where_set(KEY_MIN_EPOCHS)),
        );
    }
    let points = sweep.points();
    if points < 2 {
        errors.push(
            at.invalid(
                KEY_MIN_EPOCHS,
                format!(
                    "halving needs a sweep of at least 2 points to choose from; this one has {points}"
                ),
            )
            .help("sweep some keys under [sweep] (grid, zip or random), or set min_epochs = 0"),
        );
    }
    errors
}
