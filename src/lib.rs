//! `runner`: TOML experiment specs → trained image classifiers → comparable results.

pub mod bench;
pub mod cli;
pub mod compare;
pub mod data;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod ops;
pub mod plan;
pub mod plot;
pub mod predict;
pub mod preview;
pub mod report;
pub mod run;
pub mod runs;
pub mod spec;
pub mod store;
pub mod summary;
#[doc(hidden)]
pub mod synthetic_results;
pub mod train;
