//! `[sweep.random]`: random search. `trials` points are sampled from `[sweep.random.space]`, one
//! distribution per dotted key, seeded by `seed`: the same spec always samples the same points.
//! The trials form one sweep axis whose keys move together (like a zip group), so they combine
//! with grid axes and seeds as a product; every sampled value goes through the same strict
//! parsing and checks as a value written in a grid.

use std::sync::Arc;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use toml::Spanned;

use super::axes::{Axis, SweptKey};
use super::error::{Diagnostic, Snippet, Source, SpecError};
use super::random_space::{Distribution, RawRandom, RawSpace, SpaceEntry};
use super::sweep_lists::SweptValues;

/// Sampled floats keep this many significant digits, so that `runner plan` prints them short
/// and a value can be passed back with `--set` exactly.
const DIGITS: usize = 6;

/// The merged `[sweep.random]`: each of its keys from the last layer that set it.
#[derive(Default)]
pub(crate) struct RandomInput {
    trials: Option<(Arc<Source>, Spanned<u32>)>,
    seed: Option<u64>,
    space: Option<(Arc<Source>, RawSpace)>,
}

impl RandomInput {
    pub(super) fn update(&mut self, source: &Arc<Source>, raw: RawRandom) {
        if let Some(t) = raw.trials {
            self.trials = Some((source.clone(), t));
        }
        if raw.seed.is_some() {
            self.seed = raw.seed;
        }
        if let Some(space) = raw.space {
            self.space = Some((source.clone(), space));
        }
    }

    /// `trials` as written, and where.
    pub(super) fn trials(&self) -> Option<(&Arc<Source>, &Spanned<u32>)> {
        self.trials.as_ref().map(|(source, t)| (source, t))
    }

    /// The random-search axis, or `None` when `trials = 0` and the space is empty.
    pub(super) fn build(
        self,
        known: &[&str],
        swept_key: impl Fn(
            &Arc<Source>,
            Spanned<String>,
            SweptValues,
            &[&str],
        ) -> Result<SweptKey, SpecError>,
    ) -> Result<Option<Axis>, SpecError> {
        let err = |d: Diagnostic| SpecError::Sweep(Box::new(d));
        let trials = self.trials.as_ref().map_or(0, |(_, t)| *t.get_ref());
        let (space_source, space) = match self.space {
            Some((source, space)) if !space.is_empty() => (source, space),
            _ => {
                if trials > 0 {
                    let (source, t) = self.trials.as_ref().expect("trials > 0 was set");
                    return Err(err(Diagnostic::error("random search without a space")
                        .at(Some(Snippet {
                            source: source.clone(),
                            span: t.span(),
                        }))
                        .label(format!("{trials} trials, but [sweep.random.space] names no key to sample"))
                        .help("add e.g. `\"optimizer.lr\" = { log_uniform = [1e-4, 1e-1] }` under [sweep.random.space]")));
                }
                return Ok(None);
            }
        };
        let entries = flatten(space);
        if trials == 0 {
            let (key, _) = &entries[0];
            return Err(err(Diagnostic::error("random search without trials")
                .at(Some(Snippet {
                    source: space_source.clone(),
                    span: key.span(),
                }))
                .label("[sweep.random.space] is set but sweep.random.trials is 0")
                .help("set `trials = N` under [sweep.random]")));
        }
        let seed = self.seed.unwrap_or(0);
        let mut keys = Vec::new();
        for (key, entry) in entries {
            let at = Snippet {
                source: space_source.clone(),
                span: entry.span(),
            };
            let values = sample(key.get_ref(), &entry, trials as usize, seed).map_err(|label| {
                err(
                    Diagnostic::error(format!("invalid distribution for `{}`", key.get_ref()))
                        .at(Some(at.clone()))
                        .label(label),
                )
            })?;
            let values = Spanned::new(entry.span(), values);
            keys.push(swept_key(&space_source, key, values, known)?);
        }
        Ok(Some(Axis { keys }))
    }
}

/// Dotted key → distribution, in file order (nested tables of unquoted dotted keys flattened).
fn flatten(space: RawSpace) -> Vec<(Spanned<String>, Spanned<Distribution>)> {
    fn walk(
        prefix: Option<&Spanned<String>>,
        space: RawSpace,
        out: &mut Vec<(Spanned<String>, Spanned<Distribution>)>,
    ) {
        for (key, entry) in space {
            let key = match prefix {
                Some(p) => Spanned::new(
                    p.span().start..key.span().end.max(p.span().end),
                    format!("{}.{}", p.get_ref(), key.get_ref()),
                ),
                None => key,
            };
            let span = entry.span();
            match entry.into_inner() {
                SpaceEntry::Dist(d) => out.push((key, Spanned::new(span, d))),
                SpaceEntry::Nested(inner) => walk(Some(&key), inner, out),
            }
        }
    }
    let mut out = Vec::new();
    walk(None, space, &mut out);
    out.sort_by_key(|(_, d)| d.span().start);
    out
}

