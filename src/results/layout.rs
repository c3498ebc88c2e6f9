//! Where everything of the results tree lives: every file and folder name of it is written here
//! once, and everything else asks these types for its paths.
//!
//! ```text
//! <results>/                        ResultsRoot
//!   .cache/                         feature cache (unless `cache.dir` moves it)
//!   .plans/<experiment>.json        the last plan of each experiment
//!   <experiment>/                   ExperimentDir
//!     .compare-cache.{runs,epochs}.parquet
//!     plots/  report.html  preview.png  slurm/
//!     halving.json  halving.lock    successive halving's decisions; its lock, while one is taken
//!     <run_id>/                     RunDir
//!       metrics.parquet  per_class.parquet  confusion.parquet
//!       test_metrics.parquet  test_per_class.parquet  test_confusion.parquet
//!       spec.toml  manifest.json  model.safetensors  lock
//!       checkpoint.safetensors  checkpoint-best.safetensors   (while unfinished)
//!       evaluate/<data>/{metrics,per_class,confusion}.parquet
//! ```
//!
//! The types hold paths only; what is in the files is `store`'s and `schema`'s business.

use std::path::{Path, PathBuf};

/// The file that makes a folder a project (the folder stored paths are relative to).
const PROJECT_MARKER: &str = "pipeline/defaults.toml";

const CACHE: &str = ".cache";
const PLANS: &str = ".plans";
const COMPARE_CACHE_RUNS: &str = ".compare-cache.runs.parquet";
const COMPARE_CACHE_EPOCHS: &str = ".compare-cache.epochs.parquet";
const PLOTS: &str = "plots";
const REPORT: &str = "report.html";
const PREVIEW: &str = "preview.png";
const SLURM: &str = "slurm";
const BACKBONES: &str = ".backbones";
const HALVING: &str = "halving.json";
const HALVING_LOCK: &str = "halving.lock";

const METRICS: &str = "metrics.parquet";
const PER_CLASS: &str = "per_class.parquet";
const CONFUSION: &str = "confusion.parquet";
/// The prefix of the test split's tables.
const TEST: &str = "test_";
const SPEC: &str = "spec.toml";
/// Which image went to which split, for a dataset from a manifest or a split made from fractions.
const SPLIT_LIST: &str = "split.csv";
const MANIFEST: &str = "manifest.json";
const MODEL: &str = "model.safetensors";
const CHECKPOINT: &str = "checkpoint.safetensors";
const BEST_WEIGHTS: &str = "checkpoint-best.safetensors";
const LOCK: &str = "lock";
const EVALUATE: &str = "evaluate";

/// A results folder (`--results`, `results/` by default).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultsRoot {
    path: PathBuf,
}

impl ResultsRoot {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The feature cache's default folder.
    pub fn cache(&self) -> PathBuf {
        self.path.join(CACHE)
    }

    /// The folder of the experiments' plans.
    pub(crate) fn plans(&self) -> PathBuf {
        self.path.join(PLANS)
    }

    /// The plan of one experiment.
    pub fn plan(&self, experiment: &str) -> PathBuf {
        self.plans().join(format!("{experiment}.json"))
    }

    pub fn experiment(&self, name: &str) -> ExperimentDir {
        ExperimentDir::at(self.path.join(name))
    }
}

/// One experiment's folder: its runs, and what the views write beside them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExperimentDir {
    path: PathBuf,
}

impl ExperimentDir {
    /// The experiment folder at `path` (`results/<experiment>`).
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    /// The experiment folder a run folder sits in.
    pub fn of_run(run: &Path) -> Self {
        Self::at(run.parent().unwrap_or(Path::new(".")))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn run(&self, run_id: &str) -> RunDir {
        RunDir::at(self.path.join(run_id))
    }

    /// `runner plot`'s figures.
    pub fn plots(&self) -> PathBuf {
        self.path.join(PLOTS)
    }

    /// `runner report`'s page.
    pub fn report_html(&self) -> PathBuf {
        self.path.join(REPORT)
    }

    /// `runner preview`'s grid.
    pub fn preview_png(&self) -> PathBuf {
        self.path.join(PREVIEW)
    }

    /// `runner slurm`'s scripts, and `logs/` for the tasks' output.
    pub fn slurm(&self) -> PathBuf {
        self.path.join(SLURM)
    }

    /// The frozen backbones its runs share, one file each: a run that trained only a head on
    /// a frozen backbone keeps the head and names its backbone's file here.
    pub fn backbones(&self) -> PathBuf {
        self.path.join(BACKBONES)
    }

    /// Successive halving's decisions, rung by rung, each written before it takes effect.
    pub fn halving(&self) -> PathBuf {
        self.path.join(HALVING)
    }

    /// The lock every process of the experiment takes to decide a halving rung, so that tasks
    /// running at once decide each rung once.
    pub fn halving_lock(&self) -> PathBuf {
        self.path.join(HALVING_LOCK)
    }

    /// The compare cache: one row per run.
    pub fn compare_cache_runs(&self) -> PathBuf {
        self.path.join(COMPARE_CACHE_RUNS)
    }

    /// The compare cache: one row per epoch.
    pub fn compare_cache_epochs(&self) -> PathBuf {
        self.path.join(COMPARE_CACHE_EPOCHS)
    }

    /// The experiment's name: its folder's name.
    pub fn name(&self) -> Option<&str> {
        self.path.file_name().and_then(|n| n.to_str())
    }
}

/// The three tables of a score: a run's epochs, its test split, one evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    pub metrics: PathBuf,
    pub per_class: PathBuf,
    pub confusion: PathBuf,
}

