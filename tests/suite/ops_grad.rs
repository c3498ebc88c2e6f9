//! Finite-difference and reference checks of the conv / pool / activation ops, and the
//! hand-derived "seed network" gradients through dfdx's autodiff.

use crate::common;

use common::grad::{dot, finite_diff, random};
use dfdx::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use runner::ops::pool::{avg_pool_forward, max_pool_forward, PoolGeom};
use runner::ops::Conv2dGeom;
use runner::ops::{avg_pool2d, conv2d, max_pool2d, relu6, Padding};

/// ‖a − b‖ / ‖b‖ (with a floor on ‖b‖ so exact zeros compare absolutely).
fn rel_err(a: &[f32], b: &[f64]) -> f64 {
    common::grad::rel_err(a, b, 1e-6)
}

/// The forward pass of the engine this thread's ops run on (what the tape differentiates).
fn conv2d_forward(g: &Conv2dGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let mut out = vec![0.0; g.batch * g.c_out * g.oh * g.ow];
    runner::ops::engine::conv_forward(g, x, w, bias, &mut out, false);
    out
}

/// Direct f64 convolution, independent of the library's im2col/gemm/depthwise code.
fn conv_reference(g: &Conv2dGeom, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f64> {
    let (cin_g, cout_g, k) = (g.c_in / g.groups, g.c_out / g.groups, g.k);
    let mut out = vec![0.0f64; g.batch * g.c_out * g.oh * g.ow];
    for b in 0..g.batch {
        for o in 0..g.c_out {
            let gi = o / cout_g;
            for oy in 0..g.oh {
                for ox in 0..g.ow {
                    let mut acc = bias.map_or(0.0, |b| b[o] as f64);
                    for ci in 0..cin_g {
                        let c = gi * cin_g + ci;
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy = (oy * g.stride + ky) as isize - g.pad_top as isize;
                                let ix = (ox * g.stride + kx) as isize - g.pad_left as isize;
                                if iy < 0 || ix < 0 || iy >= g.h as isize || ix >= g.w as isize {
                                    continue;
                                }
                                let xv = x
                                    [((b * g.c_in + c) * g.h + iy as usize) * g.w + ix as usize]
                                    as f64;
                                acc += xv * w[((o * cin_g + ci) * k + ky) * k + kx] as f64;
                            }
                        }
                    }
                    out[((b * g.c_out + o) * g.oh + oy) * g.ow + ox] = acc;
                }
            }
        }
    }
    out
}

#[expect(
    clippy::too_many_arguments,
    reason = "a gradient check's shapes, inputs and tolerances"
)]
fn check_conv<const I: usize, const O: usize, const K: usize>(
    seed: u64,
    n: usize,
    h: usize,
    w: usize,
    stride: usize,
    padding: Padding,
    groups: usize,
    with_bias: bool,
    expect_out: (usize, usize),
) {
    runner::testing::on_each_engine(|engine| {
        println!("engine: {engine}");
        let dev = Cpu::seed_from_u64(seed);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let g = Conv2dGeom::new(n, I, h, w, O, K, stride, padding, groups);
        assert_eq!((g.oh, g.ow), expect_out, "output size");
        let x = random(&mut rng, n * I * h * w);
        let wt = random(&mut rng, O * (I / groups) * K * K);
        let b = random(&mut rng, O);
        let r = random(&mut rng, n * O * g.oh * g.ow);
        let bias = with_bias.then_some(&b[..]);

        // Forward against the direct f64 reference.
        let fast = conv2d_forward(&g, &x, &wt, bias);
        let reference = conv_reference(&g, &x, &wt, bias);
        let e = rel_err(&fast, &reference);
        assert!(e < 1e-5, "forward rel err {e}");

        // Backward through the tape.
        let x_t = dev.tensor_from_vec(x.clone(), (n, Const::<I>, h, w));
        let w_t = dev.tensor_from_vec(wt.clone(), (Const::<O>, I / groups, Const::<K>, Const::<K>));
        let b_t = dev.tensor_from_vec(b.clone(), (Const::<O>,));
        let r_t = dev.tensor_from_vec(r.clone(), (n, Const::<O>, g.oh, g.ow));
        let out = conv2d(
            x_t.clone().leaky_traced(),
            &w_t,
            with_bias.then_some(&b_t),
            stride,
            padding,
            groups,
        );
        let grads = (out * r_t).sum().backward();

        let eps = 1e-2;
        let fd_x = finite_diff(&x, eps, |p| dot(&conv2d_forward(&g, p, &wt, bias), &r));
        let fd_w = finite_diff(&wt, eps, |p| dot(&conv2d_forward(&g, &x, p, bias), &r));
        let ex = rel_err(&grads.get(&x_t).as_vec(), &fd_x);
        let ew = rel_err(&grads.get(&w_t).as_vec(), &fd_w);
        assert!(ex < 1e-3, "dx rel err {ex}");
        assert!(ew < 1e-3, "dw rel err {ew}");
        if with_bias {
            let fd_b = finite_diff(&b, eps, |p| dot(&conv2d_forward(&g, &x, &wt, Some(p)), &r));
            let eb = rel_err(&grads.get(&b_t).as_vec(), &fd_b);
            assert!(eb < 1e-3, "db rel err {eb}");
        }
    });
}

