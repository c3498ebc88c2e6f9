//! A frozen network for feature extraction: convolutions with their BatchNorm folded into the
//! weights and a bias, the activation and the residual add fused into each convolution's output,
//! weights packed once per input shape, and (with oneDNN) activations kept in oneDNN's blocked
//! layouts from one layer to the next. The built-in engine runs the same folded layers with its
//! own kernels (one convolution and one fused pass per layer).
//!
//! Layers read values by index: value 0 is the network input, value `i + 1` the output of layer
//! `i`; a buffer is released after its last reader (a residual whose last reader is the layer
//! adding it becomes that layer's output buffer, so the add happens in place).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;
use runner_kernels::batchnorm::Act;
use runner_kernels::conv::conv2d_forward_into;
use runner_kernels::geometry::{Conv2dGeom, Padding};
use runner_onednn::infer::{self, InferConv};
use runner_onednn::memory::{Block, Desc};
use runner_onednn::primitive::PostOp;
use runner_onednn::{DataType, Dnnl};

use super::engine::{self, conv_spec, Engine};

/// A convolution with its BatchNorm folded in: `weight` (O × I/G × K × K) and `bias` (O).
#[derive(Debug, Clone)]
pub struct FoldedConv {
    pub c_in: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub padding: Padding,
    pub groups: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// One layer: `act(conv(values[input]) + values[residual])`.
#[derive(Debug, Clone)]
pub struct Layer {
    pub conv: FoldedConv,
    pub input: usize,
    pub residual: Option<usize>,
    pub act: Act,
}

/// Folds an eval-mode BatchNorm (γ, β, running mean μ and variance σ², ε) into the conv
/// weight `w` (O × …) that precedes it: w'ₒ = aₒ·wₒ and b'ₒ = βₒ − μₒ·aₒ with aₒ = γₒ/√(σ²ₒ+ε).
pub(crate) fn fold_batchnorm(
    w: &[f32],
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    var: &[f32],
    eps: f64,
) -> (Vec<f32>, Vec<f32>) {
    let per = w.len() / gamma.len();
    let a: Vec<f64> = gamma
        .iter()
        .zip(var)
        .map(|(g, v)| *g as f64 / (*v as f64 + eps).sqrt())
        .collect();
    let weight = w
        .iter()
        .enumerate()
        .map(|(i, v)| (*v as f64 * a[i / per]) as f32)
        .collect();
    let bias = (0..gamma.len())
        .map(|o| (beta[o] as f64 - mean[o] as f64 * a[o]) as f32)
        .collect();
    (weight, bias)
}

/// A frozen network of folded layers on the engine (and in the convolution precision) current
/// when it was built.
pub(crate) struct FrozenNet {
    layers: Vec<Layer>,
    engine: Engine,
    /// The precision of its convolutions with oneDNN: bf16 keeps activations bf16 between
    /// layers too.
    precision: DataType,
    /// oneDNN's primitives and packed weights per input shape (n, h, w).
    plans: Mutex<HashMap<(usize, usize, usize), Arc<Plan>>>,
}

/// The shapes of every value for one input shape, and oneDNN's layers for it.
struct Plan {
    geoms: Vec<Conv2dGeom>,
    onednn: Vec<OneDnnLayer>,
    /// With oneDNN, the layout of every value (the input's is NCHW).
    layouts: Vec<Desc>,
}

struct OneDnnLayer {
    conv: InferConv,
    /// The input's layout when it differs from what the conv reads (then it is reordered).
    input_from: Option<Desc>,
}

impl FrozenNet {
    pub(crate) fn new(layers: Vec<Layer>) -> FrozenNet {
        FrozenNet {
            layers,
            engine: engine::current(),
            precision: engine::conv_precision(),
            plans: Mutex::new(HashMap::new()),
        }
    }

