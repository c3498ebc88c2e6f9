//! Layering across files: presets, relative paths, cycles, overrides. Each test builds a small
//! project in a temporary folder (its own `pipeline/`), so paths are checked end to end.

use std::fs;
use std::path::{Path, PathBuf};

use runner::spec::{self, LoadOptions, SpecError};

/// A project with `pipeline/`, a tiny dataset under `pipeline/data/set`, and the given files.
fn project(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/catdog-tiny");
    for split in ["train", "val"] {
        for class in ["cat", "dog"] {
            let to = dir.path().join("pipeline/data/set").join(split).join(class);
            fs::create_dir_all(&to).unwrap();
            for image in fs::read_dir(fixture.join(split).join(class))
                .unwrap()
                .take(1)
            {
                let image = image.unwrap().path();
                fs::copy(&image, to.join(image.file_name().unwrap())).unwrap();
            }
        }
    }
    for (path, text) in files {
        let path = dir.path().join(path);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, text).unwrap();
    }
    dir
}

fn load(dir: &Path, file: &str, overrides: &[&str]) -> Result<spec::Experiment, SpecError> {
    let opts = LoadOptions {
        overrides: overrides.iter().map(|s| s.to_string()).collect(),
        pipeline_dir: None,
    };
    spec::load(&dir.join(file), &opts)
}

const DATASET_PRESET: (&str, &str) = (
    "pipeline/datasets/set.toml",
    "[dataset]\nroot = \"../data/set\"\n",
);

#[test]
fn paths_resolve_against_the_file_that_set_them() {
    let dir = project(&[
        DATASET_PRESET,
        (
            "pipeline/models/probe.toml",
            "[backbone]\nname = \"linear\"\nweights = \"../weights/w.safetensors\"\n",
        ),
        ("pipeline/weights/w.safetensors", ""),
        (
            "experiments/deep/e.toml",
            "use = [\"datasets/set\", \"models/probe\"]\n[experiment]\nname = \"e\"\n",
        ),
    ]);
    let exp = load(dir.path(), "experiments/deep/e.toml", &[]).unwrap();
    let root = dir.path().join("pipeline/data/set");
    assert_eq!(exp.base.dataset.root, root);
    assert_eq!(
        exp.base.backbone.weights.as_deref(),
        Some(dir.path().join("pipeline/weights/w.safetensors").as_path())
    );
    assert_eq!(exp.project_dir, dir.path());
    assert_eq!(
        exp.pipeline_dir.as_deref(),
        Some(dir.path().join("pipeline").as_path())
    );
    let files: Vec<PathBuf> = [
        "pipeline/datasets/set.toml",
        "pipeline/models/probe.toml",
        "experiments/deep/e.toml",
    ]
    .iter()
    .map(|f| dir.path().join(f))
    .collect();
    assert_eq!(exp.files, files);
}

#[test]
fn the_experiment_overrides_its_presets_in_order() {
    let dir = project(&[
        DATASET_PRESET,
        ("pipeline/optimizers/a.toml", "[optimizer]\nlr = 0.1\nmomentum = 0.5\n"),
        ("pipeline/optimizers/b.toml", "[optimizer]\nlr = 0.2\n"),
        ("e.toml", "use = [\"datasets/set\", \"optimizers/a\", \"optimizers/b\"]\n[experiment]\nname = \"e\"\n[optimizer]\nnesterov = true\n"),
    ]);
    let exp = load(dir.path(), "e.toml", &["optimizer.momentum=0.25"]).unwrap();
    let o = &exp.base.optimizer;
    assert_eq!((o.lr, o.momentum, o.nesterov), (0.2, 0.25, true));
}

#[test]
fn presets_can_use_presets_but_not_in_a_cycle() {
    let dir = project(&[
        DATASET_PRESET,
        (
            "pipeline/bundles/a.toml",
            "use = [\"datasets/set\", \"bundles/b\"]\n",
        ),
        ("pipeline/bundles/b.toml", "use = [\"bundles/a\"]\n"),
        (
            "pipeline/bundles/ok.toml",
            "use = [\"datasets/set\"]\n[train]\nepochs = 3\n",
        ),
        (
            "cycle.toml",
            "use = [\"bundles/a\"]\n[experiment]\nname = \"c\"\n",
        ),
        (
            "nested.toml",
            "use = [\"bundles/ok\"]\n[experiment]\nname = \"n\"\n",
        ),
    ]);
    let exp = load(dir.path(), "nested.toml", &[]).unwrap();
    assert_eq!(exp.base.train.epochs, 3);
    assert!(exp.base.dataset.root.ends_with("pipeline/data/set"));
    let err = load(dir.path(), "cycle.toml", &[]).unwrap_err();
    assert!(matches!(err, SpecError::Preset(_)), "{err}");
    assert!(
        err.to_string()
            .contains("presets use each other in a cycle: `bundles/a`"),
        "{err}"
    );
}