#[test]
fn conv_dense_stride1_pad1_bias() {
    check_conv::<3, 4, 3>(1, 2, 5, 6, 1, Padding::Symmetric(1), 1, true, (5, 6));
}

#[test]
fn conv_dense_stride2_pad2_k5() {
    check_conv::<2, 3, 5>(2, 1, 9, 8, 2, Padding::Symmetric(2), 1, false, (5, 4));
}

#[test]
fn conv_same_stride2_even_input() {
    // 8 -> 4 with k3 s2: SAME pads 0 on top/left and 1 on bottom/right.
    check_conv::<3, 4, 3>(3, 2, 8, 8, 2, Padding::Same, 1, false, (4, 4));
}

#[test]
fn conv_same_stride2_odd_input_k5() {
    check_conv::<2, 3, 5>(4, 1, 7, 9, 2, Padding::Same, 1, true, (4, 5));
}

#[test]
fn conv_grouped() {
    check_conv::<4, 6, 3>(5, 2, 7, 6, 2, Padding::Same, 2, false, (4, 3));
}

#[test]
fn conv_depthwise_stride2_same() {
    check_conv::<4, 4, 3>(6, 2, 7, 7, 2, Padding::Same, 4, false, (4, 4));
}

#[test]
fn conv_depthwise_k5_stride1_same() {
    check_conv::<4, 4, 5>(7, 1, 6, 5, 1, Padding::Same, 4, true, (6, 5));
}

#[test]
fn conv_depthwise_multiplier() {
    // groups = in channels but two filters per channel: the grouped gemm path.
    check_conv::<3, 6, 3>(8, 2, 5, 5, 1, Padding::Symmetric(1), 3, false, (5, 5));
}

#[test]
fn conv_pointwise() {
    check_conv::<3, 5, 1>(9, 2, 4, 3, 1, Padding::Symmetric(0), 1, true, (4, 3));
}

#[test]
fn conv_pointwise_large_plane() {
    // ≥ 48 output pixels: the per-image gemm path without packing.
    check_conv::<3, 4, 1>(11, 2, 7, 8, 1, Padding::Symmetric(0), 1, true, (7, 8));
}

#[test]
fn conv_pointwise_stride2() {
    check_conv::<3, 5, 1>(10, 2, 5, 5, 2, Padding::Symmetric(0), 1, false, (3, 3));
}

/// Values spaced ≥ 0.05 apart in random order: no ties within a window, and a ±1e-3 nudge
/// never changes which element is the maximum.
fn distinct_values(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
    let mut v: Vec<f32> = (0..n).map(|i| i as f32 * 0.05 - n as f32 * 0.025).collect();
    for i in (1..n).rev() {
        v.swap(i, rng.gen_range(0..=i));
    }
    v
}

