//! `runner bench`: throughput of the models (real runs through the product's loop), conv layers,
//! matmul and image loading, printed as one table, optionally next to PyTorch measured in the
//! same run (BENCH_TORCH=python3). Built only with the `bench` cargo feature.
//!
//! Every number comes with the share of the machine other processes used while it was
//! measured ("busy"): on a 2-core machine, timings with more than a few % busy are not
//! comparable, so read comparisons only from quiet runs.

mod busy;
mod host;
mod images;
mod kernels;
mod main_job;
mod product;
mod torch;

use std::path::PathBuf;

use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};
use serde_json::Value;

/// One measured value and how busy the machine was meanwhile (% of all cores used by others).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Measure {
    pub value: f64,
    pub busy: Option<f64>,
}

impl Measure {
    fn new(value: f64, busy: Option<f64>) -> Self {
        Measure { value, busy }
    }
    /// Reads `{<field>: value, "busy": b}` from the PyTorch JSON.
    fn from_json(v: Option<&Value>, field: &str) -> Option<Self> {
        let v = v?;
        Some(Measure::new(
            v.get(field)?.as_f64()?,
            v.get("busy").and_then(Value::as_f64),
        ))
    }
}

pub(crate) struct BenchOptions {
    /// Fewer timed iterations (2 instead of 5) so the whole run takes a couple of minutes.
    pub quick: bool,
    /// Folder of images for the loading benchmark.
    pub images: PathBuf,
    /// Image folder dataset (`train/`, `val/` with a folder per class) for the model rows.
    pub data: PathBuf,
    /// EfficientNet-Lite0 weights for the frozen-feature rows.
    pub lite0_weights: PathBuf,
    /// Python interpreter with torch (from BENCH_TORCH), to measure PyTorch in the same run.
    pub torch: Option<String>,
}

/// A measured row before the PyTorch figures are attached: (what, unit, ours, PyTorch JSON key,
/// sub-key, field).
type Pending = (
    String,
    &'static str,
    Measure,
    &'static str,
    Option<&'static str>,
    &'static str,
);

struct Row {
    what: String,
    unit: &'static str,
    ours: Measure,
    /// The same measurement from the PyTorch script, when it ran.
    theirs: Option<Measure>,
}

