//! The toolchain floor is stated, so that an older cargo refuses the package with its own clear
//! message ("package `runner` cannot be built because it requires rustc 1.89 or newer") instead
//! of failing deep in the build.

/// The newest standard-library API the code uses: `File::lock` (the run and cache locks).
const NEWEST_API: (u32, u32) = (1, 89);

#[test]
fn cargo_toml_states_a_rust_version_that_has_every_api_the_code_uses() {
    let stated = env!("CARGO_PKG_RUST_VERSION");
    assert!(!stated.is_empty(), "Cargo.toml has no rust-version");
    let mut parts = stated.split('.').map(|p| p.parse::<u32>().unwrap());
    let version = (parts.next().unwrap(), parts.next().unwrap_or(0));
    assert!(
        version >= NEWEST_API,
        "rust-version {stated} is older than {}.{}, which File::lock needs",
        NEWEST_API.0,
        NEWEST_API.1
    );
}
