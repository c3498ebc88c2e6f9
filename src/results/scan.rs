//! Finding and reading the runs of results trees, for the views (`compare`, `plot`).
//!
//! Each run is read on its own — its manifest, then only the columns of `metrics.parquet` the
//! views use — and thousands of runs in parallel across files, each file decoded on one thread.
//! Runs from several experiments, folders or machines end up in one list.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use rayon::prelude::*;

use crate::durable;
use crate::results::layout::RunDir;
use crate::results::schema::{col, ParamValue};
use crate::results::store::{self, Status};

mod cache;

/// Why a results folder or one of its runs cannot be found or read. The views turn it into
/// their own error (`views::ScanError`), message for message.
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    #[error("cannot read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("no such results folder or file: {0}")]
    Missing(PathBuf),
    #[error("bad glob pattern '{pattern}': {reason}")]
    Glob { pattern: String, reason: String },
    #[error("no runs (folders with metrics.parquet or manifest.json) under {0}")]
    NoRuns(String),
}

/// One run's per-epoch series, sorted by epoch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Epochs {
    pub epoch: Vec<i64>,
    pub train_loss: Vec<f64>,
    pub val_loss: Vec<f64>,
    pub val_acc: Vec<f64>,
    pub weight_norm: Vec<f64>,
}

impl Epochs {
    pub fn len(&self) -> usize {
        self.epoch.len()
    }

    pub fn is_empty(&self) -> bool {
        self.epoch.is_empty()
    }

    fn sort(&mut self) {
        if self.epoch.windows(2).all(|w| w[0] <= w[1]) {
            return;
        }
        let mut idx: Vec<usize> = (0..self.len()).collect();
        idx.sort_by_key(|&i| self.epoch[i]);
        let pick_i = |v: &Vec<i64>| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let pick = |v: &Vec<f64>| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
        *self = Epochs {
            epoch: pick_i(&self.epoch),
            train_loss: pick(&self.train_loss),
            val_loss: pick(&self.val_loss),
            val_acc: pick(&self.val_acc),
            weight_norm: pick(&self.weight_norm),
        };
    }
}

/// A run as the views see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub dir: PathBuf,
    pub experiment: String,
    pub run_id: String,
    /// Swept parameters by dotted key, typed as in `metrics.parquet` (from the manifest's strings
    /// when the run has no metrics yet).
    pub params: Vec<(String, ParamValue)>,
    /// `None` when the run folder has no manifest.json.
    pub status: Option<Status>,
    /// The last epoch of a run that early stopping ended.
    pub stopped_early: Option<usize>,
    /// Where successive halving stopped the run.
    pub halted: Option<store::HaltedAt>,
    /// (loss, accuracy) of the kept model on the run's test split, when it has one.
    pub test: Option<(f64, f64)>,
    pub epochs: Epochs,
}

impl Run {
    pub fn param(&self, key: &str) -> Option<&ParamValue> {
        self.params.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The status as `compare` shows it: "done, stopped early at epoch 7" for an early stop.
    pub(crate) fn status_label(&self) -> String {
        match (self.stopped_early, self.halted) {
            (_, Some(halted)) => halted.to_string(),
            (Some(epoch), None) => format!("{}, stopped early at epoch {epoch}", self.status_str()),
            (None, None) => self.status_str().to_owned(),
        }
    }

    pub(crate) fn status_str(&self) -> &'static str {
        match self.status {
            Some(Status::Running) => "running",
            Some(Status::Done) => "done",
            Some(Status::Diverged) => "diverged",
            Some(Status::Failed) => "failed",
            Some(Status::Interrupted) => "interrupted",
            Some(Status::Paused) => "paused",
            None => "unknown",
        }
    }
}

