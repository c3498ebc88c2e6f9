//! One forward and one backward pass of a conv layer of `runner bench`, for instruction counts
//! that do not depend on machine load:
//!
//! ```sh
//! cargo build -p runner-kernels --example conv_layer
//! for pass in none fwd bwd; do RAYON_NUM_THREADS=1 valgrind --tool=callgrind \
//!     --callgrind-out-file=/dev/null target/debug/examples/conv_layer dw5 $pass; done
//! ```
//! `fwd` minus `none` is the forward pass, `bwd` minus `fwd` the backward pass (∂x and ∂w)
//! (the work runs on rayon's threads, so `--toggle-collect` on the entry points misses it).
//! The layers are `runner bench`'s, at batch 4.

use runner_kernels::conv::{conv2d_backward, conv2d_forward_into, Conv2dGeom};
use runner_kernels::geometry::Padding;

/// (name, c_in, c_out, k, stride, groups, input size), as in runner's bench.
const LAYERS: &[(&str, usize, usize, usize, usize, usize, usize)] = &[
    ("stem", 3, 64, 7, 2, 1, 224),
    ("layer1", 64, 64, 3, 1, 1, 56),
    ("layer2", 128, 128, 3, 1, 1, 28),
    ("expand", 24, 144, 1, 1, 1, 56),
    ("dw5", 240, 240, 5, 1, 240, 28),
    ("dw3s2", 96, 96, 3, 2, 96, 56),
];

fn main() {
    let name = std::env::args().nth(1).unwrap_or_else(|| "dw5".into());
    let pass = std::env::args().nth(2).unwrap_or_else(|| "bwd".into());
    let Some(&(_, ci, co, k, s, g, hw)) = LAYERS.iter().find(|l| l.0 == name) else {
        let names: Vec<_> = LAYERS.iter().map(|l| l.0).collect();
        eprintln!("unknown layer {name}; one of {names:?}");
        std::process::exit(2);
    };
    let geom = Conv2dGeom::new(4, ci, hw, hw, co, k, s, Padding::Symmetric(k / 2), g);
    let x: Vec<f32> = (0..4 * ci * hw * hw)
        .map(|i| (i % 17) as f32 * 0.1 - 0.8)
        .collect();
    let w: Vec<f32> = (0..geom.weight_len())
        .map(|i| (i % 13) as f32 * 0.01 - 0.06)
        .collect();
    let mut out = vec![0.0f32; 4 * co * geom.oh * geom.ow];
    let (mut dx, mut dw) = (vec![0.0f32; x.len()], vec![0.0f32; w.len()]);
    // Starts rayon's pool in every pass, so that `none` subtracts it too.
    rayon::join(|| (), || ());
    if pass != "none" {
        conv2d_forward_into(&geom, &x, &w, None, &mut out);
    }
    if pass == "bwd" {
        conv2d_backward(&geom, &x, &w, &out, Some(&mut dx), Some(&mut dw), None);
    }
    let sum: f64 = out.iter().chain(&dx).chain(&dw).map(|v| *v as f64).sum();
    println!(
        "{name}: {} MMAC forward, checksum {sum:.6e}",
        geom.macs() / 1_000_000
    );
}
