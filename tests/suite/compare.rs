//! `compare` on a small results tree written by `synthetic_results` (the runner's own Parquet
//! writers): snapshots of every format, seed aggregation, filters, sorting and per-class tables.

use std::path::{Path, PathBuf};

use runner::results::layout::{ExperimentDir, RunDir};
use runner::results::scan::{find_run_dirs, load_runs};
use runner::results::schema::ParamValue;
use runner::results::store::Status;
use runner::testing::{write_run, SyntheticRun};
use runner::views::compare::{compare, BestAndFinal, BestBy, CompareOptions, Format};

fn run(
    experiment: &str,
    swept: Vec<(&str, ParamValue)>,
    classes: &[&str],
    epochs: usize,
    status: Status,
) -> SyntheticRun {
    SyntheticRun {
        experiment: experiment.into(),
        swept: swept.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        classes: classes.iter().map(|c| c.to_string()).collect(),
        epochs,
        status,
        per_class: true,
    }
}

/// `lambda`: regularization.lambda × experiment.seed, 12 epochs, one diverged run.
/// `optim`: optimizer.kind over three classes, 4 epochs, one run failed before its first epoch.
fn fixture() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    for lambda in [0.0, 1e-3, 1e-2] {
        for seed in [1i64, 2] {
            let status = if lambda == 1e-2 && seed == 2 {
                Status::Diverged
            } else {
                Status::Done
            };
            let swept = vec![
                ("regularization.lambda", ParamValue::Float(lambda)),
                ("experiment.seed", ParamValue::Int(seed)),
            ];
            write_run(&results, &run("lambda", swept, &["cat", "dog"], 12, status)).unwrap();
        }
    }
    for (kind, status) in [
        ("sgd", Status::Done),
        ("adam", Status::Done),
        ("rmsprop", Status::Failed),
    ] {
        let swept = vec![("optimizer.kind", ParamValue::Str(kind.into()))];
        write_run(
            &results,
            &run("optim", swept, &["bird", "cat", "dog"], 4, status),
        )
        .unwrap();
    }
    dir
}

fn args(inputs: &[PathBuf]) -> CompareOptions {
    CompareOptions {
        inputs: inputs
            .iter()
            .map(|p| p.to_string_lossy().into_owned())
            .collect(),
        ..CompareOptions::default()
    }
}

fn with(mut a: CompareOptions, f: impl FnOnce(&mut CompareOptions)) -> CompareOptions {
    f(&mut a);
    a
}

fn exp(root: &Path, name: &str) -> PathBuf {
    root.join("results").join(name)
}

#[test]
fn every_format_of_a_mixed_tree() {
    let t = fixture();
    let a = args(&[t.path().join("results")]);
    for (name, format) in [
        ("all_table", Format::Table),
        ("all_markdown", Format::Markdown),
        ("all_csv", Format::Csv),
        ("all_json", Format::Json),
    ] {
        let out = compare(&with(a.clone(), |a| a.format = format)).unwrap();
        insta::assert_snapshot!(name, out);
    }
}

#[test]
fn runs_without_seed_sweep_are_one_row_each_with_differing_columns_only() {
    let t = fixture();
    let out = compare(&args(&[exp(t.path(), "optim")])).unwrap();
    insta::assert_snapshot!("optim_table", out);
    assert!(!out.contains("n "), "no seed groups, no n column");
}

#[test]
fn seeds_are_aggregated_as_mean_and_sample_sd() {
    let t = fixture();
    let runs =
        load_runs(&find_run_dirs(&[exp(t.path(), "lambda").to_string_lossy()]).unwrap()).unwrap();
    assert_eq!(runs.len(), 6);
    let pair: Vec<_> = runs
        .iter()
        .filter(|r| r.param("regularization.lambda") == Some(&ParamValue::Float(1e-3)))
        .collect();
    assert_eq!(pair.len(), 2);
    let v: Vec<f64> = pair
        .iter()
        .map(|r| BestAndFinal::of(r, BestBy::ValLoss).values[2])
        .collect();
    let mean = (v[0] + v[1]) / 2.0;
    let sd = ((v[0] - mean).powi(2) + (v[1] - mean).powi(2)).sqrt();
    let out = compare(&with(args(&[exp(t.path(), "lambda")]), |a| {
        a.format = Format::Json;
        a.filter = vec!["lambda=0.001".into()];
    }))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 1, "{out}");
    let row = &v[0];
    assert_eq!(row["n"], 2);
    assert!(
        row.get("experiment.seed").is_none(),
        "the seed is what is averaged over"
    );
    let got_mean = row["val_loss@best"].as_f64().unwrap();
    let got_sd = row["val_loss@best_sd"].as_f64().unwrap();
    assert!(
        (got_mean - mean).abs() < 1e-12 && (got_sd - sd).abs() < 1e-12,
        "{got_mean} {got_sd} vs {mean} {sd}"
    );
    assert!(sd > 0.0);
}

