//! `runner bench` (cargo feature `bench`; without it the command says how to get it).

use std::path::PathBuf;

use clap::Args;

use super::Failure;

#[derive(Debug, Args)]
// Without the `bench` feature the command only explains how to get it.
#[cfg_attr(not(feature = "bench"), allow(dead_code))]
pub(super) struct BenchArgs {
    /// Two timed iterations per row instead of five (the whole run in a couple of minutes).
    #[arg(long)]
    quick: bool,
    /// Images for the loading benchmark.
    #[arg(long, default_value = "pipeline/data/catdog-photos")]
    images: PathBuf,
    /// Image-folder dataset for the model rows (the first files of each class are copied).
    #[arg(long, default_value = "pipeline/data/animal-mnist-catdog")]
    data: PathBuf,
    /// EfficientNet-Lite0 weights for the frozen-feature rows.
    #[arg(
        long,
        default_value = "pipeline/weights/efficientnet_lite0_imagenet.safetensors"
    )]
    lite0_weights: PathBuf,
}

#[cfg(not(feature = "bench"))]
pub(super) fn cmd_bench(_: BenchArgs) -> Result<(), Failure> {
    Err(Failure::Usage(
        "this runner was built without `runner bench` (benchmark code stays out of normal builds)\n\
         build it with the `bench` feature, e.g.:\n    \
         cargo build --release --features bench && target/release/runner bench"
            .into(),
    ))
}

#[cfg(feature = "bench")]
pub(super) fn cmd_bench(a: BenchArgs) -> Result<(), Failure> {
    let opts = crate::bench::BenchOptions {
        quick: a.quick,
        images: a.images,
        data: a.data,
        lite0_weights: a.lite0_weights,
        torch: std::env::var("BENCH_TORCH").ok().filter(|s| !s.is_empty()),
    };
    crate::bench::run(&opts).map_err(Failure::failed)
}
