//! A cache of what the views read from each run folder, kept next to the run folders
//! (`<experiment>/.compare-cache.runs.parquet` + `.compare-cache.epochs.parquet`), so comparing
//! 10,000 runs reads two Parquet files instead of 20,000 small ones.
//!
//! A cached run is used only while its `manifest.json` and `metrics.parquet` have the same
//! modification time and size as when it was read (the runner replaces them by rename, so any
//! change shows); everything else is read afresh and the cache is rewritten. The pair of files
//! carries one random token so a pair half-written by a killed process is ignored. A cache that
//! cannot be read or written (read-only results, another version) is only a slower compare.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use polars::prelude::*;

use super::{Epochs, Run};
use crate::durable;
use crate::results::layout::{ExperimentDir, RunDir};
use crate::results::schema::ParamValue;
use crate::results::store::Status;

/// "mtime_ns:size" of a file, or "" when it does not exist.
pub(super) fn stamp(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(m) => {
            let t = m
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            format!("{t}:{}", m.len())
        }
        Err(_) => String::new(),
    }
}

/// The stamps of a run folder's manifest and metrics.
pub(super) fn run_stamps(dir: &Path) -> (String, String) {
    (
        stamp(&RunDir::at(dir).manifest()),
        stamp(&RunDir::at(dir).metrics()),
    )
}

/// A run as cached, by folder name.
#[derive(Debug, Clone)]
pub(super) struct Cached {
    pub stamps: (String, String),
    pub run: Run,
}

/// The cached runs of one parent folder (empty when there is no usable cache).
pub(super) fn read(parent: &Path) -> HashMap<String, Cached> {
    read_inner(parent).unwrap_or_default()
}

fn read_inner(parent: &Path) -> Option<HashMap<String, Cached>> {
    let (runs, epochs) = read_frames(parent)?;
    let s = |c: &str| runs.column(c).ok()?.str().ok().cloned();
    let i = |c: &str| runs.column(c).ok()?.i64().ok().cloned();
    let (name, manifest, metrics, experiment, run_id, status, params) = (
        s("dir")?,
        s("manifest")?,
        s("metrics")?,
        s("experiment")?,
        s("run_id")?,
        s("status")?,
        s("params")?,
    );
    let (start, len) = (i("start")?, i("len")?);
    // "" or the last epoch of an early-stopped run (a cache written before it was kept has no
    // such column and is read afresh)
    let stopped_early = s("stopped_early")?;
    // "" or "<rung> <epoch>" where successive halving stopped the run (absent from older caches)
    let halted = s("halted")?;
    // "" or "<loss> <acc>" of the test split (likewise absent from older caches)
    let test = s("test")?;
    let all = every_epoch(&epochs)?;
    let mut out = HashMap::with_capacity(runs.height());
    for r in 0..runs.height() {
        let (a, n) = (start.get(r)? as usize, len.get(r)? as usize);
        if a + n > all.epoch.len() {
            return None;
        }
        let dir_name = name.get(r)?.to_string();
        let run = Run {
            dir: parent.join(&dir_name),
            experiment: experiment.get(r)?.to_string(),
            run_id: run_id.get(r)?.to_string(),
            params: decode_params(params.get(r)?)?,
            status: decode_status(status.get(r)?),
            stopped_early: stopped_early.get(r)?.parse().ok(),
            halted: decode_halted(halted.get(r)?),
            test: decode_test(test.get(r)?),
            epochs: rows_of(&all, a..a + n),
        };
        let stamps = (manifest.get(r)?.to_string(), metrics.get(r)?.to_string());
        out.insert(dir_name, Cached { stamps, run });
    }
    Some(out)
}

/// The cache's runs and epochs tables of `parent`, when both are there, have a row and carry
/// the same token (one pair written together).
fn read_frames(parent: &Path) -> Option<(DataFrame, DataFrame)> {
    if parent.as_os_str().is_empty() {
        return None;
    }
    let runs_path = ExperimentDir::at(parent).compare_cache_runs();
    let epochs_path = ExperimentDir::at(parent).compare_cache_epochs();
    if !runs_path.is_file() || !epochs_path.is_file() {
        return None;
    }
    let scan = |p: &Path| {
        let mut df = crate::results::schema::read_parquet(p, None).ok()?;
        // a large file can come back in several chunks; the slices below need one
        df.rechunk_mut_par();
        Some(df)
    };
    let (runs, epochs) = (scan(&runs_path)?, scan(&epochs_path)?);
    let token = |df: &DataFrame| df.column("token").ok()?.i64().ok()?.get(0);
    if runs.height() == 0 || token(&runs)? != token(&epochs).unwrap_or(token(&runs)?) {
        return None;
    }
    Some((runs, epochs))
}

