//! `results/.plans/<experiment>.json`: the sweep as it was last planned into this results folder
//! (every point's number, run id, swept values and epoch count), written by `runner run` and
//! `runner slurm`. It is what `runner status` reads to know which runs to expect, from the files
//! alone, while tasks still run on other nodes (recomputing run ids would need the spec, its
//! presets, the dataset and the weights, which a login node may not see the same way). It sits
//! next to `results/.cache/`, outside the experiment's folder, which holds run folders only.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::durable::{write_atomic, StoreError};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExperimentPlan {
    pub experiment: String,
    /// The spec file, absolute, and the `--set` overrides it was planned with.
    pub spec: PathBuf,
    pub overrides: Vec<String>,
    pub planned_at: String,
    pub points: Vec<PlannedPoint>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PlannedPoint {
    /// From 1, as `runner plan` numbers it.
    pub number: usize,
    pub run_id: String,
    pub swept: Vec<(String, String)>,
    pub epochs: usize,
}

impl ExperimentPlan {
    pub(crate) fn path(results: &Path, experiment: &str) -> PathBuf {
        super::layout::ResultsRoot::new(results).plan(experiment)
    }

    /// Writes it atomically (tasks starting together write the same plan).
    pub(crate) fn write(&self, results: &Path) -> Result<(), StoreError> {
        let path = Self::path(results, &self.experiment);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let json = serde_json::to_string_pretty(self).expect("plan serialises") + "\n";
        write_atomic(&path, |f| std::io::Write::write_all(f, json.as_bytes()))
    }

    /// The swept keys whose value differs between the planned points, in plan order.
    pub(crate) fn varying_keys(&self) -> Vec<String> {
        let value = |p: &PlannedPoint, k: &str| {
            p.swept
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let mut keys: Vec<String> = Vec::new();
        for p in &self.points {
            for (k, _) in &p.swept {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        if let Some(first) = self.points.first() {
            keys.retain(|k| self.points.iter().any(|p| value(p, k) != value(first, k)));
        }
        keys
    }

    /// Reads the plan of the experiment whose results are in `experiment_dir`
    /// (`<results>/<experiment>`).
    pub(crate) fn read(experiment_dir: &Path) -> Result<Self, StoreError> {
        let name = experiment_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let results = experiment_dir.parent().unwrap_or(Path::new("."));
        let path = Self::path(results, &name);
        let text = std::fs::read_to_string(&path).map_err(|e| StoreError::Read {
            path: path.clone(),
            reason: if e.kind() == std::io::ErrorKind::NotFound {
                "no such file: `runner run` or `runner slurm` writes it when it plans the sweep"
                    .into()
            } else {
                e.to_string()
            },
        })?;
        serde_json::from_str(&text).map_err(|e| StoreError::Read {
            path,
            reason: format!("not a plan: {e} (line {}, column {})", e.line(), e.column()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_names_a_missing_or_bad_file() {
        let dir = tempfile::tempdir().unwrap();
        let plan = ExperimentPlan {
            experiment: "e".into(),
            spec: "/p/e.toml".into(),
            overrides: vec!["train.epochs=1".into()],
            planned_at: "2026-12-01T00:00:00Z".into(),
            points: vec![PlannedPoint {
                number: 1,
                run_id: "abc".into(),
                swept: vec![("regularization.lambda".into(), "0.1".into())],
                epochs: 2,
            }],
        };
        plan.write(dir.path()).unwrap();
        assert_eq!(ExperimentPlan::read(&dir.path().join("e")).unwrap(), plan);
        let e = ExperimentPlan::read(dir.path()).unwrap_err().to_string();
        assert!(e.contains(".json: no such file"), "{e}");
        std::fs::write(dir.path().join(".plans/e.json"), "{\"experiment\": 3}").unwrap();
        let e = ExperimentPlan::read(&dir.path().join("e"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not a plan") && e.contains("line 1"), "{e}");
    }
}
