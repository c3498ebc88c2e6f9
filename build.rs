//! Records the compiler version for run manifests, and sets `cfg(bf16_cpu)` when the build
//! machine's CPU computes bf16 natively (`avx512_bf16` or AMX): the bf16 tests run there and are
//! listed as ignored, with the reason, elsewhere (tests run where they are built).
fn main() {
    println!("cargo::rustc-check-cfg=cfg(bf16_cpu)");
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    if has("avx512_bf16") || has("amx_bf16") {
        println!("cargo::rustc-cfg=bf16_cpu");
    }
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let version = std::process::Command::new(rustc)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    println!("cargo:rustc-env=RUNNER_RUSTC_VERSION={}", version.trim());
    println!("cargo:rerun-if-changed=build.rs");
}
