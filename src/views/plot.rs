//! `runner plot`: per-epoch curves of every run of an experiment (loss, val accuracy, weight
//! norm) and, for a sweep over one numeric parameter, the best val loss and val accuracy against
//! it. Each figure is written as PNG and SVG to `results/<experiment>/plots/`, atomically.

mod chart;
mod font;

use std::io::Write;
use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::results::scan::{self, Run, ViewError};
use crate::results::schema::ParamValue;
use crate::results::store;
use crate::views::compare::{cmp_param, BestAndFinal, BestBy, SEED_KEY};

pub use chart::{Series, XAxis};
pub use font::{register as register_font, FAMILY as FONT_FAMILY};

/// Figure sizes in pixels (PNG) and user units (SVG).
pub const SINGLE: (u32, u32) = (900, 600);
pub const DOUBLE: (u32, u32) = (1400, 600);

/// `runner plot` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct PlotArgs {
    /// A results folder, an experiment folder or a run folder; plots go to each experiment's
    /// `plots/` folder.
    pub results: PathBuf,
}

/// Plots every experiment under `results` (a results root, an experiment folder or a run
/// folder) and returns the written files, PNG then SVG per figure.
pub fn plot(results: &Path) -> Result<Vec<PathBuf>, ViewError> {
    let dirs = scan::find_run_dirs(&[results.to_string_lossy()])?;
    let runs = scan::load_runs(&dirs)?;
    let mut experiments: Vec<&str> = runs.iter().map(|r| r.experiment.as_str()).collect();
    experiments.sort();
    experiments.dedup();
    let mut written = Vec::new();
    for e in experiments {
        let of: Vec<&Run> = runs.iter().filter(|r| r.experiment == e).collect();
        let out = of[0].dir.parent().unwrap_or(Path::new(".")).join("plots");
        written.extend(plot_runs(&of, &out)?);
    }
    Ok(written)
}

/// Plots the given runs (normally one experiment's) into `out_dir`, creating it.
pub fn plot_runs(runs: &[&Run], out_dir: &Path) -> Result<Vec<PathBuf>, ViewError> {
    std::fs::create_dir_all(out_dir).map_err(|e| ViewError::Write {
        path: out_dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let experiment = runs.first().map_or("", |r| r.experiment.as_str());
    let differing = differing_keys(runs);
    // legend and colours in parameter order, not in run-id (hash) order
    let mut runs = runs.to_vec();
    runs.sort_by(|a, b| {
        differing
            .iter()
            .map(|k| cmp_param(a.param(k), b.param(k)))
            .fold(std::cmp::Ordering::Equal, std::cmp::Ordering::then)
            .then_with(|| a.run_id.cmp(&b.run_id))
    });
    let runs = runs.as_slice();
    let labels: Vec<String> = runs.iter().map(|r| legend_label(r, &differing)).collect();
    let curves = |get: fn(&Run) -> &Vec<f64>| -> Vec<Series> {
        runs.iter()
            .zip(&labels)
            .map(|(r, l)| Series {
                label: l.clone(),
                points: r
                    .epochs
                    .epoch
                    .iter()
                    .zip(get(r))
                    .map(|(&e, &y)| (e as f64, y))
                    .collect(),
            })
            .collect()
    };
    let (train, val) = (
        curves(|r| &r.epochs.train_loss),
        curves(|r| &r.epochs.val_loss),
    );
    let acc = curves(|r| &r.epochs.val_acc);
    let norm = curves(|r| &r.epochs.weight_norm);
    let title = |what: &str| format!("{experiment}: {what}");
    let epoch = XAxis::Epoch;
    let lines = |t: &str, y: &'static str, series, legend| Panel::Lines {
        title: title(t),
        x_desc: "epoch".into(),
        y_desc: y,
        axis: &epoch,
        series,
        legend,
    };
    let mut written = Vec::new();
    written.extend(write_figure(
        out_dir,
        "loss",
        DOUBLE,
        &[
            lines("train loss", "train loss", &train, false),
            lines("val loss", "val loss", &val, true),
        ],
    )?);
    written.extend(write_figure(
        out_dir,
        "val_acc",
        SINGLE,
        &[lines("val accuracy", "val accuracy", &acc, true)],
    )?);
    written.extend(write_figure(
        out_dir,
        "weight_norm",
        SINGLE,
        &[lines("weight norm", "weight norm (L2)", &norm, true)],
    )?);
    if let Some(key) = single_numeric_sweep(runs, &differing) {
        let xs: Vec<f64> = runs
            .iter()
            .map(|r| as_f64(r.param(&key)).unwrap_or(f64::NAN))
            .collect();
        let axis = XAxis::for_values(&xs);
        let summaries: Vec<BestAndFinal> = runs
            .iter()
            .map(|r| BestAndFinal::of(r, BestBy::ValLoss))
            .collect();
        let points = |m: usize| -> Vec<(f64, f64)> {
            xs.iter()
                .zip(&summaries)
                .map(|(&x, s)| (x, s.values[m]))
                .collect()
        };
        let (loss, acc) = (points(2), points(1));
        let x_desc = format!("{key}{}", axis.note());
        let scatter = |t: &str, y: &'static str, points| Panel::ScatterMean {
            title: title(t),
            x_desc: x_desc.clone(),
            y_desc: y,
            axis: &axis,
            points,
        };
        let name = format!("best_vs_{}", short_name(&key, &differing));
        written.extend(write_figure(
            out_dir,
            &name,
            DOUBLE,
            &[
                scatter("best val loss", "best val loss", &loss),
                scatter("val accuracy at the best epoch", "val accuracy", &acc),
            ],
        )?);
    }
    Ok(written)
}