    fn plan(&self, n: usize, h: usize, w: usize) -> Arc<Plan> {
        if let Some(p) = self.plans.lock().unwrap().get(&(n, h, w)) {
            return p.clone();
        }
        let mut dims = vec![(0usize, h, w)];
        let mut geoms = Vec::new();
        for l in &self.layers {
            let c = &l.conv;
            let (_, ih, iw) = dims[l.input];
            let g = Conv2dGeom::new(
                n, c.c_in, ih, iw, c.c_out, c.k, c.stride, c.padding, c.groups,
            );
            dims.push((c.c_out, g.oh, g.ow));
            geoms.push(g);
        }
        let (onednn, layouts) = match self.engine {
            Engine::OneDnn(d) => self.onednn_layers(d, &geoms, [n, self.layers[0].conv.c_in, h, w]),
            Engine::Builtin => (Vec::new(), Vec::new()),
        };
        let p = Arc::new(Plan {
            geoms,
            onednn,
            layouts,
        });
        self.plans.lock().unwrap().insert((n, h, w), p.clone());
        p
    }

    fn onednn_layers(
        &self,
        d: &Dnnl,
        geoms: &[Conv2dGeom],
        input: [usize; 4],
    ) -> (Vec<OneDnnLayer>, Vec<Desc>) {
        let mut layouts: Vec<Option<Desc>> = vec![None];
        let mut out = Vec::new();
        for (l, g) in self.layers.iter().zip(geoms) {
            let mut post = Vec::new();
            if l.residual.is_some() {
                post.push(PostOp::Sum);
            }
            match l.act {
                Act::Identity => {}
                Act::Relu => post.push(PostOp::Relu),
                Act::Relu6 => post.push(PostOp::Clip(0.0, 6.0)),
            }
            let (c, s) = (&l.conv, conv_spec(g, self.precision));
            let from = layouts[l.input];
            // the previous layer's layout where this primitive accepts it, else its own choice
            let conv = from
                .as_ref()
                .and_then(|f| InferConv::new(d, &s, Some(f), &c.weight, &c.bias, &post).ok())
                .map(Ok)
                .unwrap_or_else(|| InferConv::new(d, &s, None, &c.weight, &c.bias, &post))
                .unwrap_or_else(|e| panic!("{e}"));
            let input_from = match &from {
                Some(f) if f.same(conv.src(), d) => None,
                Some(f) => Some(*f),
                None => Some(infer::nchw(d, [g.batch, g.c_in, g.h, g.w]).expect("plain layout")),
            };
            layouts.push(Some(*conv.dst()));
            out.push(OneDnnLayer { conv, input_from });
        }
        let plain = infer::nchw(d, input).expect("plain layout");
        let layouts = layouts.into_iter().map(|l| l.unwrap_or(plain)).collect();
        (out, layouts)
    }

    /// The last layer's output (NCHW) for the images `x` (n × C × h × w), and its
    /// (channels, height, width).
    pub(crate) fn forward(
        &self,
        x: &[f32],
        n: usize,
        h: usize,
        w: usize,
    ) -> (Vec<f32>, [usize; 3]) {
        let plan = self.plan(n, h, w);
        let last = plan.geoms.last().expect("a network has layers");
        let shape = [last.c_out, last.oh, last.ow];
        let out = match self.engine {
            Engine::OneDnn(d) => self.forward_onednn(d, &plan, x),
            Engine::Builtin => self.forward_builtin(&plan, x),
        };
        (out, shape)
    }

    /// For each value, the index of the last layer reading it.
    fn last_uses(&self) -> Vec<usize> {
        let mut last = vec![0; self.layers.len() + 1];
        for (i, l) in self.layers.iter().enumerate() {
            last[l.input] = i;
            if let Some(r) = l.residual {
                last[r] = i;
            }
        }
        last
    }

    fn forward_builtin(&self, plan: &Plan, x: &[f32]) -> Vec<f32> {
        let last = self.last_uses();
        let mut values: Vec<Option<Vec<f32>>> = vec![Some(x.to_vec())];
        for (i, (l, g)) in self.layers.iter().zip(&plan.geoms).enumerate() {
            let mut out = vec![0.0; g.batch * g.c_out * g.oh * g.ow];
            let input = values[l.input].as_ref().expect("a live value");
            conv2d_forward_into(g, input, &l.conv.weight, Some(&l.conv.bias), &mut out);
            let r = l
                .residual
                .map(|r| values[r].as_deref().expect("a live value"));
            act_add(l.act, &mut out, r);
            for (v, used) in values.iter_mut().zip(&last) {
                if *used == i {
                    *v = None;
                }
            }
            values.push(Some(out));
        }
        values.pop().flatten().expect("the last value")
    }

