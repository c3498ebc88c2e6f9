//! `runner compare`: one row per run (or per group of runs that differ only by seed), with the
//! swept parameters that differ, the best epoch and its val metrics, the final losses and weight
//! norm, and the status.

mod filter;
pub mod per_class;
pub mod render;

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::results::scan::{self, Run};
use crate::results::schema::ParamValue;
use crate::views::ViewError;

pub use filter::{resolve_column, Cell, Filter, Op};
pub use render::comfy as comfy_table;

/// The key whose runs are averaged when it is the only parameter that differs.
pub(crate) const SEED_KEY: &str = "experiment.seed";

/// The summary columns, in order; the last two (the kept model on the held-out test split)
/// are shown only when some run has a test split.
pub(crate) const METRICS: [&str; 8] = [
    "best_epoch",
    "val_acc@best",
    "val_loss@best",
    "final_train_loss",
    "final_val_loss",
    "final_weight_norm",
    "test_acc",
    "test_loss",
];

/// Where the test split's columns start in [`METRICS`].
const TEST_METRICS: usize = 6;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Table,
    Markdown,
    Csv,
    Json,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BestBy {
    /// Lowest val loss.
    #[default]
    ValLoss,
    /// Highest val accuracy.
    ValAcc,
}

/// What to compare and how to show it.
#[derive(Debug, Clone, Default)]
pub struct CompareOptions {
    /// Results folders, run folders, metrics.parquet files or glob patterns.
    pub inputs: Vec<String>,
    pub format: Format,
    /// Which epoch of a run is its best.
    pub by: BestBy,
    /// Sort by this column; `name:desc` or `-name` for descending.
    pub sort: Option<String>,
    /// `COLUMN OP VALUE` conditions a run must all meet.
    pub filter: Vec<String>,
    /// Also show per-class metrics and the confusion matrix of each run.
    pub per_class: bool,
}

/// Finds and reads the runs, then renders the comparison; any run that cannot be read is an
/// error.
pub fn compare(args: &CompareOptions) -> Result<String, ViewError> {
    let (out, unreadable) = compare_readable(args)?;
    match unreadable.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

/// Finds and reads the runs, then renders the comparison of those that could be read; the
/// others come back with their errors (one corrupt metrics file must not hide the sweep).
pub(crate) fn compare_readable(
    args: &CompareOptions,
) -> Result<(String, Vec<ViewError>), ViewError> {
    let filters = args
        .filter
        .iter()
        .map(|f| Filter::parse(f))
        .collect::<Result<Vec<_>, _>>()?;
    let dirs = scan::find_run_dirs(&args.inputs)?;
    let mut loaded = scan::load_readable_runs(&dirs);
    if loaded.runs.is_empty() && !loaded.unreadable.is_empty() {
        return Err(loaded.unreadable.remove(0).into());
    }
    Ok((
        compare_runs(&loaded.runs, args, &filters)?,
        loaded.unreadable.into_iter().map(ViewError::from).collect(),
    ))
}

/// Renders already loaded runs (the part of `compare` the benchmark times separately).
pub fn compare_runs(
    runs: &[Run],
    args: &CompareOptions,
    filters: &[Filter],
) -> Result<String, ViewError> {
    let summaries: Vec<BestAndFinal> = runs.iter().map(|r| BestAndFinal::of(r, args.by)).collect();
    let keep = select(runs, &summaries, filters)?;
    let runs: Vec<&Run> = keep.iter().map(|&i| &runs[i]).collect();
    let summaries: Vec<&BestAndFinal> = keep.iter().map(|&i| &summaries[i]).collect();
    let mut table = Table::build(&runs, &summaries);
    if let Some(sort) = &args.sort {
        table.sort_by(sort)?;
    }
    if args.per_class && args.format == Format::Json {
        // one JSON document: {"runs": [...], "per_class": [...]}
        let read = per_class::read_all(&table)?;
        return Ok(crate::views::format::json(&serde_json::json!({
            "runs": render::json_value(&table),
            "per_class": per_class::json_value(&read),
        })));
    }
    let out = render::render(&table, args.format);
    if !args.per_class {
        return Ok(out);
    }
    Ok(out + &per_class::render(&table, args.format, args.by)?)
}

/// One run's best epoch and final values (what `compare` shows of it); NaN where the run has
/// no epochs.
#[derive(Debug, Clone, PartialEq)]
pub struct BestAndFinal {
    pub values: [f64; 8],
}

impl BestAndFinal {
    pub fn of(run: &Run, by: BestBy) -> BestAndFinal {
        let e = &run.epochs;
        let best = match by {
            BestBy::ValLoss => best_index(&e.val_loss, |a, b| a < b),
            BestBy::ValAcc => best_index(&e.val_acc, |a, b| a > b),
        };
        let at = |v: &[f64], i: Option<usize>| i.map_or(f64::NAN, |i| v[i]);
        let last = e.len().checked_sub(1);
        BestAndFinal {
            values: [
                best.map_or(f64::NAN, |i| e.epoch[i] as f64),
                at(&e.val_acc, best),
                at(&e.val_loss, best),
                at(&e.train_loss, last),
                at(&e.val_loss, last),
                at(&e.weight_norm, last),
                run.test.map_or(f64::NAN, |t| t.1),
                run.test.map_or(f64::NAN, |t| t.0),
            ],
        }
    }

    pub fn best_epoch(&self) -> Option<i64> {
        self.values[0].is_finite().then_some(self.values[0] as i64)
    }
}

/// The first index with the best finite value (NaN and ±inf never win).
fn best_index(v: &[f64], better: impl Fn(f64, f64) -> bool) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &x) in v.iter().enumerate() {
        if x.is_finite() && best.is_none_or(|b| better(x, v[b])) {
            best = Some(i);
        }
    }
    best
}

