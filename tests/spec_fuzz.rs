//! Fuzzing the spec layer: mutated versions of every committed spec and preset (byte flips,
//! truncations, key and value swaps, random TOML) go through load + validate + expand. None may
//! panic, and every error must be rendered with a location (`--> file[:line:col]`).
//!
//! The normal test suite runs a few thousand inputs; the long run (10⁶ inputs by default) is
//! `SPEC_FUZZ_INPUTS=1000000 cargo test --test spec_fuzz -- --ignored --nocapture`.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runner::spec::{self, LoadOptions, SpecError};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).to_path_buf()
}

/// The committed TOML files, relative to the repository root.
fn corpus() -> Vec<PathBuf> {
    let mut files = Vec::new();
    for dir in ["experiments", "tests/specs", "pipeline"] {
        collect(&repo(), &repo().join(dir), &mut files);
    }
    files.sort();
    files
}

fn collect(root: &Path, dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy();
        if p.is_dir() && !matches!(&*name, "data" | "weights" | "fonts") {
            collect(root, &p, out);
        } else if name.ends_with(".toml") {
            out.push(p.strip_prefix(root).unwrap().to_path_buf());
        }
    }
}

/// A copy of the repository's spec files in a temporary folder, with the data folders linked,
/// so mutated files can be written without touching the checkout.
struct Project {
    dir: tempfile::TempDir,
    files: Vec<(PathBuf, Vec<u8>)>,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<(PathBuf, Vec<u8>)> = corpus()
            .into_iter()
            .map(|f| {
                let bytes = std::fs::read(repo().join(&f)).unwrap();
                (f, bytes)
            })
            .collect();
        for (f, bytes) in &files {
            let to = dir.path().join(f);
            std::fs::create_dir_all(to.parent().unwrap()).unwrap();
            std::fs::write(to, bytes).unwrap();
        }
        for link in ["pipeline/data", "pipeline/weights", "tests/fixtures"] {
            std::os::unix::fs::symlink(repo().join(link), dir.path().join(link)).unwrap();
        }
        Project { dir, files }
    }

    fn experiments(&self) -> Vec<&PathBuf> {
        self.files
            .iter()
            .map(|(f, _)| f)
            .filter(|f| !f.starts_with("pipeline"))
            .collect()
    }
}

/// One mutation of `text`, described for the failure message.
fn mutate(rng: &mut ChaCha8Rng, text: &[u8]) -> (&'static str, Vec<u8>) {
    let mut out = text.to_vec();
    match rng.gen_range(0..7) {
        0 if !out.is_empty() => {
            for _ in 0..rng.gen_range(1..=4) {
                let i = rng.gen_range(0..out.len());
                out[i] ^= 1 << rng.gen_range(0..8);
            }
            ("byte flips", out)
        }
        1 => {
            out.truncate(rng.gen_range(0..=out.len()));
            ("truncation", out)
        }
        2 | 3 => {
            let s = String::from_utf8_lossy(text).into_owned();
            let mut lines: Vec<String> = s.lines().map(String::from).collect();
            let kv: Vec<usize> = (0..lines.len())
                .filter(|&i| lines[i].contains('=') && !lines[i].trim_start().starts_with('#'))
                .collect();
            if kv.len() < 2 {
                return ("random toml", random_toml(rng).into_bytes());
            }
            let (a, b) = (*kv.choose(rng).unwrap(), *kv.choose(rng).unwrap());
            let split = |l: &str| {
                let (k, v) = l.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            };
            let ((ka, va), (kb, vb)) = (split(&lines[a]), split(&lines[b]));
            let what = if rng.gen_bool(0.5) {
                lines[a] = format!("{ka}={vb}");
                lines[b] = format!("{kb}={va}");
                "value swap"
            } else {
                lines[a] = format!("{kb}={va}");
                lines[b] = format!("{ka}={vb}");
                "key swap"
            };
            (what, (lines.join("\n") + "\n").into_bytes())
        }
        4 => {
            // one value replaced by a random value of any type
            let s = String::from_utf8_lossy(text).into_owned();
            let mut lines: Vec<String> = s.lines().map(String::from).collect();
            if let Some(i) = (0..lines.len())
                .filter(|&i| lines[i].contains('='))
                .collect::<Vec<_>>()
                .choose(rng)
            {
                let key = lines[*i].split_once('=').unwrap().0.to_string();
                lines[*i] = format!("{key}= {}", random_value(rng, 2));
            }
            ("random value", (lines.join("\n") + "\n").into_bytes())
        }
        5 => {
            // a random line deleted or duplicated
            let s = String::from_utf8_lossy(text).into_owned();
            let mut lines: Vec<String> = s.lines().map(String::from).collect();
            if !lines.is_empty() {
                let i = rng.gen_range(0..lines.len());
                if rng.gen_bool(0.5) {
                    lines.remove(i);
                } else {
                    let l = lines[i].clone();
                    lines.insert(rng.gen_range(0..=lines.len()), l);
                }
            }
            ("line edit", (lines.join("\n") + "\n").into_bytes())
        }
        _ => ("random toml", random_toml(rng).into_bytes()),
    }
}