#[expect(
    clippy::too_many_arguments,
    reason = "a gradient check's shapes, inputs and tolerances"
)]
fn check_pool(
    max: bool,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    s: usize,
    p: Padding,
    expect: (usize, usize),
) {
    let dev = Cpu::seed_from_u64(11);
    let mut rng = ChaCha8Rng::seed_from_u64(11 + k as u64 + s as u64);
    let g = PoolGeom::new(n * c, h, w, k, s, p);
    assert_eq!((g.oh, g.ow), expect);
    let x = distinct_values(&mut rng, n * c * h * w);
    let r = random(&mut rng, n * c * g.oh * g.ow);
    let fwd = |v: &[f32]| {
        if max {
            max_pool_forward(&g, v).0
        } else {
            avg_pool_forward(&g, v)
        }
    };

    // Forward against a direct reference (max ignores padding, average divides by k·k).
    let mut reference = vec![0.0f64; n * c * g.oh * g.ow];
    for pl in 0..n * c {
        for oy in 0..g.oh {
            for ox in 0..g.ow {
                let mut vals = vec![];
                for ky in 0..k {
                    for kx in 0..k {
                        let iy = (oy * s + ky) as isize - g.pad_top as isize;
                        let ix = (ox * s + kx) as isize - g.pad_left as isize;
                        if iy >= 0 && ix >= 0 && iy < h as isize && ix < w as isize {
                            vals.push(x[(pl * h + iy as usize) * w + ix as usize] as f64);
                        }
                    }
                }
                reference[(pl * g.oh + oy) * g.ow + ox] = if max {
                    vals.iter().cloned().fold(f64::NEG_INFINITY, f64::max)
                } else {
                    vals.iter().sum::<f64>() / (k * k) as f64
                };
            }
        }
    }
    assert!(rel_err(&fwd(&x), &reference) < 1e-6);

    let x_t = dev.tensor_from_vec(x.clone(), (n, c, h, w));
    let r_t = dev.tensor_from_vec(r.clone(), (n, c, g.oh, g.ow));
    let out = if max {
        max_pool2d(x_t.clone().leaky_traced(), k, s, p)
    } else {
        avg_pool2d(x_t.clone().leaky_traced(), k, s, p)
    };
    let grads = (out * r_t).sum().backward();
    let fd = finite_diff(&x, 1e-3, |v| dot(&fwd(v), &r));
    let e = rel_err(&grads.get(&x_t).as_vec(), &fd);
    assert!(e < 1e-3, "pool grad rel err {e}");
}

#[test]
fn max_pool_resnet_stem_geometry() {
    check_pool(true, 2, 3, 8, 7, 3, 2, Padding::Symmetric(1), (4, 4));
}

#[test]
fn max_pool_stride1_and_same() {
    check_pool(true, 1, 2, 5, 6, 2, 2, Padding::Symmetric(0), (2, 3));
    check_pool(true, 1, 2, 5, 6, 3, 2, Padding::Same, (3, 3));
}

#[test]
fn avg_pool_variants() {
    check_pool(false, 2, 3, 6, 6, 2, 2, Padding::Symmetric(0), (3, 3));
    check_pool(false, 1, 2, 7, 5, 3, 2, Padding::Symmetric(1), (4, 3));
    check_pool(false, 1, 2, 7, 5, 3, 1, Padding::Same, (7, 5));
}

#[test]
fn relu6_gradient() {
    let dev = Cpu::seed_from_u64(0);
    // Away from the kinks at 0 and 6.
    let x = vec![-2.0f32, -0.5, 0.3, 1.0, 3.0, 5.5, 6.5, 9.0];
    let r = vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0];
    let x_t = dev.tensor_from_vec(x.clone(), (8usize,));
    let r_t = dev.tensor_from_vec(r.clone(), (8usize,));
    let y = relu6(x_t.clone().leaky_traced());
    assert_eq!(y.as_vec(), vec![0.0, 0.0, 0.3, 1.0, 3.0, 5.5, 6.0, 6.0]);
    let grads = (y * r_t).sum().backward();
    let fd = finite_diff(&x, 1e-2, |v| {
        v.iter()
            .zip(&r)
            .map(|(a, b)| a.clamp(0.0, 6.0) as f64 * *b as f64)
            .sum()
    });
    assert!(rel_err(&grads.get(&x_t).as_vec(), &fd) < 1e-4);
}

/// The seed network z = w1·x, u = σ(z), φ = w2·u, L = (φ − y)²: dfdx's autodiff must give
/// ∂L/∂w1 = 2(φ − y)·w2·u(1 − u)·x and ∂L/∂w2 = 2(φ − y)·u.
#[test]
fn seed_network_gradients_by_hand() {
    let dev = Cpu::seed_from_u64(0);
    let (x, y, w1v, w2v) = (0.7f32, 0.25f32, -1.3f32, 0.8f32);
    let w1 = dev.tensor(w1v);
    let w2 = dev.tensor(w2v);
    let z = w1.clone().leaky_traced() * x;
    let u = z.sigmoid();
    let phi = u * w2.clone();
    let loss = (phi - y).square();
    let grads = loss.backward();

    let zv = (w1v * x) as f64;
    let uv = 1.0 / (1.0 + (-zv).exp());
    let phiv = w2v as f64 * uv;
    let d_w1 = 2.0 * (phiv - y as f64) * w2v as f64 * uv * (1.0 - uv) * x as f64;
    let d_w2 = 2.0 * (phiv - y as f64) * uv;
    let g1 = grads.get(&w1).array() as f64;
    let g2 = grads.get(&w2).array() as f64;
    assert!((g1 - d_w1).abs() < 1e-6, "dL/dw1 {g1} vs {d_w1}");
    assert!((g2 - d_w2).abs() < 1e-6, "dL/dw2 {g2} vs {d_w2}");
}

