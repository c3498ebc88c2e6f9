//! The conv layers of `runner bench` (and two ResNet-18 @64 b16 layers) on both engines as the
//! ops route them, alternated in one process and timed best-of-8, so that load from other
//! processes hits both alike. With oneDNN, the passes `src/ops/engine.rs` keeps built-in
//! (depthwise layers, the stem's input gradient) show built-in times in the oneDNN column; the
//! table in that file was measured the same way before that routing.
//!
//! ```sh
//! cargo run --example engine_layers
//! ```

use std::time::Instant;

use runner::ops::engine::{self, Engine};
use runner::ops::{Conv2dGeom, Padding};

/// (name, batch, c_in, c_out, k, stride, groups, input size).
type Layer = (
    &'static str,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
    usize,
);

const LAYERS: &[Layer] = &[
    ("stem 7x7/2 @224 b4", 4, 3, 64, 7, 2, 1, 224),
    ("3x3 @56 b4", 4, 64, 64, 3, 1, 1, 56),
    ("1x1 @56 b4", 4, 24, 144, 1, 1, 1, 56),
    ("dw 5x5 @28 b4", 4, 240, 240, 5, 1, 240, 28),
    ("dw 3x3/2 @56 b4", 4, 96, 96, 3, 2, 96, 56),
    ("3x3 @16 b16", 16, 64, 64, 3, 1, 1, 16),
    ("stem 7x7/2 @64 b16", 16, 3, 64, 7, 2, 1, 64),
];

fn main() {
    let onednn = match Engine::onednn() {
        Ok(e) => e,
        Err(why) => {
            eprintln!("oneDNN is unusable here: {why}");
            std::process::exit(1);
        }
    };
    println!(
        "{}; GFLOP/s forward / backward-data / backward-weights",
        onednn.name()
    );
    for &(name, n, ci, co, k, s, g, hw) in LAYERS {
        let geom = Conv2dGeom::new(n, ci, hw, hw, co, k, s, Padding::Symmetric(k / 2), g);
        let x: Vec<f32> = (0..n * ci * hw * hw)
            .map(|i| (i % 17) as f32 * 0.1 - 0.8)
            .collect();
        let w: Vec<f32> = (0..geom.weight_len())
            .map(|i| (i % 13) as f32 * 0.01 - 0.06)
            .collect();
        let mut out = vec![0.0f32; n * co * geom.oh * geom.ow];
        let (mut dx, mut dw) = (vec![0.0f32; x.len()], vec![0.0f32; w.len()]);
        let flop = 2.0 * geom.macs() as f64;
        let mut best = [[f64::MAX; 3]; 2];
        for _ in 0..8 {
            for (e, engine) in [Engine::Builtin, onednn].into_iter().enumerate() {
                engine::with(engine, || {
                    let t = Instant::now();
                    let saved = engine::conv_forward(&geom, &x, &w, None, &mut out, true);
                    best[e][0] = best[e][0].min(t.elapsed().as_secs_f64());
                    let t = Instant::now();
                    engine::conv_backward(&geom, &saved, &x, &w, &out, Some(&mut dx), None, None);
                    best[e][1] = best[e][1].min(t.elapsed().as_secs_f64());
                    let t = Instant::now();
                    engine::conv_backward(&geom, &saved, &x, &w, &out, None, Some(&mut dw), None);
                    best[e][2] = best[e][2].min(t.elapsed().as_secs_f64());
                });
            }
        }
        let rate = |t: f64| flop / t / 1e9;
        println!(
            "{name:20} built-in {:6.1} {:6.1} {:6.1} | oneDNN {:6.1} {:6.1} {:6.1}",
            rate(best[0][0]),
            rate(best[0][1]),
            rate(best[0][2]),
            rate(best[1][0]),
            rate(best[1][1]),
            rate(best[1][2])
        );
    }
}
