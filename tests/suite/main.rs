//! The integration tests that need no tool: one test binary, so that `cargo test` compiles and
//! links the library into one executable instead of one per file, and runs all of them on the
//! test harness's threads together. Each module is one topic; `cargo test --test suite MODULE::`
//! runs one.

#[path = "../common/mod.rs"]
mod common;

mod bench;
mod build_features;
mod cli;
mod cluster_soak;
mod compare;
mod damaged_results;
mod engine;
mod evaluate;
mod freeze;
mod halving;
mod head_cli;
mod head_golden;
mod head_grad;
mod head_spec_errors;
mod interrupt;
mod kill_resume;
mod late_errors;
mod layers;
mod lock_race;
mod manifest;
mod models;
mod module_graph;
mod ops_grad;
mod output_paths;
mod plan;
mod plot;
mod precision;
mod preview;
mod reliability;
mod reproduce;
mod select_status;
mod spec_errors;
mod spec_errors_training;
mod summary;
mod toolchain;
mod training_features;
mod usage_errors;
