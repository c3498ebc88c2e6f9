//! Checks of the embedded defaults: they are the schema's documentation and its only default values.

use super::*;

#[test]
fn defaults_parse_and_set_every_key() {
    let layer = defaults_layer().unwrap();
    // `from_raw` fails with `Internal` on any key the defaults leave out.
    RunSpec::from_raw(&layer.raw, Path::new("/project")).unwrap();
    let sweep = layer.raw.sweep.unwrap();
    assert!(
        sweep.grid.unwrap().is_empty()
            && sweep.seeds.unwrap().get_ref().is_empty()
            && sweep.zip.unwrap().is_empty()
    );
}

#[test]
fn every_default_key_is_documented() {
    let lines: Vec<&str> = DEFAULTS_TOML.lines().collect();
    let mut undocumented = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let line = line.trim();
        let is_key = !line.starts_with('#') && !line.starts_with('[') && line.contains('=');
        let commented_above = i > 0 && lines[i - 1].trim().starts_with('#');
        if is_key && !line.contains('#') && !commented_above {
            undocumented.push(line);
        }
    }
    assert!(
        undocumented.is_empty(),
        "keys without a comment in pipeline/defaults.toml: {undocumented:?}"
    );
}

#[test]
fn sweepable_keys_are_the_leaves_of_the_defaults() {
    // The sweepable keys come from the defaults: a table missing there could not be swept.
    let layer = defaults_layer().unwrap();
    let keys = sweepable_keys(&layer.sites);
    for key in [
        "optimizer.lr",
        "regularization.lambda",
        "experiment.seed",
        "backbone.freeze",
        "cache.dir",
    ] {
        assert!(
            keys.iter().any(|k| k == key),
            "{key} not sweepable: {keys:?}"
        );
    }
    assert!(!keys.iter().any(|k| k.starts_with("sweep") || k == "use"));
}
