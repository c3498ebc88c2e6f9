//! What a run leaves on disk and how it is read back: where each file is (`layout`), the result
//! files and their schema, the results-tree scan. How files are written safely is `durable`'s.

pub mod halving;
pub mod layout;
pub(crate) mod plan;
pub mod scan;
pub mod schema;
pub mod store;
pub(crate) mod stored_spec;