/// The epochs table's series, every cached run's rows one after another.
fn every_epoch(epochs: &DataFrame) -> Option<Epochs> {
    let e = |c: &str| {
        epochs
            .column(c)
            .ok()?
            .f64()
            .ok()?
            .cont_slice()
            .ok()
            .map(|s| s.to_vec())
    };
    let epoch: Vec<i64> = epochs
        .column("epoch")
        .ok()?
        .i64()
        .ok()?
        .cont_slice()
        .ok()?
        .to_vec();
    Some(Epochs {
        epoch,
        train_loss: e("train_loss")?,
        val_loss: e("val_loss")?,
        val_acc: e("val_acc")?,
        weight_norm: e("weight_norm")?,
    })
}

/// One run's rows of [`every_epoch`].
fn rows_of(all: &Epochs, rows: std::ops::Range<usize>) -> Epochs {
    Epochs {
        epoch: all.epoch[rows.clone()].to_vec(),
        train_loss: all.train_loss[rows.clone()].to_vec(),
        val_loss: all.val_loss[rows.clone()].to_vec(),
        val_acc: all.val_acc[rows.clone()].to_vec(),
        weight_norm: all.weight_norm[rows].to_vec(),
    }
}

/// "<loss> <acc>" as written (`{:?}` keeps every bit of an f64), "" for none.
fn decode_test(text: &str) -> Option<(f64, f64)> {
    let (loss, acc) = text.split_once(' ')?;
    Some((loss.parse().ok()?, acc.parse().ok()?))
}

/// Rewrites the cache of `parent` with these runs (all in `parent`). Errors are ignored: the
/// cache only saves time.
pub(super) fn write(parent: &Path, runs: &[&Cached]) {
    if parent.as_os_str().is_empty() {
        return;
    }
    if let Err(e) = write_inner(parent, runs) {
        tracing::debug!("not caching {}: {e}", parent.display());
    }
}

