//! The report's sections as HTML fragments: header, comparison table, per-run details.

use std::fmt::Write;

use super::page::{esc, run_anchor};
use crate::number::metric;
use crate::results::scan::Run;
use crate::results::schema::ParamValue;
use crate::results::store::Manifest;
use crate::results::stored_spec::StoredSpec;
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

/// Rows of the compare table the page lays out when it opens; the others are appended as the
/// table is scrolled (or all at once to sort it).
pub(super) const ROWS_SHOWN: usize = 100;

/// The element id of the table rows past [`ROWS_SHOWN`].
pub(super) const MORE_ROWS_ID: &str = "compare-more";

/// The `runner compare` table (same rows, columns and cell text), sortable in the page. Past
/// [`ROWS_SHOWN`] rows the others wait as markup in a `<script type="text/html">`: text the
/// browser neither parses nor lays out until the page's script needs them.
pub(super) fn compare_table(table: &Table) -> String {
    let columns = table.columns();
    let text = text_rows(table);
    // a long table scrolls in its own box, so the charts stay near the top of the page
    let class = if table.rows.len() > 30 {
        "scroll tall"
    } else {
        "scroll"
    };
    let more = table.rows.len().saturating_sub(ROWS_SHOWN);
    let mut out = format!("<div class=\"{class}\"><table class=\"sortable compare\"");
    if more > 0 {
        let _ = write!(out, " data-more=\"{MORE_ROWS_ID}\"");
    }
    out.push_str(">\n<thead><tr>");
    for c in &columns {
        let _ = write!(out, "<th>{}</th>", esc(c));
    }
    out.push_str("</tr></thead>\n<tbody>\n");
    for (i, (row, cells)) in table.rows.iter().zip(text).enumerate() {
        if i == ROWS_SHOWN {
            // the markup holds no `</script`: every text in it is escaped
            let _ = write!(
                out,
                "</tbody></table></div>\n<p class=\"note\">The first {ROWS_SHOWN} of {} rows; scroll the table for the others (sorting sorts them all).</p>\n<script type=\"text/html\" id=\"{MORE_ROWS_ID}\">\n",
                table.rows.len()
            );
        }
        table_row(&mut out, table, &columns, row, &cells);
    }
    out.push_str(if more > 0 {
        "</script>\n"
    } else {
        "</tbody></table></div>\n"
    });
    out
}

/// One row of the compare table.
fn table_row(
    out: &mut String,
    table: &Table,
    columns: &[String],
    row: &crate::views::compare::Row,
    cells: &[String],
) {
    let first_metric = 2 + table.params.len() + usize::from(table.aggregated);
    out.push_str("<tr>");
    for (i, cell) in cells.iter().enumerate() {
        // numeric sort keys: metrics by mean, numeric params by value, n by count
        let key: Option<f64> = if i >= first_metric && i < first_metric + table.metrics().len() {
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

/// Runs whose sections the page holds when it opens (the first in table order); the others are
/// created from the payload by the page's script when asked for: by a link to one, or all at
/// once by the button after the last.
pub(super) const SECTIONS_SHOWN: usize = 100;

/// The element id of the button that adds the sections past [`SECTIONS_SHOWN`].
pub(super) const MORE_SECTIONS_ID: &str = "runs-more";

/// One run's collapsible section as its summary line; what it holds (per-class metrics,
/// confusion heat map, spec diff, spec) is the payload's entry `index` (`run_data`), which the
/// page's script renders into it when it is first opened.
pub(super) fn run_details(run: &Run, index: usize) -> String {
    format!(
        "<details id=\"{anchor}\" data-run=\"{index}\"><summary><code>{id}</code> <span class=\"status-{status}\">{status}</span> · {best}</summary></details>\n",
        anchor = run_anchor(&run.experiment, &run.run_id),
        id = esc(&run.run_id),
        status = esc(run.status_str()),
        best = esc(&best_text(run)),
    )
}

/// What a run's summary line says of its best epoch (by val loss), its test split and whether
/// halving stopped it.
pub(super) fn best_text(run: &Run) -> String {
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
    // a run halving stopped says so first
    match run.halted {
        Some(halted) => format!("{halted} by halving · {best}"),
        None => best,
    }
}

/// The sections of `runs` (in page order) the page holds, and the button that adds the others.
pub(super) fn run_sections(runs: &[&Run]) -> String {
    let mut out = String::new();
    for (i, r) in runs.iter().enumerate().take(SECTIONS_SHOWN) {
        out.push_str(&run_details(r, i));
    }
    let more = runs.len().saturating_sub(SECTIONS_SHOWN);
    if more > 0 {
        let _ = writeln!(
            out,
            "<p id=\"{MORE_SECTIONS_ID}\"><button type=\"button\">Show the other {more} runs</button> <span class=\"note\">(a run's link in the table opens its section either way)</span></p>"
        );
    }
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
