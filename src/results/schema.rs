//! Per-epoch metrics as polars tables: one row per epoch, one column per metric, the swept
//! parameters as columns of their own so a glob over `results/**/metrics.parquet` compares runs.

use crate::train::EpochMetrics;
use polars::prelude::*;

/// The column names of the results tables, in one place: every writer and reader of
/// `metrics.parquet`, `per_class.parquet` and `confusion.parquet` uses these.
pub mod col {
    pub(crate) const EXPERIMENT: &str = "experiment";
    pub(crate) const RUN_ID: &str = "run_id";
    pub(crate) const EPOCH: &str = "epoch";
    pub(crate) const TRAIN_LOSS: &str = "train_loss";
    pub(crate) const TRAIN_ACC: &str = "train_acc";
    pub(crate) const VAL_LOSS: &str = "val_loss";
    pub(crate) const VAL_ACC: &str = "val_acc";
    pub(crate) const WEIGHT_NORM: &str = "weight_norm";
    pub(crate) const LR: &str = "lr";
    pub(crate) const EPOCH_SECONDS: &str = "epoch_seconds";
    pub(crate) const IMAGES_PER_SECOND: &str = "images_per_second";
    /// Undecodable images left out of the epoch (`on_bad_image = "skip"`).
    pub(crate) const SKIPPED_IMAGES: &str = "skipped_images";
    /// Prefix of the per-class validation accuracy columns, `val_acc.<class>`.
    pub(crate) const CLASS_ACC_PREFIX: &str = "val_acc.";

    /// The columns that identify a run in every table.
    pub(crate) const KEY: &[&str] = &[EXPERIMENT, RUN_ID];
    /// The per-epoch metric columns of `metrics.parquet`, in file order; the per-class
    /// accuracies follow `val_acc`, the swept parameters sit between the key and `epoch`.
    pub(crate) const METRICS: &[&str] = &[
        TRAIN_LOSS,
        TRAIN_ACC,
        VAL_LOSS,
        VAL_ACC,
        WEIGHT_NORM,
        LR,
        EPOCH_SECONDS,
        IMAGES_PER_SECOND,
        SKIPPED_IMAGES,
    ];

    pub(crate) fn class_acc(class: &str) -> String {
        format!("{CLASS_ACC_PREFIX}{class}")
    }

    /// Whether a `metrics.parquet` column is one the runner always writes (key, epoch, metric,
    /// per-class accuracy); every other column is a swept parameter.
    pub(crate) fn is_fixed(name: &str) -> bool {
        KEY.contains(&name)
            || name == EPOCH
            || METRICS.contains(&name)
            || name.starts_with(CLASS_ACC_PREFIX)
    }
}

/// A swept parameter's value for a run, typed like the resolved spec field it sets. The same
/// value types the Parquet column and, as a JSON scalar, the manifest (so λ = 0 stays a float).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(untagged)]
pub enum ParamValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
}

impl ParamValue {
    pub(crate) fn from_toml(v: &toml::Value) -> Self {
        match v {
            toml::Value::Integer(i) => Self::Int(*i),
            toml::Value::Float(f) => Self::Float(*f),
            toml::Value::Boolean(b) => Self::Bool(*b),
            toml::Value::String(s) => Self::Str(s.clone()),
            other => Self::Str(other.to_string()),
        }
    }

    pub fn to_toml(&self) -> toml::Value {
        match self {
            Self::Int(i) => toml::Value::Integer(*i),
            Self::Float(f) => toml::Value::Float(*f),
            Self::Bool(b) => toml::Value::Boolean(*b),
            Self::Str(s) => toml::Value::String(s.clone()),
        }
    }

    fn column(&self, name: &str, rows: usize) -> Column {
        let name = PlSmallStr::from(name);
        match self {
            Self::Int(v) => Column::new(name, vec![*v; rows]),
            Self::Float(v) => Column::new(name, vec![*v; rows]),
            Self::Bool(v) => Column::new(name, vec![*v; rows]),
            Self::Str(v) => Column::new(name, vec![v.as_str(); rows]),
        }
    }
}