    fn forward_onednn(&self, d: &Dnnl, plan: &Plan, x: &[f32]) -> Vec<f32> {
        let fail = |e: runner_onednn::Error| -> ! { panic!("{e}") };
        let last = self.last_uses();
        let mut values: Vec<Option<Buf>> = vec![Some(Buf::Plain(x.to_vec()))];
        for (i, (l, o)) in self.layers.iter().zip(&plan.onednn).enumerate() {
            let dst_md = o.conv.dst();
            // the destination: the residual's buffer when this is its last reader and it is in
            // the output's layout (the add happens in place), else the residual reordered or
            // copied into it, or an unwritten block
            let mut dst = match l.residual {
                Some(r) => {
                    let from = &plan.layouts[r];
                    if last[r] == i && l.input != r && from.same(dst_md, d) {
                        values[r].take().expect("a live value").into_block()
                    } else {
                        let src = values[r].as_ref().expect("a live value");
                        let mut b = Block::for_desc(d, dst_md);
                        infer::reorder_into(d, from, dst_md, src, &mut b)
                            .unwrap_or_else(|e| fail(e));
                        b
                    }
                }
                None => Block::for_desc(d, dst_md),
            };
            let input = values[l.input].as_ref().expect("a live value");
            let reordered = o.input_from.as_ref().map(|from| {
                infer::reorder(d, from, o.conv.src(), input).unwrap_or_else(|e| fail(e))
            });
            o.conv
                .run(d, reordered.as_deref().unwrap_or(input), &mut dst)
                .unwrap_or_else(|e| fail(e));
            for (v, used) in values.iter_mut().zip(&last) {
                if *used == i {
                    *v = None;
                }
            }
            values.push(Some(Buf::Block(dst)));
        }
        let g = plan.geoms.last().expect("layers");
        let from = plan.onednn.last().expect("layers").conv.dst();
        let plain = infer::nchw(d, [g.batch, g.c_out, g.oh, g.ow]).expect("plain layout");
        let last_value = values.pop().flatten().expect("the last value");
        let mut out = vec![0.0; g.batch * g.c_out * g.oh * g.ow];
        infer::reorder_into(d, from, &plain, &last_value, &mut out).unwrap_or_else(|e| fail(e));
        out
    }
}

/// A value between layers: the network input (plain) or a layer output (blocked).
enum Buf {
    Plain(Vec<f32>),
    Block(Block),
}

impl Buf {
    fn into_block(self) -> Block {
        match self {
            Buf::Block(b) => b,
            Buf::Plain(v) => {
                let mut b = Block::new(v.len());
                b.copy_from_slice(&v);
                b
            }
        }
    }
}

impl std::ops::Deref for Buf {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        match self {
            Buf::Plain(v) => v,
            Buf::Block(b) => b,
        }
    }
}

/// out ← act(out + r), in parallel chunks.
fn act_add(act: Act, out: &mut [f32], r: Option<&[f32]>) {
    const CHUNK: usize = 1 << 14;
    let f = move |v: f32| match act {
        Act::Identity => v,
        Act::Relu => v.max(0.0),
        Act::Relu6 => v.clamp(0.0, 6.0),
    };
    match r {
        None if act == Act::Identity => {}
        None => out
            .par_chunks_mut(CHUNK)
            .for_each(|o| o.iter_mut().for_each(|v| *v = f(*v))),
        Some(r) => out
            .par_chunks_mut(CHUNK)
            .zip(r.par_chunks(CHUNK))
            .for_each(|(o, r)| o.iter_mut().zip(r).for_each(|(v, r)| *v = f(*v + r))),
    }
}
