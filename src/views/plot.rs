//! `runner plot`: per-epoch curves of every run of an experiment (loss, val accuracy, weight
//! norm) and, for a sweep over one numeric parameter, the best val loss and val accuracy against
//! it. Each figure is written as PNG and SVG to `results/<experiment>/plots/`, atomically.

mod chart;

use std::path::{Path, PathBuf};

use plotters::prelude::*;

use crate::durable;
use crate::number;
use crate::results::plan::ExperimentPlan;
use crate::results::scan::{self, Run};
use crate::results::schema::ParamValue;
use crate::views::compare::{cmp_param, BestAndFinal, BestBy, SEED_KEY};
use crate::views::ViewError;

pub use chart::{Band, Series, XAxis};

/// Figure sizes in pixels (PNG) and user units (SVG): a one-panel figure is as wide as one panel
/// of a two-panel one, so that every panel's text has one size where figures are scaled to the
/// page (the report shows one-panel figures two to a row).
pub const SINGLE: (u32, u32) = (700, 600);
pub const DOUBLE: (u32, u32) = (1400, 600);

/// Plots every experiment under `results` (a results root, an experiment folder or a run
/// folder) and returns the written files, PNG then SVG per figure, and the runs that could not
/// be read (left out of the figures).
pub fn plot(results: &Path) -> Result<(Vec<PathBuf>, Vec<ViewError>), ViewError> {
    let dirs = scan::find_run_dirs(&[results.to_string_lossy()])?;
    let scan::Loaded { runs, unreadable } = scan::load_some_runs(&dirs)?;
    let unreadable = unreadable.into_iter().map(ViewError::from).collect();
    let mut experiments: Vec<&str> = runs.iter().map(|r| r.experiment.as_str()).collect();
    experiments.sort();
    experiments.dedup();
    let mut written = Vec::new();
    for e in experiments {
        let of: Vec<&Run> = runs.iter().filter(|r| r.experiment == e).collect();
        let out = crate::results::layout::ExperimentDir::of_run(&of[0].dir).plots();
        written.extend(plot_runs(&of, &out)?);
    }
    Ok((written, unreadable))
}

