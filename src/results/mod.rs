//! What a run leaves on disk and how it is read back: the result files, their schema, the
//! results-tree scan.

pub mod exit_guard;
pub mod layout;
pub mod lock;
pub mod parallel;
pub mod plan;
pub mod scan;
pub mod schema;
pub mod store;
pub mod stored_spec;
pub mod tensor_file;
pub mod timestamp;
