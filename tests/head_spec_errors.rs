//! Snapshots of `[head]` errors and warnings: each names the file, line:column and key, and
//! what was expected. Spec files live in tests/specs/.

use std::path::Path;

use runner::spec::{self, LoadOptions, SpecError};

fn load(spec: &str, overrides: &[&str]) -> Result<spec::Experiment, SpecError> {
    let opts = LoadOptions {
        overrides: overrides.iter().map(|s| s.to_string()).collect(),
        pipeline_dir: None,
    };
    spec::load(&Path::new("tests/specs").join(spec), &opts)
}

fn error(spec: &str, overrides: &[&str]) -> String {
    match load(spec, overrides) {
        Ok(_) => panic!("{spec} loaded, expected an error"),
        Err(err) => {
            let rendered = err.to_string();
            assert_eq!(runner::cli::Failure::from(err).exit_code(), 78);
            rendered
        }
    }
}

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
