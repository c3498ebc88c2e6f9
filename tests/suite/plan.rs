//! Sweep expansion, run ids and the example experiments.

use std::path::Path;

use runner::spec::expand::{self, PlannedRun};
use runner::spec::{self, LoadOptions};

fn load(path: &str, overrides: &[&str]) -> spec::Experiment {
    let opts = LoadOptions {
        overrides: overrides.iter().map(|s| s.to_string()).collect(),
        pipeline_dir: None,
    };
    spec::load(Path::new(path), &opts).unwrap_or_else(|e| panic!("{path}:\n{e}"))
}

fn swept(run: &PlannedRun) -> String {
    run.swept
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn grid_zip_and_seeds_multiply_in_file_order() {
    let exp = load("tests/specs/sweep.toml", &[]);
    assert_eq!(exp.sweep.len(), 24);
    let runs = expand::expand(&exp).unwrap();
    assert_eq!(runs.len(), 24);
    assert!(runs.iter().enumerate().all(|(i, r)| r.index == i));
    // The first grid key in the file varies slowest; seeds vary fastest.
    for (i, want) in [
        (0, "transforms.hflip=0.0 regularization.lambda=0 optimizer.lr=0.1 train.batch_size=32 experiment.seed=1"),
        (1, "transforms.hflip=0.0 regularization.lambda=0 optimizer.lr=0.1 train.batch_size=32 experiment.seed=2"),
        (2, "transforms.hflip=0.0 regularization.lambda=0 optimizer.lr=0.01 train.batch_size=4 experiment.seed=1"),
        (23, "transforms.hflip=0.5 regularization.lambda=0.01 optimizer.lr=0.01 train.batch_size=4 experiment.seed=2"),
    ] {
        assert_eq!(swept(&runs[i]), want, "run {i}");
    }
    // The swept values reach the resolved specs; the rest stays as the base.
    let last = &runs[23].spec;
    assert_eq!(
        (
            last.transforms.hflip,
            last.regularization.lambda,
            last.optimizer.lr,
            last.train.batch_size
        ),
        (0.5, 0.01, 0.01, 4)
    );
    assert_eq!(last.experiment.seed, 2);
    assert_eq!(last.regularization.kind, spec::RegularizationKind::L2);
    assert_eq!(exp.base.regularization.lambda, 0.0);
}

#[test]
fn run_ids_are_stable_and_distinct() {
    let exp = load("tests/specs/sweep.toml", &[]);
    let runs = expand::expand(&exp).unwrap();
    let ids: Vec<String> = runs
        .iter()
        .map(|r| expand::run_id(&r.spec, "salt"))
        .collect();
    assert!(ids
        .iter()
        .all(|id| id.len() == 12 && id.chars().all(|c| c.is_ascii_hexdigit())));
    let mut unique = ids.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "ids collide: {ids:?}");
    // Loading again gives the same ids; another salt gives others.
    let again: Vec<String> = expand::expand(&load("tests/specs/sweep.toml", &[]))
        .unwrap()
        .iter()
        .map(|r| expand::run_id(&r.spec, "salt"))
        .collect();
    assert_eq!(ids, again);
    assert_ne!(ids[0], expand::run_id(&runs[0].spec, "other salt"));
}

#[test]
fn run_ids_do_not_depend_on_the_checkout_folder() {
    let exp = load("tests/specs/valid.toml", &[]);
    let mut moved = exp.base.clone();
    let offset = Path::new("/elsewhere/checkout");
    moved.dataset.root = offset.join(
        moved
            .dataset
            .root
            .strip_prefix(&exp.base.project_dir)
            .unwrap(),
    );
    moved.project_dir = offset.to_path_buf();
    assert_eq!(expand::run_id(&exp.base, ""), expand::run_id(&moved, ""));
    assert!(
        exp.base
            .to_toml()
            .contains("root = \"tests/fixtures/catdog-tiny\""),
        "{}",
        exp.base.to_toml()
    );
}

#[test]
fn plan_rendering_and_canonical_toml() {
    let exp = load("tests/specs/sweep_tables.toml", &[]);
    let runs = expand::expand(&exp).unwrap();
    let ids: Vec<String> = runs.iter().map(|r| expand::run_id(&r.spec, "")).collect();
    // Run ids are part of the snapshot: they must not change with the checkout folder.
    insta::assert_snapshot!(expand::render(&exp, &runs, &ids));
    insta::assert_snapshot!(runs[7].spec.to_toml());
}

#[test]
fn no_sweep_is_one_base_run() {
    let exp = load("tests/specs/valid.toml", &[]);
    let runs = expand::expand(&exp).unwrap();
    assert_eq!(runs.len(), 1);
    assert!(runs[0].swept.is_empty());
    assert_eq!(runs[0].spec, exp.base);
}

#[test]
fn overrides_apply_after_the_file_and_before_the_sweep() {
    let exp = load(
        "tests/specs/sweep.toml",
        &[
            "optimizer.momentum=0.5",
            "regularization.kind=l1",
            "sweep.seeds=[7]",
        ],
    );
    let runs = expand::expand(&exp).unwrap();
    assert_eq!(runs.len(), 12);
    assert!(runs
        .iter()
        .all(|r| r.spec.optimizer.momentum == 0.5 && r.spec.experiment.seed == 7));
    assert_eq!(exp.base.regularization.kind, spec::RegularizationKind::L1);
}

