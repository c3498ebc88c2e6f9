//! `[sweep]`: which keys vary across runs. Each swept value is parsed up front as a one-key layer
//! through the same strict serde types as a file, so a bad value is reported at its place in the
//! file before anything runs. The product itself is taken in `crate::spec::expand`.

use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

pub use super::axes::{Axis, Sweep, SweptKey};
use super::error::{did_you_mean, Diagnostic, Snippet, Source, SpecError};
use super::layer::{describe_serde_error, Layer};
use super::raw::{RawSpec, RawSweep};
use super::sites::{Site, Sites};
use super::sweep_lists::{AxisEntry, RawAxes, SweptValues};

/// The `[sweep]` tables as the layers set them: each of grid, seeds and zip comes whole from the
/// last layer that set it, with that layer's source.
#[derive(Default)]
pub(crate) struct SweepInput {
    grid: Option<(Arc<Source>, RawAxes)>,
    /// Seeds are swept as `experiment.seed`, named after the `seeds` key in the file.
    seeds: Option<(Arc<Source>, Spanned<String>, SweptValues)>,
    zip: Option<(Arc<Source>, Vec<Spanned<RawAxes>>)>,
    random: super::random_search::RandomInput,
    /// `[sweep.halving]`, merged key by key (checked with the base run, in `halving::resolve`).
    pub(super) halving: Option<super::halving::RawHalving>,
}

impl SweepInput {
    pub(super) fn update(&mut self, layer: &Layer, sweep: RawSweep) {
        if let Some(grid) = sweep.grid {
            self.grid = Some((layer.source.clone(), grid));
        }
        if let Some(seeds) = sweep.seeds {
            let at = layer
                .sites
                .get("sweep.seeds")
                .map_or(0..0, |s| s.key.clone());
            let key = Spanned::new(at, "experiment.seed".to_owned());
            self.seeds = Some((layer.source.clone(), key, seeds));
        }
        if let Some(zip) = sweep.zip {
            self.zip = Some((layer.source.clone(), zip));
        }
        if let Some(random) = sweep.random {
            self.random.update(&layer.source, random);
        }
        super::update::Update::update(&mut self.halving, sweep.halving);
    }

    /// Checks keys and values and builds the axes. `known` lists every dotted key a sweep may set.
    pub(super) fn build(self, known: &[&str]) -> Result<Sweep, SpecError> {
        let mut axes = Vec::new();
        if let Some((source, grid)) = self.grid {
            for (key, values) in in_file_order(grid) {
                let swept = swept_key(&source, key, values, known)?;
                axes.push(Axis { keys: vec![swept] });
            }
        }
        if let Some((source, groups)) = self.zip {
            for group in groups {
                let span = group.span();
                let keys = in_file_order(group.into_inner())
                    .into_iter()
                    .map(|(key, values)| swept_key(&source, key, values, known))
                    .collect::<Result<Vec<_>, _>>()?;
                check_zip_group(&source, span, &keys)?;
                axes.push(Axis { keys });
            }
        }
        // checked before the trials are sampled: their values take memory in proportion
        let seeds = self
            .seeds
            .as_ref()
            .map_or(1, |(_, _, seeds)| seeds.get_ref().len().max(1));
        if let Some((source, trials)) = self.random.trials() {
            let points = axes
                .iter()
                .map(Axis::len)
                .chain([seeds, *trials.get_ref() as usize])
                .fold(1usize, usize::saturating_mul);
            if points > MAX_POINTS {
                let at = Snippet {
                    source: source.clone(),
                    span: trials.span(),
                };
                return Err(too_many_points(at, points, &axes, seeds, *trials.get_ref()));
            }
        }
        if let Some(axis) = self.random.build(known, swept_key)? {
            axes.push(axis);
        }
        if let Some((source, key, seeds)) = self.seeds {
            // `seeds = []` (the default) sweeps nothing, unlike an empty grid list.
            if !seeds.get_ref().is_empty() {
                axes.push(Axis {
                    keys: vec![swept_key(&source, key, seeds, known)?],
                });
            }
        }
        check_disjoint(&axes)?;
        check_points(&axes)?;
        Ok(Sweep {
            axes,
            halving: None,
        })
    }
}

