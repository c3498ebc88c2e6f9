//! What the user looks at: tables, charts, previews and summaries built from specs and results.

pub mod compare;
pub mod html_report;
pub mod plot;
pub mod predict;
pub mod preview;
pub mod status;
pub mod summary;
pub mod sweep_table;