/// f64 batch norm over NCHW `x` with batch statistics (train) or given statistics (eval).
#[expect(
    clippy::too_many_arguments,
    reason = "a gradient check's shapes, inputs and tolerances"
)]
fn bn_reference(
    n: usize,
    c: usize,
    hw: usize,
    x: &[f64],
    gamma: &[f64],
    beta: &[f64],
    stats: Option<(&[f64], &[f64])>,
    eps: f64,
) -> Vec<f64> {
    let m = (n * hw) as f64;
    let mut y = vec![0.0; x.len()];
    for ch in 0..c {
        let vals = (0..n).flat_map(|b| x[(b * c + ch) * hw..(b * c + ch + 1) * hw].iter().copied());
        let (mean, var) = match stats {
            Some((rm, rv)) => (rm[ch], rv[ch]),
            None => {
                let mean = vals.clone().sum::<f64>() / m;
                (mean, vals.map(|v| (v - mean).powi(2)).sum::<f64>() / m)
            }
        };
        for b in 0..n {
            for i in 0..hw {
                let k = (b * c + ch) * hw + i;
                y[k] = (x[k] - mean) / (var + eps).sqrt() * gamma[ch] + beta[ch];
            }
        }
    }
    y
}

fn f64s(v: &[f32]) -> Vec<f64> {
    v.iter().map(|x| *x as f64).collect()
}

#[test]
fn batchnorm_train_and_frozen_gradients() {
    use runner::ops::{batchnorm2d_eval, batchnorm2d_train};
    const C: usize = 3;
    let (n, h, w, eps) = (2usize, 3usize, 4usize, 1e-5);
    let hw = h * w;
    let dev = Cpu::seed_from_u64(12);
    let mut rng = ChaCha8Rng::seed_from_u64(12);
    let x: Vec<f32> = random(&mut rng, n * C * hw)
        .iter()
        .map(|v| v * 2.0 + 0.5)
        .collect();
    let gamma: Vec<f32> = random(&mut rng, C).iter().map(|v| 1.0 + 0.5 * v).collect();
    let beta = random(&mut rng, C);
    let rm0 = random(&mut rng, C);
    let rv0: Vec<f32> = random(&mut rng, C).iter().map(|v| 1.0 + 0.5 * v).collect();
    let r = random(&mut rng, n * C * hw);

    for frozen in [false, true] {
        let x_t = dev.tensor_from_vec(x.clone(), (n, Const::<C>, h, w));
        let g_t: Tensor<Rank1<C>, f32, Cpu> = dev.tensor_from_vec(gamma.clone(), (Const::<C>,));
        let b_t: Tensor<Rank1<C>, f32, Cpu> = dev.tensor_from_vec(beta.clone(), (Const::<C>,));
        let mut rm: Tensor<Rank1<C>, f32, Cpu> = dev.tensor_from_vec(rm0.clone(), (Const::<C>,));
        let mut rv: Tensor<Rank1<C>, f32, Cpu> = dev.tensor_from_vec(rv0.clone(), (Const::<C>,));
        let r_t = dev.tensor_from_vec(r.clone(), (n, Const::<C>, h, w));
        let y = if frozen {
            batchnorm2d_eval(x_t.clone().leaky_traced(), &g_t, &b_t, &rm, &rv, eps)
        } else {
            batchnorm2d_train(
                x_t.clone().leaky_traced(),
                &g_t,
                &b_t,
                &mut rm,
                &mut rv,
                eps,
                0.1,
            )
        };
        let stats = frozen.then(|| (f64s(&rm0), f64s(&rv0)));
        let stats_ref = stats.as_ref().map(|(a, b)| (&a[..], &b[..]));
        let reference = bn_reference(
            n,
            C,
            hw,
            &f64s(&x),
            &f64s(&gamma),
            &f64s(&beta),
            stats_ref,
            eps,
        );
        assert!(
            rel_err(&y.as_vec(), &reference) < 1e-5,
            "forward (frozen: {frozen})"
        );
        let grads = (y * r_t).sum().backward();

        let rd = f64s(&r);
        let lossf = |xv: &[f64], gv: &[f64], bv: &[f64]| -> f64 {
            bn_reference(n, C, hw, xv, gv, bv, stats_ref, eps)
                .iter()
                .zip(&rd)
                .map(|(a, b)| a * b)
                .sum()
        };
        let (xd, gd, bd) = (f64s(&x), f64s(&gamma), f64s(&beta));
        let fd_x = finite_diff(&xd, 1e-6, |p| lossf(p, &gd, &bd));
        let fd_g = finite_diff(&gd, 1e-6, |p| lossf(&xd, p, &bd));
        let fd_b = finite_diff(&bd, 1e-6, |p| lossf(&xd, &gd, p));
        for (what, ours, fd) in [
            ("dx", grads.get(&x_t).as_vec(), fd_x),
            ("dgamma", grads.get(&g_t).as_vec(), fd_g),
            ("dbeta", grads.get(&b_t).as_vec(), fd_b),
        ] {
            let e = rel_err(&ours, &fd);
            assert!(e < 1e-4, "{what} rel err {e} (frozen: {frozen})");
        }
    }
}

