//! What the build compiles, read from `cargo tree` (offline, from Cargo.lock):
//! - `cargo test` after `cargo run` compiles only the test targets: no crate of the binary's
//!   tree gets another feature set from the dev-dependencies, so cargo reuses every compiled
//!   crate (a crate with other features is compiled again, with everything above it);
//! - the binary's tree holds no HTTP or TLS client: runner never touches the network;
//! - the binary's tree stays within its budget of packages, the first thing a clean build pays.

use std::collections::BTreeSet;
use std::process::Command;

/// Each compiled instance of a package in the workspace's tree over these dependency kinds:
/// `name version [features]`. A package built for the host (proc macros, build scripts) with
/// other features than for the target is listed once per feature set.
fn instances(edges: &str) -> BTreeSet<String> {
    tree(&[
        "--workspace",
        "--no-dedupe",
        "--format",
        "{p} [{f}]",
        "-e",
        edges,
    ])
}

/// The distinct lines of `cargo tree --prefix none ARGS` (offline, from Cargo.lock), without
/// cargo's `(*)` marks of repeated subtrees.
fn tree(args: &[&str]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let out = Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["tree", "--locked", "--offline", "--prefix", "none"])
        .args(args)
        .output()
        .expect("cargo runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "cargo tree {args:?} failed: {stderr}");
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.replace(" (*)", "").trim().to_string())
        .filter(|l| !l.is_empty())
        .collect()
}

/// `name version` and the features of an instance line of [`instances`].
fn split_instance(instance: &str) -> (&str, BTreeSet<&str>) {
    let (package, features) = instance.split_once(" [").unwrap_or((instance, "]"));
    let features = features.trim_end_matches(']').split(',');
    (package, features.filter(|f| !f.is_empty()).collect())
}

#[test]
fn the_tests_build_every_crate_of_the_binary_with_the_same_features() {
    let tests = instances("normal,build,dev");
    let binary = instances("normal,build");
    let rebuilt: Vec<String> = binary
        .iter()
        .filter(|instance| !tests.contains(*instance))
        .map(|instance| {
            let name = instance.split(' ').next().unwrap_or("");
            let prefix = format!("{name} ");
            let there: Vec<&String> = tests.iter().filter(|t| t.starts_with(&prefix)).collect();
            format!("{instance}, which the tests build as {there:?}")
        })
        .collect();
    assert!(
        rebuilt.is_empty(),
        "these crates would be compiled again for `cargo test` after `cargo run` (give the \
         binary's build the same features, see Cargo.toml):\n{}",
        rebuilt.join("\n")
    );
    // `cargo tree` does not say which instance is built for the host (proc macros, build
    // scripts) and which for the target, so an instance can match by chance: the tests' own
    // target-side `syn` once had exactly the features of the binary's host-side one, while the
    // tests' host-side `syn` had one more (`extra-traits`, from a dev-dependency's proc macro)
    // and every proc macro, and everything derived with one, was compiled again. A test-side
    // instance with more features than one of the binary's is that case.
    let widened: Vec<String> = tests
        .iter()
        .filter(|t| !binary.contains(*t))
        .filter_map(|t| {
            let (package, features) = split_instance(t);
            let narrower = binary.iter().find(|b| {
                let (p, f) = split_instance(b);
                p == package && f.is_subset(&features)
            })?;
            Some(format!("{narrower}: the tests build it as {t}"))
        })
        .collect();
    assert!(
        widened.is_empty(),
        "dev-dependencies widen the features of crates the binary builds, so `cargo test` \
         compiles them (and all above them) again; give the binary's build those features \
         (see Cargo.toml):\n{}",
        widened.join("\n")
    );
}

#[test]
fn the_binary_has_no_http_or_tls_client() {
    const NETWORK: &[&str] = &[
        "hyper",
        "hyper-util",
        "reqwest",
        "h2",
        "http",
        "rustls",
        "ring",
        "native-tls",
        "openssl",
        "object_store",
        "url",
    ];
    let found: Vec<String> = instances("normal")
        .into_iter()
        .filter(|p| NETWORK.contains(&p.split(' ').next().unwrap_or("")))
        .collect();
    assert!(
        found.is_empty(),
        "the binary's tree pulls in {found:?} (`cargo tree -e normal -i NAME` says through what)"
    );
}

/// What a clean `cargo run` compiles: the packages of runner's binary, its build scripts' and
/// proc macros' included (243 when this was written).
const PACKAGE_BUDGET: usize = 250;

#[test]
fn the_binary_stays_within_its_package_budget() {
    // a proc macro is one package, whether or not cargo marks it
    let packages: BTreeSet<String> =
        tree(&["-p", "runner", "-e", "normal,build", "--format", "{p}"])
            .iter()
            .map(|l| l.replace(" (proc-macro)", ""))
            .collect();
    assert!(
        packages.len() <= PACKAGE_BUDGET,
        "runner's binary builds {} packages, over the budget of {PACKAGE_BUDGET}: is there a \
         lighter crate, or a default feature to turn off? (`cargo tree -p runner -e normal,build`)",
        packages.len()
    );
}