/// Run folders under the given folders, files (`metrics.parquet`, `manifest.json`) or glob
/// patterns (expanded here, for quoted globs), sorted and without duplicates.
pub fn find_run_dirs<S: AsRef<str>>(inputs: &[S]) -> Result<Vec<PathBuf>, ScanError> {
    let mut dirs = Vec::new();
    for input in inputs {
        let input = input.as_ref();
        let before = dirs.len();
        if input.contains(['*', '?', '[']) {
            let paths = glob::glob(input).map_err(|e| ScanError::Glob {
                pattern: input.into(),
                reason: e.to_string(),
            })?;
            for p in paths {
                let p = p.map_err(|e| ScanError::Read {
                    path: e.path().to_path_buf(),
                    reason: e.error().to_string(),
                })?;
                add_path(&p, &mut dirs)?;
            }
        } else {
            let p = Path::new(input);
            if !p.exists() {
                return Err(ScanError::Missing(p.to_path_buf()));
            }
            add_path(p, &mut dirs)?;
        }
        if dirs.len() == before {
            return Err(ScanError::NoRuns(input.to_string()));
        }
    }
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

fn add_path(p: &Path, dirs: &mut Vec<PathBuf>) -> Result<(), ScanError> {
    if p.is_file() {
        if let Some(parent) = p.parent().filter(|_| is_run_file(p)) {
            dirs.push(parent.to_path_buf());
        }
        return Ok(());
    }
    walk(p, dirs)
}

fn is_run_file(p: &Path) -> bool {
    RunDir::is_marker(p)
}

fn walk(dir: &Path, dirs: &mut Vec<PathBuf>) -> Result<(), ScanError> {
    if RunDir::at(dir).looks_like_run() {
        dirs.push(dir.to_path_buf());
        return Ok(());
    }
    let read = |e: std::io::Error| ScanError::Read {
        path: dir.to_path_buf(),
        reason: e.to_string(),
    };
    for entry in std::fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let hidden = entry.file_name().to_string_lossy().starts_with('.');
        if !hidden && entry.file_type().map_err(read)?.is_dir() {
            walk(&entry.path(), dirs)?;
        }
    }
    Ok(())
}

/// The runs that could be read, in their order, and why the others could not.
#[derive(Debug, Default)]
pub(crate) struct Loaded {
    pub runs: Vec<Run>,
    pub unreadable: Vec<ScanError>,
}

/// Reads the given run folders, failing on the first one that cannot be read.
pub fn load_runs(dirs: &[PathBuf]) -> Result<Vec<Run>, ScanError> {
    let loaded = load_readable_runs(dirs);
    match loaded.unreadable.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(loaded.runs),
    }
}

/// Reads the given run folders, leaving out (and listing) the unreadable ones; fails only
/// when none can be read, with the first one's error.
pub(crate) fn load_some_runs(dirs: &[PathBuf]) -> Result<Loaded, ScanError> {
    let mut loaded = load_readable_runs(dirs);
    if loaded.runs.is_empty() && !loaded.unreadable.is_empty() {
        return Err(loaded.unreadable.remove(0));
    }
    Ok(loaded)
}

/// Reads the manifests and metrics of the given run folders, in their order: from the cache
/// next to them where it is still valid, afresh otherwise (then the cache is updated). A run
/// whose files cannot be read is left out and listed with its error, so that one corrupt
/// file does not hide every other run.
pub(crate) fn load_readable_runs(dirs: &[PathBuf]) -> Loaded {
    // stamps first: a file replaced while we read it shows as changed next time
    let stamps: Vec<(String, String)> = dirs.par_iter().map(|d| cache::run_stamps(d)).collect();
    let mut by_parent: HashMap<PathBuf, Vec<usize>> = HashMap::new();
    for (i, d) in dirs.iter().enumerate() {
        by_parent.entry(cache::split(d).1).or_default().push(i);
    }
    let mut out: Vec<Option<Run>> = vec![None; dirs.len()];
    let mut caches: HashMap<PathBuf, HashMap<String, cache::Cached>> = HashMap::new();
    for (parent, idx) in &by_parent {
        let mut cached = cache::read(parent);
        for &i in idx {
            let name = cache::split(&dirs[i]).0;
            if cached.get(&name).is_some_and(|c| c.stamps == stamps[i]) {
                let mut run = cached.remove(&name).expect("present").run;
                run.dir = dirs[i].clone();
                out[i] = Some(run);
            }
        }
        caches.insert(parent.clone(), cached);
    }
    let fresh: Vec<usize> = (0..dirs.len()).filter(|&i| out[i].is_none()).collect();
    if fresh.is_empty() {
        return Loaded {
            runs: out.into_iter().map(|r| r.expect("all cached")).collect(),
            unreadable: Vec::new(),
        };
    }
    let fresh_dirs: Vec<PathBuf> = fresh.iter().map(|&i| dirs[i].clone()).collect();
    let mut unreadable = Vec::new();
    for (&i, run) in fresh.iter().zip(read_each(&fresh_dirs)) {
        match run {
            Ok(run) => out[i] = Some(run),
            Err(e) => unreadable.push(e),
        }
    }
    // rewrite the caches of the folders that had anything new, keeping runs not asked for now
    let mut stale: Vec<&PathBuf> = fresh
        .iter()
        .map(|&i| &dirs[i])
        .filter_map(|d| d.parent())
        .map(|p| by_parent.get_key_value(p).expect("grouped").0)
        .collect();
    stale.sort();
    stale.dedup();
    for parent in stale {
        let mut entries: Vec<cache::Cached> = caches
            .remove(parent)
            .unwrap_or_default()
            .into_values()
            .collect();
        entries.retain(|c| c.run.dir.is_dir());
        // an unreadable run is not cached: it is read (and reported) again next time
        entries.extend(by_parent[parent].iter().filter_map(|&i| {
            out[i].as_ref().map(|run| cache::Cached {
                stamps: stamps[i].clone(),
                run: run.clone(),
            })
        }));
        cache::write(parent, &entries.iter().collect::<Vec<_>>());
    }
    Loaded {
        runs: out.into_iter().flatten().collect(),
        unreadable,
    }
}

