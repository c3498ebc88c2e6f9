//! `compare --per-class`: per-class accuracy, precision, recall and the confusion matrix of each
//! shown run's best epoch, from its `per_class.parquet` and `confusion.parquet`.
//!
//! The runner writes those files for the best epoch by val loss only; with `--by val_acc` a run
//! whose best-accuracy epoch differs says so instead of silently showing another epoch.

use std::path::Path;

use comfy_table::presets;
use polars::prelude::*;

use super::render::comfy;
use super::{BestAndFinal, BestBy, Format, Table};
use crate::number::metric;
use crate::results::layout::RunDir;
use crate::results::scan::Run;
use crate::views::format;
use crate::views::ViewError;

/// One run's per-class metrics and confusion matrix at the epoch its files hold.
pub struct PerClass {
    pub epoch: i64,
    pub class: Vec<String>,
    pub accuracy: Vec<f64>,
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
    pub support: Vec<i64>,
    /// confusion[true][pred], classes in `class` order.
    pub confusion: Vec<Vec<i64>>,
}

/// Reads a run's `per_class.parquet` and `confusion.parquet`; `None` when it has neither.
pub fn read(run: &Run) -> Result<Option<PerClass>, ViewError> {
    let files = RunDir::at(&run.dir);
    let (pc_path, cm_path) = (files.per_class(), files.confusion());
    if !pc_path.is_file() || !cm_path.is_file() {
        return Ok(None);
    }
    let pc = Columns::read(
        &pc_path,
        &[
            "epoch",
            "class",
            "accuracy",
            "precision",
            "recall",
            "support",
        ],
    )?;
    let cm = Columns::read(&cm_path, &["true_class", "pred_class", "count"])?;
    let class = pc.strs("class")?;
    let mut confusion = vec![vec![0; class.len()]; class.len()];
    let (t, p, n) = (
        cm.strs("true_class")?,
        cm.strs("pred_class")?,
        cm.i64s("count")?,
    );
    for ((t, p), n) in t.iter().zip(&p).zip(n) {
        let (Some(i), Some(j)) = (
            class.iter().position(|c| c == t),
            class.iter().position(|c| c == p),
        ) else {
            return Err(ViewError::Read {
                path: cm_path,
                reason: format!("class '{t}' or '{p}' is not in per_class.parquet"),
            });
        };
        confusion[i][j] = n;
    }
    Ok(Some(PerClass {
        epoch: pc.i64s("epoch")?.first().copied().unwrap_or(0),
        accuracy: pc.f64s("accuracy")?,
        precision: pc.f64s("precision")?,
        recall: pc.f64s("recall")?,
        support: pc.i64s("support")?,
        class,
        confusion,
    }))
}

/// Some columns of one Parquet file, each read as a list; an error names the file.
struct Columns<'p> {
    df: DataFrame,
    path: &'p Path,
}

impl<'p> Columns<'p> {
    fn read(path: &'p Path, columns: &[&str]) -> Result<Self, ViewError> {
        let df = crate::results::schema::read_parquet(path, Some(columns)).map_err(|e| {
            ViewError::Read {
                path: path.to_path_buf(),
                reason: e.to_string(),
            }
        })?;
        Ok(Columns { df, path })
    }

    fn err(&self, e: PolarsError) -> ViewError {
        ViewError::Read {
            path: self.path.to_path_buf(),
            reason: e.to_string(),
        }
    }

    /// A text column; a missing value as "".
    fn strs(&self, c: &str) -> Result<Vec<String>, ViewError> {
        Ok(self
            .df
            .column(c)
            .and_then(|c| c.str().cloned())
            .map_err(|e| self.err(e))?
            .iter()
            .map(|s| s.unwrap_or("").to_string())
            .collect())
    }

    /// A numeric column as f64; a missing value as NaN.
    fn f64s(&self, c: &str) -> Result<Vec<f64>, ViewError> {
        let col = self
            .df
            .column(c)
            .and_then(|c| c.cast(&DataType::Float64))
            .map_err(|e| self.err(e))?;
        Ok(col
            .f64()
            .map_err(|e| self.err(e))?
            .iter()
            .map(|v| v.unwrap_or(f64::NAN))
            .collect())
    }

    /// A numeric column as i64; a missing value as 0.
    fn i64s(&self, c: &str) -> Result<Vec<i64>, ViewError> {
        let col = self
            .df
            .column(c)
            .and_then(|c| c.cast(&DataType::Int64))
            .map_err(|e| self.err(e))?;
        Ok(col
            .i64()
            .map_err(|e| self.err(e))?
            .iter()
            .map(|v| v.unwrap_or(0))
            .collect())
    }
}

fn label(run: &Run) -> String {
    let params: Vec<String> = run.params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    if params.is_empty() {
        format!("run {} ({})", run.run_id, run.experiment)
    } else {
        format!(
            "run {} ({}; {})",
            run.run_id,
            run.experiment,
            params.join(", ")
        )
    }
}

pub fn render(table: &Table, format: Format, by: BestBy) -> Result<String, ViewError> {
    let read = read_all(table)?;
    Ok(match format {
        Format::Table | Format::Markdown => text(&read, format, by),
        Format::Csv => csv(&read),
        Format::Json => format::json(&json_value(&read)),
    })
}