/// The most points one sweep may have (grid × zip × random trials × seeds): each is planned,
/// listed and numbered before anything trains.
pub(super) const MAX_POINTS: usize = 100_000;

/// The product of the axes stays within [`MAX_POINTS`]; the error points at the key whose axis
/// takes the product over it.
fn check_points(axes: &[Axis]) -> Result<(), SpecError> {
    let mut points = 1usize;
    for axis in axes {
        points = points.saturating_mul(axis.len());
        if points > MAX_POINTS {
            let total = axes
                .iter()
                .map(Axis::len)
                .fold(1usize, usize::saturating_mul);
            let at = axis.keys[0].key_at.clone();
            let factors = axes
                .iter()
                .map(|a| format!("{} (`{}`)", a.len(), a.keys[0].key))
                .collect::<Vec<_>>();
            return Err(sweep_error(
                Diagnostic::error(format!(
                    "too many sweep points: {total}, at most {MAX_POINTS}"
                ))
                .at(Some(at))
                .label(format!("this axis takes the sweep to {points} points"))
                .note(format!("points = {}", factors.join(" × ")))
                .help(format!(
                    "sweep fewer values, or split the sweep into experiments of at most {MAX_POINTS} points"
                )),
            ));
        }
    }
    Ok(())
}

fn too_many_points(
    at: Snippet,
    points: usize,
    axes: &[Axis],
    seeds: usize,
    trials: u32,
) -> SpecError {
    let mut factors: Vec<String> = axes
        .iter()
        .map(|a| format!("{} (`{}`)", a.len(), a.keys[0].key))
        .collect();
    factors.push(format!("{trials} trials"));
    if seeds > 1 {
        factors.push(format!("{seeds} seeds"));
    }
    sweep_error(
        Diagnostic::error(format!(
            "too many sweep points: {points}, at most {MAX_POINTS}"
        ))
        .at(Some(at))
        .label(format!("{trials} trials make {points} points"))
        .note(format!("points = {}", factors.join(" × ")))
        .help(format!(
            "lower `trials`, or split the search into experiments of at most {MAX_POINTS} points"
        )),
    )
}

/// Dotted key → values, in the order the user wrote them (serde hands map keys back sorted by
/// name; their spans restore the order). Nested tables from unquoted dotted keys are flattened.
fn in_file_order(axes: RawAxes) -> Vec<(Spanned<String>, SweptValues)> {
    fn flatten(
        prefix: Option<&Spanned<String>>,
        axes: RawAxes,
        out: &mut Vec<(Spanned<String>, SweptValues)>,
    ) {
        for (key, entry) in axes {
            let key = match prefix {
                Some(p) => Spanned::new(
                    p.span().start..key.span().end,
                    format!("{}.{}", p.get_ref(), key.get_ref()),
                ),
                None => key,
            };
            let span = entry.span();
            match entry.into_inner() {
                AxisEntry::Values(values) => out.push((key, Spanned::new(span, values))),
                AxisEntry::Nested(inner) => flatten(Some(&key), inner, out),
            }
        }
    }
    let mut flat = Vec::new();
    flatten(None, axes, &mut flat);
    flat.sort_by_key(|(key, _)| key.span().start);
    flat
}

fn sweep_error(diag: Diagnostic) -> SpecError {
    SpecError::Sweep(Box::new(diag))
}