/// The fused BatchNorm agrees with dfdx's (outputs in both modes, running-statistic updates).
#[test]
fn batchnorm_matches_dfdx() {
    let dev = Cpu::seed_from_u64(13);
    let mut ours = dev.build_module::<runner::nn::builder::BatchNorm2D<4>, f32>();
    let mut theirs = dev.build_module::<dfdx::nn::builders::BatchNorm2D<4>, f32>();
    let x: Tensor<(usize, Const<4>, usize, usize), f32, Cpu> =
        dev.sample_normal_like(&(3, Const, 5, 5));
    let x = x * 1.5 + 0.3;
    for _ in 0..2 {
        let a = ours.forward_mut(x.clone().leaky_traced());
        let b = theirs.forward_mut(x.clone().leaky_traced());
        assert!(rel_err(&a.as_vec(), &f64s(&b.as_vec())) < 1e-5);
    }
    assert!(
        rel_err(
            &ours.running_mean.as_vec(),
            &f64s(&theirs.running_mean.as_vec())
        ) < 1e-5
    );
    assert!(
        rel_err(
            &ours.running_var.as_vec(),
            &f64s(&theirs.running_var.as_vec())
        ) < 1e-5
    );
    let (a, b) = (ours.forward(x.clone()), theirs.forward(x));
    assert!(rel_err(&a.as_vec(), &f64s(&b.as_vec())) < 1e-5);
}

