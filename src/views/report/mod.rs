//! `runner report`: one self-contained HTML page about an experiment's runs: a header, the
//! `runner compare` table (sortable), the `runner plot` figures as inline SVG, the preview grid
//! of transformed training images, and one collapsible section per run with its per-class
//! metrics, confusion matrix and resolved spec. No network, no server: it opens from disk.
//!
//! Big sweeps stay quick to open: past `--top` runs the per-epoch charts draw only the best
//! runs and a min–max band of all of them; the table lays out its first rows and appends the
//! others as it is scrolled; each run's section is a summary line until opened, its content one
//! JSON payload for the whole page (`run_data`) that the page's script renders from, with the
//! resolved spec written once and each run's changed lines.

mod page;
mod run_data;
mod sections;

use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::results::layout::{self, ExperimentDir, NotInProject, RunDir};
use crate::results::scan::{self, Run};
use crate::results::stored_spec;
use crate::views::compare::{per_class, BestAndFinal, BestBy, Table};
use crate::views::plot::{self, Curves};
use crate::views::ViewError;
use sections::RunFiles;

/// Images in the preview grid (one row of the grid's 8 columns, twice).
pub(crate) const PREVIEW_IMAGES: usize = 16;

/// What to report on and how.
#[derive(Debug, Clone)]
pub(crate) struct ReportOptions {
    /// An experiment's results folder (`results/<experiment>`).
    pub experiment: PathBuf,
    /// Output file; `None`: `<experiment folder>/report.html`.
    pub out: Option<PathBuf>,
    /// Which epoch of a run is its best (for the table, and which runs the charts of a big
    /// sweep draw).
    pub by: BestBy,
    /// Initial order of the table, as `runner compare --sort`.
    pub sort: Option<String>,
    /// Per-epoch charts draw a line for at most this many runs (the best by `by`) and a
    /// min–max band for all of them.
    pub top: usize,
    /// The project folder the runs' relative dataset paths refer to, for the preview; `None`:
    /// found from the run folder, else the current folder.
    pub project: Option<PathBuf>,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            experiment: PathBuf::new(),
            out: None,
            by: BestBy::ValLoss,
            sort: None,
            top: 10,
            project: None,
        }
    }
}

/// Reads the experiment's runs, writes the report atomically and returns its path, and the
/// runs that could not be read (left out of the page).
pub(crate) fn report(args: &ReportOptions) -> Result<(PathBuf, Vec<ViewError>), ViewError> {
    let dirs = scan::find_run_dirs(&[args.experiment.to_string_lossy()])?;
    let scan::Loaded { runs, unreadable } = scan::load_some_runs(&dirs)?;
    let mut unreadable: Vec<ViewError> = unreadable.into_iter().map(ViewError::from).collect();
    // a run whose spec or per-class tables cannot be read is left out like one whose metrics
    // cannot: named on the page, the others shown
    let read = crate::durable::parallel::map(&runs, read_files);
    let (mut shown, mut files) = (Vec::new(), Vec::new());
    for (run, f) in runs.into_iter().zip(read) {
        match f {
            Ok(f) => {
                shown.push(run);
                files.push(f);
            }
            Err(e) => unreadable.push(e),
        }
    }
    let runs = shown;
    if runs.is_empty() {
        return Err(unreadable.remove(0));
    }
    let mut experiments: Vec<&str> = runs.iter().map(|r| r.experiment.as_str()).collect();
    experiments.sort();
    experiments.dedup();
    if experiments.len() > 1 {
        return Err(ViewError::Column(format!(
            "{} holds runs of {} experiments ({}); give one experiment's folder, e.g. {}",
            args.experiment.display(),
            experiments.len(),
            experiments.join(", "),
            args.experiment.join(experiments[0]).display()
        )));
    }
    let out = match &args.out {
        Some(p) => p.clone(),
        None => ExperimentDir::of_run(&runs[0].dir).report_html(),
    };
    let kept = (!unreadable.is_empty())
        .then(|| keep_complete(&out))
        .transpose()?
        .flatten();
    let html = render(&runs, &files, &unreadable, kept.as_deref(), args)?;
    plot::write_file(&out, html.as_bytes())?;
    if let Some(kept) = &kept {
        tracing::warn!(
            "the last complete report is kept as {}",
            crate::spec::display_path(kept)
        );
    }
    Ok((out, unreadable))
}

/// Marks a page that leaves out runs it could not read (what [`keep_complete`] looks for).
pub(super) const PARTIAL: &str = "data-runner-left-out";

/// Before a page that leaves out runs replaces `out`: a complete page there is copied to
/// `<stem>.last-complete.html` beside it (the last record of the runs now unreadable). Returns
/// that file's path when there is one (kept now or by an earlier partial report).
fn keep_complete(out: &Path) -> Result<Option<PathBuf>, ViewError> {
    let stem = out.file_stem().unwrap_or_default().to_string_lossy();
    let kept = out.with_file_name(format!("{stem}.last-complete.html"));
    match std::fs::read_to_string(out) {
        Ok(page) if !page.contains(PARTIAL) => {
            plot::write_file(&kept, page.as_bytes())?;
            Ok(Some(kept))
        }
        _ => Ok(kept.is_file().then_some(kept)),
    }
}