fn select(
    runs: &[Run],
    summaries: &[BestAndFinal],
    filters: &[Filter],
) -> Result<Vec<usize>, ViewError> {
    if filters.is_empty() {
        return Ok((0..runs.len()).collect());
    }
    let mut columns: Vec<String> = ["experiment", "run_id", "status"]
        .map(String::from)
        .to_vec();
    for r in runs {
        for (k, _) in &r.params {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
    }
    columns.extend(METRICS.iter().map(|m| m.to_string()));
    let resolved: Vec<String> = filters
        .iter()
        .map(|f| {
            resolve_column(&f.column, &columns, &format!("filter '{}'", f.text)).map(str::to_string)
        })
        .collect::<Result<_, _>>()?;
    let mut keep = Vec::new();
    'runs: for (i, (run, s)) in runs.iter().zip(summaries).enumerate() {
        for (f, c) in filters.iter().zip(&resolved) {
            let cell = match c.as_str() {
                "experiment" => Cell::Text(&run.experiment),
                "run_id" => Cell::Text(&run.run_id),
                "status" => Cell::Text(run.status_str()),
                c => match METRICS.iter().position(|m| *m == c) {
                    Some(m) => Cell::Num(s.values[m]),
                    None => run.param(c).map_or(Cell::Absent, Cell::Param),
                },
            };
            if !f.matches(cell)? {
                continue 'runs;
            }
        }
        keep.push(i);
    }
    Ok(keep)
}

/// Mean, sample standard deviation and count of one metric over a row's runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stat {
    pub mean: f64,
    /// NaN for a single run.
    pub sd: f64,
    pub n: usize,
}

impl Stat {
    fn of(xs: &[f64]) -> Stat {
        let n = xs.len();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let sd = if n > 1 {
            (xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        } else {
            f64::NAN
        };
        Stat { mean, sd, n }
    }
}

/// A row of the comparison: one run, or the runs of one parameter setting over seeds.
#[derive(Debug, Clone)]
pub struct Row<'a> {
    pub runs: Vec<&'a Run>,
    pub experiment: String,
    pub run_ids: Vec<String>,
    /// One per `Table::params` column; `None` where this row's runs lack the key.
    pub params: Vec<Option<ParamValue>>,
    pub stats: [Stat; 8],
    pub status: String,
}

