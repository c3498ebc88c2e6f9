//! `runner`: TOML experiment specs → trained image classifiers → comparable results.

/// `runner bench` (cargo feature `bench`: benchmark code does not ship in every binary).
#[cfg(feature = "bench")]
pub(crate) mod bench;
pub mod cli;
pub mod data;
pub(crate) mod draw;
pub mod durable;
pub mod evaluate;
pub(crate) mod export;
pub mod fault;
pub mod inspect;
pub mod models;
pub mod nn;
pub mod number;
pub mod ops;
pub mod results;
pub(crate) mod run;
pub mod setup;
pub(crate) mod slurm;
pub mod spec;
#[doc(hidden)]
pub mod testing;
pub mod train;
pub mod views;
