//! `compare` over a large results tree: 10,000 runs × 100 epochs by default.
//!
//!     cargo bench --bench compare                  # generates target/bench-compare/ once
//!     COMPARE_BENCH_RUNS=1000 cargo bench --bench compare
//!     cargo bench --bench compare -- results/      # times an existing tree instead
//!
//! Generating the tree is not timed (and is reused by later runs); each compare is timed
//! end to end (find the run folders, read manifests + each run's Parquet columns, summarise,
//! render), plus its parts, over several repetitions. Then a cold `compare()` (no cache, as on a
//! tree seen for the first time) and, where `duckdb` imports in `COMPARE_BENCH_PYTHON` (default
//! `python3`), DuckDB computing the same per-run summary over the same files, for the ratio.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use runner::results::scan::{find_run_dirs, load_runs, read_fresh};
use runner::results::schema::ParamValue;
use runner::results::store::Status;
use runner::testing::{write_run, SyntheticRun};
use runner::views::compare::{compare, compare_runs, CompareOptions, Format};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `lambdas` values of regularization.lambda × 10 seeds, `epochs` epochs each.
fn generate(root: &Path, runs: usize, epochs: usize) -> PathBuf {
    let marker = root.join(format!("complete-{runs}x{epochs}"));
    let results = root.join(format!("results-{runs}x{epochs}"));
    if marker.is_file() {
        return results;
    }
    let seeds = 10.min(runs);
    let lambdas = runs.div_ceil(seeds);
    let t = Instant::now();
    // Plain threads, not a rayon pool: polars' Parquet writer runs on polars' own rayon pool,
    // and calling it from inside another pool's worker nests the pools (a waiting worker steals
    // more generator jobs onto its stack), which overflowed 'polars-1' in release builds.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= runs {
                    break;
                }
                let lambda = if i / seeds == 0 {
                    0.0
                } else {
                    1e-6 * 10f64.powf(5.0 * (i / seeds) as f64 / lambdas as f64)
                };
                let run = SyntheticRun {
                    experiment: "bench".into(),
                    swept: vec![
                        ("regularization.lambda".into(), ParamValue::Float(lambda)),
                        (
                            "experiment.seed".into(),
                            ParamValue::Int((i % seeds) as i64),
                        ),
                    ],
                    classes: vec!["cat".into(), "dog".into()],
                    epochs,
                    status: if i % 97 == 5 {
                        Status::Diverged
                    } else {
                        Status::Done
                    },
                    per_class: false,
                };
                write_run(&results, &run).expect("write synthetic run");
            });
        }
    });
    std::fs::write(&marker, "").unwrap();
    eprintln!(
        "generated {runs} runs × {epochs} epochs in {:.1} s under {}",
        t.elapsed().as_secs_f64(),
        results.display()
    );
    results
}

fn time<T>(f: impl FnOnce() -> T) -> (T, Duration) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed())
}

fn ms(d: Duration) -> String {
    format!("{:.0}", d.as_secs_f64() * 1e3)
}

