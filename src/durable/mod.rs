//! Files that survive a crash, a full disk and a second process: atomic writes, the checksummed
//! tensor files, locks with heartbeats, the guard that holds back a signal's exit while files are
//! written, the result files' timestamps, and reading many files at once. It depends on nothing
//! of this crate but the fault points (`crate::fault`), so every other module may use it.

mod atomic;
mod error;
pub(crate) mod exit_guard;
mod host;
pub(crate) mod lock;
pub(crate) mod parallel;
pub mod tensor_file;
pub(crate) mod timestamp;

pub use atomic::{write_atomic, write_file, write_parquet, write_text};
pub use error::StoreError;
pub use host::hostname;
