//! Holds back an exit asked for by a signal (the second Ctrl-C) while files are being written,
//! so that the process never stops between two writes that belong together (an epoch's metrics
//! and its manifest) or inside one (leaving a temporary file). Writers hold an [`ExitGuard`];
//! the signal handler calls [`exit_when_whole`], which exits at once when no guard is held and
//! otherwise leaves the exit to the last guard's drop.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering::SeqCst};

/// Guards held now, over every thread.
static HELD: AtomicUsize = AtomicUsize::new(0);
/// The exit status asked for; 0: none.
static PENDING: AtomicI32 = AtomicI32::new(0);

/// While one is alive, a signal's exit waits.
#[must_use = "the exit is held back only while the guard lives"]
pub(crate) struct ExitGuard(());

impl ExitGuard {
    pub(crate) fn hold() -> Self {
        HELD.fetch_add(1, SeqCst);
        ExitGuard(())
    }
}

impl Drop for ExitGuard {
    fn drop(&mut self) {
        // release, then look: a handler that ran before the release left its status in PENDING
        // (it stores before it looks at HELD), one that runs after sees no guard and exits itself
        if HELD.fetch_sub(1, SeqCst) == 1 {
            let code = PENDING.load(SeqCst);
            if code != 0 {
                std::process::exit(code);
            }
        }
    }
}

/// Exits with `code` now, or as soon as the last guard is dropped. Async-signal-safe (atomics
/// and `_exit` only), for signal handlers.
pub(crate) fn exit_when_whole(code: i32) {
    PENDING.store(code, SeqCst);
    if HELD.load(SeqCst) == 0 {
        signal_hook::low_level::exit(code);
    }
}
