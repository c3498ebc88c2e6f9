//! `runner`: TOML experiment specs → trained image classifiers → comparable results.

pub mod data;
pub mod metrics;
pub mod nn;
pub mod models {
    pub mod pixels;
}
pub mod store;
pub mod train;
