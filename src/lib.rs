pub mod plan;
pub mod spec;