/// One chart of a figure; a figure's panels sit side by side.
enum Panel<'a> {
    Lines {
        title: String,
        x_desc: String,
        y_desc: &'static str,
        axis: &'a XAxis,
        series: &'a [Series],
        legend: bool,
    },
    ScatterMean {
        title: String,
        x_desc: String,
        y_desc: &'static str,
        axis: &'a XAxis,
        points: &'a [(f64, f64)],
    },
}

fn draw<DB: DrawingBackend>(
    root: &DrawingArea<DB, plotters::coord::Shift>,
    panels: &[Panel],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    for (area, panel) in root.split_evenly((1, panels.len())).iter().zip(panels) {
        match panel {
            Panel::Lines {
                title,
                x_desc,
                y_desc,
                axis,
                series,
                legend,
            } => chart::lines(area, title, x_desc, y_desc, axis, series, *legend)?,
            Panel::ScatterMean {
                title,
                x_desc,
                y_desc,
                axis,
                points,
            } => chart::scatter_mean(area, title, x_desc, y_desc, axis, points)?,
        }
    }
    root.present()
}

/// Draws one figure on a PNG and an SVG canvas and writes both atomically.
fn write_figure(
    out_dir: &Path,
    name: &str,
    size: (u32, u32),
    panels: &[Panel],
) -> Result<Vec<PathBuf>, ViewError> {
    font::register();
    let png_path = out_dir.join(format!("{name}.png"));
    let svg_path = out_dir.join(format!("{name}.svg"));
    let failed =
        |path: &Path, e: String| ViewError::Plot(format!("cannot draw {}: {e}", path.display()));

    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    draw(
        &BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area(),
        panels,
    )
    .map_err(|e| failed(&png_path, e.to_string()))?;
    let png = encode_png(rgb, size).map_err(|e| failed(&png_path, e))?;
    write_file(&png_path, &png)?;

    let mut svg = String::new();
    draw(
        &SVGBackend::with_string(&mut svg, size).into_drawing_area(),
        panels,
    )
    .map_err(|e| failed(&svg_path, e.to_string()))?;
    write_file(&svg_path, svg.as_bytes())?;
    Ok(vec![png_path, svg_path])
}

/// PNG bytes of an RGB buffer, through the `image` crate the data stage already uses.
pub fn encode_png(rgb: Vec<u8>, (w, h): (u32, u32)) -> Result<Vec<u8>, String> {
    let img = image::RgbImage::from_raw(w, h, rgb).ok_or("buffer does not match the image size")?;
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| e.to_string())?;
    Ok(bytes.into_inner())
}

pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ViewError> {
    store::write_atomic(path, |f| f.write_all(bytes)).map_err(|e| ViewError::Write {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Swept keys whose value is not the same in every run, in first-seen order.
fn differing_keys(runs: &[&Run]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for r in runs {
        for (k, _) in &r.params {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
    }
    keys.retain(|k| {
        let first = runs[0].param(k);
        runs.iter().any(|r| r.param(k) != first)
    });
    keys
}

/// A dotted key's last part when no other differing key shares it.
fn short_name<'a>(key: &'a str, keys: &[String]) -> &'a str {
    let last = key.rsplit('.').next().unwrap_or(key);
    if keys
        .iter()
        .filter(|k| k.rsplit('.').next() == Some(last))
        .count()
        == 1
    {
        last
    } else {
        key
    }
}

fn legend_label(run: &Run, differing: &[String]) -> String {
    if differing.is_empty() {
        return run.run_id.clone();
    }
    differing
        .iter()
        .map(|k| {
            format!(
                "{}={}",
                short_name(k, differing),
                run.param(k).map_or("-".into(), |v| v.to_string())
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn as_f64(v: Option<&ParamValue>) -> Option<f64> {
    match v? {
        ParamValue::Int(i) => Some(*i as f64),
        ParamValue::Float(f) => Some(*f),
        _ => None,
    }
}

/// The key of a sweep over exactly one numeric parameter (seeds aside), if that is what this is.
fn single_numeric_sweep(runs: &[&Run], differing: &[String]) -> Option<String> {
    let keys: Vec<&String> = differing.iter().filter(|k| *k != SEED_KEY).collect();
    match keys.as_slice() {
        [k] if runs.iter().all(|r| as_f64(r.param(k)).is_some()) => Some((*k).clone()),
        _ => None,
    }
}
