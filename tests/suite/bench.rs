//! `runner bench` is behind the `bench` cargo feature; a normal build explains how to get it.

#[cfg(not(feature = "bench"))]
#[test]
fn bench_without_the_feature_says_how_to_build_it() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_runner"))
        .args(["bench", "--quick"])
        .output()
        .expect("runner starts");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("built without `runner bench`") && err.contains("--features bench"),
        "{err}"
    );
}