/// Reads run folders without the cache, failing on the first one that cannot be read.
pub fn read_fresh(dirs: &[PathBuf]) -> Result<Vec<Run>, ScanError> {
    read_each(dirs).into_iter().collect()
}

/// Reads run folders without the cache: each run, or why it cannot be read. Each run on its
/// own, the runs in parallel (one file's error names that file and touches no other run).
fn read_each(dirs: &[PathBuf]) -> Vec<Result<Run, ScanError>> {
    crate::durable::parallel::map(dirs, |dir| read_run(dir))
}

/// One run folder: its manifest when it has one, then the columns of `metrics.parquet` the
/// views use, when it has that.
fn read_run(dir: &Path) -> Result<Run, ScanError> {
    let manifest_path = RunDir::at(dir).manifest();
    let manifest = match manifest_path.is_file() {
        true => Some(
            store::read_manifest(&manifest_path).map_err(|e| ScanError::Read {
                reason: source_reason(&e),
                path: manifest_path,
            })?,
        ),
        false => None,
    };
    let m = manifest.as_ref();
    let mut run = Run {
        dir: dir.to_path_buf(),
        experiment: m.map_or_else(|| parent_name(dir), |m| m.experiment.clone()),
        run_id: m.map_or_else(|| file_name(dir), |m| m.run_id.clone()),
        params: m.map(|m| m.swept.clone()).unwrap_or_default(),
        status: m.map(|m| m.status),
        stopped_early: m.and_then(|m| m.stopped_early.as_ref()).map(|s| s.epoch),
        halted: m.and_then(|m| m.halted),
        test: m.and_then(|m| m.test.as_ref()).map(|t| (t.loss, t.acc)),
        epochs: Epochs::default(),
    };
    let metrics = RunDir::at(dir).metrics();
    if metrics.is_file() {
        read_metrics(&metrics, &mut run).map_err(|e| ScanError::Read {
            path: metrics,
            reason: e.to_string(),
        })?;
    }
    Ok(run)
}

fn source_reason(e: &durable::StoreError) -> String {
    match e {
        durable::StoreError::Read { reason, .. } => reason.clone(),
        other => other.to_string(),
    }
}

