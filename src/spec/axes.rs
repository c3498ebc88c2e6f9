//! The axes of a sweep: the swept keys, each with one parsed layer per value, grouped into the
//! axes whose product is the runs.

use super::error::Snippet;
use super::layer::Layer;

/// The swept keys, grouped into axes. Runs are the cartesian product of the axes, the first axis
/// varying slowest: grid keys in file order, then zip groups, then random-search trials, then
/// seeds.
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    pub axes: Vec<Axis>,
    /// `[sweep.halving]` when it is on (`min_epochs > 0`): which points train on at each rung.
    pub halving: Option<super::halving::Halving>,
}

impl Sweep {
    /// Number of runs: the product of the axis lengths (1 when nothing is swept).
    pub fn len(&self) -> usize {
        self.axes.iter().map(Axis::len).product()
    }

    /// The seeds of one point: the length of the last axis when it sweeps `experiment.seed`
    /// alone (seeds vary fastest, so a point's seeds sit side by side in plan order).
    pub fn seeds_per_point(&self) -> usize {
        match self.axes.last() {
            Some(axis) if axis.keys.len() == 1 && axis.keys[0].key == "experiment.seed" => {
                axis.len().max(1)
            }
            _ => 1,
        }
    }

    /// The points of the sweep, a point's seeds counted once.
    pub fn points(&self) -> usize {
        self.len() / self.seeds_per_point()
    }

    /// True when nothing is swept (there is still the one base run).
    pub fn is_empty(&self) -> bool {
        self.axes.is_empty()
    }
}

/// Keys that take their `i`-th values together (one key, except in a zip group).
#[derive(Debug, Clone)]
pub struct Axis {
    pub keys: Vec<SweptKey>,
}

impl Axis {
    pub fn len(&self) -> usize {
        self.keys.first().map_or(0, |k| k.values.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[derive(Debug, Clone)]
pub struct SweptKey {
    /// Dotted key, e.g. `regularization.lambda`.
    pub key: String,
    pub values: Vec<toml::Value>,
    /// One parsed layer per value, setting just this key.
    pub(crate) layers: Vec<Layer>,
    pub(crate) key_at: Snippet,
}
