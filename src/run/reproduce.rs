//! `runner reproduce RUN_DIR`: train a recorded run again from its stored resolved spec, in a
//! temporary results folder, and compare every per-epoch metric with the stored ones.

use std::path::Path;

use comfy_table::{presets, Table};

use super::{run_sweep, RunOptions};
use crate::results::layout::RunDir;
use crate::results::schema;
use crate::results::store::Status;
use crate::setup::{FinishedRun, Opening, ProjectFrom, Resolved};

/// Columns that measure the machine, not the model: never compared.
const TIMING: &[&str] = &["epoch_seconds", "images_per_second"];

#[derive(Debug)]
pub(crate) struct Deviation {
    pub metric: String,
    pub max_abs: f64,
    pub epoch: usize,
}

#[derive(Debug)]
pub(crate) struct Reproduction {
    pub run_id: String,
    pub new_run_id: String,
    pub epochs: (usize, usize),
    pub deviations: Vec<Deviation>,
    pub tolerance: f64,
    pub status: Status,
    /// The status the reproduction must end in: `done`, or `paused` for a run that
    /// successive halving stopped (reproduced up to the epoch it stopped at).
    pub expected: Status,
}

impl Reproduction {
    pub(crate) fn passed(&self) -> bool {
        self.status == self.expected
            && self.epochs.0 == self.epochs.1
            && self.deviations.iter().all(|d| d.max_abs <= self.tolerance)
    }

    pub(crate) fn render(&self) -> String {
        let mut t = Table::new();
        t.load_preset(presets::UTF8_FULL_CONDENSED);
        t.set_header(vec![
            "metric",
            "max |stored − reproduced|",
            "at epoch",
            "within tolerance",
        ]);
        for d in &self.deviations {
            t.add_row(vec![
                d.metric.clone(),
                format!("{:.3e}", d.max_abs),
                if d.max_abs == 0.0 {
                    "-".into()
                } else {
                    d.epoch.to_string()
                },
                if d.max_abs <= self.tolerance {
                    "yes".into()
                } else {
                    "NO".into()
                },
            ]);
        }
        let mut out = format!("{t}\n");
        if self.run_id != self.new_run_id {
            out += &format!(
                "note: the run id is now {} (stored {}): the data or the weights changed since it was recorded\n",
                self.new_run_id, self.run_id
            );
        }
        if self.epochs.0 != self.epochs.1 {
            out += &format!(
                "epochs: stored {}, reproduced {}\n",
                self.epochs.0, self.epochs.1
            );
        }
        out += &format!(
            "reproduce {}: {} (tolerance {:.0e})\n",
            self.run_id,
            if self.passed() { "ok" } else { "FAILED" },
            self.tolerance
        );
        out
    }
}

pub(crate) fn reproduce(
    run_dir: &Path,
    tolerance: f64,
    project: Option<&Path>,
) -> Result<Reproduction, String> {
    // stored paths are relative to the project folder (so run ids do not depend on the
    // checkout); they resolve against the project the run belongs to
    let how = Opening {
        project: ProjectFrom::Flag(project),
        needs_model: false,
    };
    let FinishedRun {
        dir,
        manifest,
        experiment: mut exp,
        ..
    } = FinishedRun::open(&RunDir::at(run_dir), how).map_err(|e| e.brief())?;
    // the one run of the stored spec is the sweep point the manifest names
    let run = &mut exp.runs[0];
    run.index = manifest.index;
    run.swept = manifest
        .swept
        .iter()
        .map(|(k, v)| (k.clone(), v.to_toml()))
        .collect();
    let resolved = Resolved::new(&exp).map_err(|e| e.to_string())?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let results = tmp.path().join("results");
    let report = run_sweep(
        &resolved,
        &[0],
        &RunOptions {
            results,
            rerun: true,
            progress: false,
            // a run successive halving stopped is reproduced up to where it stopped
            pause_after: manifest.halted.map(|h| h.epoch),
        },
    )
    .pop()
    .expect("one run");
    if let Some(e) = &report.error {
        return Err(format!("the reproduction failed: {e}"));
    }
    let stored = schema::read_frame(&dir.metrics()).map_err(|e| e.to_string())?;
    let fresh =
        schema::read_frame(&RunDir::at(&report.dir).metrics()).map_err(|e| e.to_string())?;
    Ok(Reproduction {
        run_id: manifest.run_id,
        new_run_id: report.run_id,
        epochs: (stored.epochs.len(), fresh.epochs.len()),
        deviations: deviations(&stored, &fresh),
        tolerance,
        status: report.status,
        expected: match manifest.halted {
            Some(_) => Status::Paused,
            None => Status::Done,
        },
    })
}

/// The largest difference of each stored metric column from the reproduced one, and where.
fn deviations(stored: &schema::MetricColumns, fresh: &schema::MetricColumns) -> Vec<Deviation> {
    let mut deviations = Vec::new();
    for (name, a) in &stored.columns {
        if TIMING.contains(&name.as_str()) {
            continue;
        }
        let b = fresh
            .columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b);
        let (max_abs, at) = match b {
            Some(b) => a
                .iter()
                .zip(b)
                .enumerate()
                .fold((0.0f64, 0), |(m, at), (i, (x, y))| {
                    let d = if x == y { 0.0 } else { (x - y).abs() };
                    let d = if d.is_nan() { f64::INFINITY } else { d };
                    if d > m {
                        (d, i)
                    } else {
                        (m, at)
                    }
                }),
            None => (f64::INFINITY, 0),
        };
        deviations.push(Deviation {
            metric: name.clone(),
            max_abs,
            epoch: stored.epochs.get(at).copied().unwrap_or(0),
        });
    }
    deviations
}
