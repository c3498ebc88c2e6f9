pub mod models;
pub mod nn;
pub mod ops;
