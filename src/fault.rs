//! Named fault points: places where the crash tests kill the process (as SIGKILL would) or send
//! it Ctrl-C, at a chosen moment instead of after a guessed sleep. Configured through the `fail`
//! crate's `FAILPOINTS` variable, e.g. `FAILPOINTS='after-batch=5*off->return(kill)'` (the sixth
//! batch kills); the action's argument says what happens: `kill`, `sigint` (one Ctrl-C) or
//! `sigint-twice`. Compiled in only with the `failpoints` feature, which only the tests enable:
//! in the product binary every point is an empty inline function.
//!
//! The points: `after-batch` (each training batch, after its update), `after-metrics`
//! (metrics.parquet of an epoch written, its manifest not yet), and `before-rename:<file>`
//! (an atomic write's temporary file complete, not yet renamed over `<file>`).

/// Keeps the points configured for the life of the process.
#[cfg(feature = "failpoints")]
pub struct Faults(#[allow(dead_code)] fail::FailScenario<'static>);
#[cfg(not(feature = "failpoints"))]
pub struct Faults;

/// Reads `FAILPOINTS` (a no-op without the feature).
pub fn setup() -> Faults {
    #[cfg(feature = "failpoints")]
    return Faults(fail::FailScenario::setup());
    #[cfg(not(feature = "failpoints"))]
    Faults
}

/// The point `name`.
#[inline(always)]
pub fn point(name: &str) {
    #[cfg(feature = "failpoints")]
    if let Some(action) = fail::eval(name, |arg| arg.unwrap_or_default()) {
        act(name, &action);
    }
    #[cfg(not(feature = "failpoints"))]
    let _ = name;
}

/// The point `<name>:<file>` (its name is only built when fault points are compiled in).
#[inline(always)]
pub fn point_for(name: &str, file: &str) {
    #[cfg(feature = "failpoints")]
    point(&format!("{name}:{file}"));
    #[cfg(not(feature = "failpoints"))]
    let _ = (name, file);
}

#[cfg(feature = "failpoints")]
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
