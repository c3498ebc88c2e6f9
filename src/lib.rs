//! `runner`: TOML experiment specs → trained image classifiers → comparable results.

pub mod cli;
pub mod data;
pub mod metrics;
pub mod models {
    pub mod pixels;
}
pub mod nn;
pub mod plan;
pub mod report;
pub mod run;
pub mod spec;
pub mod store;
pub mod train;
