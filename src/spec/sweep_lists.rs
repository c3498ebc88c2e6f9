//! The lists of `[sweep]`'s `grid`, `zip` and `seeds` as a layer wrote them: each value with its
//! place in the file.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

/// Swept key → its values, each with its place in the file. Keys come back sorted by name;
/// their spans give the file order.
pub(super) type RawAxes = BTreeMap<Spanned<String>, Spanned<AxisEntry>>;

/// The list of values swept for one key, each value with its span.
pub(super) type SweptValues = Spanned<Vec<Spanned<toml::Value>>>;

/// What a sweep table holds under a key: the values, or, where the dotted key was written
/// unquoted (`regularization.lambda = [...]` makes nested tables in TOML), entries one level down.
/// A hand-written `Deserialize` (not `untagged`) so that other types fail with a clear expectation.
#[derive(Debug, Clone)]
pub(crate) enum AxisEntry {
    Values(Vec<Spanned<toml::Value>>),
    Nested(RawAxes),
}

impl<'de> Deserialize<'de> for AxisEntry {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> serde::de::Visitor<'de> for EntryVisitor {
            type Value = AxisEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an array of values to sweep")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<AxisEntry, A::Error> {
                let mut values = Vec::new();
                while let Some(value) = seq.next_element()? {
                    values.push(value);
                }
                Ok(AxisEntry::Values(values))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<AxisEntry, A::Error> {
                let mut nested = RawAxes::new();
                while let Some((key, entry)) = map.next_entry()? {
                    nested.insert(key, entry);
                }
                Ok(AxisEntry::Nested(nested))
            }
        }
        d.deserialize_any(EntryVisitor)
    }
}
