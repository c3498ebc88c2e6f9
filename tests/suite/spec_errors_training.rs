//! Issue #14's keys ([schedule], [early_stopping], transforms.random_resized_crop / color_jitter,
//! loss.label_smoothing, train.grad_clip_norm, [sweep.random]): snapshots of their errors, like
//! tests/suite/spec_errors.rs, and the plan of a random search.

use crate::common;

use common::specs::{error, load};
use runner::spec;

#[test]
fn training_bad_values_are_all_reported() {
    insta::assert_snapshot!(error("training_bad_values.toml", &[]));
}

#[test]
fn misspelt_schedule_kind_suggests() {
    insta::assert_snapshot!(error("training_misspelt.toml", &[]));
}

#[test]
fn misspelt_color_jitter_key_suggests() {
    insta::assert_snapshot!(error("training_misspelt_key.toml", &[]));
}

#[test]
fn override_of_a_schedule_key() {
    insta::assert_snapshot!(error(
        "valid.toml",
        &["schedule.step_size=0", "schedule.kind=step"]
    ));
}

#[test]
fn random_resized_crop_needs_a_crop_size() {
    insta::assert_snapshot!(error(
        "valid.toml",
        &["transforms.random_resized_crop.enabled=true"]
    ));
}

#[test]
fn unused_schedule_keys_warn() {
    let exp = load("valid.toml", &["schedule.gamma=0.5"]).unwrap();
    insta::assert_snapshot!(exp.warnings.join("\n"));
}

#[test]
fn random_search_errors() {
    insta::assert_snapshot!(
        "bad_distribution",
        error("random_bad_distribution.toml", &[])
    );
    insta::assert_snapshot!("bad_range", error("random_bad_range.toml", &[]));
    insta::assert_snapshot!("bad_key", error("random_bad_key.toml", &[]));
    insta::assert_snapshot!("invalid_point", error("random_invalid_point.toml", &[]));
    insta::assert_snapshot!("no_space", error("random_no_space.toml", &[]));
}

#[test]
fn random_search_plans_the_same_points_every_time() {
    let plan = || {
        let exp = load("random_search.toml", &[]).unwrap();
        let runs = spec::expand::expand(&exp).unwrap();
        let ids: Vec<String> = runs
            .iter()
            .map(|r| spec::expand::run_id(&r.spec, ""))
            .collect();
        spec::expand::render(&exp, &runs, &ids)
    };
    let first = plan();
    assert_eq!(first, plan());
    // 2 grid values × 8 trials; the sampled values are in range
    let exp = load("random_search.toml", &[]).unwrap();
    let runs = spec::expand::expand(&exp).unwrap();
    assert_eq!(runs.len(), 16);
    for r in &runs {
        assert!((1e-4..=1e-1).contains(&r.spec.optimizer.lr));
        assert!([4, 8].contains(&r.spec.train.batch_size));
    }
    insta::assert_snapshot!(first);
}

#[test]
fn default_valued_new_keys_leave_run_ids_unchanged() {
    // The committed reference run was recorded before these keys existed: its stored spec must
    // hash to its stored id.
    let base = load("valid.toml", &[]).unwrap().base;
    let text = base.to_toml();
    for section in [
        "[schedule]",
        "[early_stopping]",
        "random_resized_crop",
        "color_jitter",
    ] {
        assert!(!text.contains(section), "{section} in\n{text}");
    }
    assert!(!text.contains("label_smoothing") && !text.contains("grad_clip_norm"));
    let changed = load("valid.toml", &["schedule.kind=cosine"]).unwrap().base;
    assert!(changed.to_toml().contains("[schedule]"));
    assert_ne!(
        spec::expand::run_id(&base, ""),
        spec::expand::run_id(&changed, "")
    );
}
