//! `runner report` end to end: a sweep of synthetic runs (each with the resolved spec of the
//! committed reference run, its λ and seed changed, so the preview grid comes from the real
//! tiny cat/dog fixture), parsed with an HTML5 parser and rendered in headless Chromium.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use runner::results::schema::ParamValue;
use runner::results::store::Status;
use runner::testing::{write_run, SyntheticRun};
use scraper::{Html, Selector};

use crate::common;
use common::tools;
use libtest_mimic::Trial;
use runner::results::layout::{ExperimentDir, RunDir};

pub(crate) fn trials() -> Vec<Trial> {
    let group = tools::Group::new(module_path!());
    let no_chromium = chromium()
        .is_none()
        .then(|| "no chromium (apt-get install chromium, or set RUNNER_CHROMIUM)".to_string());
    vec![
        group.plain(
            "the_page_parses_names_every_run_and_loads_nothing_from_the_network",
            the_page_parses_names_every_run_and_loads_nothing_from_the_network,
        ),
        group.needs(
            "renders_in_headless_chromium",
            no_chromium.clone(),
            renders_in_headless_chromium,
        ),
        group.needs(
            "a_linked_run_opens_with_its_section_rendered_in_chromium",
            no_chromium,
            a_linked_run_opens_with_its_section_rendered_in_chromium,
        ),
        // a timing to read, not a check: a 1,000-run tree takes a while to write
        group.opt_in("a_thousand_run_sweep", a_thousand_run_sweep),
        group.plain(
            "bad_inputs_get_errors_naming_the_folder",
            bad_inputs_get_errors_naming_the_folder,
        ),
        group.plain(
            "the_curve_panels_share_one_text_size_and_the_header_names_the_engine",
            the_curve_panels_share_one_text_size_and_the_header_names_the_engine,
        ),
    ]
}

use common::project;

/// `runner ARGS` in the project folder, which must succeed: its stdout.
fn runner(args: &[&str]) -> String {
    common::ok(&common::runner(project(), args))
}

/// The reference run's resolved spec, for runs that need one.
fn reference_spec() -> String {
    let dir = project().join("results/reference/ci_reference");
    let run = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| RunDir::at(p).spec().is_file())
        .expect("the committed reference run");
    std::fs::read_to_string(RunDir::at(&run).spec()).unwrap()
}