#[test]
fn filters_select_runs_by_short_name_status_and_metric() {
    let t = fixture();
    let a = with(args(&[exp(t.path(), "lambda")]), |a| a.format = Format::Csv);
    let rows = |f: &[&str]| {
        let out = compare(&with(a.clone(), |a| {
            a.filter = f.iter().map(|s| s.to_string()).collect()
        }))
        .unwrap();
        out.lines().count() - 1
    };
    assert_eq!(rows(&[]), 3);
    assert_eq!(rows(&["lambda>=1e-3"]), 2);
    assert_eq!(rows(&["lambda>0", "lambda<0.005"]), 1);
    // one seed left: nothing to aggregate, one row per run
    assert_eq!(rows(&["seed=1"]), 3);
    assert_eq!(rows(&["status=diverged"]), 1);
    assert_eq!(rows(&["status!=diverged", "lambda=0.01"]), 1);
    assert_eq!(rows(&["val_loss@best<0"]), 0);
}

#[test]
fn filter_and_sort_errors_name_the_bad_token() {
    let t = fixture();
    let a = args(&[t.path().join("results")]);
    let err =
        |f: &dyn Fn(&mut CompareOptions)| compare(&with(a.clone(), f)).unwrap_err().to_string();
    assert_eq!(
        err(&|a| a.filter = vec!["lambda=>1".into()]),
        "bad filter 'lambda=>1': '=>' is not an operator (one of >=, <=, >, <, =, !=)"
    );
    assert!(err(&|a| a.filter = vec!["lamda>1".into()])
        .starts_with("unknown column 'lamda' in filter 'lamda>1' (columns: "));
    assert_eq!(
        err(&|a| a.filter = vec!["kind>1".into()]),
        "bad filter 'kind>1': '>' needs a number but 'kind' holds text"
    );
    assert!(err(&|a| a.sort = Some("bogus".into())).starts_with("unknown column 'bogus' in --sort"));
    let missing = compare(&args(&[t.path().join("nope")]))
        .unwrap_err()
        .to_string();
    assert!(
        missing.starts_with("no such results folder or file: ") && missing.ends_with("nope"),
        "{missing}"
    );
}

#[test]
fn sorts_ascending_descending_with_missing_last() {
    let t = fixture();
    let a = with(args(&[exp(t.path(), "lambda")]), |a| {
        a.format = Format::Csv;
        a.filter = vec!["seed=1".into()];
    });
    let first_lambda = |sort: &str| {
        let out = compare(&with(a.clone(), |a| a.sort = Some(sort.into()))).unwrap();
        let header: Vec<&str> = out.lines().next().unwrap().split(',').collect();
        let i = header
            .iter()
            .position(|h| *h == "regularization.lambda")
            .unwrap();
        out.lines()
            .skip(1)
            .map(|l| l.split(',').nth(i).unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert_eq!(first_lambda("lambda"), ["0", "0.001", "0.01"]);
    assert_eq!(first_lambda("lambda:desc"), ["0.01", "0.001", "0"]);
    assert_eq!(first_lambda("-lambda"), ["0.01", "0.001", "0"]);
    // larger lambda → smaller final weight norm in the synthetic curves
    assert_eq!(first_lambda("final_weight_norm"), ["0.01", "0.001", "0"]);
}

#[test]
fn per_class_tables_and_confusion_of_the_best_epoch() {
    let t = fixture();
    let a = args(&[exp(t.path(), "optim")]);
    let out = compare(&with(a.clone(), |a| a.per_class = true)).unwrap();
    insta::assert_snapshot!("optim_per_class", out);
    let md = compare(&with(a.clone(), |a| {
        a.per_class = true;
        a.format = Format::Markdown;
    }))
    .unwrap();
    insta::assert_snapshot!("optim_per_class_markdown", md);
    let json = compare(&with(a.clone(), |a| {
        a.per_class = true;
        a.format = Format::Json;
    }))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&json).expect("one JSON document");
    assert_eq!(v["runs"].as_array().unwrap().len(), 3);
    assert_eq!(
        v["per_class"].as_array().unwrap().len(),
        2,
        "the failed run has no per-class files"
    );
    assert_eq!(v["per_class"][0]["confusion"].as_array().unwrap().len(), 3);
    let csv = compare(&with(a, |a| {
        a.per_class = true;
        a.format = Format::Csv;
    }))
    .unwrap();
    assert!(csv.contains("\nexperiment,run_id,epoch,class,accuracy,precision,recall,support\n"));
    assert!(csv.contains("\nexperiment,run_id,epoch,true_class,pred_class,count\n"));
}

#[test]
fn best_by_val_acc_and_globs() {
    let t = fixture();
    let glob = format!("{}/results/*/*/metrics.parquet", t.path().display());
    let dirs = find_run_dirs(&[glob.as_str()]).unwrap();
    assert_eq!(dirs.len(), 8, "the failed run has no metrics.parquet");
    let by_loss = compare(&with(args(&[exp(t.path(), "optim")]), |a| {
        a.format = Format::Json
    }))
    .unwrap();
    let by_acc = compare(&with(args(&[exp(t.path(), "optim")]), |a| {
        a.format = Format::Json;
        a.by = BestBy::ValAcc;
    }))
    .unwrap();
    // val acc is a decreasing function of val loss in the synthetic curves: same best epochs
    assert_eq!(by_loss, by_acc);
    let v: serde_json::Value = serde_json::from_str(&by_loss).unwrap();
    assert_eq!(v[0]["optimizer.kind"], "adam");
    assert_eq!(v[0]["best_epoch"].as_f64(), Some(4.0));
    assert_eq!(v[1]["status"], "failed");
    assert!(v[1]["best_epoch"].is_null());
}

#[test]
fn a_cache_next_to_the_runs_is_used_until_a_run_changes() {
    let t = fixture();
    let a = args(&[t.path().join("results")]);
    let first = compare(&a).unwrap();
    let optim = exp(t.path(), "optim");
    assert!(ExperimentDir::at(&optim).compare_cache_runs().is_file());
    assert_eq!(compare(&a).unwrap(), first);

    // same size and time, other bytes: only a cache hit keeps compare working
    let sgd = std::fs::read_dir(&optim)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            std::fs::read_to_string(RunDir::at(p).manifest()).is_ok_and(|m| m.contains("\"sgd\""))
        })
        .unwrap();
    let metrics = RunDir::at(&sgd).metrics();
    let meta = std::fs::metadata(&metrics).unwrap();
    std::fs::write(&metrics, vec![0u8; meta.len() as usize]).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&metrics)
        .unwrap()
        .set_modified(meta.modified().unwrap())
        .unwrap();
    assert_eq!(compare(&a).unwrap(), first);

    // the run is rewritten (diverged after 2 of 4 epochs): compare sees it
    let run = SyntheticRun {
        experiment: "optim".into(),
        swept: vec![("optimizer.kind".into(), ParamValue::Str("sgd".into()))],
        classes: ["bird", "cat", "dog"].map(String::from).to_vec(),
        epochs: 4,
        status: Status::Diverged,
        per_class: true,
    };
    write_run(&t.path().join("results"), &run).unwrap();
    let after = compare(&with(args(std::slice::from_ref(&optim)), |a| {
        a.format = Format::Json
    }))
    .unwrap();
    let v: serde_json::Value = serde_json::from_str(&after).unwrap();
    assert_eq!(
        (v[2]["optimizer.kind"].as_str(), v[2]["status"].as_str()),
        (Some("sgd"), Some("diverged"))
    );
    assert_eq!(v[2]["best_epoch"].as_f64(), Some(2.0));

    // a broken cache is ignored and replaced
    std::fs::write(
        ExperimentDir::at(&optim).compare_cache_runs(),
        b"not parquet",
    )
    .unwrap();
    assert_eq!(
        compare(&with(args(&[optim]), |a| a.format = Format::Json)).unwrap(),
        after
    );
}

