//! Snapshots of rendered spec errors: each names the file, line:column, key path and what was
//! expected. Spec files live in tests/specs/; paths print relative to the package root.

use crate::common;

use runner::spec::{self, SpecError};

fn load(spec: &str, overrides: &[&str]) -> Result<spec::Experiment, SpecError> {
    let exp = common::specs::load(spec, overrides)?;
    // what `runner check` does after the spec: open the dataset and weights it names
    runner::setup::Resolved::new(&exp)?;
    Ok(exp)
}

/// The rendered error of a spec that must fail.
fn error(spec: &str, overrides: &[&str]) -> String {
    common::specs::error_of(spec, load(spec, overrides))
}

#[test]
fn valid_spec_loads() {
    let exp = load("valid.toml", &[]).unwrap();
    assert_eq!(exp.name, "valid");
    assert!(exp.warnings.is_empty(), "{:?}", exp.warnings);
}

#[test]
fn misspelt_key() {
    insta::assert_snapshot!(error("misspelt_key.toml", &[]));
}

#[test]
fn wrong_type() {
    insta::assert_snapshot!(error("wrong_type.toml", &[]));
}

#[test]
fn bad_values_are_all_reported() {
    insta::assert_snapshot!(error("bad_values.toml", &[]));
}

#[test]
fn missing_dataset_folder() {
    insta::assert_snapshot!(error("missing_dataset.toml", &[]));
}

#[test]
fn unstable_l2() {
    insta::assert_snapshot!(error("unstable_l2.toml", &[]));
}

#[test]
fn unstable_l2_allowed_is_a_warning() {
    let exp = load("unstable_l2.toml", &["regularization.allow_unstable=true"]).unwrap();
    insta::assert_snapshot!(exp.warnings.join("\n"));
}

#[test]
fn class_mismatch() {
    insta::assert_snapshot!(error("class_mismatch.toml", &[]));
}

#[test]
fn missing_preset() {
    insta::assert_snapshot!(error("missing_preset.toml", &[]));
}

#[test]
fn missing_name() {
    insta::assert_snapshot!(error("missing_name.toml", &[]));
}

#[test]
fn adamw_with_l2() {
    insta::assert_snapshot!(error("adamw_l2.toml", &[]));
}

#[test]
fn syntax() {
    insta::assert_snapshot!(error("syntax.toml", &[]));
}

#[test]
fn override_misspelt_key() {
    insta::assert_snapshot!(error("valid.toml", &["optimizer.momentun=0.5"]));
}

#[test]
fn override_wrong_type() {
    insta::assert_snapshot!(error("valid.toml", &["optimizer.lr=fast"]));
}

#[test]
fn override_without_value() {
    insta::assert_snapshot!(error("valid.toml", &["optimizer.lr"]));
}

#[test]
fn override_bad_value() {
    insta::assert_snapshot!(error("valid.toml", &["train.epochs=0"]));
}

#[test]
fn sweep_bad_key() {
    insta::assert_snapshot!(error("bad_sweep_key.toml", &[]));
}

#[test]
fn sweep_bad_value() {
    insta::assert_snapshot!(error("bad_sweep_value.toml", &[]));
}

#[test]
fn sweep_invalid_point() {
    insta::assert_snapshot!(error("invalid_sweep_point.toml", &[]));
}

#[test]
fn sweep_zip_mismatch() {
    insta::assert_snapshot!(error("zip_mismatch.toml", &[]));
}

#[test]
fn sweep_key_swept_twice() {
    insta::assert_snapshot!(error(
        "sweep.toml",
        &[
            "sweep.seeds=[]",
            "sweep.grid={\"train.batch_size\"=[1], \"optimizer.lr\"=[0.1]}"
        ]
    ));
}

#[test]
fn sweep_value_not_a_list() {
    insta::assert_snapshot!(error("sweep_not_a_list.toml", &[]));
}

#[test]
fn sweep_bad_seed() {
    insta::assert_snapshot!(error("valid.toml", &["sweep.seeds=[1, -2]"]));
}

#[test]
fn a_random_search_of_a_billion_trials_is_refused_at_trials() {
    insta::assert_snapshot!(error("huge_random_search.toml", &[]));
}

#[test]
fn a_grid_of_a_million_points_is_refused_at_the_axis_that_passes_the_cap() {
    insta::assert_snapshot!(error("huge_grid.toml", &[]));
}

#[test]
fn sizes_that_no_machine_can_hold_are_refused_before_anything_is_allocated() {
    insta::assert_snapshot!(error(
        "valid.toml",
        &[
            "backbone.name=small_cnn",
            "head.kind=mlp",
            "head.hidden=[1000000000]",
            "transforms.resize=1000000",
            "transforms.crop=100000",
        ]
    ));
    insta::assert_snapshot!(error(
        "valid.toml",
        &[
            "backbone.name=small_cnn",
            "head.kind=mlp",
            "head.hidden=[60000, 60000]"
        ]
    ));
}

#[test]
fn keys_that_another_key_switches_off_warn_at_their_line() {
    let exp = load("switched_off_keys.toml", &[]).unwrap();
    insta::assert_snapshot!(exp.warnings.join("\n"));
}
