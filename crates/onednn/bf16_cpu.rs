//! Shared by the build scripts of runner and runner-onednn (each includes this file): sets
//! `cfg(bf16_cpu)` when the build machine's CPU computes bf16 natively (`avx512_bf16` or AMX).
//! The bf16 tests run there and are listed as ignored, with the reason, elsewhere; tests run
//! where they are built, so the build machine's CPU is theirs.

pub(crate) fn emit_cfg() {
    println!("cargo::rustc-check-cfg=cfg(bf16_cpu)");
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    if has("avx512_bf16") || has("amx_bf16") {
        println!("cargo::rustc-cfg=bf16_cpu");
    }
}
