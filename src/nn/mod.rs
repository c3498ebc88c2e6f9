//! dfdx modules this project adds.

mod dyn_linear;

pub use dyn_linear::{runtime_options, DynLinear};