impl Tables {
    fn in_dir(dir: &Path, prefix: &str) -> Self {
        Self {
            metrics: dir.join(format!("{prefix}{METRICS}")),
            per_class: dir.join(format!("{prefix}{PER_CLASS}")),
            confusion: dir.join(format!("{prefix}{CONFUSION}")),
        }
    }
}

/// One run's folder (`results/<experiment>/<run_id>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    pub fn new(results: &Path, experiment: &str, run_id: &str) -> Self {
        ResultsRoot::new(results).experiment(experiment).run(run_id)
    }

    /// The run folder at `path`.
    pub fn at(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether `path` names one of the files that mark a run folder (its metrics or manifest).
    pub(crate) fn is_marker(path: &Path) -> bool {
        matches!(
            path.file_name().and_then(|n| n.to_str()),
            Some(METRICS | MANIFEST)
        )
    }

    /// Whether this folder is a run's: it has metrics or a manifest.
    pub(crate) fn looks_like_run(&self) -> bool {
        self.metrics().is_file() || self.manifest().is_file()
    }

    /// Every epoch's metrics.
    pub fn metrics(&self) -> PathBuf {
        self.path.join(METRICS)
    }

    /// The best epoch's per-class metrics.
    pub fn per_class(&self) -> PathBuf {
        self.path.join(PER_CLASS)
    }

    /// The best epoch's confusion matrix.
    pub fn confusion(&self) -> PathBuf {
        self.path.join(CONFUSION)
    }

    /// The three tables of the run's epochs.
    pub fn tables(&self) -> Tables {
        Tables::in_dir(&self.path, "")
    }

    /// The three tables of the kept model on the test split.
    pub fn test_tables(&self) -> Tables {
        Tables::in_dir(&self.path, TEST)
    }

    /// The resolved spec the run was trained with.
    pub fn spec(&self) -> PathBuf {
        self.path.join(SPEC)
    }

    pub fn manifest(&self) -> PathBuf {
        self.path.join(MANIFEST)
    }

    /// `path,label,split` of every image the run uses, when its dataset is a manifest or its
    /// split was made from fractions (`manifest.json`'s `split_sha256` is its hash).
    pub fn split_list(&self) -> PathBuf {
        self.path.join(SPLIT_LIST)
    }

    /// The model the run keeps once it is done.
    pub fn model(&self) -> PathBuf {
        self.path.join(MODEL)
    }

    /// The checkpoint of an unfinished run.
    pub fn checkpoint(&self) -> PathBuf {
        self.path.join(CHECKPOINT)
    }

    /// The best epoch's weights of an unfinished run with early stopping and `restore_best`.
    pub fn best_weights(&self) -> PathBuf {
        self.path.join(BEST_WEIGHTS)
    }

    /// The run's lock file.
    pub fn lock(&self) -> PathBuf {
        self.path.join(LOCK)
    }

    /// The folder of every `runner evaluate` score of the run.
    pub fn evaluations(&self) -> PathBuf {
        self.path.join(EVALUATE)
    }

    /// The folder of `runner evaluate`'s scores on the data folder named `slug`.
    pub fn evaluate(&self, slug: &str) -> EvaluationDir {
        EvaluationDir {
            path: self.evaluations().join(slug),
        }
    }
}

/// `runner evaluate`'s tables of a run on one data folder (`<run>/evaluate/<data>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvaluationDir {
    path: PathBuf,
}

impl EvaluationDir {
    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn tables(&self) -> Tables {
        Tables::in_dir(&self.path, "")
    }
}

/// Whether `dir` is a project folder (it has `pipeline/defaults.toml`).
pub(crate) fn is_project(dir: &Path) -> bool {
    dir.join(PROJECT_MARKER).is_file()
}

/// The project folder a run belongs to: the nearest ancestor with `pipeline/defaults.toml`.
pub(crate) fn project_of(run_dir: &Path) -> Option<PathBuf> {
    let abs = std::fs::canonicalize(run_dir).ok()?;
    abs.ancestors()
        .find(|d| is_project(d))
        .map(Path::to_path_buf)
}

/// Why a run's stored paths cannot be resolved: no project folder was found for it.
#[derive(Debug, Clone)]
pub(crate) struct NotInProject {
    /// The run folder, as the message shows it.
    pub dir: String,
    /// The current folder was looked at too.
    pub searched_cwd: bool,
    /// The command takes `--project`.
    pub flag: bool,
}

impl std::fmt::Display for NotInProject {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is not inside a project (no {PROJECT_MARKER} above it{})",
            self.dir,
            if self.searched_cwd {
                " or in the current folder"
            } else {
                ""
            }
        )?;
        if self.flag {
            f.write_str(": pass --project")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_file_of_a_run_once() {
        let run = ResultsRoot::new("results").experiment("e").run("abc");
        assert_eq!(run.path(), Path::new("results/e/abc"));
        assert_eq!(run.metrics(), Path::new("results/e/abc/metrics.parquet"));
        assert_eq!(
            run.test_tables().confusion,
            Path::new("results/e/abc/test_confusion.parquet")
        );
        assert_eq!(
            run.evaluate("val").tables().per_class,
            Path::new("results/e/abc/evaluate/val/per_class.parquet")
        );
        assert_eq!(run.split_list(), Path::new("results/e/abc/split.csv"));
        assert!(RunDir::is_marker(&run.manifest()));
        assert!(!RunDir::is_marker(&run.spec()));
        assert_eq!(
            ExperimentDir::of_run(run.path()).report_html(),
            Path::new("results/e/report.html")
        );
    }

    #[test]
    fn says_where_it_looked_for_a_project() {
        let e = NotInProject {
            dir: "r/x".into(),
            searched_cwd: true,
            flag: true,
        };
        assert_eq!(
            e.to_string(),
            "r/x is not inside a project (no pipeline/defaults.toml above it or in the current folder): pass --project"
        );
    }
}
