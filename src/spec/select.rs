//! Which points of a sweep one invocation trains: `--index I` (the numbering `runner plan`
//! prints, from 1), `--index env` (a scheduler's task index) or `--shard I/N`.

use std::str::FromStr;

/// A selection as the user wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selection {
    /// One point, numbered from 1.
    Index(usize),
    /// One point, read from `SLURM_ARRAY_TASK_ID` (from 1, as `runner slurm` numbers the
    /// array) or `JOB_COMPLETION_INDEX` (Kubernetes Indexed Jobs, from 0).
    Env,
    /// Every `of`-th point starting at `first` (both from 1).
    Shard { first: usize, of: usize },
}

impl FromStr for Selection {
    type Err = String;

    /// Parses `--index`'s value.
    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if s == "env" {
            return Ok(Selection::Env);
        }
        s.parse::<usize>()
            .ok()
            .filter(|&i| i >= 1)
            .map(Selection::Index)
            .ok_or_else(|| {
                format!("expected a sweep point number (from 1, as `runner plan` numbers them) or `env`, found `{s}`")
            })
    }
}

/// Parses `--shard`'s value `I/N`.
pub(crate) fn parse_shard(s: &str) -> Result<Selection, String> {
    let bad = || format!("expected I/N with 1 <= I <= N (e.g. 2/4), found `{s}`");
    let (i, n) = s.trim().split_once('/').ok_or_else(bad)?;
    let (first, of) = (
        i.trim().parse::<usize>().map_err(|_| bad())?,
        n.trim().parse::<usize>().map_err(|_| bad())?,
    );
    if first == 0 || first > of {
        return Err(bad());
    }
    Ok(Selection::Shard { first, of })
}

/// The selected 0-based point positions of a sweep of `total` points, and a line saying where
/// an index from the environment came from. An index outside the sweep is an error naming the
/// valid range.
pub(crate) fn resolve(
    sel: &Selection,
    total: usize,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(Vec<usize>, Option<String>), String> {
    let in_range = |i: usize, what: &str| {
        if (1..=total).contains(&i) {
            Ok(vec![i - 1])
        } else {
            Err(format!(
                "{what} is out of range: the sweep has {total} point{}, numbered 1..={total} (see `runner plan`)",
                if total == 1 { "" } else { "s" }
            ))
        }
    };
    match sel {
        Selection::Index(i) => Ok((in_range(*i, &format!("--index {i}"))?, None)),
        Selection::Shard { first, of } => Ok(((first - 1..total).step_by(*of).collect(), None)),
        Selection::Env => {
            let read = |var: &str| -> Result<Option<usize>, String> {
                match env(var).filter(|v| !v.trim().is_empty()) {
                    None => Ok(None),
                    Some(v) => v
                        .trim()
                        .parse::<usize>()
                        .map(Some)
                        .map_err(|_| format!("--index env: {var}={v} is not a whole number")),
                }
            };
            if let Some(i) = read("SLURM_ARRAY_TASK_ID")? {
                let what = format!("--index env (SLURM_ARRAY_TASK_ID={i})");
                let picked = in_range(i, &what)?;
                return Ok((picked, Some(format!("{what}: sweep point {i} of {total}"))));
            }
            if let Some(i) = read("JOB_COMPLETION_INDEX")? {
                let what = format!("--index env (JOB_COMPLETION_INDEX={i}, from 0)");
                let picked = in_range(i + 1, &what)?;
                return Ok((
                    picked,
                    Some(format!("{what}: sweep point {} of {total}", i + 1)),
                ));
            }
            Err("--index env: neither SLURM_ARRAY_TASK_ID (Slurm job arrays) nor JOB_COMPLETION_INDEX (Kubernetes Indexed Jobs) is set".into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn none(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn indices_and_shards_pick_points_by_the_plan_numbering() {
        let idx: Selection = "3".parse().unwrap();
        assert_eq!(resolve(&idx, 4, none).unwrap().0, vec![2]);
        let shard = parse_shard("2/3").unwrap();
        assert_eq!(resolve(&shard, 7, none).unwrap().0, vec![1, 4]);
        let shard = parse_shard("4/4").unwrap();
        assert_eq!(resolve(&shard, 2, none).unwrap().0, Vec::<usize>::new());
    }

    #[test]
    fn bad_selections_name_the_valid_range() {
        let e = resolve(&Selection::Index(5), 4, none).unwrap_err();
        assert_eq!(
            e,
            "--index 5 is out of range: the sweep has 4 points, numbered 1..=4 (see `runner plan`)"
        );
        assert!("0".parse::<Selection>().is_err());
        assert!("x".parse::<Selection>().is_err());
        for bad in ["0/3", "4/3", "1", "a/b"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn env_reads_slurm_first_then_kubernetes_from_zero() {
        let slurm = |k: &str| (k == "SLURM_ARRAY_TASK_ID").then(|| "2".to_string());
        let (picked, said) = resolve(&Selection::Env, 4, slurm).unwrap();
        assert_eq!(picked, vec![1]);
        assert!(said.unwrap().contains("SLURM_ARRAY_TASK_ID=2"));
        let k8s = |k: &str| (k == "JOB_COMPLETION_INDEX").then(|| "0".to_string());
        assert_eq!(resolve(&Selection::Env, 4, k8s).unwrap().0, vec![0]);
        let k8s_out = |k: &str| (k == "JOB_COMPLETION_INDEX").then(|| "4".to_string());
        let e = resolve(&Selection::Env, 4, k8s_out).unwrap_err();
        assert!(
            e.contains("JOB_COMPLETION_INDEX=4, from 0) is out of range"),
            "{e}"
        );
        assert!(resolve(&Selection::Env, 4, none)
            .unwrap_err()
            .contains("neither"));
    }
}