/// The per-epoch series of one `metrics.parquet` into `run`, and its swept parameters, typed as
/// the file stores them (they replace the manifest's strings) when the file has a row.
fn read_metrics(path: &Path, run: &mut Run) -> PolarsResult<()> {
    const SERIES: [&str; 5] = [
        col::EPOCH,
        col::TRAIN_LOSS,
        col::VAL_LOSS,
        col::VAL_ACC,
        col::WEIGHT_NORM,
    ];
    let mut reader = crate::results::schema::parquet_reader(path)?;
    let params: Vec<String> = reader
        .schema()?
        .iter_names()
        .filter(|n| !col::is_fixed(n))
        .map(|n| n.to_string())
        .collect();
    let columns = SERIES
        .iter()
        .map(|c| c.to_string())
        .chain(params.iter().cloned());
    let df = reader.with_columns(Some(columns.collect())).finish()?;
    let f64s = |name: &str| -> PolarsResult<Vec<f64>> {
        let c = df.column(name)?.cast(&DataType::Float64)?;
        Ok(c.f64()?.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
    };
    let epoch = df.column(col::EPOCH)?.cast(&DataType::Int64)?;
    run.epochs = Epochs {
        epoch: epoch.i64()?.iter().map(|e| e.unwrap_or(0)).collect(),
        train_loss: f64s(col::TRAIN_LOSS)?,
        val_loss: f64s(col::VAL_LOSS)?,
        val_acc: f64s(col::VAL_ACC)?,
        weight_norm: f64s(col::WEIGHT_NORM)?,
    };
    run.epochs.sort();
    if df.height() > 0 {
        run.params = params
            .iter()
            .map(|k| Ok((k.clone(), any_to_param(df.column(k)?.get(0)?))))
            .collect::<PolarsResult<_>>()?;
    }
    Ok(())
}

fn any_to_param(v: AnyValue) -> ParamValue {
    match v {
        AnyValue::Boolean(b) => ParamValue::Bool(b),
        AnyValue::Float64(f) => ParamValue::Float(f),
        AnyValue::Float32(f) => ParamValue::Float(f as f64),
        AnyValue::String(s) => ParamValue::Str(s.to_string()),
        AnyValue::StringOwned(s) => ParamValue::Str(s.to_string()),
        AnyValue::Null => ParamValue::Str(String::new()),
        other => match other.extract::<i64>() {
            Some(i) => ParamValue::Int(i),
            None => ParamValue::Str(other.to_string()),
        },
    }
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn parent_name(p: &Path) -> String {
    p.parent().map(file_name).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifest_values_keep_their_types() {
        // λ = 0 swept as a float stays a float through the manifest's JSON, unlike "0" did
        let swept = vec![
            ("regularization.lambda".to_string(), ParamValue::Float(0.0)),
            ("train.epochs".to_string(), ParamValue::Int(3)),
            ("train.hflip".to_string(), ParamValue::Bool(true)),
            ("optimizer.kind".to_string(), ParamValue::Str("sgd".into())),
            (
                "backbone.freeze".to_string(),
                ParamValue::Str("true".into()),
            ),
        ];
        let json = serde_json::to_string(&swept).unwrap();
        let back: Vec<(String, ParamValue)> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, swept, "{json}");
    }

    #[test]
    fn epochs_are_put_in_order() {
        let mut e = Epochs {
            epoch: vec![2, 1],
            train_loss: vec![0.2, 0.1],
            val_loss: vec![2.0, 1.0],
            val_acc: vec![0.5, 0.4],
            weight_norm: vec![3.0, 4.0],
        };
        e.sort();
        assert_eq!(
            (e.epoch, e.val_loss, e.weight_norm),
            (vec![1, 2], vec![1.0, 2.0], vec![4.0, 3.0])
        );
    }

    #[test]
    fn finds_run_folders_and_reports_empty_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("exp/abc");
        std::fs::create_dir_all(&run).unwrap();
        std::fs::create_dir_all(dir.path().join("exp/plots")).unwrap();
        std::fs::write(RunDir::at(&run).manifest(), "{}").unwrap();
        let root = dir.path().to_string_lossy().into_owned();
        assert_eq!(find_run_dirs(&[root.as_str()]).unwrap(), vec![run.clone()]);
        let empty = dir.path().join("exp/plots").to_string_lossy().into_owned();
        assert_eq!(
            find_run_dirs(&[empty.as_str()]).unwrap_err().to_string(),
            format!("no runs (folders with metrics.parquet or manifest.json) under {empty}")
        );
        let err = load_runs(std::slice::from_ref(&run))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "cannot read {}: missing field",
                RunDir::at(&run).manifest().display()
            )),
            "{err}"
        );
    }
}