/// The comparison before formatting.
#[derive(Debug, Clone)]
pub struct Table<'a> {
    /// The parameter columns shown: those whose value differs between rows.
    pub params: Vec<String>,
    /// True when rows are groups over `experiment.seed` (shows n and ± sd).
    pub aggregated: bool,
    /// True when some run has a test split: the test columns are shown.
    pub test: bool,
    pub rows: Vec<Row<'a>>,
}

impl<'a> Table<'a> {
    // Long: the table's columns built in display order.
    pub fn build(runs: &[&'a Run], summaries: &[&BestAndFinal]) -> Table<'a> {
        let mut keys: Vec<String> = Vec::new();
        for r in runs {
            for (k, _) in &r.params {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
        let differs = |k: &str, runs: &[&Run]| {
            let first = runs.first().map(|r| r.param(k));
            runs.iter().any(|r| Some(r.param(k)) != first)
        };
        let aggregated = differs(SEED_KEY, runs);
        // group key: experiment + every parameter but the seed (as text, which is exact for
        // the values the runner writes)
        let group_keys: Vec<String> = keys
            .iter()
            .filter(|k| !aggregated || *k != SEED_KEY)
            .cloned()
            .collect();
        let mut order: Vec<String> = Vec::new();
        let mut groups: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, r) in runs.iter().enumerate() {
            let mut id = r.experiment.clone();
            for k in &group_keys {
                id.push('\0');
                id.push_str(&r.param(k).map_or("\u{1}".to_string(), |v| format!("{v:?}")));
            }
            if !aggregated {
                id.push('\0');
                id.push_str(&i.to_string());
            }
            groups.entry(id.clone()).or_insert_with(|| {
                order.push(id.clone());
                Vec::new()
            });
            groups.get_mut(&id).unwrap().push(i);
        }
        // a key the runs' plans sweep is shown even where the rows agree on it (one run left
        // of a sweep whose others cannot be read, or a filter): a row says which point it is
        let experiments: std::collections::BTreeSet<&std::path::Path> =
            runs.iter().filter_map(|r| r.dir.parent()).collect();
        let planned: Vec<String> = experiments
            .into_iter()
            .filter_map(|dir| crate::results::plan::ExperimentPlan::read(dir).ok())
            .flat_map(|plan| plan.varying_keys())
            .collect();
        let shown: Vec<String> = group_keys
            .into_iter()
            .filter(|k| differs(k, runs) || planned.contains(k))
            .collect();
        let mut rows: Vec<Row> = order
            .iter()
            .map(|id| {
                let members = &groups[id];
                let first = runs[members[0]];
                let stats = std::array::from_fn(|m| {
                    Stat::of(
                        &members
                            .iter()
                            .map(|&i| summaries[i].values[m])
                            .collect::<Vec<_>>(),
                    )
                });
                Row {
                    runs: members.iter().map(|&i| runs[i]).collect(),
                    experiment: first.experiment.clone(),
                    run_ids: members.iter().map(|&i| runs[i].run_id.clone()).collect(),
                    params: shown.iter().map(|k| first.param(k).cloned()).collect(),
                    stats,
                    status: status_of(
                        members
                            .iter()
                            .map(|&i| runs[i].status_label())
                            .collect::<Vec<_>>()
                            .iter()
                            .map(String::as_str),
                    ),
                }
            })
            .collect();
        // natural order: experiment, then parameters (numbers by value), then run id
        rows.sort_by(|a, b| {
            a.experiment
                .cmp(&b.experiment)
                .then_with(|| {
                    a.params
                        .iter()
                        .zip(&b.params)
                        .map(|(x, y)| cmp_param(x.as_ref(), y.as_ref()))
                        .fold(Ordering::Equal, Ordering::then)
                })
                .then_with(|| a.run_ids.cmp(&b.run_ids))
        });
        let test = runs.iter().any(|r| r.test.is_some());
        Table {
            params: shown,
            aggregated,
            test,
            rows,
        }
    }

    /// The positions in [`METRICS`] (and in each row's `stats`) of the columns shown.
    pub fn metrics(&self) -> std::ops::Range<usize> {
        0..if self.test {
            METRICS.len()
        } else {
            TEST_METRICS
        }
    }

    /// The column names, as headers and as `--sort` / `--filter` see them.
    pub fn columns(&self) -> Vec<String> {
        let mut c = vec!["experiment".to_string(), "run_id".to_string()];
        c.extend(self.params.iter().cloned());
        if self.aggregated {
            c.push("n".into());
        }
        c.extend(self.metrics().map(|m| METRICS[m].to_string()));
        c.push("status".into());
        c
    }

    /// Sorts rows by a column; `name:desc`, `name:asc` or `-name`. Missing values and NaN last.
    pub fn sort_by(&mut self, spec: &str) -> Result<(), ViewError> {
        let (name, desc) = if let Some(n) = spec.strip_prefix('-') {
            (n, true)
        } else if let Some(n) = spec.strip_suffix(":desc") {
            (n, true)
        } else {
            (spec.strip_suffix(":asc").unwrap_or(spec), false)
        };
        let columns = self.columns();
        let column = resolve_column(name, &columns, "--sort")?.to_string();
        let dir = |o: Ordering| if desc { o.reverse() } else { o };
        if let Some(m) = METRICS.iter().position(|m| *m == column) {
            self.rows
                .sort_by(|a, b| nan_last(a.stats[m].mean, b.stats[m].mean, dir));
        } else if let Some(p) = self.params.iter().position(|p| *p == column) {
            self.rows
                .sort_by(|a, b| match (&a.params[p], &b.params[p]) {
                    (Some(x), Some(y)) => dir(cmp_param(Some(x), Some(y))),
                    (x, y) => x.is_none().cmp(&y.is_none()),
                });
        } else {
            let text = |r: &Row| match column.as_str() {
                "experiment" => r.experiment.clone(),
                "run_id" => r.run_ids.join(","),
                "n" => format!("{:020}", r.runs.len()),
                _ => r.status.clone(),
            };
            self.rows.sort_by(|a, b| dir(text(a).cmp(&text(b))));
        }
        Ok(())
    }
}

fn nan_last(a: f64, b: f64, dir: impl Fn(Ordering) -> Ordering) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (false, false) => dir(a.total_cmp(&b)),
        (x, y) => x.cmp(&y),
    }
}

/// Numbers by value, anything else by its text; a missing value last.
pub(crate) fn cmp_param(a: Option<&ParamValue>, b: Option<&ParamValue>) -> Ordering {
    let num = |v: &ParamValue| match v {
        ParamValue::Int(i) => Some(*i as f64),
        ParamValue::Float(f) => Some(*f),
        _ => None,
    };
    match (a, b) {
        (Some(x), Some(y)) => match (num(x), num(y)) {
            (Some(p), Some(q)) => p.total_cmp(&q),
            _ => x.to_string().cmp(&y.to_string()),
        },
        (x, y) => x.is_none().cmp(&y.is_none()),
    }
}

/// "done", or "2 done, 1 diverged" for a group of runs that ended differently.
fn status_of<'s>(statuses: impl Iterator<Item = &'s str>) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for s in statuses {
        match counts.iter_mut().find(|(t, _)| *t == s) {
            Some((_, n)) => *n += 1,
            None => counts.push((s, 1)),
        }
    }
    match counts.as_slice() {
        [(s, _)] => s.to_string(),
        _ => counts
            .iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn best_epoch_skips_nan_and_takes_the_first_tie() {
        assert_eq!(
            best_index(&[0.5, f64::NAN, 0.3, 0.3, f64::INFINITY], |a, b| a < b),
            Some(2)
        );
        assert_eq!(best_index(&[f64::NAN], |a, b| a < b), None);
        assert_eq!(best_index(&[0.1, 0.9, 0.9], |a, b| a > b), Some(1));
    }

    #[test]
    fn stat_is_mean_and_sample_sd() {
        let s = Stat::of(&[1.0, 2.0, 3.0]);
        assert_eq!((s.mean, s.sd, s.n), (2.0, 1.0, 3));
        assert!(Stat::of(&[4.0]).sd.is_nan());
    }

    #[test]
    fn mixed_statuses_are_counted() {
        assert_eq!(status_of(["done", "done"].into_iter()), "done");
        assert_eq!(
            status_of(["done", "diverged", "done"].into_iter()),
            "2 done, 1 diverged"
        );
    }
}
