//! Snapshots of `[head]` errors and warnings: each names the file, line:column and key, and
//! what was expected. Spec files live in tests/specs/.

use crate::common;

use common::specs::{error, load};

#[test]
fn empty_hidden_and_dropout_one() {
    insta::assert_snapshot!(error("head_bad_mlp.toml", &[]));
}

#[test]
fn zero_width_and_negative_dropout() {
    insta::assert_snapshot!(error("head_zero_width.toml", &[]));
}

#[test]
fn bad_head_values_from_overrides() {
    insta::assert_snapshot!(error(
        "valid.toml",
        &["backbone.name=resnet18", "head.kind=mlp", "head.hidden=[0]"]
    ));
}

#[test]
fn unknown_head_kind_and_activation() {
    insta::assert_snapshot!(error("valid.toml", &["head.kind=deep"]));
    insta::assert_snapshot!(error("valid.toml", &["head.activation=tanh"]));
}

#[test]
fn mlp_keys_on_a_linear_head_warn() {
    let exp = load("head_linear_with_mlp_keys.toml", &[]).unwrap();
    insta::assert_snapshot!(exp.warnings.join("\n"));
}