fn swept_key(
    source: &Arc<Source>,
    key: Spanned<String>,
    values: SweptValues,
    known: &[&str],
) -> Result<SweptKey, SpecError> {
    let key_at = Snippet {
        source: source.clone(),
        span: key.span(),
    };
    let name = key.into_inner();
    if !known.contains(&name.as_str()) {
        let mut diag = Diagnostic::error(format!("unknown sweep key `{name}`"))
            .at(Some(key_at))
            .label("expected a dotted key of the spec, such as `regularization.lambda`");
        if let Some(best) = did_you_mean(&name, known.iter().copied()) {
            diag = diag.help(format!("did you mean `{best}`?"));
        }
        return Err(sweep_error(diag));
    }
    if values.get_ref().is_empty() {
        let at = Snippet {
            source: source.clone(),
            span: values.span(),
        };
        let diag = Diagnostic::error(format!("no values to sweep for `{name}`"))
            .at(Some(at))
            .label("expected at least one value");
        return Err(sweep_error(diag));
    }
    let mut out = SweptKey {
        key: name,
        values: Vec::new(),
        layers: Vec::new(),
        key_at,
    };
    for value in values.into_inner() {
        let span = value.span();
        let value = value.into_inner();
        out.layers
            .push(value_layer(source, &out.key, &out.key_at, span, &value)?);
        out.values.push(value);
    }
    Ok(out)
}

/// A layer setting only `key = value`, its site pointing at the value inside the sweep table.
fn value_layer(
    source: &Arc<Source>,
    key: &str,
    key_at: &Snippet,
    span: std::ops::Range<usize>,
    value: &toml::Value,
) -> Result<Layer, SpecError> {
    let at = Snippet {
        source: source.clone(),
        span: span.clone(),
    };
    let mut table = value.clone();
    for part in key.rsplit('.') {
        table = toml::Value::Table(toml::Table::from_iter([(part.to_owned(), table)]));
    }
    let mut raw = RawSpec::deserialize(table).map_err(|e| {
        let diag = describe_serde_error(e.message(), Some(key), Some(at.clone()), source)
            .note(format!("in the values swept for `{key}`"));
        sweep_error(diag)
    })?;
    raw.resolve_paths(&source.base_dir());
    let mut sites = Sites::default();
    sites.insert(
        key.to_owned(),
        Site {
            source: source.clone(),
            key: key_at.span.clone(),
            value: span,
        },
    );
    Ok(Layer {
        source: source.clone(),
        raw,
        sites,
    })
}

fn check_zip_group(
    source: &Arc<Source>,
    span: std::ops::Range<usize>,
    keys: &[SweptKey],
) -> Result<(), SpecError> {
    let at = Snippet {
        source: source.clone(),
        span,
    };
    if keys.is_empty() {
        let diag = Diagnostic::error("empty zip group")
            .at(Some(at))
            .label("expected at least one key");
        return Err(sweep_error(diag));
    }
    let lengths: Vec<usize> = keys.iter().map(|k| k.values.len()).collect();
    if lengths.iter().any(|&n| n != lengths[0]) {
        let listed = keys
            .iter()
            .map(|k| format!("`{}` has {}", k.key, k.values.len()))
            .collect::<Vec<_>>()
            .join(", ");
        let diag = Diagnostic::error("zip group lists differ in length")
            .at(Some(at))
            .label(format!("expected lists of equal length: {listed}"))
            .note("keys in a zip group move together, one value of each per run");
        return Err(sweep_error(diag));
    }
    Ok(())
}

/// A key swept by two axes would have two values in one run.
fn check_disjoint(axes: &[Axis]) -> Result<(), SpecError> {
    let keys: Vec<&SweptKey> = axes.iter().flat_map(|a| &a.keys).collect();
    for (i, later) in keys.iter().enumerate() {
        if let Some(earlier) = keys[..i].iter().find(|k| k.key == later.key) {
            let diag = Diagnostic::error(format!("`{}` is swept twice", later.key))
                .at(Some(later.key_at.clone()))
                .label("swept again here")
                .note(format!("first swept at {}", earlier.key_at.location()));
            return Err(sweep_error(diag));
        }
    }
    Ok(())
}