/// Gives every swept key one type across the runs of a sweep, as one Parquet column of an
/// experiment must have (else pandas sees an object column and `pyarrow.dataset` fails by file
/// order): integers mixed with floats become floats, any other mix becomes strings, e.g.
/// `backbone.freeze = [true, false, "until:conv2"]` → "true", "false", "until:conv2".
pub(crate) fn unify_types(runs: &mut [Vec<(String, ParamValue)>]) {
    let mut kinds: Vec<(String, u8)> = Vec::new();
    for (key, value) in runs.iter().flatten() {
        let bit = match value {
            ParamValue::Int(_) => 1,
            ParamValue::Float(_) => 2,
            ParamValue::Bool(_) => 4,
            ParamValue::Str(_) => 8,
        };
        match kinds.iter_mut().find(|(k, _)| k == key) {
            Some((_, bits)) => *bits |= bit,
            None => kinds.push((key.clone(), bit)),
        }
    }
    for (key, value) in runs.iter_mut().flatten() {
        let bits = kinds.iter().find(|(k, _)| k == key).map_or(0, |(_, b)| *b);
        *value = match (bits, &*value) {
            (0b11, ParamValue::Int(i)) => ParamValue::Float(*i as f64),
            (1 | 2 | 4 | 8 | 0b11, v) => v.clone(),
            (_, v) => ParamValue::Str(v.to_string()),
        };
    }
}

impl std::fmt::Display for ParamValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Int(v) => write!(f, "{v}"),
            Self::Float(v) => write!(f, "{v}"),
            Self::Bool(v) => write!(f, "{v}"),
            Self::Str(v) => write!(f, "{v}"),
        }
    }
}

/// Identifies the run every row belongs to.
#[derive(Debug, Clone)]
pub(crate) struct RunKey<'a> {
    pub experiment: &'a str,
    pub run_id: &'a str,
    pub swept: &'a [(String, ParamValue)],
    pub classes: &'a [String],
}

fn key_columns(key: &RunKey, rows: usize) -> Vec<Column> {
    let mut cols = vec![
        Column::new(col::EXPERIMENT.into(), vec![key.experiment; rows]),
        Column::new(col::RUN_ID.into(), vec![key.run_id; rows]),
    ];
    cols.extend(key.swept.iter().map(|(k, v)| v.column(k, rows)));
    cols
}

/// The metrics table of a run.
pub(crate) fn epochs_frame(key: &RunKey, rows: &[EpochMetrics]) -> PolarsResult<DataFrame> {
    let n = rows.len();
    let f = |name: &str, get: &dyn Fn(&EpochMetrics) -> f64| {
        Column::new(name.into(), rows.iter().map(get).collect::<Vec<f64>>())
    };
    let mut cols = key_columns(key, n);
    cols.push(Column::new(
        col::EPOCH.into(),
        rows.iter().map(|r| r.epoch as i64).collect::<Vec<_>>(),
    ));
    cols.push(f(col::TRAIN_LOSS, &|r| r.train_loss));
    cols.push(f(col::TRAIN_ACC, &|r| r.train_acc));
    cols.push(f(col::VAL_LOSS, &|r| r.val_loss));
    cols.push(f(col::VAL_ACC, &|r| r.val_acc));
    for (c, class) in key.classes.iter().enumerate() {
        cols.push(f(&col::class_acc(class), &|r| r.val_class_acc[c]));
    }
    cols.push(f(col::WEIGHT_NORM, &|r| r.weight_norm));
    cols.push(f(col::LR, &|r| r.lr));
    cols.push(f(col::EPOCH_SECONDS, &|r| r.epoch_seconds));
    cols.push(f(col::IMAGES_PER_SECOND, &|r| r.images_per_second));
    cols.push(Column::new(
        col::SKIPPED_IMAGES.into(),
        rows.iter().map(|r| r.skipped as i64).collect::<Vec<_>>(),
    ));
    DataFrame::new(n, cols)
}

/// The epoch with the lowest val loss (the first one on ties).
pub fn best_epoch(rows: &[EpochMetrics]) -> Option<&EpochMetrics> {
    rows.iter()
        .fold(None, |best: Option<&EpochMetrics>, r| match best {
            Some(b) if b.val_loss <= r.val_loss => Some(b),
            _ => Some(r),
        })
}

/// Per-class accuracy, precision and recall at one epoch, from its confusion matrix.
pub(crate) fn per_class_frame(key: &RunKey, row: &EpochMetrics) -> PolarsResult<DataFrame> {
    per_class_frame_of(key, row.epoch, &row.confusion)
}

