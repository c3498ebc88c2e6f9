//! The report's sections as HTML fragments: header, comparison table, per-run details.

use std::fmt::Write;

use super::page::{esc, run_anchor};
use crate::number::metric;
use crate::results::scan::Run;
use crate::results::schema::ParamValue;
use crate::results::store::Manifest;
use crate::results::stored_spec::{self, StoredSpec};
use crate::views::compare::per_class::PerClass;
use crate::views::compare::render::text_rows;
use crate::views::compare::Table;

/// What is known about one run beyond `Run`: its manifest, stored spec and per-class files.
pub(super) struct RunFiles {
    pub manifest: Option<Manifest>,
    pub spec: Option<StoredSpec>,
    pub per_class: Option<PerClass>,
}

/// Distinct values in first-seen order.
fn distinct<'a>(values: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for v in values {
        if !out.contains(&v) {
            out.push(v);
        }
    }
    out
}

fn list_or(values: &[&str], none: &str) -> String {
    if values.is_empty() {
        none.to_string()
    } else {
        esc(&values.join(", "))
    }
}

pub(super) fn header(experiment: &str, runs: &[&Run], files: &[&RunFiles]) -> String {
    let manifests: Vec<&Manifest> = files.iter().filter_map(|f| f.manifest.as_ref()).collect();
    let description = files
        .iter()
        .filter_map(|f| f.spec.as_ref()?.get("experiment.description"))
        .find(|d| !d.is_empty())
        .unwrap_or("");
    let spec_file = runs
        .iter()
        .map(|r| crate::results::layout::RunDir::at(&r.dir).spec())
        .find(|p| p.is_file())
        .map_or("(no run has a spec.toml)".to_string(), |p| {
            format!("{} (resolved; one per run)", p.display())
        });
    let commits = commits_of(&manifests);
    let commits: Vec<&str> = commits.iter().map(String::as_str).collect();
    let started = manifests.iter().map(|m| m.started_at.as_str()).min();
    let finished = manifests
        .iter()
        .filter_map(|m| m.finished_at.as_deref())
        .max();
    let devices: Vec<String> = manifests
        .iter()
        .map(|m| match &m.engine {
            Some(engine) => format!("{} ({} threads), engine {engine}", m.device, m.threads),
            None => format!("{} ({} threads)", m.device, m.threads),
        })
        .collect();
    let devices = distinct(devices.iter().map(String::as_str));
    let states = status_counts(runs);
    let mut out = format!("<h1>{}</h1>\n", esc(experiment));
    if !description.is_empty() {
        let _ = writeln!(out, "<p>{}</p>", esc(description));
    }
    out.push_str("<dl class=\"meta\">\n");
    let mut item = |k: &str, v: String| {
        let _ = writeln!(out, "<dt>{k}</dt><dd>{v}</dd>");
    };
    item("runs", format!("{}: {states}", runs.len()));
    item("spec", esc(&spec_file));
    item("git commit", list_or(&commits, "unknown"));
    item(
        "dates",
        match (started, finished) {
            (Some(s), Some(f)) => format!("{} to {}", esc(s), esc(f)),
            (Some(s), None) => format!("started {}", esc(s)),
            _ => "unknown".into(),
        },
    );
    item("device", list_or(&devices, "unknown"));
    let versions = distinct(manifests.iter().map(|m| m.runner_version.as_str()));
    item("runner", list_or(&versions, "unknown"));
    out.push_str("</dl>\n");
    out
}

/// The runs' distinct commits, in the order first met; a commit with uncommitted changes says
/// so.
fn commits_of(manifests: &[&Manifest]) -> Vec<String> {
    let mut commits: Vec<String> = Vec::new();
    for m in manifests {
        let text = match (&m.git_commit, m.git_dirty) {
            (Some(c), Some(true)) => format!("{c} (uncommitted changes)"),
            (Some(c), _) => c.clone(),
            (None, _) => continue,
        };
        if !commits.contains(&text) {
            commits.push(text);
        }
    }
    commits
}