#[test]
fn integer_and_float_values_of_one_key_compare_together() {
    // `lambda = [0, 1e-3, 1.0]` in TOML: an integer, a float and a float whose manifest text
    // ("1") looks like an integer, so their metrics.parquet files have different column types
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    for v in [
        ParamValue::Int(0),
        ParamValue::Float(1e-3),
        ParamValue::Float(1.0),
        ParamValue::Int(2),
    ] {
        write_run(
            &results,
            &run(
                "mixed",
                vec![("regularization.lambda", v)],
                &["cat", "dog"],
                3,
                Status::Done,
            ),
        )
        .unwrap();
    }
    let out = compare(&with(args(&[results]), |a| {
        a.format = Format::Csv;
        a.filter = vec!["lambda<=1".into()];
    }))
    .unwrap();
    let lambdas: Vec<&str> = out
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(2).unwrap())
        .collect();
    assert_eq!(lambdas, ["0", "0.001", "1"]);
}

/// A random search's values as people read them in the table and Markdown (4 significant
/// digits, scientific below 1e-3, more digits only where two values would read the same), and
/// in full in CSV.
#[test]
fn a_random_search_reads_at_four_digits_and_keeps_full_precision_in_csv() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    let points = [
        (0.0028951731, 0.0),
        (0.00017288737, 1.0115794542598985e-6),
        (0.013949512, 1.0115794542598985e-3),
        (0.00010274301, 1.0116e-3),
    ];
    for (lr, lambda) in points {
        let swept = vec![
            ("optimizer.lr", ParamValue::Float(lr)),
            ("regularization.lambda", ParamValue::Float(lambda)),
        ];
        write_run(
            &results,
            &run("random", swept, &["cat", "dog"], 3, Status::Done),
        )
        .unwrap();
    }
    let a = args(&[results]);
    for (name, format) in [
        ("random_search_table", Format::Table),
        ("random_search_markdown", Format::Markdown),
        ("random_search_csv", Format::Csv),
    ] {
        let out = compare(&with(a.clone(), |a| a.format = format)).unwrap();
        insta::assert_snapshot!(name, out);
    }
}