const TABLES: &[&str] = &[
    "experiment",
    "dataset",
    "transforms",
    "backbone",
    "head",
    "loss",
    "optimizer",
    "regularization",
    "train",
    "cache",
    "sweep",
];

/// Keys of the defaults (and a few that do not exist), by table.
fn keys() -> &'static Vec<(String, String)> {
    static KEYS: std::sync::OnceLock<Vec<(String, String)>> = std::sync::OnceLock::new();
    KEYS.get_or_init(|| {
        let doc: toml::Table = spec::DEFAULTS_TOML.parse().unwrap();
        let mut keys = Vec::new();
        for (table, v) in &doc {
            if let Some(t) = v.as_table() {
                for k in t.keys() {
                    keys.push((table.clone(), k.clone()));
                }
            }
        }
        keys.push(("sweep".into(), "grid".into()));
        keys.push(("sweep".into(), "zip".into()));
        keys.push(("optimizer".into(), "lamda".into()));
        keys
    })
}

fn random_string(rng: &mut ChaCha8Rng) -> String {
    const WORDS: &[&str] = &[
        "sgd",
        "adam",
        "adamw",
        "l2",
        "l1",
        "none",
        "decoupled",
        "linear",
        "mlp",
        "small_cnn",
        "resnet18",
        "efficientnet_lite0",
        "until:conv2",
        "until:layer9",
        "cpu",
        "cuda",
        "skip",
        "error",
        "all",
        "weights",
        "../data/animal-mnist-catdog",
        "../fixtures/catdog-tiny",
        "datasets/animal_mnist_catdog",
        "models/small_cnn",
        "",
        "é\u{0}",
        "regularization.lambda",
        "optimizer.lr",
        "train.epochs",
        "backbone.freeze",
        "../weights/efficientnet_lite0_imagenet.safetensors",
    ];
    WORDS.choose(rng).unwrap().to_string()
}

fn random_value(rng: &mut ChaCha8Rng, depth: u32) -> String {
    match rng.gen_range(0..if depth == 0 { 5 } else { 7 }) {
        0 => rng.gen_range(-3i64..300).to_string(),
        1 => [
            "0.0", "1e-3", "-1.5", "nan", "inf", "-inf", "1e308", "0.9", "2.5e-7",
        ]
        .choose(rng)
        .unwrap()
        .to_string(),
        2 => rng.gen_bool(0.5).to_string(),
        3 | 4 => format!("{:?}", random_string(rng)),
        5 => {
            let n = rng.gen_range(0..4);
            let v: Vec<String> = (0..n).map(|_| random_value(rng, depth - 1)).collect();
            format!("[{}]", v.join(", "))
        }
        _ => {
            let n = rng.gen_range(0..3);
            let v: Vec<String> = (0..n)
                .map(|_| {
                    let (t, k) = keys().choose(rng).unwrap();
                    format!("\"{t}.{k}\" = {}", random_value(rng, depth - 1))
                })
                .collect();
            format!("{{ {} }}", v.join(", "))
        }
    }
}

/// A random document over the spec's own tables and keys.
fn random_toml(rng: &mut ChaCha8Rng) -> String {
    let mut out = String::new();
    if rng.gen_bool(0.3) {
        out += &format!("use = [{:?}]\n", random_string(rng));
    }
    for _ in 0..rng.gen_range(0..6) {
        let table = TABLES.choose(rng).unwrap();
        out += &format!("[{table}]\n");
        let in_table: Vec<&(String, String)> = keys().iter().filter(|(t, _)| t == table).collect();
        for _ in 0..rng.gen_range(0..5) {
            let key = match in_table.choose(rng) {
                Some((_, k)) if rng.gen_bool(0.9) => k.clone(),
                _ => "unknown_key".to_string(),
            };
            out += &format!("{key} = {}\n", random_value(rng, 2));
        }
    }
    out
}

/// What one input did.
enum Verdict {
    Ok,
    Error,
}

