//! What the user looks at of recorded results: the comparison table, the plots, where a sweep
//! stands, and the HTML report. Everything here reads results trees; nothing trains or builds a
//! model (that is `inspect`).

pub mod compare;
pub mod format;
pub mod plot;
pub mod report;
pub mod status;
