//! Ctrl-C: the first SIGINT asks the sweep to stop after the current batch (the run keeps its
//! last checkpoint and records status `interrupted`); a second one exits at once with 130.

use std::sync::atomic::{AtomicBool, Ordering};

/// Exit status after an interrupt (128 + SIGINT), as shells report it.
pub const EXIT_INTERRUPTED: u8 = 130;

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// Installs the handlers. The exit-at-once handler goes first, so it only fires once the flag
/// is already set, i.e. on the second signal. Files are written atomically, so even that exit
/// leaves at most a temporary file, which the next run's lock holder removes.
pub fn install() -> std::io::Result<()> {
    use signal_hook::consts::SIGINT;
    signal_hook::flag::register_conditional_shutdown(SIGINT, EXIT_INTERRUPTED as i32, &REQUESTED)?;
    signal_hook::flag::register(SIGINT, &REQUESTED)?;
    Ok(())
}

/// Whether a stop was asked for.
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}
