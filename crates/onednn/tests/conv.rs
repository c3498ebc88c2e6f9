//! The binding against a naive convolution, on the installed libdnnl.so.2. Without oneDNN the
//! tests say they skip; with RUNNER_REQUIRE_TOOLS=1 (CI) they fail instead.

use runner_onednn::{ConvSpec, DataType, Dnnl};

fn dnnl() -> Option<&'static Dnnl> {
    match Dnnl::load(2) {
        Ok(d) => Some(d),
        Err(why) => {
            assert!(
                std::env::var("RUNNER_REQUIRE_TOOLS").as_deref() != Ok("1"),
                "RUNNER_REQUIRE_TOOLS=1 but oneDNN is unusable: {why}"
            );
            eprintln!("SKIPPED: oneDNN is unusable here ({why})");
            None
        }
    }
}

fn data(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 7919 + seed * 104729) % 1000) as f32) / 500.0 - 1.0)
        .collect()
}

/// out, dx, dw of a naive convolution (dx, dw for the output gradient `go`).
fn naive(s: &ConvSpec, x: &[f32], w: &[f32], go: &[f32]) -> [Vec<f32>; 3] {
    let (cin_g, cout_g) = (s.c_in / s.groups, s.c_out / s.groups);
    let mut out = vec![0.0f32; s.batch * s.c_out * s.oh * s.ow];
    let (mut dx, mut dw) = (vec![0.0f32; x.len()], vec![0.0f32; w.len()]);
    for b in 0..s.batch {
        for o in 0..s.c_out {
            let gi = o / cout_g;
            for oy in 0..s.oh {
                for ox in 0..s.ow {
                    let oi = ((b * s.c_out + o) * s.oh + oy) * s.ow + ox;
                    for ci in 0..cin_g {
                        let c = gi * cin_g + ci;
                        for ky in 0..s.k {
                            for kx in 0..s.k {
                                let iy = (oy * s.stride + ky) as isize - s.pad_top as isize;
                                let ix = (ox * s.stride + kx) as isize - s.pad_left as isize;
                                if iy < 0 || ix < 0 || iy >= s.h as isize || ix >= s.w as isize {
                                    continue;
                                }
                                let xi = ((b * s.c_in + c) * s.h + iy as usize) * s.w + ix as usize;
                                let wi = ((o * cin_g + ci) * s.k + ky) * s.k + kx;
                                out[oi] += w[wi] * x[xi];
                                dx[xi] += w[wi] * go[oi];
                                dw[wi] += x[xi] * go[oi];
                            }
                        }
                    }
                }
            }
        }
    }
    [out, dx, dw]
}

fn close(a: &[f32], b: &[f32], what: &str) {
    assert_eq!(a.len(), b.len(), "{what} length");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= 1e-4 * (1.0 + x.abs().max(y.abs())),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "one argument per dimension of the convolution under test"
)]
fn spec(
    batch: usize,
    c_in: usize,
    h: usize,
    c_out: usize,
    k: usize,
    stride: usize,
    pad: (usize, usize),
    groups: usize,
) -> ConvSpec {
    let oh = (h + pad.0 + pad.1 - k) / stride + 1;
    ConvSpec {
        batch,
        c_in,
        h,
        w: h,
        c_out,
        k,
        stride,
        pad_top: pad.0,
        pad_left: pad.0,
        pad_bottom: pad.1,
        pad_right: pad.1,
        groups,
        oh,
        ow: oh,
        precision: DataType::F32,
    }
}

#[test]
fn forward_and_accumulated_gradients_match_a_naive_convolution() {
    let Some(d) = dnnl() else { return };
    println!("{}", d.describe());
    let cases = [
        spec(2, 3, 11, 16, 7, 2, (3, 3), 1), // a stem: 3 channels, strided
        spec(2, 16, 9, 32, 3, 1, (1, 1), 1), // dense 3×3
        spec(1, 24, 8, 48, 1, 1, (0, 0), 1), // pointwise
        spec(2, 8, 10, 8, 3, 2, (0, 1), 1),  // TF "SAME" at stride 2: asymmetric
        spec(2, 32, 9, 32, 5, 1, (2, 2), 32), // depthwise
        spec(1, 16, 7, 32, 3, 1, (1, 1), 4), // grouped
    ];
    for s in cases {
        let what = format!("{s:?}");
        let x = data(s.batch * s.c_in * s.h * s.w, 1);
        let w = data(s.c_out * (s.c_in / s.groups) * s.k * s.k, 2);
        let go = data(s.batch * s.c_out * s.oh * s.ow, 3);
        let [out, dx, dw] = naive(&s, &x, &w, &go);
        for keep in [false, true] {
            let mut got = vec![f32::NAN; out.len()];
            let saved = d.conv_forward(&s, &x, &w, &mut got, keep).unwrap();
            close(&got, &out, &format!("out {what}"));
            // gradients are added to what the buffers hold
            let (mut gx, mut gw) = (vec![1.0f32; x.len()], vec![-1.0f32; w.len()]);
            d.conv_backward(
                &s,
                saved.as_ref(),
                &x,
                &w,
                &go,
                Some(&mut gx),
                Some(&mut gw),
            )
            .unwrap();
            let dx1: Vec<f32> = dx.iter().map(|v| v + 1.0).collect();
            let dw1: Vec<f32> = dw.iter().map(|v| v - 1.0).collect();
            close(&gx, &dx1, &format!("dx {what}"));
            close(&gw, &dw1, &format!("dw {what}"));
        }
        let [f, bd, bw] = d.conv_implementations(&s).unwrap();
        println!("{what}: {f} / {bd} / {bw}");
    }
}

