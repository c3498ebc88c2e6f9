//! Where a run came from: code version, toolchain, crate versions, machine.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// Versions of the crates that decide the numbers, read from the Cargo.lock this binary was
/// built with.
pub(crate) fn crate_versions() -> Vec<(String, String)> {
    const LOCK: &str = include_str!("../../Cargo.lock");
    const CRATES: &[&str] = &["dfdx", "gemm", "polars", "image", "safetensors"];
    let mut out = vec![("runner".to_string(), env!("CARGO_PKG_VERSION").to_string())];
    let mut name = None;
    for line in LOCK.lines() {
        if let Some(n) = line.strip_prefix("name = ") {
            name = Some(n.trim_matches('"'));
        } else if let (Some(n), Some(v)) = (name, line.strip_prefix("version = ")) {
            if CRATES.contains(&n) && !out.iter().any(|(k, _)| k == n) {
                out.push((n.to_string(), v.trim_matches('"').to_string()));
            }
            name = None;
        }
    }
    out
}

pub(crate) fn rustc_version() -> &'static str {
    env!("RUNNER_RUSTC_VERSION")
}

/// The git commit of the folder holding the spec and whether the work tree has changes, when
/// it is in a git repository and git is installed. Asked once per folder and process: a
/// sweep records the state of the code it started from in each of its runs, without two `git`
/// processes per run.
pub(crate) fn git_state(dir: &Path) -> (Option<String>, Option<bool>) {
    static SEEN: Mutex<Vec<(PathBuf, GitState)>> = Mutex::new(Vec::new());
    let mut seen = SEEN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, state)) = seen.iter().find(|(d, _)| d == dir) {
        return state.clone();
    }
    let state = ask_git(dir);
    seen.push((dir.to_path_buf(), state.clone()));
    state
}

type GitState = (Option<String>, Option<bool>);

fn ask_git(dir: &Path) -> GitState {
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    let commit = git(&["rev-parse", "HEAD"]);
    let dirty = commit
        .as_ref()
        .and_then(|_| git(&["status", "--porcelain", "--untracked-files=no"]))
        .map(|s| !s.is_empty());
    (commit, dirty)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_crate_versions_from_the_lock_file() {
        let v = crate_versions();
        assert!(
            v.iter().any(|(k, ver)| k == "dfdx" && ver == "0.13.0"),
            "{v:?}"
        );
    }
}
