//! The canonical text of a run: its whole resolved spec as TOML, paths relative to the project,
//! with the keys added after run ids were first recorded left out while they change nothing.
//! Run ids hash this text, and `spec.toml` stores it, so a key added to the schema later leaves
//! every existing id (and `results/reference/`) valid, while a run that uses it gets a new id.

/// When a later key is left out of the canonical text.
enum Omit {
    /// While it holds the embedded default.
    AtDefault,
    /// While another key holds this value (the key then builds nothing).
    While(&'static str, &'static str),
}

/// Every key added after run ids were first recorded, in one place.
const LATER_KEYS: &[(&str, Omit)] = &[
    // schedules, early stopping, augmentation, label smoothing, gradient clipping
    ("schedule", Omit::AtDefault),
    ("early_stopping", Omit::AtDefault),
    ("transforms.random_resized_crop", Omit::AtDefault),
    ("transforms.color_jitter", Omit::AtDefault),
    ("loss.label_smoothing", Omit::AtDefault),
    ("train.grad_clip_norm", Omit::AtDefault),
    // the head: an MLP's keys build nothing on a linear head
    ("head.kind", Omit::AtDefault),
    ("head.hidden", Omit::While("head.kind", "linear")),
    ("head.activation", Omit::While("head.kind", "linear")),
    ("head.dropout", Omit::While("head.kind", "linear")),
    ("head.batch_norm", Omit::While("head.kind", "linear")),
    ("head.pool", Omit::AtDefault),
    // the held-out test split
    ("dataset.test_dir", Omit::AtDefault),
    // datasets from a manifest, and the split made when the data has none
    ("dataset.manifest", Omit::AtDefault),
    ("dataset.path_column", Omit::AtDefault),
    ("dataset.label_column", Omit::AtDefault),
    ("dataset.split_column", Omit::AtDefault),
    ("dataset.split", Omit::AtDefault),
    // mixed precision
    ("train.precision", Omit::AtDefault),
];

fn get<'t>(table: &'t toml::Table, key: &str) -> Option<&'t toml::Value> {
    let mut parts = key.split('.');
    let mut value = table.get(parts.next()?)?;
    for part in parts {
        value = value.as_table()?.get(part)?;
    }
    Some(value)
}

fn remove(table: &mut toml::Table, key: &str) {
    match key.rsplit_once('.') {
        None => {
            table.remove(key);
        }
        Some((parent, leaf)) => {
            let mut t = Some(table);
            for part in parent.split('.') {
                t = t
                    .and_then(|t| t.get_mut(part))
                    .and_then(toml::Value::as_table_mut);
            }
            if let Some(t) = t {
                t.remove(leaf);
            }
        }
    }
}

/// The canonical text of a run whose whole spec serialises to `full`, given the embedded
/// defaults' whole text.
pub(super) fn canonical(full: &str, defaults: &str) -> String {
    let mut table: toml::Table = full.parse().expect("a serialised RunSpec parses");
    let defaults: toml::Table = defaults.parse().expect("the serialised defaults parse");
    let omitted: Vec<&str> = LATER_KEYS
        .iter()
        .filter(|(key, omit)| match omit {
            Omit::AtDefault => get(&table, key) == get(&defaults, key),
            Omit::While(other, value) => {
                get(&table, other).and_then(toml::Value::as_str) == Some(*value)
            }
        })
        .map(|(key, _)| *key)
        .collect();
    for key in omitted {
        remove(&mut table, key);
    }
    toml::to_string(&table).expect("a TOML table serialises")
}

#[cfg(test)]
mod tests {
    use super::canonical;

    const DEFAULTS: &str = "[head]\nreplace = false\nkind = \"linear\"\nhidden = [512]\nactivation = \"relu\"\ndropout = 0.0\nbatch_norm = false\npool = \"avg\"\n\n[loss]\nkind = \"cross_entropy\"\nlabel_smoothing = 0.0\n";

    #[test]
    fn later_keys_are_left_out_while_they_change_nothing() {
        // a linear head: its MLP keys build nothing, whatever their values
        let linear = DEFAULTS.replace("dropout = 0.0", "dropout = 0.3");
        assert_eq!(
            canonical(&linear, DEFAULTS),
            "[head]\nreplace = false\n\n[loss]\nkind = \"cross_entropy\"\n"
        );
        // an MLP head keeps every key of its own, defaults too, in schema order
        let mlp = DEFAULTS
            .replace("kind = \"linear\"", "kind = \"mlp\"")
            .replace("pool = \"avg\"", "pool = \"max\"")
            .replace("label_smoothing = 0.0", "label_smoothing = 0.1");
        assert_eq!(
            canonical(&mlp, DEFAULTS),
            "[head]\nreplace = false\nkind = \"mlp\"\nhidden = [512]\nactivation = \"relu\"\ndropout = 0.0\nbatch_norm = false\npool = \"max\"\n\n[loss]\nkind = \"cross_entropy\"\nlabel_smoothing = 0.1\n"
        );
    }
}