#[test]
fn presets_cannot_sweep() {
    let dir = project(&[
        DATASET_PRESET,
        ("pipeline/sweeps/s.toml", "[sweep]\nseeds = [1, 2]\n"),
        (
            "e.toml",
            "use = [\"datasets/set\", \"sweeps/s\"]\n[experiment]\nname = \"e\"\n",
        ),
    ]);
    let err = load(dir.path(), "e.toml", &[]).unwrap_err();
    assert!(err.to_string().contains("presets cannot sweep"), "{err}");
}

#[test]
fn an_explicit_pipeline_dir_wins() {
    let dir = project(&[
        DATASET_PRESET,
        (
            "elsewhere/e.toml",
            "use = [\"datasets/set\"]\n[experiment]\nname = \"e\"\n",
        ),
    ]);
    let outside = tempfile::tempdir().unwrap();
    fs::copy(
        dir.path().join("elsewhere/e.toml"),
        outside.path().join("e.toml"),
    )
    .unwrap();
    let err = load(outside.path(), "e.toml", &[]).unwrap_err();
    assert!(
        err.to_string()
            .contains("no `pipeline/` folder above this file"),
        "{err}"
    );
    let opts = LoadOptions {
        overrides: vec![],
        pipeline_dir: Some(dir.path().join("pipeline")),
    };
    let exp = spec::load(&outside.path().join("e.toml"), &opts).unwrap();
    assert!(exp.base.dataset.root.starts_with(dir.path()));
}

#[test]
fn sweeping_a_path_resolves_it_against_the_experiment() {
    let dir = project(&[
        DATASET_PRESET,
        ("exp/w1.safetensors", ""),
        // a pixel model: its weights file is not loaded at check time (a CNN's is, and this
        // placeholder is no safetensors file)
        ("exp/e.toml", "use = [\"datasets/set\"]\n[experiment]\nname = \"e\"\n[backbone]\nname = \"linear\"\n[sweep]\ngrid = { \"backbone.weights\" = [\"w1.safetensors\"] }\n"),
    ]);
    let exp = load(dir.path(), "exp/e.toml", &[]).unwrap();
    let runs = runner::spec::expand::expand(&exp).unwrap();
    assert_eq!(
        runs[0].spec.backbone.weights.as_deref(),
        Some(dir.path().join("exp/w1.safetensors").as_path())
    );
}

#[test]
fn unknown_table_suggests_the_right_one() {
    let dir = project(&[(
        "e.toml",
        "[experiment]\nname = \"e\"\n[optimiser]\nlr = 0.1\n",
    )]);
    let err = load(dir.path(), "e.toml", &[]).unwrap_err().to_string();
    assert!(
        err.contains("unknown key `optimiser`") && err.contains("did you mean `optimizer`?"),
        "{err}"
    );
}

#[test]
fn wrong_lengths_and_negative_counts_are_schema_errors() {
    let dir = project(&[
        ("mean.toml", "[transforms]\nmean = [0.5, 0.5]\n"),
        ("epochs.toml", "[train]\nepochs = -1\n"),
        ("freeze.toml", "[backbone]\nfreeze = \"layer3\"\n"),
    ]);
    let mean = load(dir.path(), "mean.toml", &[]).unwrap_err().to_string();
    assert!(
        mean.contains("wrong length for `transforms.mean`")
            && mean.contains("expected an array of length 3"),
        "{mean}"
    );
    let epochs = load(dir.path(), "epochs.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(
        epochs.contains("invalid value for `train.epochs`")
            && epochs.contains("expected a whole number >= 0"),
        "{epochs}"
    );
    let freeze = load(dir.path(), "freeze.toml", &[])
        .unwrap_err()
        .to_string();
    assert!(
        freeze.contains("expected true, false or \"until:<block>\""),
        "{freeze}"
    );
}
