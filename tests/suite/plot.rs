//! `plot` on synthetic results trees: every figure is written as a PNG of the expected size
//! that is not blank and as an SVG with its curves and text.

use crate::common;

use std::path::{Path, PathBuf};

use runner::results::layout::ResultsRoot;
use runner::results::schema::ParamValue;
use runner::results::store::Status;
use runner::testing::{write_run, SyntheticRun};
use runner::views::plot::{plot, DOUBLE, SINGLE};

fn lambda_sweep(results: &Path, lambdas: &[f64], seeds: &[i64]) {
    for &lambda in lambdas {
        for &seed in seeds {
            let status = if lambda == 1e-1 && seed == 2 {
                Status::Diverged
            } else {
                Status::Done
            };
            let run = SyntheticRun {
                experiment: "lambda".into(),
                swept: vec![
                    ("regularization.lambda".into(), ParamValue::Float(lambda)),
                    ("experiment.seed".into(), ParamValue::Int(seed)),
                ],
                classes: vec!["cat".into(), "dog".into()],
                epochs: 12,
                status,
                per_class: false,
            };
            write_run(results, &run).unwrap();
        }
    }
}

fn names(paths: &[PathBuf]) -> Vec<String> {
    paths
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect()
}

/// Decodes the PNG, checks its size and that it is not one flat colour.
fn check_png(path: &Path, size: (u32, u32), min_coloured: usize) {
    let img = image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8();
    assert_eq!(img.dimensions(), size, "{}", path.display());
    let (_, var) = common::luminance(&img);
    assert!(
        var > 50.0,
        "{} looks blank (variance {var})",
        path.display()
    );
    // more than the white background and black axes: the run colours are there
    let coloured = img
        .pixels()
        .filter(|p| p.0.iter().max().unwrap() - p.0.iter().min().unwrap() > 60)
        .count();
    assert!(
        coloured > min_coloured,
        "{}: only {coloured} coloured pixels",
        path.display()
    );
}

/// The text elements' contents, trimmed.
fn texts(svg: &str) -> Vec<String> {
    svg.split("<text")
        .skip(1)
        .filter_map(|t| {
            Some(
                t.split_once('>')?
                    .1
                    .split_once("</text>")?
                    .0
                    .trim()
                    .to_string(),
            )
        })
        .collect()
}

fn svg(path: &Path, size: (u32, u32)) -> String {
    let s = std::fs::read_to_string(path).unwrap();
    assert!(s.starts_with("<svg"), "{}", path.display());
    assert!(
        s.contains(&format!("width=\"{}\" height=\"{}\"", size.0, size.1)),
        "{}",
        path.display()
    );
    assert!(s.trim_end().ends_with("</svg>"));
    assert!(s.contains("<polyline"), "{} has no curves", path.display());
    s
}

#[test]
fn writes_every_figure_as_png_and_svg_next_to_the_results() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    lambda_sweep(&results, &[0.0, 1e-4, 1e-3, 1e-2, 1e-1], &[1, 2]);
    let (written, unreadable) = plot(&results).unwrap();
    assert!(unreadable.is_empty(), "{unreadable:?}");
    assert_eq!(
        names(&written),
        [
            "loss.png",
            "loss.svg",
            "val_acc.png",
            "val_acc.svg",
            "weight_norm.png",
            "weight_norm.svg",
            "best_vs_lambda.png",
            "best_vs_lambda.svg"
        ]
    );
    let plots = ResultsRoot::new(&results).experiment("lambda").plots();
    if let Ok(keep) = std::env::var("PLOT_TEST_KEEP") {
        for p in &written {
            std::fs::copy(p, Path::new(&keep).join(p.file_name().unwrap())).unwrap();
        }
    }
    assert!(written.iter().all(|p| p.parent() == Some(plots.as_path())));
    // atomic writes leave no temporaries behind
    assert_eq!(std::fs::read_dir(&plots).unwrap().count(), 8);
    for (name, size) in [
        ("loss", DOUBLE),
        ("val_acc", SINGLE),
        ("weight_norm", SINGLE),
        ("best_vs_lambda", DOUBLE),
    ] {
        check_png(&plots.join(format!("{name}.png")), size, 500);
        svg(&plots.join(format!("{name}.svg")), size);
    }
    let legend: Vec<String> = texts(&svg(&plots.join("loss.svg"), DOUBLE))
        .into_iter()
        .filter(|t| t.starts_with("lambda="))
        .collect();
    assert_eq!(legend.len(), 10, "one legend entry per run: {legend:?}");
    assert_eq!(
        legend[..3],
        [
            "lambda=0, seed=1",
            "lambda=0, seed=2",
            "lambda=1e-4, seed=1"
        ],
        "in parameter order"
    );
    let best = texts(&svg(&plots.join("best_vs_lambda.svg"), DOUBLE));
    let axis =
        "regularization.lambda (log scale; 0 is drawn at the tick labelled 0, left of the break)";
    assert_eq!(best.iter().filter(|t| *t == axis).count(), 2, "{best:?}");
    for tick in ["0", "1e-4", "1e-3", "1e-2", "1e-1"] {
        assert_eq!(
            best.iter().filter(|t| *t == tick).count(),
            2,
            "tick {tick} on both panels: {best:?}"
        );
    }
    // the run folders were left as they were: plotting again gives the same files
    assert_eq!(plot(&results.join("lambda")).unwrap().0, written);
}

#[test]
fn no_parameter_plot_without_a_single_numeric_sweep() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results");
    for kind in ["sgd", "adam"] {
        let run = SyntheticRun {
            experiment: "optim".into(),
            swept: vec![("optimizer.kind".into(), ParamValue::Str(kind.into()))],
            classes: vec!["cat".into(), "dog".into()],
            epochs: 1,
            status: Status::Done,
            per_class: false,
        };
        write_run(&results, &run).unwrap();
    }
    let (written, unreadable) = plot(&results).unwrap();
    assert!(unreadable.is_empty(), "{unreadable:?}");
    assert_eq!(names(&written).len(), 6);
    // one epoch per run: a point each, still not blank
    let plots = ResultsRoot::new(&results).experiment("optim").plots();
    check_png(&plots.join("val_acc.png"), SINGLE, 50);
}