/// `trials` values of one key. Each key draws from its own stream, seeded by (seed, key), so
/// adding a key to the space leaves the other keys' samples as they were.
/// A sampled value points at its distribution (a chosen one at itself), so that a point failing
/// the checks is reported there.
fn sample(
    key: &str,
    dist: &Spanned<Distribution>,
    trials: usize,
    seed: u64,
) -> Result<Vec<Spanned<toml::Value>>, String> {
    let at = dist.span();
    let dist = dist.get_ref();
    let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, key));
    let ordered = |[a, b]: [f64; 2], what: &str| -> Result<(), String> {
        if !(a.is_finite() && b.is_finite() && a <= b) {
            return Err(format!(
                "expected {what} [a, b] with a <= b, found [{a}, {b}]"
            ));
        }
        Ok(())
    };
    let whole = |v: toml::Value| Spanned::new(at.clone(), v);
    match dist {
        Distribution::Uniform(r) => {
            ordered(*r, "uniform")?;
            let [a, b] = *r;
            Ok((0..trials)
                .map(|_| {
                    let x = round(a + (b - a) * rng.gen::<f64>()).clamp(a, b);
                    whole(toml::Value::Float(x))
                })
                .collect())
        }
        Distribution::LogUniform(r) => {
            ordered(*r, "log_uniform")?;
            let [a, b] = *r;
            if a <= 0.0 {
                return Err(format!(
                    "expected log_uniform [a, b] with 0 < a <= b, found [{a}, {b}]"
                ));
            }
            let (la, lb) = (a.ln(), b.ln());
            Ok((0..trials)
                .map(|_| {
                    let x = round((la + (lb - la) * rng.gen::<f64>()).exp()).clamp(a, b);
                    whole(toml::Value::Float(x))
                })
                .collect())
        }
        Distribution::IntUniform([a, b]) => {
            if a > b {
                return Err(format!(
                    "expected int_uniform [a, b] with a <= b, found [{a}, {b}]"
                ));
            }
            Ok((0..trials)
                .map(|_| whole(toml::Value::Integer(rng.gen_range(*a..=*b))))
                .collect())
        }
        Distribution::Choice(options) => {
            if options.is_empty() {
                return Err("expected at least one value to choose from".to_owned());
            }
            Ok((0..trials)
                .map(|_| options[rng.gen_range(0..options.len())].clone())
                .collect())
        }
    }
}

/// `x` to [`DIGITS`] significant digits.
fn round(x: f64) -> f64 {
    format!("{x:.*e}", DIGITS - 1).parse().unwrap_or(x)
}

/// FNV-1a of the key, mixed with the seed (SplitMix64's finaliser).
fn stream_seed(seed: u64, key: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
    }
    let mut z = seed ^ h;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_are_seeded_in_range_and_rounded() {
        let d = Spanned::new(0..0, Distribution::LogUniform([1e-4, 1e-1]));
        let a = sample("optimizer.lr", &d, 8, 3).unwrap();
        let b = sample("optimizer.lr", &d, 8, 3).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, sample("optimizer.lr", &d, 8, 4).unwrap());
        for v in &a {
            let x = v.get_ref().as_float().unwrap();
            assert!((1e-4..=1e-1).contains(&x), "{x}");
            assert_eq!(round(x), x);
        }
        let d = |d: Distribution| Spanned::new(0..0, d);
        let ints = sample(
            "train.batch_size",
            &d(Distribution::IntUniform([2, 4])),
            50,
            0,
        )
        .unwrap();
        let ints: Vec<i64> = ints
            .iter()
            .map(|v| v.get_ref().as_integer().unwrap())
            .collect();
        assert!(ints.iter().all(|i| (2..=4).contains(i)));
        assert!([2, 3, 4].iter().all(|i| ints.contains(i)), "{ints:?}");
        assert!(sample("k", &d(Distribution::Uniform([1.0, 0.0])), 1, 0).is_err());
        assert!(sample("k", &d(Distribution::LogUniform([0.0, 1.0])), 1, 0).is_err());
    }
}
