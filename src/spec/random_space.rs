//! `[sweep.random]` as a layer writes it: `trials`, `seed` and `[sweep.random.space]`, one
//! distribution per dotted key (see `random_search` for the sampling).

use std::collections::BTreeMap;

use serde::de::{Error as _, MapAccess, Visitor};
use serde::Deserialize;
use toml::Spanned;

pub(super) const DISTRIBUTIONS: [&str; 4] = ["uniform", "log_uniform", "int_uniform", "choice"];

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRandom {
    /// Number of sampled points; 0 = no random search.
    pub trials: Option<Spanned<u32>>,
    pub seed: Option<u64>,
    pub space: Option<RawSpace>,
}

/// Dotted key → its distribution; unquoted dotted keys come as nested tables.
pub(super) type RawSpace = BTreeMap<Spanned<String>, Spanned<SpaceEntry>>;

#[derive(Debug, Clone)]
pub(crate) enum SpaceEntry {
    Dist(Distribution),
    Nested(RawSpace),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Distribution {
    Uniform([f64; 2]),
    LogUniform([f64; 2]),
    IntUniform([i64; 2]),
    Choice(Vec<Spanned<toml::Value>>),
}

impl<'de> Deserialize<'de> for SpaceEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(EntryVisitor)
    }
}

struct EntryVisitor;

impl<'de> Visitor<'de> for EntryVisitor {
    type Value = SpaceEntry;
    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a distribution such as { log_uniform = [1e-4, 1e-1] }")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SpaceEntry, A::Error> {
        let Some(first) = map.next_key::<Spanned<String>>()? else {
            return Err(A::Error::custom(
                "expected one of `uniform`, `log_uniform`, `int_uniform`, `choice`, found an empty table",
            ));
        };
        let entry = match first.get_ref().as_str() {
            "uniform" => SpaceEntry::Dist(Distribution::Uniform(map.next_value()?)),
            "log_uniform" => SpaceEntry::Dist(Distribution::LogUniform(map.next_value()?)),
            "int_uniform" => SpaceEntry::Dist(Distribution::IntUniform(map.next_value()?)),
            "choice" => SpaceEntry::Dist(Distribution::Choice(map.next_value()?)),
            // not a distribution: a key one level down, or a misspelt distribution
            _ => {
                let inner: Spanned<Probe> = map.next_value()?;
                let span = inner.span();
                let Probe::Entry(entry) = inner.into_inner() else {
                    return Err(A::Error::unknown_variant(first.get_ref(), &DISTRIBUTIONS));
                };
                let mut nested = RawSpace::new();
                nested.insert(first, Spanned::new(span, entry));
                while let Some((k, v)) = map.next_entry::<Spanned<String>, Spanned<SpaceEntry>>()? {
                    nested.insert(k, v);
                }
                return Ok(SpaceEntry::Nested(nested));
            }
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(A::Error::custom(format!(
                "expected one distribution per key, found `{}` and `{extra}`",
                first.get_ref()
            )));
        }
        Ok(entry)
    }
}

/// The value under a key that is not a distribution name: a table one level down, or anything
/// else, which means the key was meant as a (misspelt) distribution.
enum Probe {
    Entry(SpaceEntry),
    NotATable,
}

impl<'de> Deserialize<'de> for Probe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct ProbeVisitor;
        impl<'de> Visitor<'de> for ProbeVisitor {
            type Value = Probe;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a distribution such as { log_uniform = [1e-4, 1e-1] }")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Probe, A::Error> {
                EntryVisitor.visit_map(map).map(Probe::Entry)
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Probe, A::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Probe::NotATable)
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Probe, E> {
                Ok(Probe::NotATable)
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Probe, E> {
                Ok(Probe::NotATable)
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Probe, E> {
                Ok(Probe::NotATable)
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Probe, E> {
                Ok(Probe::NotATable)
            }
        }
        d.deserialize_any(ProbeVisitor)
    }
}
