//! `runner reproduce RUN_DIR`: train a recorded run again from its stored resolved spec, in a
//! temporary results folder, and compare every per-epoch metric with the stored ones.

use std::path::{Path, PathBuf};

use comfy_table::{presets, Table};

use super::{run_sweep, RunOptions};
use crate::results::schema;
use crate::results::store::{read_manifest, Status};
use crate::spec::expand::PlannedRun;
use crate::spec::{self, LoadOptions};

/// Columns that measure the machine, not the model: never compared.
const TIMING: &[&str] = &["epoch_seconds", "images_per_second"];

#[derive(Debug)]
pub struct Deviation {
    pub metric: String,
    pub max_abs: f64,
    pub epoch: usize,
}

#[derive(Debug)]
pub struct Reproduction {
    pub run_id: String,
    pub new_run_id: String,
    pub epochs: (usize, usize),
    pub deviations: Vec<Deviation>,
    pub tolerance: f64,
    pub status: Status,
}

impl Reproduction {
    pub fn passed(&self) -> bool {
        self.status == Status::Done
            && self.epochs.0 == self.epochs.1
            && self.deviations.iter().all(|d| d.max_abs <= self.tolerance)
    }

    pub fn render(&self) -> String {
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

/// The project folder a run belongs to: the nearest ancestor with `pipeline/defaults.toml`.
pub fn project_of(run_dir: &Path) -> Option<PathBuf> {
    let abs = std::fs::canonicalize(run_dir).ok()?;
    abs.ancestors()
        .find(|d| d.join("pipeline/defaults.toml").is_file())
        .map(Path::to_path_buf)
}

/// A recorded run's manifest and its stored `spec.toml` loaded as an experiment, with the
/// spec's relative paths (dataset, weights, cache) taken from `project` (default: found from
/// the run folder).
pub fn stored_spec(
    run_dir: &Path,
    project: Option<&Path>,
) -> Result<
    (
        crate::results::store::Manifest,
        spec::Experiment,
        Option<PathBuf>,
    ),
    String,
> {
    let manifest = read_manifest(&run_dir.join("manifest.json")).map_err(|e| e.to_string())?;
    let spec_path = run_dir.join("spec.toml");
    let text = std::fs::read_to_string(&spec_path)
        .map_err(|e| format!("cannot read {}: {e}", spec_path.display()))?;
    let mut doc: toml::Table = text
        .parse()
        .map_err(|e| format!("{}: {e}", spec_path.display()))?;
    // stored paths are relative to the project folder (so run ids do not depend on the
    // checkout); make them absolute for loading from a temporary folder
    let project = project
        .map(Path::to_path_buf)
        .or_else(|| project_of(run_dir));
    if let Some(project) = &project {
        for (section, key) in [
            ("dataset", "root"),
            ("backbone", "weights"),
            ("cache", "dir"),
        ] {
            if let Some(toml::Value::String(p)) = doc.get_mut(section).and_then(|s| s.get_mut(key))
            {
                if !p.is_empty() && Path::new(p.as_str()).is_relative() {
                    *p = project.join(&*p).display().to_string();
                }
            }
        }
    }
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let spec_file = tmp.path().join(format!("{}.toml", manifest.experiment));
    std::fs::write(
        &spec_file,
        toml::to_string(&doc).expect("toml table serialises"),
    )
    .map_err(|e| e.to_string())?;
    let opts = LoadOptions {
        overrides: Vec::new(),
        pipeline_dir: project.as_ref().map(|p| p.join("pipeline")),
    };
    let exp = spec::load(&spec_file, &opts).map_err(|e| e.to_string())?;
    Ok((manifest, exp, project))
}

pub fn reproduce(
    run_dir: &Path,
    tolerance: f64,
    project: Option<&Path>,
) -> Result<Reproduction, String> {
    let (manifest, exp, _) = stored_spec(run_dir, project)?;
    let tmp = tempfile::tempdir().map_err(|e| e.to_string())?;
    let swept = manifest
        .swept
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.parse::<toml::Value>()
                    .unwrap_or_else(|_| toml::Value::String(v.clone())),
            )
        })
        .collect();
    let planned = PlannedRun {
        index: manifest.index,
        swept,
        spec: exp.base.clone(),
        warnings: Vec::new(),
    };
    let results = tmp.path().join("results");
    let report = run_sweep(
        &exp,
        &[planned],
        &RunOptions {
            results,
            rerun: true,
            progress: false,
        },
    )
    .pop()
    .expect("one run");
    if let Some(e) = &report.error {
        return Err(format!("the reproduction failed: {e}"));
    }
    let stored = schema::read_frame(&run_dir.join("metrics.parquet")).map_err(|e| e.to_string())?;
    let fresh =
        schema::read_frame(&report.dir.join("metrics.parquet")).map_err(|e| e.to_string())?;
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
    Ok(Reproduction {
        run_id: manifest.run_id,
        new_run_id: report.run_id,
        epochs: (stored.epochs.len(), fresh.epochs.len()),
        deviations,
        tolerance,
        status: report.status,
    })
}
