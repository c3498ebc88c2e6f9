//! `runner`: TOML experiment specs → trained image classifiers → comparable results.

/// `runner bench` (cargo feature `bench`: benchmark code does not ship in every binary).
#[cfg(feature = "bench")]
pub mod bench;
pub mod cli;
pub mod data;
pub mod draw;
pub mod durable;
pub mod evaluate;
pub mod export;
pub mod fault;
pub mod inspect;
pub mod models;
pub mod nn;
pub mod ops;
pub mod results;
pub mod run;
pub mod setup;
pub mod slurm;
pub mod spec;
#[cfg(any(test, feature = "test-support"))]
pub mod testing;
pub mod train;
pub mod views;