/// Plots the given runs (normally one experiment's) into `out_dir`, creating it.
pub(crate) fn plot_runs(runs: &[&Run], out_dir: &Path) -> Result<Vec<PathBuf>, ViewError> {
    std::fs::create_dir_all(out_dir).map_err(|e| ViewError::Write {
        path: out_dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut written = Vec::new();
    for figure in figures(runs, Curves::All) {
        written.extend(write_figure(out_dir, &figure)?);
    }
    Ok(written)
}

/// Which runs get a line of their own in the per-epoch figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Curves {
    /// Every run.
    All,
    /// The `k` best runs by `by` (best val loss or val accuracy), plus a shaded band from the
    /// per-epoch minimum to maximum over all runs, once there are more than `k`: a thousand
    /// overlaid lines are neither readable nor quick to draw.
    Top { k: usize, by: BestBy },
}

/// A figure: panels side by side, drawn the same way on a PNG or an SVG canvas.
pub struct Figure {
    /// File stem: `loss`, `val_acc`, `weight_norm`, `best_vs_<key>`.
    pub name: String,
    pub size: (u32, u32),
    pub panels: Vec<Panel>,
}

/// The figures of a set of runs (normally one experiment's): loss, val accuracy and weight norm
/// per epoch, and for a sweep over one numeric parameter the best val loss and accuracy against
/// it.
// Long: one block per figure, in the order the plots and the report show them.
pub fn figures(runs: &[&Run], curves: Curves) -> Vec<Figure> {
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
    let (lined, note) = match curves {
        Curves::Top { k, by } if runs.len() > k => {
            let what = match by {
                BestBy::ValLoss => "best val loss",
                BestBy::ValAcc => "best val accuracy",
            };
            (
                top_runs(runs, k, by),
                Some((
                    format!("min to max of all {} runs", runs.len()),
                    format!(" ({k} runs with the {what} of {})", runs.len()),
                )),
            )
        }
        _ => (runs.to_vec(), None),
    };
    let (note, suffix) = match note {
        Some((n, s)) => (Some(n), s),
        None => (None, String::new()),
    };
    let labels = readable_labels(&lined, &differing);
    let curves = |get: fn(&Run) -> &Vec<f64>| -> (Vec<Series>, Option<Band>) {
        let series = lined
            .iter()
            .zip(&labels)
            .map(|(r, l)| Series {
                label: match r.halted {
                    Some(halted) => format!("{l} ({halted})"),
                    None => l.clone(),
                },
                stopped: r.halted.is_some(),
                points: r
                    .epochs
                    .epoch
                    .iter()
                    .zip(get(r))
                    .map(|(&e, &y)| (e as f64, y))
                    .collect(),
            })
            .collect();
        let band = note.as_ref().map(|n| Band::of(runs, get, n));
        (series, band)
    };
    let (train, val) = (
        curves(|r| &r.epochs.train_loss),
        curves(|r| &r.epochs.val_loss),
    );
    let acc = curves(|r| &r.epochs.val_acc);
    let norm = curves(|r| &r.epochs.weight_norm);
    let title = |what: &str| format!("{experiment}: {what}");
    let lines = |t: &str, y: &'static str, (series, band): (Vec<Series>, Option<Band>), legend| {
        Panel::Lines {
            title: title(t) + &suffix,
            x_desc: "epoch".into(),
            y_desc: y,
            axis: XAxis::Epoch,
            series,
            band,
            legend,
        }
    };
    let mut out = vec![
        Figure {
            name: "loss".into(),
            size: DOUBLE,
            panels: vec![
                lines("train loss", "train loss", train, false),
                lines("val loss", "val loss", val, true),
            ],
        },
        Figure {
            name: "val_acc".into(),
            size: SINGLE,
            panels: vec![lines("val accuracy", "val accuracy", acc, true)],
        },
        Figure {
            name: "weight_norm".into(),
            size: SINGLE,
            panels: vec![lines("weight norm", "weight norm (L2)", norm, true)],
        },
    ];
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
            axis: axis.clone(),
            points,
        };
        out.push(Figure {
            name: format!("best_vs_{}", short_name(&key, &differing)),
            size: DOUBLE,
            panels: vec![
                scatter("best val loss", "best val loss", loss),
                scatter("val accuracy at the best epoch", "val accuracy", acc),
            ],
        });
    }
    out
}

/// The `k` best runs by `by` (runs without a best epoch last), in the given order.
fn top_runs<'a>(runs: &[&'a Run], k: usize, by: BestBy) -> Vec<&'a Run> {
    let key = |r: &Run| {
        let s = BestAndFinal::of(r, by);
        match by {
            BestBy::ValLoss => s.values[2],
            BestBy::ValAcc => -s.values[1],
        }
    };
    let keys: Vec<f64> = runs.iter().map(|r| key(r)).collect();
    let mut idx: Vec<usize> = (0..runs.len()).collect();
    idx.sort_by(|&a, &b| match (keys[a].is_nan(), keys[b].is_nan()) {
        (false, false) => keys[a].total_cmp(&keys[b]),
        (x, y) => x.cmp(&y),
    });
    idx.truncate(k);
    idx.sort();
    idx.into_iter().map(|i| runs[i]).collect()
}

impl Band {
    /// Per epoch, the lowest and highest finite value over the runs.
    fn of(runs: &[&Run], get: fn(&Run) -> &Vec<f64>, label: &str) -> Band {
        let mut by_epoch: std::collections::BTreeMap<i64, (f64, f64)> = Default::default();
        for r in runs {
            for (&e, &y) in r.epochs.epoch.iter().zip(get(r)) {
                if y.is_finite() {
                    let b = by_epoch.entry(e).or_insert((y, y));
                    *b = (b.0.min(y), b.1.max(y));
                }
            }
        }
        Band {
            label: label.to_string(),
            points: by_epoch
                .into_iter()
                .map(|(e, (lo, hi))| (e as f64, lo, hi))
                .collect(),
        }
    }
}