fn main() {
    // `cargo bench` passes `--bench`; anything else is a results tree to time
    let given: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let (inputs, label) = if given.is_empty() {
        let runs = env_usize("COMPARE_BENCH_RUNS", 10_000);
        let epochs = env_usize("COMPARE_BENCH_EPOCHS", 100);
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench-compare");
        let results = generate(&root, runs, epochs);
        (
            vec![results.to_string_lossy().into_owned()],
            format!("{runs} runs × {epochs} epochs"),
        )
    } else {
        (given.clone(), given.join(" "))
    };
    let reps = env_usize("COMPARE_BENCH_REPS", 5);
    // start without caches so the first repetition shows the cold path (read + write the cache)
    let dirs = find_run_dirs(&inputs).expect("find runs");
    remove_caches(&dirs);
    println!(
        "compare benchmark: {label}, {} rayon threads, {reps} repetitions",
        rayon::current_num_threads()
    );
    println!(
        "  find: walk the tree; fresh: manifests + Parquet columns, no cache; load: with the cache"
    );
    println!(
        "  (rep 1 builds it); render: summarise + table; compare(): the whole public call, cached"
    );
    println!(
        "{:>4} {:>8} {:>9} {:>8} {:>9} {:>13} {:>6} {:>6}",
        "rep", "find ms", "fresh ms", "load ms", "render ms", "compare() ms", "rows", "runs"
    );
    let args = CompareOptions {
        inputs: inputs.clone(),
        format: Format::Table,
        ..CompareOptions::default()
    };
    let mut totals = Vec::new();
    for rep in 1..=reps {
        let (dirs, find) = time(|| find_run_dirs(&inputs).expect("find runs"));
        let (fresh, fresh_t) = time(|| read_fresh(&dirs).expect("read runs"));
        let (runs, load) = time(|| load_runs(&dirs).expect("load runs"));
        assert_eq!(fresh, runs);
        let (out, render) = time(|| compare_runs(&runs, &args, &[]).expect("compare"));
        // the whole public entry point, as `runner compare` calls it
        let (whole, total) = time(|| compare(&args).expect("compare"));
        assert_eq!(out, whole);
        let rows = out.lines().count().saturating_sub(4);
        println!(
            "{rep:>4} {:>8} {:>9} {:>8} {:>9} {:>13} {rows:>6} {:>6}",
            ms(find),
            ms(fresh_t),
            ms(load),
            ms(render),
            ms(total),
            runs.len()
        );
        totals.push(total);
    }
    totals.sort();
    println!(
        "median compare(): {} ms, best {} ms",
        ms(totals[totals.len() / 2]),
        ms(totals[0])
    );
    remove_caches(&dirs);
    let (_, cold) = time(|| compare(&args).expect("compare"));
    println!("cold compare() (no cache, writes it): {} ms", ms(cold));
    match duckdb(&inputs) {
        Ok(d) => println!(
            "DuckDB, the same summary over the same files (2 threads, Python start included): {} ms; runner cold / DuckDB = {:.2}",
            ms(d),
            cold.as_secs_f64() / d.as_secs_f64()
        ),
        Err(why) => println!("DuckDB: not measured ({why})"),
    }
    if !given.is_empty() {
        print!("{}", compare(&args).expect("compare"));
    }
}

/// Removes the compare caches next to these runs.
fn remove_caches(dirs: &[PathBuf]) {
    let mut parents: Vec<&Path> = dirs.iter().filter_map(|d| d.parent()).collect();
    parents.dedup();
    for p in parents {
        let experiment = runner::results::layout::ExperimentDir::at(p);
        for f in [
            experiment.compare_cache_runs(),
            experiment.compare_cache_epochs(),
        ] {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// What `compare` computes per run, in one DuckDB query: the best epoch by val loss and the val
/// accuracy there, the final losses and weight norm. Timed as a process, Python's start included.
const DUCKDB_SUMMARY: &str = r#"
import sys, duckdb
con = duckdb.connect()
con.execute("SET threads = 2")
files = [f"{root}/**/metrics.parquet" for root in sys.argv[1:]]
rows = con.execute("""
    SELECT run_id, experiment,
           arg_min(epoch, val_loss) AS best_epoch, min(val_loss) AS best_val_loss,
           arg_min(val_acc, val_loss) AS best_val_acc,
           arg_max(train_loss, epoch) AS final_train_loss, arg_max(val_loss, epoch) AS final_val_loss,
           arg_max(weight_norm, epoch) AS final_weight_norm
    FROM read_parquet(?, union_by_name = true)
    GROUP BY run_id, experiment
""", [files]).fetchall()
print(len(rows))
"#;

fn duckdb(inputs: &[String]) -> Result<Duration, String> {
    let python = std::env::var("COMPARE_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    let t = Instant::now();
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(DUCKDB_SUMMARY)
        .args(inputs)
        .output()
        .map_err(|e| format!("cannot run {python}: {e}"))?;
    let took = t.elapsed();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "{python}: {}",
            err.lines().last().unwrap_or("failed")
        ));
    }
    Ok(took)
}
