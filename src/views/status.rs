//! `runner status RESULTS/EXPERIMENT`: where every planned point of a sweep stands, from the
//! files alone (the experiment's plan in `<results>/.plans/`, each run's `manifest.json` and `lock`), so it
//! works on a login node while the tasks run on other nodes.

use std::path::Path;
use std::time::UNIX_EPOCH;

use comfy_table::presets;

use crate::durable::lock;
use crate::number::ColumnFormat;
use crate::results::layout::ExperimentDir;
use crate::results::plan::{ExperimentPlan, PlannedPoint};
use crate::results::store::{read_manifest, Status};
use crate::views::ViewError;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Format {
    #[default]
    Table,
    Csv,
    Json,
}

/// Where one planned point stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum State {
    /// No run folder (or no manifest and no lock) yet.
    Pending,
    /// Locked by a live process (on this host) or one with a fresh heartbeat (another host).
    Running,
    Done,
    Failed,
    Diverged,
    /// Trained to a successive-halving rung and waiting for its decision.
    Paused,
    /// Stopped at a rung by successive halving (the detail says which).
    Stopped,
    /// Started, not finished, and nobody holds it any more: the process is gone (this host),
    /// its heartbeat is too old (another host), or it left no lock.
    Stale,
    /// Started, but its manifest cannot be read (cut short, overwritten, unreadable): what
    /// happened to it is unknown until it is rerun.
    Damaged,
}

