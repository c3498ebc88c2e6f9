//! Named fault points: places where the crash tests kill the process (as SIGKILL would) or send
//! it Ctrl-C, at a chosen moment instead of after a guessed sleep. Armed only through the
//! `RUNNER_FAILPOINTS` variable, in the `fail` crate's `FAILPOINTS` syntax, e.g.
//! `RUNNER_FAILPOINTS='after-batch=5*off->return(kill)'` (the sixth batch kills); the action's
//! argument says what happens: `kill`, `sigint` (one Ctrl-C) or `sigint-twice`. Without the
//! variable a point is one relaxed atomic load.
//!
//! They are in every build, the binary a user runs included: the tests run the very binary that
//! `cargo run` builds, so that `cargo test` after `cargo run` compiles no crate twice. The
//! variable is runner's own, so a `FAILPOINTS` meant for another program arms nothing here.
//!
//! The points: `after-batch` (each training batch, after its update), `after-metrics`
//! (metrics.parquet of an epoch written, its manifest not yet), and `before-rename:<file>`
//! (an atomic write's temporary file complete, not yet renamed over `<file>`).

use std::sync::atomic::{AtomicBool, Ordering};

/// The variable that arms the points.
pub(crate) const VARIABLE: &str = "RUNNER_FAILPOINTS";

/// Whether any point is configured: the points cost nothing more than this load otherwise.
static ARMED: AtomicBool = AtomicBool::new(false);

/// Arms the points `RUNNER_FAILPOINTS` names (`name=actions`, separated by `;`); a malformed
/// entry is an error naming it.
pub fn setup() -> Result<(), String> {
    let Ok(text) = std::env::var(VARIABLE) else {
        return Ok(());
    };
    for entry in text.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let (name, actions) = entry
            .split_once('=')
            .ok_or_else(|| format!("{VARIABLE}: `{entry}` is not `name=actions`"))?;
        fail::cfg(name.trim(), actions.trim())
            .map_err(|e| format!("{VARIABLE}: `{entry}`: {e}"))?;
        ARMED.store(true, Ordering::Relaxed);
    }
    Ok(())
}

/// The point `name`.
#[inline(always)]
pub fn point(name: &str) {
    if ARMED.load(Ordering::Relaxed) {
        if let Some(action) = fail::eval(name, |arg| arg.unwrap_or_default()) {
            act(name, &action);
        }
    }
}

/// The point `<name>:<file>` (its name is only built when some point is armed).
#[inline(always)]
pub(crate) fn point_for(name: &str, file: &str) {
    if ARMED.load(Ordering::Relaxed) {
        point(&format!("{name}:{file}"));
    }
}

fn act(name: &str, action: &str) {
    use signal_hook::consts::{SIGINT, SIGKILL};
    use signal_hook::low_level::raise;
    let raised = match action {
        "kill" => raise(SIGKILL),
        "sigint" => raise(SIGINT),
        "sigint-twice" => raise(SIGINT).and_then(|_| raise(SIGINT)),
        other => {
            panic!("fault point {name}: unknown action `{other}` (kill, sigint, sigint-twice)")
        }
    };
    raised.unwrap_or_else(|e| panic!("fault point {name}: cannot raise a signal: {e}"));
}
