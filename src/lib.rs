//! `runner`: TOML experiment specs → trained image classifiers → comparable results.

pub mod compare;
pub mod data;
pub mod metrics;
pub mod nn;
pub mod plot;
pub mod preview;
pub mod models {
    pub mod pixels;
}
pub mod runs;
pub mod store;
pub mod synthetic_results;
pub mod train;