fn check_one(project: &Project, experiment: &Path) -> Result<Verdict, String> {
    let path = project.dir.path().join(experiment);
    // `load` validates the base run and expands the sweep, validating every point
    let loaded = catch_unwind(AssertUnwindSafe(|| {
        let exp = spec::load(&path, &LoadOptions::default())?;
        // then what `runner check` opens: the datasets and weights files the runs name
        runner::setup::Resolved::new(&exp).map(|_| ())
    }));
    match loaded {
        Err(panic) => Err(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
        Ok(Ok(_)) => Ok(Verdict::Ok),
        Ok(Err(e)) => {
            if let SpecError::Internal(_) = e {
                return Err(format!("internal error: {e}"));
            }
            let diags = e.diagnostics();
            if diags.is_empty() {
                return Err(format!("an error without diagnostics: {e}"));
            }
            for d in diags {
                if d.at.is_none() && d.file.is_none() {
                    return Err(format!("an error without a location:\n{d}"));
                }
            }
            if !e.to_string().contains("--> ") {
                return Err(format!("rendered without a location:\n{e}"));
            }
            Ok(Verdict::Error)
        }
    }
}

struct Tally {
    inputs: usize,
    ok: usize,
    errors: usize,
    failures: Vec<String>,
}

fn fuzz(inputs: usize, seed: u64) -> Tally {
    let started = Instant::now();
    let project = Project::new();
    let experiments = project.experiments();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut tally = Tally {
        inputs: 0,
        ok: 0,
        errors: 0,
        failures: Vec::new(),
    };
    // quiet the default hook: a panic is counted and reported below, with its input
    let _hooks = HOOK_USERS.lock().unwrap_or_else(|p| p.into_inner());
    with_quiet_panics(|| {
        fuzz_loop(
            inputs,
            seed,
            started,
            &project,
            &experiments,
            &mut rng,
            &mut tally,
        )
    });
    tally
}

fn fuzz_loop(
    inputs: usize,
    seed: u64,
    started: Instant,
    project: &Project,
    experiments: &[&PathBuf],
    rng: &mut ChaCha8Rng,
    tally: &mut Tally,
) {
    for _ in 0..inputs {
        let (file, original) = &project.files[rng.gen_range(0..project.files.len())];
        let (what, mutated) = mutate(rng, original);
        let on_disk = project.dir.path().join(file);
        std::fs::write(&on_disk, &mutated).unwrap();
        // a mutated preset is read through an experiment that may use it
        let experiment = if file.starts_with("pipeline") {
            experiments.choose(rng).unwrap().as_path()
        } else {
            file.as_path()
        };
        match check_one(project, experiment) {
            Ok(Verdict::Ok) => tally.ok += 1,
            Ok(Verdict::Error) => tally.errors += 1,
            Err(why) => {
                if tally.failures.len() < 10 {
                    tally.failures.push(format!(
                        "{} ({what}) through {}: {why}\n--- input\n{}",
                        file.display(),
                        experiment.display(),
                        String::from_utf8_lossy(&mutated)
                    ));
                } else {
                    tally.failures.push(String::new());
                }
            }
        }
        std::fs::write(&on_disk, original).unwrap();
        tally.inputs += 1;
        if tally.inputs.is_multiple_of(20_000) {
            eprintln!(
                "spec fuzz seed {seed}: {} inputs, {} failures, {:.0}s",
                tally.inputs,
                tally.failures.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
}

/// Serialises the tests of this file that replace the process-wide panic hook.
static HOOK_USERS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Runs `f` with the panic hook silenced, and puts the previous hook back afterwards, also when
/// `f` itself panics (the hook is process-wide: a silenced one would hide every later panic).
fn with_quiet_panics<T>(f: impl FnOnce() -> T) -> T {
    let hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    // caught, so that the hook is put back outside the panic (a panicking thread may not set
    // it), then passed on
    let result = catch_unwind(AssertUnwindSafe(f));
    std::panic::set_hook(hook);
    result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
}

#[test]
fn the_panic_hook_comes_back_even_when_the_loop_panics() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static SEEN: AtomicUsize = AtomicUsize::new(0);
    let _hooks = HOOK_USERS.lock().unwrap_or_else(|p| p.into_inner());
    let before = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {
        SEEN.fetch_add(1, Ordering::SeqCst);
    }));
    let inside = catch_unwind(|| with_quiet_panics(|| panic!("a bug inside the fuzz loop")));
    assert!(inside.is_err());
    assert_eq!(
        SEEN.load(Ordering::SeqCst),
        0,
        "the loop's panic was silenced"
    );
    let after = catch_unwind(|| panic!("a later panic"));
    assert!(after.is_err());
    let seen = SEEN.load(Ordering::SeqCst);
    std::panic::set_hook(before);
    assert_eq!(
        seen, 1,
        "the hook in place before the loop sees later panics again"
    );
}

fn report(t: &Tally, started: Instant) {
    println!(
        "spec fuzz: {} inputs, {} loaded, {} rejected with a located error, {} failures, in {:.1}s",
        t.inputs,
        t.ok,
        t.errors,
        t.failures.len(),
        started.elapsed().as_secs_f64()
    );
    let shown: Vec<&String> = t.failures.iter().filter(|f| !f.is_empty()).collect();
    assert!(
        t.failures.is_empty(),
        "{} failures, the first ones:\n{}",
        t.failures.len(),
        shown
            .iter()
            .map(|s| s.as_str())
            .collect::<Vec<_>>()
            .join("\n=====\n")
    );
}

#[test]
fn mutated_specs_never_panic_and_every_error_has_a_location() {
    let started = Instant::now();
    let t = fuzz(3000, 12);
    // the mutations reach both outcomes
    assert!(t.ok > 0 && t.errors > 0, "{} ok, {} errors", t.ok, t.errors);
    report(&t, started);
}

#[test]
#[ignore = "long run: SPEC_FUZZ_INPUTS=1000000 cargo test --test spec_fuzz -- --ignored --nocapture"]
fn long_run() {
    let inputs = std::env::var("SPEC_FUZZ_INPUTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let seed = std::env::var("SPEC_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let started = Instant::now();
    let t = fuzz(inputs, seed);
    report(&t, started);
}