/// [`per_class_frame`] of any confusion matrix (`confusion[true][predicted]`) of the model of
/// `epoch`: val at the best epoch, the test split, `runner evaluate`.
pub(crate) fn per_class_frame_of(
    key: &RunKey,
    epoch: usize,
    cm: &[Vec<u64>],
) -> PolarsResult<DataFrame> {
    let k = key.classes.len();
    let support: Vec<u64> = cm.iter().map(|r| r.iter().sum()).collect();
    let predicted: Vec<u64> = (0..k).map(|p| cm.iter().map(|r| r[p]).sum()).collect();
    let recall: Vec<f64> = (0..k).map(|c| ratio(cm[c][c], support[c])).collect();
    let precision: Vec<f64> = (0..k).map(|c| ratio(cm[c][c], predicted[c])).collect();
    let mut cols = key_columns(key, k);
    cols.push(Column::new(col::EPOCH.into(), vec![epoch as i64; k]));
    cols.push(Column::new("class".into(), key.classes.to_vec()));
    // per-class accuracy in the torchvision-tutorial sense: correct / images of that class
    cols.push(Column::new("accuracy".into(), recall.clone()));
    cols.push(Column::new("precision".into(), precision));
    cols.push(Column::new("recall".into(), recall));
    cols.push(Column::new(
        "support".into(),
        support.iter().map(|&s| s as i64).collect::<Vec<_>>(),
    ));
    DataFrame::new(k, cols)
}

/// The confusion matrix at one epoch as (true_class, pred_class, count) rows.
pub(crate) fn confusion_frame(key: &RunKey, row: &EpochMetrics) -> PolarsResult<DataFrame> {
    confusion_frame_of(key, row.epoch, &row.confusion)
}

/// [`confusion_frame`] of any confusion matrix of the model of `epoch`.
pub(crate) fn confusion_frame_of(
    key: &RunKey,
    epoch: usize,
    confusion: &[Vec<u64>],
) -> PolarsResult<DataFrame> {
    let k = key.classes.len();
    let (mut t, mut p, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for (i, r) in confusion.iter().enumerate() {
        for (j, &count) in r.iter().enumerate() {
            t.push(key.classes[i].clone());
            p.push(key.classes[j].clone());
            c.push(count as i64);
        }
    }
    let mut cols = key_columns(key, k * k);
    cols.push(Column::new(col::EPOCH.into(), vec![epoch as i64; k * k]));
    cols.push(Column::new("true_class".into(), t));
    cols.push(Column::new("pred_class".into(), p));
    cols.push(Column::new("count".into(), c));
    DataFrame::new(k * k, cols)
}

/// A model scored once on a labelled split, as one row in the metrics table's conventions: the
/// key and swept columns, `epoch` (whose weights were scored), `<split>_loss`, `<split>_acc`,
/// `<split>_acc.<class>` per class, and `images` (the images scored). `split` is `test` for
/// the run's test split (`test_metrics.parquet`), `eval` for `runner evaluate`.
pub(crate) fn score_frame(
    key: &RunKey,
    split: &str,
    epoch: usize,
    loss: f64,
    confusion: &[Vec<u64>],
) -> PolarsResult<DataFrame> {
    let images: u64 = confusion.iter().flatten().sum();
    let correct: u64 = (0..confusion.len()).map(|c| confusion[c][c]).sum();
    let mut cols = key_columns(key, 1);
    cols.push(Column::new(col::EPOCH.into(), vec![epoch as i64]));
    cols.push(Column::new(format!("{split}_loss").into(), vec![loss]));
    cols.push(Column::new(
        format!("{split}_acc").into(),
        vec![ratio(correct, images)],
    ));
    for (c, class) in key.classes.iter().enumerate() {
        let support = confusion[c].iter().sum();
        cols.push(Column::new(
            format!("{split}_acc.{class}").into(),
            vec![ratio(confusion[c][c], support)],
        ));
    }
    cols.push(Column::new("images".into(), vec![images as i64]));
    DataFrame::new(1, cols)
}

fn ratio(a: u64, b: u64) -> f64 {
    if b == 0 {
        0.0
    } else {
        a as f64 / b as f64
    }
}

/// The one reader of a results Parquet file: the named columns (all of them for `None`) of
/// `path`, decoded on the calling thread. The views read thousands of small files, in parallel
/// across files, where polars' own parallelism inside a file only adds hand-offs; without the
/// lazy engine, too, which would pull in polars' cloud and HTTP stack.
pub fn read_parquet(path: &std::path::Path, columns: Option<&[&str]>) -> PolarsResult<DataFrame> {
    parquet_reader(path)?
        .with_columns(columns.map(|c| c.iter().map(|c| c.to_string()).collect()))
        .finish()
}

/// A reader of `path` that decodes on the calling thread (see [`read_parquet`]), for a reader
/// that picks its columns from the file's schema first.
pub(crate) fn parquet_reader(path: &std::path::Path) -> PolarsResult<ParquetReader<std::fs::File>> {
    let file = std::fs::File::open(path).map_err(|e| PolarsError::IO {
        error: e.into(),
        msg: None,
    })?;
    Ok(ParquetReader::new(file).read_parallel(ParallelStrategy::None))
}

/// A run's metrics table read back: the epoch of each row and every metric column (the fixed
/// metrics, then the per-class accuracies) by name. The one reader of a single
/// `metrics.parquet`; `scan` reads many at once for the views.
pub struct MetricColumns {
    pub epochs: Vec<usize>,
    pub columns: Vec<(String, Vec<f64>)>,
}

impl MetricColumns {
    pub fn get(&self, name: &str) -> PolarsResult<&[f64]> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_slice())
            .ok_or_else(|| PolarsError::ColumnNotFound(name.to_string().into()))
    }
}

