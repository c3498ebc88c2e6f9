//! Sets `cfg(bf16_cpu)` for the bf16 tests (see `bf16_cpu.rs`).
mod bf16_cpu;

fn main() {
    bf16_cpu::emit_cfg();
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=bf16_cpu.rs");
}