/// One chart of a figure; a figure's panels sit side by side.
pub enum Panel {
    Lines {
        title: String,
        x_desc: String,
        y_desc: &'static str,
        axis: XAxis,
        series: Vec<Series>,
        band: Option<Band>,
        legend: bool,
    },
    ScatterMean {
        title: String,
        x_desc: String,
        y_desc: &'static str,
        axis: XAxis,
        points: Vec<(f64, f64)>,
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
                band,
                legend,
            } => chart::lines(
                area,
                &chart::Lines {
                    title,
                    x_desc,
                    y_desc,
                    axis,
                    series,
                    band: band.as_ref(),
                    legend: *legend,
                },
            )?,
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
fn write_figure(out_dir: &Path, figure: &Figure) -> Result<Vec<PathBuf>, ViewError> {
    let name = &figure.name;
    let png_path = out_dir.join(format!("{name}.png"));
    let svg_path = out_dir.join(format!("{name}.svg"));
    let failed =
        |path: &Path, e: String| ViewError::Plot(format!("cannot draw {}: {e}", path.display()));

    let png = png(figure).map_err(|e| failed(&png_path, e))?;
    write_file(&png_path, &png)?;

    let svg = svg(figure).map_err(|e| failed(&svg_path, e))?;
    write_file(&svg_path, svg.as_bytes())?;
    Ok(vec![png_path, svg_path])
}

/// A figure as PNG bytes (for a file, or a figure of many marks in an HTML page).
pub(crate) fn png(figure: &Figure) -> Result<Vec<u8>, String> {
    let size = figure.size;
    crate::draw::font::register();
    let mut rgb = vec![0u8; size.0 as usize * size.1 as usize * 3];
    draw(
        &BitMapBackend::with_buffer(&mut rgb, size).into_drawing_area(),
        &figure.panels,
    )
    .map_err(|e| e.to_string())?;
    crate::draw::encode_png(rgb, size)
}

/// A figure as an SVG document (for a file, or inline in an HTML page).
pub fn svg(figure: &Figure) -> Result<String, String> {
    crate::draw::font::register();
    let mut svg = String::new();
    draw(
        &SVGBackend::with_string(&mut svg, figure.size).into_drawing_area(),
        &figure.panels,
    )
    .map_err(|e| e.to_string())?;
    Ok(svg)
}

pub fn write_file(path: &Path, bytes: &[u8]) -> Result<(), ViewError> {
    Ok(durable::write_file(path, bytes)?)
}

/// The swept keys that name runs (legends, MLflow run names, the report's sections), in
/// first-seen order: those whose value differs between the points of each run's experiment
/// plan (`results/.plans/<experiment>.json`), or, for a run without a readable plan, every key
/// its own sweep point sets. Never the keys that differ among the runs given, so that a run
/// keeps its name when another run of its sweep cannot be read.
pub(crate) fn differing_keys(runs: &[&Run]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    let mut plans: std::collections::HashMap<PathBuf, Option<Vec<String>>> = Default::default();
    for r in runs {
        let experiment_dir = r.dir.parent().unwrap_or(Path::new("."));
        let planned = plans
            .entry(experiment_dir.to_path_buf())
            .or_insert_with(|| {
                ExperimentPlan::read(experiment_dir)
                    .ok()
                    .map(|p| p.varying_keys())
            });
        let of_run: Vec<String> = match planned {
            Some(p) => p.clone(),
            None => r.params.iter().map(|(k, _)| k.clone()).collect(),
        };
        for k in of_run {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
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

/// `lambda=0.0001, seed=3`: the keys in which the runs differ, values at full precision (the
/// names of exported runs).
pub(crate) fn legend_label(run: &Run, differing: &[String]) -> String {
    label_with(run, differing, &|_, v| v.to_string())
}

/// The legend labels of these runs as a person reads them: each key's values with the digits
/// that keep them apart across the runs (`lambda=1.012e-6`, see `views::number`).
pub(crate) fn readable_labels(runs: &[&Run], differing: &[String]) -> Vec<String> {
    let write = number::param_columns(runs.iter().map(|r| r.params.as_slice()));
    runs.iter()
        .map(|r| label_with(r, differing, &write))
        .collect()
}

fn label_with(
    run: &Run,
    differing: &[String],
    write: &dyn Fn(&str, &ParamValue) -> String,
) -> String {
    if differing.is_empty() {
        return run.run_id.clone();
    }
    differing
        .iter()
        .map(|k| {
            format!(
                "{}={}",
                short_name(k, differing),
                run.param(k).map_or("-".into(), |v| write(k, v))
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
