//! What a run leaves on disk and how it is read back: where each file is (`layout`), the result
//! files and their schema, the results-tree scan. How files are written safely is `durable`'s.

pub mod layout;
pub mod plan;
pub mod scan;
pub mod schema;
pub mod store;
pub mod stored_spec;
