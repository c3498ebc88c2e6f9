//! Successive halving's decisions, as the experiment's `halving.json` records them: for each
//! rung, every point that reached it with its value of the metric, ranked, and which went on.
//! A decision is written (atomically) before it takes effect, and a sweep that finds it there
//! applies it again rather than deciding anew, so a killed and resumed sweep takes the same
//! decisions, byte for byte. Nothing in the file depends on time, host or order of training.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::durable::{self, StoreError};

/// What the decisions were taken under; a sweep with other settings may not reuse them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HalvingSettings {
    pub metric: String,
    /// "min" or "max".
    pub goal: String,
    pub min_epochs: usize,
    pub reduction_factor: usize,
    /// `train.epochs`: where the last promoted points end.
    pub epochs: usize,
    /// The points of the sweep, and the seeds each trains (ranked on their mean).
    pub points: usize,
    pub seeds_per_point: usize,
}

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decisions {
    pub settings: HalvingSettings,
    /// Rung 0 first; a rung is here once decided.
    pub rungs: Vec<RungDecision>,
}

/// One rung's decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RungDecision {
    /// From 0.
    pub rung: usize,
    /// The epoch whose metric ranked the points.
    pub epoch: usize,
    /// How many of the points ranked go on.
    pub promoted: usize,
    /// Every point that reached the rung, best first (ties: the lower point number first;
    /// points without a value last).
    pub ranking: Vec<PointValue>,
}

/// One point at one rung.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointValue {
    /// Numbered from 1 in plan order, like `runner plan` and `runner status`.
    pub point: usize,
    /// Its swept values but the seed, `key=value`.
    pub params: String,
    /// The run ids of its seeds.
    pub runs: Vec<String>,
    /// The metric at the rung's epoch, averaged over the seeds; `None` when a seed has no such
    /// epoch (it failed, diverged or stopped early before it).
    pub value: Option<f64>,
    pub promoted: bool,
}

impl RungDecision {
    /// The points that go on, in ranking order.
    pub fn promoted_points(&self) -> impl Iterator<Item = usize> + '_ {
        self.ranking.iter().filter(|p| p.promoted).map(|p| p.point)
    }
}

impl Decisions {
    /// The file at `path`, or `None` when there is none.
    pub fn read(path: &Path) -> Result<Option<Decisions>, StoreError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(StoreError::Read {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| StoreError::Read {
                path: path.to_path_buf(),
                reason: format!("not a halving decisions file: {e}"),
            })
    }

    /// Writes the whole file atomically: a reader sees the decisions before or after, never half.
    pub fn write(&self, path: &Path) -> Result<(), StoreError> {
        let json = serde_json::to_string_pretty(self).expect("decisions serialise");
        durable::write_text(path, &(json + "\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decisions_round_trip_through_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("halving.json");
        assert_eq!(Decisions::read(&path).unwrap(), None);
        let decisions = Decisions {
            settings: HalvingSettings {
                metric: "val_loss".into(),
                goal: "min".into(),
                min_epochs: 1,
                reduction_factor: 3,
                epochs: 9,
                points: 2,
                seeds_per_point: 1,
            },
            rungs: vec![RungDecision {
                rung: 0,
                epoch: 1,
                promoted: 1,
                ranking: vec![
                    PointValue {
                        point: 2,
                        params: "optimizer.lr=0.1".into(),
                        runs: vec!["abc".into()],
                        value: Some(0.25),
                        promoted: true,
                    },
                    PointValue {
                        point: 1,
                        params: "optimizer.lr=1".into(),
                        runs: vec!["def".into()],
                        value: None,
                        promoted: false,
                    },
                ],
            }],
        };
        decisions.write(&path).unwrap();
        let back = Decisions::read(&path).unwrap().unwrap();
        assert_eq!(back, decisions);
        assert_eq!(back.rungs[0].promoted_points().collect::<Vec<_>>(), [2]);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("halving.json");
        std::fs::write(&path, "{ not json").unwrap();
        let e = Decisions::read(&path).unwrap_err().to_string();
        assert!(
            e.contains("halving.json") && e.contains("not a halving decisions file"),
            "{e}"
        );
    }
}
