pub mod ops;
pub mod nn;
pub mod models;
