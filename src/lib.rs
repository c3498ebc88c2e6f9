//! `runner`: TOML experiment specs → trained image classifiers → comparable results.

pub mod bench;
pub mod cli;
pub mod data;
pub mod metrics;
pub mod models;
pub mod nn;
pub mod ops;
pub mod plan;
pub mod predict;
pub mod report;
pub mod run;
pub mod spec;
pub mod store;
pub mod train;