/// Reads a metrics table: [`col::METRICS`] and the `val_acc.<class>` columns, as f64 (a
/// missing value as NaN).
pub fn read_frame(path: &std::path::Path) -> PolarsResult<MetricColumns> {
    let df = read_parquet(path, None)?;
    let epochs = df
        .column(col::EPOCH)?
        .cast(&DataType::Int64)?
        .i64()?
        .into_no_null_iter()
        .map(|e| e as usize)
        .collect();
    let names: Vec<String> = df
        .get_column_names()
        .iter()
        .map(|s| s.to_string())
        .filter(|n| col::METRICS.contains(&n.as_str()) || n.starts_with(col::CLASS_ACC_PREFIX))
        .collect();
    let mut columns = Vec::new();
    for name in names {
        let v: Vec<f64> = df
            .column(&name)?
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .map(|x| x.unwrap_or(f64::NAN))
            .collect();
        columns.push((name, v));
    }
    Ok(MetricColumns { epochs, columns })
}

/// A score table read back (see [`score_frame`]): the scored model's epoch and every
/// `<split>_*` column (loss, accuracy, per-class accuracies) by name, in file order.
pub(crate) fn read_score(
    path: &std::path::Path,
    split: &str,
) -> PolarsResult<(usize, Vec<(String, f64)>)> {
    let df = read_parquet(path, None)?;
    let epoch = df
        .column(col::EPOCH)?
        .cast(&DataType::Int64)?
        .i64()?
        .get(0)
        .unwrap_or(0) as usize;
    let prefix = format!("{split}_");
    let mut values = Vec::new();
    for c in df.columns() {
        if c.name().starts_with(&prefix) {
            let v = c
                .cast(&DataType::Float64)?
                .f64()?
                .get(0)
                .unwrap_or(f64::NAN);
            values.push((c.name().to_string(), v));
        }
    }
    Ok((epoch, values))
}

/// Reads a run's metrics table back as rows (the confusion matrices are not in it and come
/// back empty).
pub(crate) fn read_epochs(
    path: &std::path::Path,
    classes: &[String],
) -> PolarsResult<Vec<EpochMetrics>> {
    let t = read_frame(path)?;
    let f = |name: &str| t.get(name);
    let (tl, ta, vl, va) = (
        f(col::TRAIN_LOSS)?,
        f(col::TRAIN_ACC)?,
        f(col::VAL_LOSS)?,
        f(col::VAL_ACC)?,
    );
    let (wn, lr, es, ips) = (
        f(col::WEIGHT_NORM)?,
        f(col::LR)?,
        f(col::EPOCH_SECONDS)?,
        f(col::IMAGES_PER_SECOND)?,
    );
    // absent from tables written before it was recorded
    let zeros = vec![0.0; t.epochs.len()];
    let skipped = f(col::SKIPPED_IMAGES).unwrap_or(&zeros);
    let per_class: Vec<&[f64]> = classes
        .iter()
        .map(|c| f(&col::class_acc(c)))
        .collect::<PolarsResult<_>>()?;
    Ok((0..t.epochs.len())
        .map(|i| EpochMetrics {
            epoch: t.epochs[i],
            train_loss: tl[i],
            train_acc: ta[i],
            val_loss: vl[i],
            val_acc: va[i],
            val_class_acc: per_class.iter().map(|c| c[i]).collect(),
            confusion: Vec::new(),
            weight_norm: wn[i],
            lr: lr[i],
            epoch_seconds: es[i],
            images_per_second: ips[i],
            train_samples: 0,
            skipped: skipped[i] as usize,
        })
        .collect())
}