fn text(read: &[(&Run, Option<PerClass>)], format: Format, by: BestBy) -> String {
    let (preset, heading) = if format == Format::Markdown {
        (presets::ASCII_MARKDOWN, "### ")
    } else {
        (presets::UTF8_FULL_CONDENSED, "")
    };
    let mut out = String::new();
    for (run, pc) in read {
        let Some(pc) = pc else {
            out.push_str(&format!(
                "\n{heading}{}: no per_class.parquet / confusion.parquet (status {})\n",
                label(run),
                run.status_str()
            ));
            continue;
        };
        out.push_str(&format!("\n{heading}{}, epoch {}\n", label(run), pc.epoch));
        if by == BestBy::ValAcc {
            if let Some(best) = BestAndFinal::of(run, by)
                .best_epoch()
                .filter(|&e| e != pc.epoch)
            {
                out.push_str(&format!(
                    "(the best epoch by val_acc is {best}; per-class files hold epoch {}, the best by val_loss)\n",
                    pc.epoch
                ));
            }
        }
        if format == Format::Markdown {
            out.push('\n');
        }
        let rows = (0..pc.class.len())
            .map(|i| {
                vec![
                    pc.class[i].clone(),
                    metric(pc.accuracy[i]),
                    metric(pc.precision[i]),
                    metric(pc.recall[i]),
                    pc.support[i].to_string(),
                ]
            })
            .collect();
        let header = ["class", "accuracy", "precision", "recall", "support"]
            .map(String::from)
            .to_vec();
        out.push_str(&comfy(
            header,
            rows,
            preset,
            &[false, true, true, true, true],
        ));
        out.push_str(&format!(
            "\n{}confusion (rows: true class, columns: predicted)\n",
            if heading.is_empty() { "" } else { "#### " }
        ));
        if format == Format::Markdown {
            out.push('\n');
        }
        let mut header = vec!["true \\ pred".to_string()];
        header.extend(pc.class.iter().cloned());
        let rows = pc
            .confusion
            .iter()
            .enumerate()
            .map(|(i, r)| {
                std::iter::once(pc.class[i].clone())
                    .chain(r.iter().map(|n| n.to_string()))
                    .collect()
            })
            .collect();
        let right: Vec<bool> = (0..=pc.class.len()).map(|i| i > 0).collect();
        out.push_str(&comfy(header, rows, preset, &right));
    }
    out
}

/// Long tables after a blank line: per-class rows, then confusion rows.
fn csv(read: &[(&Run, Option<PerClass>)]) -> String {
    let head = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let (mut pcs, mut cms) = (Vec::new(), Vec::new());
    for (run, pc) in read {
        let Some(pc) = pc else { continue };
        let key = [
            run.experiment.clone(),
            run.run_id.clone(),
            pc.epoch.to_string(),
        ];
        for i in 0..pc.class.len() {
            let mut row = key.to_vec();
            row.extend([
                pc.class[i].clone(),
                pc.accuracy[i].to_string(),
                pc.precision[i].to_string(),
                pc.recall[i].to_string(),
                pc.support[i].to_string(),
            ]);
            pcs.push(row);
            for (j, n) in pc.confusion[i].iter().enumerate() {
                let mut row = key.to_vec();
                row.extend([pc.class[i].clone(), pc.class[j].clone(), n.to_string()]);
                cms.push(row);
            }
        }
    }
    let pc_header = head(&[
        "experiment",
        "run_id",
        "epoch",
        "class",
        "accuracy",
        "precision",
        "recall",
        "support",
    ]);
    let cm_header = head(&[
        "experiment",
        "run_id",
        "epoch",
        "true_class",
        "pred_class",
        "count",
    ]);
    format!(
        "\n{}\n{}",
        format::csv(&pc_header, &pcs),
        format::csv(&cm_header, &cms)
    )
}

/// One object per run with its per-class lists and confusion matrix.
pub(crate) fn json_value(read: &[(&Run, Option<PerClass>)]) -> serde_json::Value {
    let header: Vec<String> = [
        "experiment",
        "run_id",
        "epoch",
        "class",
        "accuracy",
        "precision",
        "recall",
        "support",
        "confusion",
    ]
    .map(String::from)
    .to_vec();
    let numbers =
        |v: &[f64]| serde_json::Value::Array(v.iter().map(|x| format::number(*x)).collect());
    let rows = read
        .iter()
        .filter_map(|(run, pc)| {
            let pc = pc.as_ref()?;
            Some(vec![
                run.experiment.clone().into(),
                run.run_id.clone().into(),
                pc.epoch.into(),
                pc.class.clone().into(),
                numbers(&pc.accuracy),
                numbers(&pc.precision),
                numbers(&pc.recall),
                pc.support.clone().into(),
                pc.confusion.clone().into(),
            ])
        })
        .collect();
    format::objects(&header, rows)
}

/// The per-class tables of the table's runs, read from their files.
pub fn read_all<'a>(table: &Table<'a>) -> Result<Vec<(&'a Run, Option<PerClass>)>, ViewError> {
    table
        .rows
        .iter()
        .flat_map(|r| r.runs.iter().copied())
        .map(|r| Ok((r, read(r)?)))
        .collect()
}