/// A λ sweep over two seeds (rows of the table are seed groups), with a diverged and a failed
/// run; returns the run ids.
fn sweep(results: &Path, lambdas: &[f64], seeds: &[i64], with_spec: bool) -> Vec<String> {
    let spec = reference_spec();
    let mut ids = Vec::new();
    for (i, &lambda) in lambdas.iter().enumerate() {
        for &seed in seeds {
            let mut swept = vec![(
                "regularization.lambda".to_string(),
                ParamValue::Float(lambda),
            )];
            if seeds.len() > 1 {
                swept.push(("experiment.seed".to_string(), ParamValue::Int(seed)));
            }
            let status = match (i, seed == seeds[0]) {
                (1, true) => Status::Diverged,
                (2, true) if lambdas.len() > 3 => Status::Failed,
                _ => Status::Done,
            };
            let dir = write_run(
                results,
                &SyntheticRun {
                    experiment: "sweep".into(),
                    swept,
                    classes: vec!["cat".into(), "dog".into()],
                    epochs: 6,
                    status,
                    per_class: true,
                },
            )
            .unwrap();
            if with_spec {
                let text = spec
                    .replace("lambda = 0.001", &format!("lambda = {lambda:?}"))
                    .replace("seed = 42", &format!("seed = {seed}"))
                    .replace("name = \"ci_reference\"", "name = \"sweep\"");
                std::fs::write(dir.spec(), text).unwrap();
            }
            ids.push(
                dir.path()
                    .file_name()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    ids
}

fn sel(s: &str) -> Selector {
    Selector::parse(s).unwrap()
}

fn text(e: scraper::ElementRef) -> String {
    e.text().collect::<String>().trim().to_string()
}

fn the_page_parses_names_every_run_and_loads_nothing_from_the_network() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let ids = sweep(&results, &[0.0, 1e-4, 1e-3, 1e-2], &[1, 2], true);
    let out = tmp.path().join("page.html");
    let exp = results.join("sweep");
    let printed = runner(&["report", exp.to_str().unwrap(), "-o", out.to_str().unwrap()]);
    assert_eq!(printed.trim(), out.display().to_string());
    let page = std::fs::read_to_string(&out).unwrap();
    let doc = Html::parse_document(&page);

    // every run has its section, named in its summary, and a link from the table
    for id in &ids {
        let details = doc
            .select(&sel(&format!("details#run-sweep-{id}")))
            .next()
            .unwrap_or_else(|| panic!("no section for run {id}"));
        let summary = details.select(&sel("summary")).next().unwrap();
        assert!(text(summary).contains(id.as_str()), "{}", text(summary));
        // the status once, in its colour: `<id> done · best epoch …`
        let line = text(summary);
        let status = line.split_whitespace().nth(1).unwrap_or_default();
        assert_eq!(line.matches(status).count(), 1, "{line}");
        assert_eq!(
            doc.select(&sel(&format!("table.compare a[href=\"#run-sweep-{id}\"]")))
                .count(),
            1,
            "table link to {id}"
        );
    }
    assert_eq!(
        doc.select(&sel("body > details")).count(),
        ids.len(),
        "one section per run"
    );
    // each section is its summary until it is opened; what it shows is in the payload
    assert_eq!(
        doc.select(&sel("body > details[data-run] > summary"))
            .count(),
        ids.len()
    );
    assert_eq!(
        doc.select(&sel("body > details > :not(summary)")).count(),
        0
    );

    // nothing is fetched: no remote src/href, no external script or style sheet
    for e in doc.select(&sel("[src], [href]")) {
        for attr in ["src", "href"] {
            if let Some(v) = e.value().attr(attr) {
                let v = v.trim().to_ascii_lowercase();
                assert!(
                    !v.starts_with("http:") && !v.starts_with("https:") && !v.starts_with("//"),
                    "remote resource {attr}={v}"
                );
            }
        }
    }
    assert_eq!(
        doc.select(&sel("script[src], link[rel=stylesheet]"))
            .count(),
        0
    );

    // the comparison has `runner compare`'s columns and cells (run ids aside: the page links
    // every run of a seed group)
    let md = runner(&["compare", exp.to_str().unwrap(), "--format", "markdown"]);
    let md_rows: Vec<Vec<String>> = md
        .lines()
        .filter(|l| l.starts_with('|') && !l.starts_with("|-"))
        .map(|l| {
            l.trim_matches('|')
                .split('|')
                .map(|c| c.trim().to_string())
                .collect()
        })
        .collect();
    let header: Vec<String> = doc.select(&sel("table.compare th")).map(text).collect();
    assert_eq!(header, md_rows[0]);
    let rows: Vec<Vec<String>> = doc
        .select(&sel("table.compare tbody tr"))
        .map(|tr| tr.select(&sel("td")).map(text).collect())
        .collect();
    assert_eq!(rows.len(), md_rows.len() - 1, "4 λ groups");
    for (html_row, md_row) in rows.iter().zip(&md_rows[1..]) {
        for (i, (a, b)) in html_row.iter().zip(md_row).enumerate() {
            if header[i] != "run_id" {
                assert_eq!(a, b, "column {}", header[i]);
            }
        }
    }

    // a seed group is one row, its first run and `+N` as in the terminal, which opens to the
    // group's other runs
    let groups: Vec<String> = doc
        .select(&sel("table.compare td details.group > summary"))
        .map(text)
        .collect();
    let md_groups: Vec<String> = md_rows[1..]
        .iter()
        .map(|r| r[header.iter().position(|h| h == "run_id").unwrap()].clone())
        .filter(|id| id.contains(" +"))
        .collect();
    assert!(!groups.is_empty());
    assert_eq!(groups, md_groups);

    // the plot figures, the best-vs-λ one on a log axis with 0 marked
    let figures: Vec<String> = doc
        .select(&sel("figure[id^=fig-]"))
        .map(|f| f.value().id().unwrap().to_string())
        .collect();
    assert_eq!(
        figures,
        [
            "fig-loss",
            "fig-val_acc",
            "fig-weight_norm",
            "fig-best_vs_lambda"
        ]
    );
    let best = doc.select(&sel("#fig-best_vs_lambda svg")).next().unwrap();
    let labels: Vec<String> = best.select(&sel("text")).map(text).collect();
    assert!(labels.iter().any(|t| t == "0") && labels.iter().any(|t| t == "1e-3"));
    assert!(labels.iter().any(|t| t.contains("log scale")), "{labels:?}");

    // the preview grid: an inline PNG of the fixture's transformed images
    let img = doc.select(&sel("img")).next().expect("the preview grid");
    let src = img.value().attr("src").unwrap();
    let b64 = src
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG data URI");
    use base64::Engine;
    let png = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    let grid = image::load_from_memory(&png).unwrap();
    assert!(grid.width() > 100 && grid.height() > 50);

    // per-class numbers, confusion counts, spec differences (λ and seed) and the whole
    // resolved spec of a done run, in the payload its section is rendered from when opened
    let (payload, last) = run_entry(&doc, &format!("run-sweep-{}", ids[7]));
    let run_dir = exp.join(&ids[7]);
    let read = runner::results::scan::load_runs(std::slice::from_ref(&run_dir)).unwrap();
    let pc = runner::views::compare::per_class::read(&read[0])
        .unwrap()
        .expect("the run's per-class tables");
    let shown = &last["per_class"];
    assert_eq!(shown["class"], serde_json::json!(pc.class));
    assert_eq!(shown["support"], serde_json::json!(pc.support));
    assert_eq!(shown["confusion"], serde_json::json!(pc.confusion));
    assert_eq!(shown["epoch"], pc.epoch);
    for (key, values) in [
        ("accuracy", &pc.accuracy),
        ("precision", &pc.precision),
        ("recall", &pc.recall),
    ] {
        for (text, value) in shown[key].as_array().unwrap().iter().zip(values) {
            let text: f64 = text.as_str().unwrap().parse().unwrap();
            assert!((text - value).abs() < 1e-3, "{key}: {text} for {value}");
        }
    }
    let diff: Vec<&str> = last["diff"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d[0].as_str().unwrap())
        .collect();
    // against the table's first run (λ = 0, either seed)
    assert!(diff.contains(&"regularization.lambda"), "{diff:?}");
    assert!(
        diff.iter()
            .all(|k| *k == "regularization.lambda" || *k == "experiment.seed"),
        "{diff:?}"
    );
    let spec = std::fs::read_to_string(RunDir::at(&run_dir).spec()).unwrap();
    assert_eq!(resolved_spec(&payload, &last), spec);
    assert!(spec.contains("[regularization]"), "the resolved spec");
}

/// The page's run payload and the entry of the run whose section has id `anchor`.
fn run_entry(doc: &Html, anchor: &str) -> (serde_json::Value, serde_json::Value) {
    let payload = doc
        .select(&sel("script#run-data[type=\"application/json\"]"))
        .next()
        .expect("the runs' payload");
    let payload: serde_json::Value =
        serde_json::from_str(&payload.text().collect::<String>()).unwrap();
    let index: usize = doc
        .select(&sel(&format!("details#{anchor}")))
        .next()
        .unwrap_or_else(|| panic!("no section {anchor}"))
        .value()
        .attr("data-run")
        .expect("an unopened section names its payload entry")
        .parse()
        .unwrap();
    let run = payload["runs"][index].clone();
    (payload, run)
}

/// A run's resolved spec as the page shows it: the first run's text with the run's lines.
fn resolved_spec(payload: &serde_json::Value, run: &serde_json::Value) -> String {
    match &run["spec"] {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Array(changes) => {
            let first = payload["spec"].as_str().unwrap();
            let mut lines: Vec<&str> = first.split('\n').collect();
            for c in changes {
                lines[c[0].as_u64().unwrap() as usize] = c[1].as_str().unwrap();
            }
            lines.join("\n")
        }
        other => panic!("no spec for the run: {other}"),
    }
}

fn chromium() -> Option<PathBuf> {
    let candidates = [
        std::env::var("RUNNER_CHROMIUM").ok(),
        Some("/usr/bin/chromium".into()),
        Some("/usr/bin/chromium-browser".into()),
    ];
    candidates
        .into_iter()
        .flatten()
        .map(PathBuf::from)
        .find(|p| p.is_file())
}

/// Headless Chromium with a fresh profile in `profile`, nothing fetched in the background.
fn headless(chromium: &Path, profile: &Path) -> Command {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// Renders `page` to a 1280×2000 PNG; returns the wall time of the browser.
fn screenshot(chromium: &Path, page: &Path, png: &Path) -> f64 {
    let profile = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let out = headless(chromium, profile.path())
        .arg(format!("--screenshot={}", png.display()))
        .arg("--window-size=1280,2000")
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium starts");
    let secs = start.elapsed().as_secs_f64();
    assert!(
        png.is_file(),
        "chromium wrote no screenshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    secs
}

/// The document Chromium has built from `url` once it has loaded (its scripts run).
fn dump_dom(chromium: &Path, url: &str) -> Html {
    let profile = tempfile::tempdir().unwrap();
    let out = headless(chromium, profile.path())
        .arg("--dump-dom")
        .arg(url)
        .output()
        .expect("chromium starts");
    assert!(
        out.status.success() && !out.stdout.is_empty(),
        "chromium dumped no DOM: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Html::parse_document(&String::from_utf8(out.stdout).unwrap())
}

/// Mean and variance of the luminance, and how many distinct colours there are.
fn pixel_stats(png: &Path) -> (f64, f64, usize) {
    let img = image::open(png).unwrap().to_rgb8();
    let (mean, var) = common::luminance(&img);
    let mut colours: Vec<[u8; 3]> = img.pixels().map(|p| p.0).collect();
    colours.sort();
    colours.dedup();
    (mean, var, colours.len())
}

fn renders_in_headless_chromium() {
    let chromium = chromium().expect("main checked that there is one");
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    sweep(&results, &[0.0, 1e-4, 1e-3, 1e-2], &[1, 2], true);
    let exp = results.join("sweep");
    runner(&["report", exp.to_str().unwrap()]);
    let page = ExperimentDir::at(&exp).report_html();
    let png = tmp.path().join("shot.png");
    screenshot(&chromium, &page, &png);
    if let Ok(keep) = std::env::var("RUNNER_REPORT_KEEP") {
        std::fs::copy(&png, Path::new(&keep).join("report.png")).unwrap();
        std::fs::copy(&page, Path::new(&keep).join("report.html")).unwrap();
    }
    let (mean, var, colours) = pixel_stats(&png);
    // a blank (white) or failed (black, one colour) page has no variance and few colours
    assert!(mean > 100.0, "mostly light page, mean luminance {mean}");
    assert!(var > 200.0, "luminance variance {var}");
    assert!(colours > 100, "{colours} distinct colours");
}

/// Past the first rows of the table the others wait in the page as markup, each run still
/// linked once; a link to a run (`report.html#run-…`) opens its section, which the page's script
/// renders from the payload: the per-class table, the confusion heat map and the resolved spec.
fn a_linked_run_opens_with_its_section_rendered_in_chromium() {
    let chromium = chromium().expect("main checked that there is one");
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    let lambdas: Vec<f64> = (0..120).map(|i| f64::from(i) * 1e-4).collect();
    let ids = sweep(&results, &lambdas, &[1], true);
    let exp = results.join("sweep");
    runner(&["report", exp.to_str().unwrap()]);
    let page = ExperimentDir::at(&exp).report_html();

    let doc = Html::parse_document(&std::fs::read_to_string(&page).unwrap());
    assert_eq!(doc.select(&sel("table.compare tbody tr")).count(), 100);
    let more = doc
        .select(&sel("script#compare-more[type=\"text/html\"]"))
        .next()
        .expect("the rows past the first 100");
    let more = Html::parse_fragment(&format!(
        "<table><tbody>{}</tbody></table>",
        more.text().collect::<String>()
    ));
    assert_eq!(more.select(&sel("tr")).count(), 20);
    for id in &ids {
        let link = sel(&format!("a[href=\"#run-sweep-{id}\"]"));
        let links = doc
            .select(&sel("table.compare"))
            .next()
            .unwrap()
            .select(&link)
            .count()
            + more.select(&link).count();
        assert_eq!(links, 1, "one table link to {id}");
    }

    let opened = &ids[ids.len() - 1];
    let url = format!("file://{}#run-sweep-{opened}", page.display());
    let dom = dump_dom(&chromium, &url);
    let section = dom
        .select(&sel(&format!("details#run-sweep-{opened}[open]")))
        .next()
        .expect("the linked section is open");
    let per_class: Vec<String> = section
        .select(&sel(
            "table:not(.confusion):not(.diff) tbody td:first-child",
        ))
        .map(text)
        .collect();
    assert_eq!(per_class, ["cat", "dog"]);
    assert_eq!(section.select(&sel("table.confusion td[style]")).count(), 4);
    let diff: Vec<String> = section
        .select(&sel("table.diff td:first-child"))
        .map(text)
        .collect();
    assert_eq!(diff, ["regularization.lambda"]);
    let spec = std::fs::read_to_string(RunDir::at(exp.join(opened)).spec()).unwrap();
    let pre = section
        .select(&sel("pre"))
        .next()
        .expect("the resolved spec");
    assert_eq!(pre.text().collect::<String>().trim(), spec.trim());
    // the other sections are still their summaries
    assert_eq!(
        dom.select(&sel("body > details:not([open]) > :not(summary)"))
            .count(),
        0
    );
}

/// `cargo test --test tools report:: -- --ignored --nocapture`: a 1,000-run sweep (RUNNER_REPORT_RUNS
/// sets another count), the time `runner report` takes and the time Chromium takes to load and
/// screenshot it, beside its time on an empty page. Set RUNNER_REPORT_KEEP=DIR to keep the page and the screenshot.
fn a_thousand_run_sweep() {
    let tmp = tempfile::tempdir().unwrap();
    // RUNNER_REPORT_TREE=DIR writes (and keeps) the results tree there instead
    let results = std::env::var("RUNNER_REPORT_TREE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| tmp.path().join("results"));
    let count: usize = std::env::var("RUNNER_REPORT_RUNS").map_or(1000, |n| n.parse().unwrap());
    let lambdas: Vec<f64> = (0..count).map(|i| i as f64 / (10 * count) as f64).collect();
    let ids = sweep(&results, &lambdas, &[1], true);
    assert_eq!(ids.len(), count);
    let exp = results.join("sweep");
    let start = Instant::now();
    runner(&["report", exp.to_str().unwrap()]);
    let report_secs = start.elapsed().as_secs_f64();
    let page = ExperimentDir::at(&exp).report_html();
    let bytes = std::fs::metadata(&page).unwrap().len();
    let doc = Html::parse_document(&std::fs::read_to_string(&page).unwrap());
    // the first sections are in the page, every run's in the payload
    assert_eq!(doc.select(&sel("body > details")).count(), count.min(100));
    let last = format!("run-sweep-{}", ids[count - 1]);
    let payload = doc.select(&sel("script#run-data")).next().unwrap();
    let payload: serde_json::Value =
        serde_json::from_str(&payload.text().collect::<String>()).unwrap();
    let runs = payload["runs"].as_array().unwrap();
    assert_eq!(runs.len(), count);
    assert!(runs.iter().any(|r| r["anchor"] == last.as_str()), "{last}");
    println!(
        "{count} runs: runner report {report_secs:.1}s (dev build), page {:.1} MB",
        bytes as f64 / 1e6
    );
    if let Some(chromium) = chromium() {
        let png = tmp.path().join("shot.png");
        let secs = screenshot(&chromium, &page, &png);
        let (_, var, colours) = pixel_stats(&png);
        // the browser's own start-up, to read the page's share of the time above
        let empty = tmp.path().join("empty.html");
        std::fs::write(&empty, "<!DOCTYPE html><title>empty</title><p>empty</p>").unwrap();
        let startup = screenshot(&chromium, &empty, &tmp.path().join("empty.png"));
        println!(
            "chromium --headless --screenshot: {secs:.1}s (variance {var:.0}, {colours} colours); an empty page {startup:.1}s"
        );
        if let Ok(keep) = std::env::var("RUNNER_REPORT_KEEP") {
            std::fs::copy(&png, Path::new(&keep).join("report-1000.png")).unwrap();
            std::fs::copy(&page, Path::new(&keep).join("report-1000.html")).unwrap();
        }
    }
}

fn runner_fails(args: &[&str], tmp: &Path) -> String {
    let out = common::runner(project(), args);
    assert!(!out.status.success(), "runner {args:?} should fail");
    String::from_utf8(out.stderr)
        .unwrap()
        .replace(&tmp.display().to_string(), "<tmp>")
}

fn bad_inputs_get_errors_naming_the_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let results = tmp.path().join("results");
    sweep(&results, &[0.0, 1e-3], &[1], false);
    // a second experiment next to the first
    std::fs::create_dir_all(results.join("other")).unwrap();
    write_run(
        &results,
        &SyntheticRun {
            experiment: "other".into(),
            swept: Vec::new(),
            classes: vec!["cat".into(), "dog".into()],
            epochs: 2,
            status: Status::Done,
            per_class: false,
        },
    )
    .unwrap();
    let r = results.to_str().unwrap();
    insta::assert_snapshot!(
        runner_fails(&["report", r], tmp.path()),
        @"error: <tmp>/results holds runs of 2 experiments (other, sweep); give one experiment's folder, e.g. <tmp>/results/other"
    );
    let missing = tmp.path().join("nope");
    insta::assert_snapshot!(
        runner_fails(&["report", missing.to_str().unwrap()], tmp.path()),
        @"error: no such results folder or file: <tmp>/nope"
    );
    let sweep_dir = results.join("sweep");
    let file = tmp.path().join("file");
    std::fs::write(&file, "").unwrap();
    insta::assert_snapshot!(
        runner_fails(&["export", "mlflow", sweep_dir.to_str().unwrap(), "--to", file.to_str().unwrap()], tmp.path()),
        @"error: cannot write <tmp>/file: File exists (os error 17)"
    );
}

/// The four per-epoch panels (train and val loss side by side, then val accuracy and weight
/// norm two to a row) are shown at one scale, so their text has one size on the page; the
/// header names the engine the runs recorded.
fn the_curve_panels_share_one_text_size_and_the_header_names_the_engine() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("exp.toml"),
        common::tiny_linear_spec("sizes", ""),
    )
    .unwrap();
    let out = common::runner(dir.path(), &["run", "exp.toml"]);
    assert!(out.status.success(), "{}", common::text(&out));
    let out = common::runner(dir.path(), &["report", "results/sizes"]);
    assert!(out.status.success(), "{}", common::text(&out));
    let page = std::fs::read_to_string(dir.path().join("results/sizes/report.html")).unwrap();
    let doc = Html::parse_document(&page);

    // the share of the page's width a figure of each class takes, from the style sheet
    let width_of = |class: &str| -> f64 {
        let rule = page
            .split(&format!("figure.{class} {{"))
            .nth(1)
            .map(|r| r.split('}').next().unwrap().to_string())
            .unwrap_or_default();
        match rule.split("width:").nth(1) {
            Some(w) => w.split('%').next().unwrap().trim().parse::<f64>().unwrap() / 100.0,
            None => 1.0,
        }
    };
    let scales: Vec<(String, f64)> = ["fig-loss", "fig-val_acc", "fig-weight_norm"]
        .iter()
        .map(|id| {
            let fig = doc.select(&sel(&format!("figure#{id}"))).next().unwrap();
            let class = fig.value().attr("class").unwrap_or("");
            let svg = fig.select(&sel("svg")).next().unwrap();
            let pixels: f64 = svg.value().attr("width").unwrap().parse().unwrap();
            (id.to_string(), width_of(class) / pixels)
        })
        .collect();
    for (id, scale) in &scales {
        assert!(
            (scale / scales[0].1 - 1.0).abs() < 0.03,
            "{id} is drawn at another scale than the loss panels: {scales:?}"
        );
    }

    let meta: Vec<String> = doc.select(&sel("dl.meta > *")).map(text).collect();
    let device = meta
        .iter()
        .position(|t| t == "device")
        .map(|i| meta[i + 1].clone())
        .expect("a device entry");
    assert!(
        device.starts_with("cpu (") && device.contains("engine "),
        "{device}"
    );
}