/// The report of one experiment's runs (`files[i]` read from `runs[i]`'s folder) as an HTML
/// document; `left_out` (runs that could not be read) is named in a banner at the top, with
/// `kept`, the last complete report, if any.
fn render(
    runs: &[Run],
    files: &[RunFiles],
    left_out: &[ViewError],
    kept: Option<&Path>,
    args: &ReportOptions,
) -> Result<String, ViewError> {
    let summaries: Vec<BestAndFinal> = runs.iter().map(|r| BestAndFinal::of(r, args.by)).collect();
    let run_refs: Vec<&Run> = runs.iter().collect();
    let mut table = Table::build(&run_refs, &summaries.iter().collect::<Vec<_>>());
    if let Some(sort) = &args.sort {
        table.sort_by(sort)?;
    }
    // runs in table order: the details follow the table
    let ordered: Vec<&Run> = table
        .rows
        .iter()
        .flat_map(|r| r.runs.iter().copied())
        .collect();
    let file_refs: Vec<&RunFiles> = ordered
        .iter()
        .map(|r| {
            let i = runs.iter().position(|x| std::ptr::eq(x, *r));
            &files[i.expect("a run of the table is one of `runs`")]
        })
        .collect();
    let experiment = ordered.first().map_or("", |r| r.experiment.as_str());

    let mut body = sections::header(experiment, &ordered, &file_refs);
    if !left_out.is_empty() {
        body.push_str(&sections::left_out_banner(left_out, kept));
    }
    body.push_str("<h2>Runs</h2>\n<p class=\"note\">Click a column header to sort by it.</p>\n");
    body.push_str(&sections::compare_table(&table));

    body.push_str("<h2>Curves</h2>\n");
    let curves = Curves::Top {
        k: args.top,
        by: args.by,
    };
    let figures = plot::figures(&ordered, curves);
    let drawn: Vec<String> = figures
        .par_iter()
        .map(|f| {
            figure_markup(f).map_err(|e| ViewError::Plot(format!("cannot draw {}: {e}", f.name)))
        })
        .collect::<Result<_, _>>()?;
    for (f, markup) in figures.iter().zip(&drawn) {
        // one-panel figures two to a row, two-panel ones across the page
        let class = if f.panels.len() == 1 { "half" } else { "full" };
        body.push_str(&format!(
            "<figure class=\"{class}\" id=\"fig-{}\">{markup}</figure>\n",
            page::esc(&f.name),
        ));
    }

    body.push_str("<h2>Training images</h2>\n");
    body.push_str(&preview_section(&ordered, args.project.as_deref()));

    body.push_str("<h2>Each run</h2>\n");
    let differing = plot::differing_keys(&ordered);
    let labels = plot::readable_labels(&ordered, &differing);
    body.push_str(&sections::run_sections(&ordered));
    body.push_str(&run_data::payload(&ordered, &file_refs, &labels));
    Ok(page::document(
        &format!("{experiment}: runner report"),
        &body,
    ))
}

/// Past this size an SVG figure (thousands of points: a sweep's best-vs-parameter scatter) goes
/// in as a PNG: the browser would spend longer on its elements than on the rest of the page.
const SVG_BYTES_INLINE: usize = 500_000;

/// A figure as inline SVG, or as a PNG image when its SVG is bigger than [`SVG_BYTES_INLINE`].
fn figure_markup(figure: &plot::Figure) -> Result<String, String> {
    let svg = plot::svg(figure)?;
    if svg.len() <= SVG_BYTES_INLINE {
        return Ok(page::inline_svg(&svg).to_string());
    }
    let png = plot::png(figure)?;
    Ok(format!(
        "<img alt=\"{}\" src=\"{}\">",
        page::esc(&figure.name),
        page::png_data_uri(&png)
    ))
}

fn read_files(run: &Run) -> Result<RunFiles, ViewError> {
    Ok(RunFiles {
        manifest: crate::views::manifest_of(run)?,
        spec: stored_spec::read(&run.dir)?,
        per_class: per_class::read(run)?,
    })
}

/// The grid of the first run's transformed training images, as `runner preview` draws it, or
/// why there is none (a spec that no longer loads, a dataset that moved).
fn preview_section(runs: &[&Run], project: Option<&Path>) -> String {
    let Some(run) = runs.iter().find(|r| RunDir::at(&r.dir).spec().is_file()) else {
        return "<p class=\"note\">no run has a spec.toml, so there is nothing to preview</p>\n"
            .into();
    };
    match preview_png(run, project) {
        Ok(png) => format!(
            "<p>The first {PREVIEW_IMAGES} training images of epoch 1 of run <code>{}</code>, after its transforms.</p>\n\
             <figure><img alt=\"transformed training images\" src=\"{}\"></figure>\n",
            page::esc(&run.run_id),
            page::png_data_uri(&png)
        ),
        Err(e) => format!(
            "<p class=\"note\">no preview: {}</p>\n",
            page::esc(&e)
        ),
    }
}

fn preview_png(run: &Run, project: Option<&Path>) -> Result<Vec<u8>, String> {
    // results kept outside the project (`--results /tmp/x`): the folder the user runs from
    let cwd = std::env::current_dir().ok();
    let project = project
        .map(Path::to_path_buf)
        .or_else(|| layout::project_of(&run.dir))
        .or(cwd.filter(|d| layout::is_project(d)))
        .ok_or_else(|| {
            NotInProject {
                dir: run.dir.display().to_string(),
                searched_cwd: true,
                flag: true,
            }
            .to_string()
        })?;
    let exp = crate::spec::load_run_spec(&RunDir::at(&run.dir).spec(), &project)?;
    // the images alone: no weights file is read and no model built to draw them
    let dataset = crate::setup::base_dataset(&exp).map_err(|e| e.to_string())?;
    let spec = &exp.base;
    let images = crate::inspect::preview::TrainingImages {
        folder: &dataset.folder,
        transform: &crate::setup::transform(spec),
        bad_images: crate::setup::bad_image_policy(spec),
    };
    crate::inspect::preview::preview_png(&images, PREVIEW_IMAGES, spec.experiment.seed)
        .map_err(|e| e.to_string())
}
