//! Run ids are hashes of a run's canonical TOML ([`super::RunSpec::to_toml`]). Keys added to the
//! schema later would change every existing id, and committed runs (`results/reference/`) could
//! no longer be found or reproduced under theirs. So a key added later is left out of the
//! canonical text while it holds its default: the runs that existed before it keep their ids,
//! and a run that uses it gets a new one.
//!
//! Leaving keys out is only for the canonical text; every other serialization (sweep value
//! typing, reports) sees the whole spec. `canonical` marks, per thread, that the canonical text
//! is being written.

use std::cell::Cell;

use super::resolved::{ColorJitter, EarlyStopping, RandomResizedCrop, Schedule};

thread_local! {
    static CANONICAL: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` (a serialization) with the default-valued later keys left out.
pub(super) fn canonical<T>(f: impl FnOnce() -> T) -> T {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            CANONICAL.with(|c| c.set(self.0));
        }
    }
    let _reset = Reset(CANONICAL.with(|c| c.replace(true)));
    f()
}

fn omit(is_default: impl FnOnce(&super::RunSpec) -> bool) -> bool {
    CANONICAL.with(Cell::get) && is_default(super::default_spec())
}

// Issue #14: schedules, early stopping, augmentation, label smoothing, gradient clipping.
pub(super) fn omit_schedule(v: &Schedule) -> bool {
    omit(|d| d.schedule == *v)
}
pub(super) fn omit_early_stopping(v: &EarlyStopping) -> bool {
    omit(|d| d.early_stopping == *v)
}
pub(super) fn omit_random_resized_crop(v: &RandomResizedCrop) -> bool {
    omit(|d| d.transforms.random_resized_crop == *v)
}
pub(super) fn omit_color_jitter(v: &ColorJitter) -> bool {
    omit(|d| d.transforms.color_jitter == *v)
}
pub(super) fn omit_label_smoothing(v: &f64) -> bool {
    omit(|d| d.loss.label_smoothing == *v)
}
pub(super) fn omit_grad_clip_norm(v: &f64) -> bool {
    omit(|d| d.train.grad_clip_norm == *v)
}