#[test]
fn lambda_sweep_example() {
    // Structure only: the lead tunes this experiment's values.
    let exp = load("experiments/lambda_sweep.toml", &[]);
    assert!(exp.warnings.is_empty(), "{:?}", exp.warnings);
    let runs = expand::expand(&exp).unwrap();
    assert!(runs.len() > 1);
    assert!(runs
        .iter()
        .all(|r| r.swept.len() == 1 && r.swept[0].0 == "regularization.lambda"));
    let b = &exp.base;
    assert_eq!(b.backbone.name, spec::BackboneName::EfficientnetLite0);
    assert_eq!(b.backbone.freeze, spec::Freeze::All);
    assert!(b
        .backbone
        .weights
        .as_ref()
        .unwrap()
        .ends_with("pipeline/weights/efficientnet_lite0_imagenet.safetensors"));
    assert!(b
        .dataset
        .root
        .ends_with("pipeline/data/animal-mnist-catdog"));
    assert!(b.dataset.root.is_absolute());
}

#[test]
fn every_example_loads_without_warnings() {
    for entry in std::fs::read_dir("experiments").unwrap() {
        let path = entry.unwrap().path();
        let exp = load(path.to_str().unwrap(), &[]);
        assert!(
            exp.warnings.is_empty(),
            "{}: {:?}",
            path.display(),
            exp.warnings
        );
        for run in expand::expand(&exp).unwrap() {
            assert!(
                run.warnings.is_empty(),
                "{}: {:?}",
                path.display(),
                run.warnings
            );
        }
    }
}

#[test]
fn sweep_tables_with_unquoted_dotted_keys() {
    let exp = load("tests/specs/sweep_tables.toml", &[]);
    let runs = expand::expand(&exp).unwrap();
    let all: Vec<String> = runs.iter().map(swept).collect();
    assert_eq!(
        all,
        [
            "transforms.hflip=0.0 regularization.lambda=0 optimizer.lr=0.1 train.batch_size=32",
            "transforms.hflip=0.0 regularization.lambda=0 optimizer.lr=0.01 train.batch_size=4",
            "transforms.hflip=0.0 regularization.lambda=0.01 optimizer.lr=0.1 train.batch_size=32",
            "transforms.hflip=0.0 regularization.lambda=0.01 optimizer.lr=0.01 train.batch_size=4",
            "transforms.hflip=0.5 regularization.lambda=0 optimizer.lr=0.1 train.batch_size=32",
            "transforms.hflip=0.5 regularization.lambda=0 optimizer.lr=0.01 train.batch_size=4",
            "transforms.hflip=0.5 regularization.lambda=0.01 optimizer.lr=0.1 train.batch_size=32",
            "transforms.hflip=0.5 regularization.lambda=0.01 optimizer.lr=0.01 train.batch_size=4",
        ]
    );
}

#[test]
fn warnings_are_returned_per_run() {
    let exp = load(
        "tests/specs/valid.toml",
        &[
            "regularization.kind=l2",
            "sweep.grid={\"regularization.lambda\"=[0, 60]}",
        ],
    );
    assert!(exp.warnings.is_empty(), "{:?}", exp.warnings);
    let runs = expand::expand(&exp).unwrap();
    assert!(runs[0].warnings.is_empty());
    assert_eq!(runs[1].warnings.len(), 1);
    insta::assert_snapshot!(runs[1].warnings[0]);
}

#[test]
fn settings_the_optimizer_ignores_warn_only_when_changed() {
    let exp = load(
        "tests/specs/valid.toml",
        &["optimizer.kind=adam", "optimizer.momentum=0.8"],
    );
    assert_eq!(exp.warnings.len(), 1, "{:?}", exp.warnings);
    assert!(exp.warnings[0].contains("`optimizer.momentum` has no effect"));
    let exp = load(
        "tests/specs/valid.toml",
        &["optimizer.kind=adam", "optimizer.momentum=0.9"],
    );
    assert!(exp.warnings.is_empty(), "{:?}", exp.warnings);
}

/// Run ids recorded before keys were added to the schema stay valid: the committed reference
/// run is found under its folder's id with the same stored text, and the main job keeps the ids
/// the README shows.
#[test]
fn existing_run_ids_and_the_reference_run_stay_valid() {
    let ids = |spec: &str| -> Vec<String> {
        let exp = load(spec, &[]);
        let resolved = runner::setup::Resolved::new(&exp).unwrap();
        resolved.runs.iter().map(|r| r.run_id().unwrap()).collect()
    };
    let reference = Path::new("results/reference/ci_reference");
    let stored: Vec<String> = std::fs::read_dir(reference)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    assert_eq!(ids("experiments/ci_reference.toml"), stored);
    let exp = load("experiments/ci_reference.toml", &[]);
    let stored_run = runner::results::layout::ExperimentDir::at(reference).run(&stored[0]);
    let text = std::fs::read_to_string(stored_run.spec()).unwrap();
    assert_eq!(exp.runs[0].spec.to_toml(), text);
    assert_eq!(
        ids("experiments/lambda_sweep.toml"),
        [
            "e17835fa1f44",
            "42d594c356af",
            "20fa6c5c49fa",
            "afd4c1bed3c9",
            "4ac2a18761c5",
            "cc027d6ccc60"
        ]
    );
}