impl State {
    pub(crate) fn name(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Diverged => "diverged",
            State::Paused => "paused",
            State::Stopped => "stopped",
            State::Stale => "stale",
            State::Damaged => "damaged",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct PointStatus {
    pub point: PlannedPoint,
    pub state: State,
    pub epochs_done: usize,
    /// The process that holds the run now, or the last one that wrote its manifest.
    pub host: Option<String>,
    pub pid: Option<u32>,
    pub task: Option<String>,
    /// Latest of the manifest's mtime and the lock's heartbeat, RFC 3339.
    pub updated: Option<String>,
    /// Why it is stale or failed.
    pub detail: Option<String>,
}

fn mtime(path: &Path) -> Option<u64> {
    let t = std::fs::metadata(path).ok()?.modified().ok()?;
    Some(t.duration_since(UNIX_EPOCH).ok()?.as_secs())
}

/// The state of one planned point, read from its run folder.
pub(crate) fn point_status(experiment_dir: &Path, point: &PlannedPoint) -> PointStatus {
    let dir = ExperimentDir::at(experiment_dir).run(&point.run_id);
    let manifest_path = dir.manifest();
    // a missing manifest: never started; one that is there but unreadable: damaged
    let (manifest, damage) = match read_manifest(&manifest_path) {
        Ok(m) => (Some(m), None),
        Err(_) if !manifest_path.exists() => (None, None),
        Err(e) => (None, Some(e.to_string())),
    };
    let seen = lock::inspect(&dir.lock());
    let mut st = PointStatus {
        point: point.clone(),
        state: State::Pending,
        epochs_done: manifest.as_ref().map_or(0, |m| m.epochs_done),
        host: manifest.as_ref().and_then(|m| m.host.clone()),
        pid: manifest.as_ref().and_then(|m| m.pid),
        task: manifest.as_ref().and_then(|m| m.task.clone()),
        updated: None,
        detail: manifest.as_ref().and_then(|m| m.error.clone()),
    };
    let mut updated = mtime(&manifest_path);
    let finished = manifest.as_ref().and_then(|m| match m.status {
        Status::Done => Some(State::Done),
        Status::Failed => Some(State::Failed),
        Status::Diverged => Some(State::Diverged),
        Status::Paused => Some(match m.halted {
            Some(halted) => {
                st.detail = Some(halted.to_string());
                State::Stopped
            }
            None => State::Paused,
        }),
        // an interrupted run resumes on the next invocation: whether one holds it now is
        // the lock's to tell
        Status::Running | Status::Interrupted => None,
    });
    st.state = match (finished, &seen) {
        _ if damage.is_some() => {
            st.detail = damage;
            State::Damaged
        }
        // final (a `--rerun` rewrites the manifest as running before it trains)
        (Some(state), _) => state,
        (None, Some(seen)) => {
            if let Some(h) = &seen.holder {
                st.host = Some(h.host.clone());
                st.pid = Some(h.pid);
                st.task = h.task.clone();
            }
            updated = updated.max(Some(seen.heartbeat_unix));
            match seen.stale() {
                None => State::Running,
                Some(why) => {
                    st.detail = Some(why);
                    State::Stale
                }
            }
        }
        (None, None) if manifest.is_some() => {
            st.detail = Some(
                if manifest
                    .as_ref()
                    .is_some_and(|m| m.status == Status::Interrupted)
                {
                    "stopped by Ctrl-C; the next invocation resumes it".into()
                } else {
                    "started, not finished, and no lock: interrupted".into()
                },
            );
            State::Stale
        }
        (None, None) => State::Pending,
    };
    st.updated = updated.map(crate::durable::timestamp::rfc3339);
    st
}

/// Every planned point of the experiment whose results are in `experiment_dir`.
pub(crate) fn statuses(
    experiment_dir: &Path,
) -> Result<(ExperimentPlan, Vec<PointStatus>), ViewError> {
    // a sweep that is planned but has no run folder yet has a plan and no experiment folder
    let plan = ExperimentPlan::read(experiment_dir).map_err(|e| match e {
        _ if !experiment_dir.is_dir() => ViewError::Missing(experiment_dir.to_path_buf()),
        crate::durable::StoreError::Read { path, reason } => ViewError::Read { path, reason },
        other => ViewError::Read {
            path: experiment_dir.to_path_buf(),
            reason: other.to_string(),
        },
    })?;
    let points = plan
        .points
        .iter()
        .map(|p| point_status(experiment_dir, p))
        .collect();
    Ok((plan, points))
}

fn keys(plan: &ExperimentPlan) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for p in &plan.points {
        for (k, _) in &p.swept {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    keys
}

fn value<'a>(p: &'a PlannedPoint, key: &str) -> Option<&'a str> {
    p.swept
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// How the table writes one key's values (the plan stores them as text): a column of floats as
/// numbers with the digits that keep them apart (`views`' one number format), anything else as
/// written.
/// How one column's values are written.
type Readable = Box<dyn Fn(&str) -> String>;

fn readable_column<'a>(values: impl Iterator<Item = &'a str>) -> Readable {
    let is_float = |v: &str| v.contains(['.', 'e', 'E']) && v.parse::<f64>().is_ok();
    let values: Vec<&str> = values.collect();
    if values.is_empty()
        || !values
            .iter()
            .all(|v| is_float(v) || v.parse::<i64>().is_ok())
    {
        return Box::new(str::to_string);
    }
    let format = ColumnFormat::for_values(values.iter().filter_map(|v| v.parse().ok()));
    Box::new(move |v: &str| match v.parse::<f64>() {
        Ok(x) if is_float(v) => format.number(x),
        _ => v.to_string(),
    })
}

pub(crate) fn render(plan: &ExperimentPlan, points: &[PointStatus], format: Format) -> String {
    let keys = keys(plan);
    match format {
        Format::Table => table(plan, points, &keys),
        Format::Csv => csv(points, &keys),
        Format::Json => json(points, &keys),
    }
}

fn table(plan: &ExperimentPlan, points: &[PointStatus], keys: &[String]) -> String {
    let mut header = vec!["#".to_string(), "run".to_string()];
    header.extend(keys.iter().cloned());
    header.extend(["state", "epochs", "host", "pid", "updated"].map(String::from));
    let readable: Vec<Readable> = keys
        .iter()
        .map(|k| readable_column(points.iter().filter_map(|s| value(&s.point, k))))
        .collect();
    let rows = points
        .iter()
        .map(|s| {
            let mut row = vec![s.point.number.to_string(), s.point.run_id.clone()];
            row.extend(
                keys.iter()
                    .zip(&readable)
                    .map(|(k, write)| value(&s.point, k).map_or("-".into(), write)),
            );
            row.push(s.state.name().to_string());
            row.push(format!("{}/{}", s.epochs_done, s.point.epochs));
            row.push(s.host.clone().unwrap_or_else(|| "-".into()));
            row.push(s.pid.map_or("-".into(), |p| p.to_string()));
            row.push(s.updated.clone().unwrap_or_else(|| "-".into()));
            row
        })
        .collect();
    let mut right = vec![true, false];
    right.extend(keys.iter().map(|_| false));
    right.extend([false, true, false, true, false]);
    let mut out = format!(
        "{}: {} point{} planned {} from {}\n",
        plan.experiment,
        points.len(),
        if points.len() == 1 { "" } else { "s" },
        plan.planned_at,
        plan.spec.display()
    );
    out += &super::compare::comfy_table(header, rows, presets::UTF8_FULL_CONDENSED, &right);
    let count = |st: State| points.iter().filter(|p| p.state == st).count();
    let tally: Vec<String> = [
        State::Done,
        State::Running,
        State::Pending,
        State::Stale,
        State::Failed,
        State::Diverged,
        State::Paused,
        State::Stopped,
        State::Damaged,
    ]
    .into_iter()
    .filter(|&st| count(st) > 0)
    .map(|st| format!("{} {}", count(st), st.name()))
    .collect();
    out += &format!("{}\n", tally.join(", "));
    for s in points.iter().filter(|s| s.detail.is_some()) {
        out += &format!(
            "point {} ({}): {}\n",
            s.point.number,
            s.point.run_id,
            s.detail.as_deref().unwrap_or_default()
        );
    }
    out
}

fn csv(points: &[PointStatus], keys: &[String]) -> String {
    let mut header = vec!["index".to_string(), "run_id".to_string()];
    header.extend(keys.iter().cloned());
    header.extend(
        [
            "state",
            "epochs_done",
            "epochs",
            "host",
            "pid",
            "task",
            "updated",
            "detail",
        ]
        .map(String::from),
    );
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|s| {
            let mut row = vec![s.point.number.to_string(), s.point.run_id.clone()];
            row.extend(
                keys.iter()
                    .map(|k| value(&s.point, k).unwrap_or("").to_string()),
            );
            row.push(s.state.name().into());
            row.push(s.epochs_done.to_string());
            row.push(s.point.epochs.to_string());
            row.push(s.host.clone().unwrap_or_default());
            row.push(s.pid.map(|p| p.to_string()).unwrap_or_default());
            row.push(s.task.clone().unwrap_or_default());
            row.push(s.updated.clone().unwrap_or_default());
            row.push(s.detail.clone().unwrap_or_default());
            row
        })
        .collect();
    crate::views::format::csv(&header, &rows)
}

fn json(points: &[PointStatus], keys: &[String]) -> String {
    let rows: Vec<serde_json::Value> = points
        .iter()
        .map(|s| {
            let swept: serde_json::Map<String, serde_json::Value> = keys
                .iter()
                .filter_map(|k| value(&s.point, k).map(|v| (k.clone(), v.into())))
                .collect();
            serde_json::json!({
                "index": s.point.number,
                "run_id": s.point.run_id,
                "swept": swept,
                "state": s.state.name(),
                "epochs_done": s.epochs_done,
                "epochs": s.point.epochs,
                "host": s.host,
                "pid": s.pid,
                "task": s.task,
                "updated": s.updated,
                "detail": s.detail,
            })
        })
        .collect();
    crate::views::format::json(&serde_json::Value::Array(rows))
}
