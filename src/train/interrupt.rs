//! Ctrl-C: the first SIGINT asks the sweep to stop after the current batch (the run keeps its
//! last checkpoint and records status `interrupted`); a second one exits at once with 130.

use std::sync::atomic::{AtomicBool, Ordering};

/// Exit status after an interrupt (128 + SIGINT), as shells report it.
pub(crate) const EXIT_INTERRUPTED: u8 = 130;

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handler: the first signal sets the flag, the second exits — at once, or, while
/// files are being written, as soon as they are whole (`durable::exit_guard`): an epoch's
/// metrics never stay on disk without its manifest, nor a write as a temporary file.
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::SIGINT;
    let on_sigint = || {
        if REQUESTED.swap(true, Ordering::SeqCst) {
            crate::durable::exit_guard::exit_when_whole(EXIT_INTERRUPTED as i32);
        }
    };
    // SAFETY: the handler only touches atomics and calls `_exit`, both async-signal-safe.
    unsafe { signal_hook::low_level::register(SIGINT, on_sigint) }?;
    Ok(())
}

/// Whether a stop was asked for.
pub(crate) fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