/// out, dx, dw of the convolution `s` on oneDNN: a training forward pass that keeps what the
/// backward pass reuses, then the backward pass into zeroed gradients.
fn forward_backward(d: &Dnnl, s: &ConvSpec, x: &[f32], w: &[f32], go: &[f32]) -> [Vec<f32>; 3] {
    let mut out = vec![f32::NAN; go.len()];
    let saved = d.conv_forward(s, x, w, &mut out, true).unwrap();
    let (mut gx, mut gw) = (vec![0.0f32; x.len()], vec![0.0f32; w.len()]);
    d.conv_backward(s, saved.as_ref(), x, w, go, Some(&mut gx), Some(&mut gw))
        .unwrap();
    [out, gx, gw]
}

/// Primitives are cached across threads: one created on a thread that has ended runs on
/// another (oneDNN 2.x's library-managed scratchpad is per thread, so each execution brings its
/// own). The gemm-based grouped weight gradient and the 7×7 stem use a scratchpad.
#[test]
fn a_primitive_created_on_one_thread_runs_on_another() {
    let Some(d) = dnnl() else { return };
    let cases = [
        spec(3, 48, 17, 48, 3, 1, (1, 1), 4),
        spec(2, 3, 37, 16, 7, 2, (3, 3), 1),
        spec(2, 64, 13, 64, 5, 1, (2, 2), 64),
    ];
    for s in cases {
        let x = data(s.batch * s.c_in * s.h * s.w, 4);
        let w = data(s.c_out * (s.c_in / s.groups) * s.k * s.k, 5);
        let go = data(s.batch * s.c_out * s.oh * s.ow, 6);
        let run = || forward_backward(d, &s, &x, &w, &go);
        let first = std::thread::scope(|t| t.spawn(run).join().unwrap());
        let second = std::thread::scope(|t| t.spawn(run).join().unwrap());
        assert_eq!(first, second, "{s:?}");
        let [out, dx, dw] = naive(&s, &x, &w, &go);
        close(&second[0], &out, "out");
        close(&second[1], &dx, "dx");
        close(&second[2], &dw, "dw");
    }
}

/// `v` rounded to the nearest bfloat16 (ties to even), as oneDNN's reorders round.
fn bf16(v: &[f32]) -> Vec<f32> {
    v.iter()
        .map(|x| {
            let b = x.to_bits();
            f32::from_bits((b + 0x7fff + ((b >> 16) & 1)) & 0xffff_0000)
        })
        .collect()
}

/// A bf16 convolution reads its input, weights and output gradient rounded to bf16 and computes
/// in f32: its results are a naive f32 convolution's on the rounded values, to f32 accuracy.
#[test]
#[cfg_attr(
    not(bf16_cpu),
    ignore = "this CPU has neither avx512_bf16 nor AMX: oneDNN has no bf16 kernels for it"
)]
fn bf16_convolutions_compute_in_f32_on_bf16_rounded_values() {
    let Some(d) = dnnl() else { return };
    assert!(
        d.has_bf16(),
        "{}: the CPU has bf16, oneDNN does not use it",
        d.describe()
    );
    let cases = [
        spec(2, 3, 11, 16, 7, 2, (3, 3), 1),
        spec(2, 16, 9, 32, 3, 1, (1, 1), 1),
        spec(1, 24, 8, 48, 1, 1, (0, 0), 1),
        spec(2, 8, 10, 8, 3, 2, (0, 1), 1),
        spec(1, 16, 7, 32, 3, 1, (1, 1), 4),
    ];
    for s in cases {
        let s = ConvSpec {
            precision: DataType::Bf16,
            ..s
        };
        let what = format!("{s:?}");
        let x = data(s.batch * s.c_in * s.h * s.w, 1);
        let w = data(s.c_out * (s.c_in / s.groups) * s.k * s.k, 2);
        let go = data(s.batch * s.c_out * s.oh * s.ow, 3);
        let [out, dx, dw] = naive(&s, &bf16(&x), &bf16(&w), &bf16(&go));
        let [out32, ..] = naive(&s, &x, &w, &go);
        let [got, gx, gw] = forward_backward(d, &s, &x, &w, &go);
        close(&got, &out, &format!("out {what}"));
        assert_ne!(got, out32, "{what}: the f32 result, not bf16's");
        close(&gx, &dx, &format!("dx {what}"));
        close(&gw, &dw, &format!("dw {what}"));
        let [f, bd, bw] = d.conv_implementations(&s).unwrap();
        println!("{what}: {f} / {bd} / {bw}");
    }
}