/// BatchNorm with a fused ReLU / ReLU6 (and residual add) gives exactly what BatchNorm followed
/// by dfdx's `+` and `relu` / `clamp(0, 6)` gives: outputs and the gradients of x, γ, β and the
/// residual, in train and frozen mode.
#[test]
fn batchnorm_fused_activation_matches_unfused() {
    use runner::ops::batchnorm::{batchnorm2d_eval_act, batchnorm2d_train_act, Act};
    use runner::ops::{batchnorm2d_eval, batchnorm2d_train};
    const C: usize = 3;
    let (n, h, w, eps) = (2usize, 3usize, 4usize, 1e-5);
    let dev = Cpu::seed_from_u64(14);
    let mut rng = ChaCha8Rng::seed_from_u64(14);
    // Wide values so that ReLU6 clips at both ends.
    let x: Vec<f32> = random(&mut rng, n * C * h * w)
        .iter()
        .map(|v| v * 8.0)
        .collect();
    let gamma: Vec<f32> = random(&mut rng, C).iter().map(|v| 3.0 + v).collect();
    let beta: Vec<f32> = random(&mut rng, C).iter().map(|v| v * 2.0).collect();
    let res: Vec<f32> = random(&mut rng, n * C * h * w)
        .iter()
        .map(|v| v * 3.0)
        .collect();
    let r = random(&mut rng, n * C * h * w);
    for act in [Act::Relu, Act::Relu6] {
        for frozen in [false, true] {
            for with_res in [false, true] {
                let mut outs = Vec::new();
                for fused in [false, true] {
                    let x_t = dev.tensor_from_vec(x.clone(), (n, Const::<C>, h, w));
                    let res_t = dev.tensor_from_vec(res.clone(), (n, Const::<C>, h, w));
                    let g_t: Tensor<Rank1<C>, f32, Cpu> =
                        dev.tensor_from_vec(gamma.clone(), (Const,));
                    let b_t: Tensor<Rank1<C>, f32, Cpu> =
                        dev.tensor_from_vec(beta.clone(), (Const,));
                    let mut rm: Tensor<Rank1<C>, f32, Cpu> =
                        dev.tensor_from_vec(vec![0.5; C], (Const,));
                    let mut rv: Tensor<Rank1<C>, f32, Cpu> =
                        dev.tensor_from_vec(vec![2.0; C], (Const,));
                    let xt = x_t.clone().leaky_traced();
                    let rs = with_res.then_some(&res_t);
                    let y = match (frozen, fused) {
                        (true, true) => {
                            batchnorm2d_eval_act(xt, &g_t, &b_t, &rm, &rv, eps, rs, act)
                        }
                        (false, true) => batchnorm2d_train_act(
                            xt, &g_t, &b_t, &mut rm, &mut rv, eps, 0.1, rs, act,
                        ),
                        (true, false) => batchnorm2d_eval(xt, &g_t, &b_t, &rm, &rv, eps),
                        (false, false) => {
                            batchnorm2d_train(xt, &g_t, &b_t, &mut rm, &mut rv, eps, 0.1)
                        }
                    };
                    let y = match (fused, with_res) {
                        (false, true) => y + res_t.clone(),
                        _ => y,
                    };
                    let y = match (fused, act) {
                        (true, _) => y,
                        (false, Act::Relu) => y.relu(),
                        (false, _) => relu6(y),
                    };
                    let yv = y.as_vec();
                    let r_t = dev.tensor_from_vec(r.clone(), (n, Const::<C>, h, w));
                    let grads = (y * r_t).sum().backward();
                    let g_res = with_res.then(|| grads.get(&res_t).as_vec());
                    outs.push((
                        yv,
                        grads.get(&x_t).as_vec(),
                        grads.get(&g_t).as_vec(),
                        grads.get(&b_t).as_vec(),
                        g_res,
                        rm.as_vec(),
                        rv.as_vec(),
                    ));
                }
                assert!(outs[1].0.contains(&0.0), "ReLU clips somewhere");
                assert_eq!(
                    outs[0], outs[1],
                    "{act:?}, frozen: {frozen}, residual: {with_res}"
                );
            }
        }
    }
}

/// A network's first layer skips its input gradient and computes the same weight gradient.
#[test]
fn a_first_layer_conv_has_the_same_weight_gradient_and_no_input_gradient() {
    use runner::ops::conv::conv2d_first_layer;
    runner::testing::on_each_engine(|engine| {
        let dev = Cpu::seed_from_u64(4);
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (n, h) = (2, 19);
        let x = random(&mut rng, n * 3 * h * h);
        let wt = random(&mut rng, 8 * 3 * 7 * 7);
        let g = Conv2dGeom::new(n, 3, h, h, 8, 7, 2, Padding::Symmetric(3), 1);
        let r = random(&mut rng, n * 8 * g.oh * g.ow);
        let w_t = dev.tensor_from_vec(wt, (Const::<8>, 3, Const::<7>, Const::<7>));
        let r_t = dev.tensor_from_vec(r, (n, Const::<8>, g.oh, g.ow));
        let weight_grad = |first: bool| {
            let x_t = dev.tensor_from_vec(x.clone(), (n, Const::<3>, h, h));
            let x_in = x_t.clone().leaky_traced();
            let out = if first {
                conv2d_first_layer(x_in, &w_t, None, 2, Padding::Symmetric(3), 1)
            } else {
                conv2d(x_in, &w_t, None, 2, Padding::Symmetric(3), 1)
            };
            let mut grads = (out * r_t.clone()).sum().backward();
            // none was computed for the first layer's input: a fresh (zero) one is allocated
            let dx = grads.get_or_alloc_mut(&x_t).unwrap();
            let has_dx = dx.iter().any(|v| *v != 0.0);
            (grads.get(&w_t).as_vec(), has_dx)
        };
        let (dw_first, dx_first) = weight_grad(true);
        let (dw, dx) = weight_grad(false);
        assert_eq!(dw_first, dw, "{engine}");
        assert!(
            dx && !dx_first,
            "{engine}: input gradient {dx} / first layer {dx_first}"
        );
    });
}