fn write_inner(parent: &Path, runs: &[&Cached]) -> Result<(), String> {
    let token = rand::random::<i64>();
    let n = runs.len();
    let mut start = Vec::with_capacity(n);
    let mut len = Vec::with_capacity(n);
    let mut total = 0i64;
    for c in runs {
        start.push(total);
        len.push(c.run.epochs.len() as i64);
        total += c.run.epochs.len() as i64;
    }
    let name = |c: &&Cached| {
        c.run
            .dir
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let text = |f: &dyn Fn(&Cached) -> String| runs.iter().map(|c| f(c)).collect::<Vec<String>>();
    let mut runs_df = DataFrame::new(
        n,
        vec![
            Column::new("dir".into(), runs.iter().map(name).collect::<Vec<_>>()),
            Column::new("manifest".into(), text(&|c| c.stamps.0.clone())),
            Column::new("metrics".into(), text(&|c| c.stamps.1.clone())),
            Column::new("experiment".into(), text(&|c| c.run.experiment.clone())),
            Column::new("run_id".into(), text(&|c| c.run.run_id.clone())),
            Column::new(
                "status".into(),
                text(&|c| c.run.status.map_or(String::new(), |s| s.to_string())),
            ),
            Column::new("params".into(), text(&|c| encode_params(&c.run.params))),
            Column::new(
                "stopped_early".into(),
                text(&|c| c.run.stopped_early.map_or(String::new(), |e| e.to_string())),
            ),
            Column::new(
                "halted".into(),
                text(&|c| {
                    c.run
                        .halted
                        .map_or(String::new(), |h| format!("{} {}", h.rung, h.epoch))
                }),
            ),
            Column::new(
                "test".into(),
                text(&|c| {
                    c.run
                        .test
                        .map_or(String::new(), |(loss, acc)| format!("{loss:?} {acc:?}"))
                }),
            ),
            Column::new("start".into(), start),
            Column::new("len".into(), len),
            Column::new("token".into(), vec![token; n]),
        ],
    )
    .map_err(|e| e.to_string())?;
    let mut epochs_df = epochs_frame(runs, token, total as usize)?;
    // epochs first: a reader that sees the new runs file also sees its epochs
    let experiment = ExperimentDir::at(parent);
    write_parquet(&experiment.compare_cache_epochs(), &mut epochs_df)?;
    write_parquet(&experiment.compare_cache_runs(), &mut runs_df)
}

/// Every run's epochs, one run after another (`total` rows), tagged with the write's `token`.
fn epochs_frame(runs: &[&Cached], token: i64, total: usize) -> Result<DataFrame, String> {
    let cat = |f: fn(&Epochs) -> &Vec<f64>| {
        runs.iter()
            .flat_map(|c| f(&c.run.epochs).iter().copied())
            .collect::<Vec<f64>>()
    };
    DataFrame::new(
        total,
        vec![
            Column::new(
                "epoch".into(),
                runs.iter()
                    .flat_map(|c| c.run.epochs.epoch.iter().copied())
                    .collect::<Vec<i64>>(),
            ),
            Column::new("train_loss".into(), cat(|e| &e.train_loss)),
            Column::new("val_loss".into(), cat(|e| &e.val_loss)),
            Column::new("val_acc".into(), cat(|e| &e.val_acc)),
            Column::new("weight_norm".into(), cat(|e| &e.weight_norm)),
            Column::new("token".into(), vec![token; total]),
        ],
    )
    .map_err(|e| e.to_string())
}

fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<(), String> {
    let mut err = None;
    durable::write_atomic(path, |f| {
        // lz4 reads back faster than the default zstd; the cache is rewritten often, read more
        ParquetWriter::new(f)
            .with_compression(ParquetCompression::Lz4Raw)
            .finish(df)
            .map(|_| ())
            .map_err(|e| {
                err = Some(e.to_string());
                std::io::Error::other("parquet")
            })
    })
    .map_err(|e| err.take().unwrap_or_else(|| e.to_string()))
}

/// `key \x1f type \x1f value` records separated by `\x1e`; floats print round-trip exact.
fn encode_params(params: &[(String, ParamValue)]) -> String {
    params
        .iter()
        .map(|(k, v)| {
            let (t, v) = match v {
                ParamValue::Int(i) => ('i', i.to_string()),
                ParamValue::Float(f) => ('f', f.to_string()),
                ParamValue::Bool(b) => ('b', b.to_string()),
                ParamValue::Str(s) => ('s', s.clone()),
            };
            format!("{k}\x1f{t}\x1f{v}")
        })
        .collect::<Vec<_>>()
        .join("\x1e")
}

fn decode_params(s: &str) -> Option<Vec<(String, ParamValue)>> {
    if s.is_empty() {
        return Some(Vec::new());
    }
    s.split('\x1e')
        .map(|rec| {
            let mut parts = rec.splitn(3, '\x1f');
            let (k, t, v) = (parts.next()?, parts.next()?, parts.next()?);
            let value = match t {
                "i" => ParamValue::Int(v.parse().ok()?),
                "f" => ParamValue::Float(v.parse().ok()?),
                "b" => ParamValue::Bool(v.parse().ok()?),
                _ => ParamValue::Str(v.to_string()),
            };
            Some((k.to_string(), value))
        })
        .collect()
}

fn decode_halted(s: &str) -> Option<crate::results::store::HaltedAt> {
    let (rung, epoch) = s.split_once(' ')?;
    Some(crate::results::store::HaltedAt {
        rung: rung.parse().ok()?,
        epoch: epoch.parse().ok()?,
    })
}

fn decode_status(s: &str) -> Option<Status> {
    serde_json::from_str(&format!("\"{s}\"")).ok()
}

/// Folder → (folder name, parent) for grouping runs by cache.
pub(super) fn split(dir: &Path) -> (String, PathBuf) {
    let name = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    (
        name,
        dir.parent().map(Path::to_path_buf).unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_round_trip_exactly() {
        let p = vec![
            (
                "regularization.lambda".to_string(),
                ParamValue::Float(0.1 + 0.2),
            ),
            ("experiment.seed".to_string(), ParamValue::Int(-3)),
            ("model.pretrained".to_string(), ParamValue::Bool(true)),
            (
                "optimizer.kind".to_string(),
                ParamValue::Str("sgd, nesterov".into()),
            ),
        ];
        assert_eq!(decode_params(&encode_params(&p)).unwrap(), p);
        assert_eq!(decode_params("").unwrap(), vec![]);
        assert_eq!(decode_status("diverged"), Some(Status::Diverged));
        assert_eq!(decode_status(""), None);
    }

    #[test]
    fn round_trips_many_runs() {
        let dir = tempfile::tempdir().unwrap();
        let entries: Vec<Cached> = (0..3000)
            .map(|i| {
                let e = (1..=100i64).collect::<Vec<_>>();
                let f = |k: f64| {
                    e.iter()
                        .map(|&x| k * x as f64 + i as f64)
                        .collect::<Vec<_>>()
                };
                Cached {
                    stamps: (format!("{i}:1"), format!("{i}:2")),
                    run: Run {
                        dir: dir.path().join(format!("run{i:04}")),
                        experiment: "e".into(),
                        run_id: format!("run{i:04}"),
                        params: vec![("experiment.seed".into(), ParamValue::Int(i))],
                        status: Some(Status::Done),
                        stopped_early: (i == 3).then_some(40),
                        halted: None,
                        test: (i == 2).then_some((0.1 + 0.2, 2.0 / 3.0)),
                        epochs: Epochs {
                            epoch: e.clone(),
                            train_loss: f(1.0),
                            val_loss: f(2.0),
                            val_acc: f(3.0),
                            weight_norm: f(4.0),
                        },
                    },
                }
            })
            .collect();
        write_inner(dir.path(), &entries.iter().collect::<Vec<_>>()).unwrap();
        let back = read(dir.path());
        assert_eq!(back.len(), 3000);
        for c in [&entries[0], &entries[2], &entries[1234], &entries[2999]] {
            let got = &back[&c.run.run_id];
            assert_eq!((&got.stamps, &got.run), (&c.stamps, &c.run));
        }
    }
}