/// How many runs are in each status, statuses in the order first met, each in its colour.
fn status_counts(runs: &[&Run]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for r in runs {
        match counts.iter_mut().find(|(s, _)| *s == r.status_str()) {
            Some((_, n)) => *n += 1,
            None => counts.push((r.status_str(), 1)),
        }
    }
    counts
        .iter()
        .map(|(s, n)| format!("<span class=\"status-{s}\">{n} {s}</span>"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The runs a page leaves out because they could not be read, each with its file and error,
/// and where the last complete page is.
pub(super) fn left_out_banner(
    left_out: &[crate::views::ViewError],
    kept: Option<&std::path::Path>,
) -> String {
    let n = left_out.len();
    let mut out = format!(
        "<div class=\"banner\" role=\"alert\" {}=\"{n}\">\n<p><strong>{n} run{} could not be read and {} left out of this page:</strong></p>\n<ul>\n",
        super::PARTIAL,
        if n == 1 { "" } else { "s" },
        if n == 1 { "is" } else { "are" }
    );
    for e in left_out {
        let _ = writeln!(out, "<li><code>{}</code></li>", esc(&e.to_string()));
    }
    out.push_str("</ul>\n");
    if let Some(kept) = kept {
        let name = kept.file_name().unwrap_or_default().to_string_lossy();
        let _ = writeln!(
            out,
            "<p>The last complete report is <a href=\"{0}\">{0}</a>, beside this file.</p>",
            esc(&name)
        );
    }
    out.push_str("</div>\n");
    out
}

/// The `runner compare` table (same rows, columns and cell text), sortable in the page.
pub(super) fn compare_table(table: &Table) -> String {
    let columns = table.columns();
    let text = text_rows(table);
    // a long table scrolls in its own box, so the charts stay near the top of the page
    let class = if table.rows.len() > 30 {
        "scroll tall"
    } else {
        "scroll"
    };
    let mut out = format!("<div class=\"{class}\"><table class=\"sortable compare\">\n<thead><tr>");
    for c in &columns {
        let _ = write!(out, "<th>{}</th>", esc(c));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    let first_metric = 2 + table.params.len() + usize::from(table.aggregated);
    for (row, cells) in table.rows.iter().zip(text) {
        out.push_str("<tr>");
        for (i, cell) in cells.iter().enumerate() {
            // numeric sort keys: metrics by mean, numeric params by value, n by count
            let key: Option<f64> = if i >= first_metric && i < first_metric + table.metrics().len()
            {
                Some(row.stats[i - first_metric].mean)
            } else if i >= 2 && i < 2 + table.params.len() {
                match &row.params[i - 2] {
                    Some(ParamValue::Int(v)) => Some(*v as f64),
                    Some(ParamValue::Float(v)) => Some(*v),
                    _ => None,
                }
            } else if table.aggregated && i == 2 + table.params.len() {
                Some(row.runs.len() as f64)
            } else {
                None
            };
            let body = if i == 1 {
                run_links(&row.runs)
            } else if i == columns.len() - 1 {
                format!("<span class=\"status-{0}\">{0}</span>", esc(cell))
            } else {
                esc(cell)
            };
            match key {
                Some(v) => {
                    let v = if v.is_finite() {
                        v.to_string()
                    } else {
                        String::new()
                    };
                    let _ = write!(out, "<td class=\"num\" data-v=\"{v}\">{body}</td>");
                }
                None => {
                    let _ = write!(out, "<td>{body}</td>");
                }
            }
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table></div>\n");
    out
}

/// One run's collapsible section: per-class metrics, confusion heat map, spec diff, spec.
// Long: the run's HTML section written in page order.
pub(super) fn run_details(
    run: &Run,
    label: &str,
    files: &RunFiles,
    reference: Option<(&Run, &StoredSpec)>,
) -> String {
    let s = crate::views::compare::BestAndFinal::of(run, crate::views::compare::BestBy::ValLoss);
    let best = match s.best_epoch() {
        Some(e) => format!(
            "best epoch {e}: val loss {}, val acc {}",
            metric(s.values[2]),
            metric(s.values[1])
        ),
        None => "no epochs".into(),
    };
    let best = match run.test {
        Some((loss, acc)) => format!(
            "{best}; test split: loss {}, acc {}",
            metric(loss),
            metric(acc)
        ),
        None => best,
    };
    let best = match run.halted {
        Some(halted) => format!("{halted} by halving · {best}"),
        None => best,
    };
    // the body sits in a <template> until the section is opened (the page's script moves it
    // in): thousands of runs' tables then cost the browser parsing only, not style and layout
    let mut out = format!(
        "<details id=\"{}\"><summary><code>{}</code> {} · <span class=\"status-{2}\">{2}</span> · {}</summary><template>\n",
        run_anchor(&run.experiment, &run.run_id),
        esc(&run.run_id),
        esc(run.status_str()),
        esc(&best),
    );
    if !label.is_empty() && label != run.run_id {
        let _ = writeln!(out, "<p>{}</p>", esc(label));
    }
    if let Some(err) = files.manifest.as_ref().and_then(|m| m.error.as_deref()) {
        let _ = writeln!(out, "<p class=\"status-failed\">error: {}</p>", esc(err));
    }
    match &files.per_class {
        Some(pc) => {
            out.push_str(&per_class_table(pc));
            out.push_str(&confusion_table(pc));
        }
        None => out.push_str(
            "<p class=\"note\">no per_class.parquet / confusion.parquet in this run's folder</p>\n",
        ),
    }
    match (&files.spec, reference) {
        (Some(spec), Some((first, first_spec))) if first.dir != run.dir => {
            let d = stored_spec::diff(first_spec, spec);
            let _ = writeln!(
                out,
                "<h4>spec differences from the first run (<a href=\"#{}\">{}</a>)</h4>",
                run_anchor(&first.experiment, &first.run_id),
                esc(&first.run_id)
            );
            if d.is_empty() {
                out.push_str("<p class=\"note\">none</p>\n");
            } else {
                out.push_str(
                    "<table class=\"diff\"><thead><tr><th>key</th><th>first run</th><th>this run</th></tr></thead><tbody>\n",
                );
                for (k, a, b) in d {
                    let _ = writeln!(
                        out,
                        "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                        esc(k),
                        a.map_or("(absent)".into(), esc),
                        b.map_or("(absent)".into(), esc)
                    );
                }
                out.push_str("</tbody></table>\n");
            }
        }
        (Some(_), _) => {
            out.push_str("<p class=\"note\">the first run: the others' spec differences are against this one</p>\n")
        }
        (None, _) => {}
    }
    match &files.spec {
        Some(spec) => {
            let _ = writeln!(
                out,
                "<details><summary>resolved spec</summary><pre>{}</pre></details>",
                esc(&spec.text)
            );
        }
        None => out.push_str("<p class=\"note\">no spec.toml in this run's folder</p>\n"),
    }
    out.push_str("</template></details>\n");
    out
}

fn per_class_table(pc: &PerClass) -> String {
    let mut out = format!(
        "<h4>per class, epoch {}</h4>\n<table><thead><tr><th>class</th><th>accuracy</th><th>precision</th><th>recall</th><th>support</th></tr></thead><tbody>\n",
        pc.epoch
    );
    for i in 0..pc.class.len() {
        let _ = writeln!(
            out,
            "<tr><td>{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td><td class=\"num\">{}</td></tr>",
            esc(&pc.class[i]),
            metric(pc.accuracy[i]),
            metric(pc.precision[i]),
            metric(pc.recall[i]),
            pc.support[i]
        );
    }
    out.push_str("</tbody></table>\n");
    out
}

/// Counts, shaded by the share of their true class (a row), so a strong diagonal reads at a
/// glance whatever the class sizes.
fn confusion_table(pc: &PerClass) -> String {
    let mut out = String::from(
        "<h4>confusion (rows: true class, columns: predicted)</h4>\n<table class=\"confusion\"><thead><tr><th>true \\ pred</th>",
    );
    for c in &pc.class {
        let _ = write!(out, "<th>{}</th>", esc(c));
    }
    out.push_str("</tr></thead><tbody>\n");
    for (i, row) in pc.confusion.iter().enumerate() {
        let total: i64 = row.iter().sum();
        let _ = write!(out, "<tr><th>{}</th>", esc(&pc.class[i]));
        for &n in row {
            let share = if total > 0 {
                n as f64 / total as f64
            } else {
                0.0
            };
            let ink = if share > 0.6 { "#fff" } else { "#222" };
            let _ = write!(
                out,
                "<td class=\"num\" style=\"background: rgba(31, 119, 180, {share:.3}); color: {ink}\" title=\"{:.1}% of true {}\">{n}</td>",
                share * 100.0,
                esc(&pc.class[i])
            );
        }
        out.push_str("</tr>\n");
    }
    out.push_str("</tbody></table>\n");
    out
}

/// The run ids of a row, each linking to its details below; a seed group as its first run and
/// `+N`, which opens to the others on click (`<details>`: no script), like the terminal's
/// `214480ec4e9d +9`.
fn run_links(runs: &[&Run]) -> String {
    let link = |r: &&Run| {
        format!(
            "<a href=\"#{}\">{}</a>",
            run_anchor(&r.experiment, &r.run_id),
            esc(&r.run_id)
        )
    };
    match runs {
        [first, rest @ ..] if !rest.is_empty() => format!(
            "<details class=\"group\"><summary>{} +{}</summary>{}</details>",
            link(first),
            rest.len(),
            rest.iter().map(link).collect::<Vec<_>>().join(" ")
        ),
        _ => runs.iter().map(link).collect::<Vec<_>>().join(" "),
    }
}
