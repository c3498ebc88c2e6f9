//! Sweep expansion: an experiment becomes a list of runs, each with a stable id.

use sha2::{Digest, Sha256};

use crate::number;
use crate::results::schema::ParamValue;
use crate::spec::{display_path, Experiment, RunSpec, SpecError};

/// One run of an experiment.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    /// Position in the sweep, from 0.
    pub index: usize,
    /// Dotted key → value for every swept key, in axis order; includes `experiment.seed` when
    /// seeds are swept. Empty when nothing is swept.
    pub swept: Vec<(String, toml::Value)>,
    pub spec: RunSpec,
    /// Warnings about this run's spec, rendered.
    pub warnings: Vec<String>,
    /// Where its keys were set, for findings about what they name on disk.
    pub at: crate::spec::Locator,
}

/// Every run of the experiment: the cartesian product of the sweep axes, the first axis varying
/// slowest (grid keys in file order, then zip groups, then seeds). Each run is resolved and
/// checked; the first failing one is the error.
pub fn expand(exp: &Experiment) -> Result<Vec<PlannedRun>, SpecError> {
    let lens: Vec<usize> = exp.sweep.axes.iter().map(|a| a.len()).collect();
    let total: usize = lens.iter().product();
    let mut runs = Vec::with_capacity(total);
    for index in 0..total {
        let point = exp.point(&choice(index, &lens))?;
        runs.push(PlannedRun {
            index,
            swept: point.swept,
            spec: point.spec,
            warnings: point.warnings,
            at: point.at,
        });
    }
    Ok(runs)
}

/// Mixed-radix digits of `index`, the last axis varying fastest.
fn choice(mut index: usize, lens: &[usize]) -> Vec<usize> {
    let mut digits = vec![0; lens.len()];
    for (digit, len) in digits.iter_mut().zip(lens).rev() {
        *digit = index % len;
        index /= len;
    }
    digits
}

/// First 12 hex digits of sha256(canonical TOML + "\n" + salt). The salt carries what the spec
/// text does not (a dataset fingerprint, a weights hash), so a changed input gets a new id.
pub fn run_id(spec: &RunSpec, salt: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(spec.to_toml().as_bytes());
    hasher.update(b"\n");
    hasher.update(salt.as_bytes());
    format!("{:x}", hasher.finalize())[..12].to_string()
}

/// What `runner plan` prints: a header, then one line per run with its index, id and swept values.
pub fn render(exp: &Experiment, runs: &[PlannedRun], ids: &[String]) -> String {
    let noun = if runs.len() == 1 { "run" } else { "runs" };
    let mut out = format!(
        "{}: {} {noun} from {}\n",
        exp.name,
        runs.len(),
        display_path(&exp.source)
    );
    let width = runs.len().to_string().len();
    let values: Vec<Vec<(String, ParamValue)>> = runs
        .iter()
        .map(|r| {
            let typed = r
                .swept
                .iter()
                .map(|(k, v)| (k.clone(), ParamValue::from_toml(v)));
            typed.collect()
        })
        .collect();
    // each key's values with the digits that keep them apart
    let write = number::param_columns(values.iter().map(|v| v.as_slice()));
    for ((run, id), values) in runs.iter().zip(ids).zip(&values) {
        let swept = values
            .iter()
            .map(|(k, v)| format!("{k}={}", write(k, v)))
            .collect::<Vec<_>>();
        let swept = if swept.is_empty() {
            "(base)".to_owned()
        } else {
            swept.join(" ")
        };
        // numbered from 1 for people; `index` stays 0-based
        out.push_str(&format!("{:>width$}  {id}  {swept}\n", run.index + 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn choice_counts_with_the_last_axis_fastest() {
        let lens = [2, 3];
        let all: Vec<Vec<usize>> = (0..6).map(|i| choice(i, &lens)).collect();
        assert_eq!(all, [[0, 0], [0, 1], [0, 2], [1, 0], [1, 1], [1, 2]]);
        assert_eq!(choice(0, &[]), Vec::<usize>::new());
    }
}
