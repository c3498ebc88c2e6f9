//! Records the compiler version for run manifests, and sets `cfg(bf16_cpu)` for the bf16
//! tests (`crates/onednn/bf16_cpu.rs`, shared with the oneDNN crate's build script).
#[path = "crates/onednn/bf16_cpu.rs"]
mod bf16_cpu;

fn main() {
    bf16_cpu::emit_cfg();
    println!("cargo:rerun-if-changed=crates/onednn/bf16_cpu.rs");
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