/// Runs every workload, prints the table; an error only when PyTorch was asked for and failed.
// Long: one block per workload of the benchmark table, in the table's order.
pub(crate) fn run(opts: &BenchOptions) -> Result<(), String> {
    let it = if opts.quick { 2 } else { 5 };
    let threads = rayon::current_num_threads();
    let engine = crate::ops::engine::selected()?.describe();
    let host = host::Host::read().describe();
    eprintln!("runner bench: host {host}");
    eprintln!("runner bench: engine {engine}");
    eprintln!(
        "runner bench: {threads} threads, conv gemm kernels {}, {} iterations per row{}",
        crate::ops::gemm::simd_level(),
        it,
        if opts.torch.is_some() {
            ", then PyTorch"
        } else {
            ""
        }
    );
    let mut rows: Vec<Pending> = Vec::new();
    let mut add = |what: &str, unit, m: Measure, key, sub: Option<&'static str>, field| {
        eprintln!(
            "  {what}: {} {unit} (busy {})",
            value(m.value, unit),
            fmt_busy(m.busy)
        );
        rows.push((what.to_string(), unit, m, key, sub, field));
    };
    // The model rows run real specs written to a temporary folder: their paths must not depend
    // on where that folder is.
    let absolute = |p: &std::path::Path, what: &str| {
        std::fs::canonicalize(p).map_err(|e| format!("{what} {}: {e}", p.display()))
    };
    let data = absolute(&opts.data, "--data")?;
    let lite0_weights = absolute(&opts.lite0_weights, "--lite0-weights")?;
    // Both sides read the same copied files.
    let tmp = tempfile::Builder::new()
        .prefix("runner-bench")
        .tempdir()
        .map_err(|e| format!("temporary folder: {e}"))?;
    let mut workloads = Vec::new();
    let bf16 = crate::ops::engine::bf16_support();
    for w in product::WORKLOADS {
        let w = w.scaled(opts.quick);
        if let (true, Err(why)) = (w.is_bf16(), &bf16) {
            eprintln!("  {}: skipped ({why})", w.what);
            continue;
        }
        let (dir, n_train, n_val) = product::prepare_data(&w, &data, tmp.path())?;
        let m = product::measure(&w, &dir, (n_train, n_val), &lite0_weights, tmp.path())?;
        add(w.what, "img/s", m, w.key, None, "img_s");
        workloads.push((w, dir));
    }
    if std::path::Path::new(main_job::SPEC).is_file() {
        let job = main_job::measure(tmp.path())?;
        let n = job.runs;
        let what = format!("main job ({n} runs), features computed: wall time");
        add(&what, "s", job.cold, "", None, "");
        let what = format!("main job ({n} runs), features cached: wall time");
        add(&what, "s", job.cached, "", None, "");
        let what = "main job, features cached: per-run time beyond training";
        add(what, "s", job.overhead, "", None, "");
    } else {
        eprintln!(
            "  main job: skipped ({} not found: run `runner bench` in the project folder)",
            main_job::SPEC
        );
    }
    for l in kernels::CONV_LAYERS {
        let (f, b) = kernels::conv_layer(l, it);
        add(
            &format!("conv {} b4 forward", l.0),
            "GFLOP/s",
            f,
            "conv",
            Some(l.0),
            "fwd_gflops",
        );
        add(
            &format!("conv {} b4 backward", l.0),
            "GFLOP/s",
            b,
            "conv",
            Some(l.0),
            "bwd_gflops",
        );
    }
    let mm_iters = if opts.quick { 3 } else { 10 };
    add(
        "matmul 2048² (conv ops' gemm)",
        "GFLOP/s",
        kernels::matmul_conv_gemm(mm_iters),
        "matmul",
        None,
        "gflops",
    );
    add(
        "matmul 2048² (dfdx, gemm 0.15)",
        "GFLOP/s",
        kernels::matmul_dfdx(mm_iters),
        "matmul",
        None,
        "gflops",
    );
    let n_files = images::image_files(&opts.images).len();
    if let Some(m) = images::load_throughput(&opts.images, it) {
        let what = format!("image load+resize+crop ({n_files} files)");
        add(&what, "img/s", m, "images", None, "img_s");
    }

    let torch = match &opts.torch {
        Some(py) => Some(torch::run(
            py,
            threads,
            opts.quick,
            &opts.images,
            &workloads,
        )?),
        None => None,
    };
    let rows: Vec<Row> = rows
        .into_iter()
        .map(|(what, unit, ours, key, sub, field)| {
            let obj = torch.as_ref().and_then(|t| t.get(key));
            let obj = match sub {
                Some(s) => obj.and_then(|o| o.get(s)),
                None => obj,
            };
            Row {
                what,
                unit,
                ours,
                theirs: Measure::from_json(obj, field),
            }
        })
        .collect();
    println!("host: {host}");
    println!("runner engine: {engine}, {threads} threads");
    if let Some(t) = &torch {
        print!("{}", host::describe_torch(t));
    }
    println!("{}", table(&rows, torch.as_ref()));
    if let Some(t) = &torch {
        // the PyTorch training rows are the faster of NCHW and channels_last
        let formats: Vec<String> = workloads
            .iter()
            .filter_map(|(w, _)| {
                let f = t.get(w.key)?.get("memory_format")?.as_str()?;
                Some(format!("{} {f}", w.key))
            })
            .collect();
        println!("PyTorch's memory format per model row (the faster of NCHW and channels_last for training): {}", formats.join(", "));
    }
    Ok(())
}

/// A throughput to one decimal; seconds (the main job's rows) at four significant digits.
fn value(x: f64, unit: &str) -> String {
    match unit {
        "s" => crate::number::number(x),
        _ => format!("{x:.1}"),
    }
}

fn fmt_busy(b: Option<f64>) -> String {
    b.map_or("?".into(), |b| format!("{b:.0}%"))
}

fn table(rows: &[Row], torch: Option<&Value>) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_FULL_CONDENSED);
    let version = torch
        .and_then(|v| v.get("torch"))
        .and_then(Value::as_str)
        .map_or("PyTorch".to_string(), |v| format!("PyTorch {v}"));
    let mut header = vec![
        "measurement".to_string(),
        "unit".into(),
        "runner".into(),
        "busy".into(),
    ];
    if torch.is_some() {
        header.extend([version, "busy".into(), "runner/PyTorch".into()]);
    }
    t.set_header(header);
    for r in rows {
        let mut cells = vec![
            r.what.clone(),
            r.unit.to_string(),
            value(r.ours.value, r.unit),
            fmt_busy(r.ours.busy),
        ];
        if torch.is_some() {
            match r.theirs {
                Some(m) => cells.extend([
                    format!("{:.1}", m.value),
                    fmt_busy(m.busy),
                    format!("{:.2}×", r.ours.value / m.value),
                ]),
                None => cells.extend(["—".into(), String::new(), String::new()]),
            }
        }
        t.add_row(cells);
    }
    t
}
