//! Convolutions on runner's plain layouts (activations NCHW, weights OIHW, grouped weights
//! seen as GOIHW), computed by oneDNN in the blocked layouts it picks for the shape.
//!
//! The primitives of a shape (forward, backward-data, backward-weights and the reorders between
//! the plain and the blocked layouts) are created on the first call with that shape and cached;
//! the backward ones on the first backward call (they need the forward one as a hint). The way
//! PyTorch drives oneDNN (`aten/src/ATen/native/mkldnn/Conv.cpp`) and oneDNN's own
//! `cnn_training_f32.c` example do the same: "any" layouts for the primitive, reorders where the
//! chosen layout differs from the user's.
//!
//! A training forward pass can keep its blocked weights and input ([`Saved`]) for the backward
//! pass, so the weights are reordered once per step and the input not again. Gradients are
//! accumulated (`+=`), like every gradient on runner's tape: the blocked results go back
//! through reorders with a sum post-op.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use crate::memory::{Block, DataType, Desc, Mem};
use crate::primitive::Prim;
use crate::{sys, Dnnl, Error};

/// The geometry of one convolution: input batch × c_in × h × w, c_out filters of k × k in
/// `groups` groups, explicit (possibly asymmetric) zero padding, output oh × ow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ConvSpec {
    pub batch: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub k: usize,
    pub stride: usize,
    pub pad_top: usize,
    pub pad_left: usize,
    pub pad_bottom: usize,
    pub pad_right: usize,
    pub groups: usize,
    pub oh: usize,
    pub ow: usize,
    /// The type the convolution reads its input, weights and output gradient in: with bf16 they
    /// are rounded to bf16 on the way into the primitive, which accumulates in f32 and writes
    /// f32 outputs and gradients (oneDNN's mixed-precision training convolutions).
    pub precision: DataType,
}

impl ConvSpec {
    fn src_dims(&self) -> [usize; 4] {
        [self.batch, self.c_in, self.h, self.w]
    }
    fn dst_dims(&self) -> [usize; 4] {
        [self.batch, self.c_out, self.oh, self.ow]
    }
    /// The plain weight layout: OIHW, or GOIHW (same memory as runner's O × I/G × K × K).
    pub(crate) fn user_weights(&self, dnnl: &Dnnl) -> Result<Desc, Error> {
        let (g, k) = (self.groups, self.k);
        if g == 1 {
            Desc::new(dnnl, &[self.c_out, self.c_in, k, k], sys::TAG_OIHW)
        } else {
            let dims = [g, self.c_out / g, self.c_in / g, k, k];
            Desc::new(dnnl, &dims, sys::TAG_GOIHW)
        }
    }
    /// Weights (or their gradient) of type `t` in the layout a primitive chooses.
    pub(crate) fn any_weights(&self, dnnl: &Dnnl, t: DataType) -> Result<Desc, Error> {
        let (g, k) = (self.groups, self.k);
        if g == 1 {
            Desc::typed(dnnl, &[self.c_out, self.c_in, k, k], sys::TAG_ANY, t)
        } else {
            let dims = [g, self.c_out / g, self.c_in / g, k, k];
            Desc::typed(dnnl, &dims, sys::TAG_ANY, t)
        }
    }
    /// The input (or output) of type `t` in the layout a primitive chooses.
    pub(crate) fn any_src(&self, dnnl: &Dnnl, t: DataType) -> Result<Desc, Error> {
        Desc::typed(dnnl, &self.src_dims(), sys::TAG_ANY, t)
    }
    pub(crate) fn any_dst(&self, dnnl: &Dnnl, t: DataType) -> Result<Desc, Error> {
        Desc::typed(dnnl, &self.dst_dims(), sys::TAG_ANY, t)
    }
    pub(crate) fn strides(&self) -> [i64; 12] {
        dims2(self.stride, self.stride)
    }
    pub(crate) fn pad_l(&self) -> [i64; 12] {
        dims2(self.pad_top, self.pad_left)
    }
    pub(crate) fn pad_r(&self) -> [i64; 12] {
        dims2(self.pad_bottom, self.pad_right)
    }
}

pub(crate) fn dims2(a: usize, b: usize) -> [i64; 12] {
    let mut d = [0i64; 12];
    d[0] = a as i64;
    d[1] = b as i64;
    d
}

/// The primitives of every shape used so far.
#[derive(Default)]
pub(crate) struct Cache {
    map: HashMap<ConvSpec, Arc<Prims>>,
}

/// A reorder from one layout into another, or nothing where the layouts agree.
struct Move {
    prim: Option<Prim>,
    to: Desc,
}

impl Move {
    fn new(dnnl: &Dnnl, from: &Desc, to: &Desc, accumulate: bool) -> Result<Move, Error> {
        let prim = if from.same(to, dnnl) && !accumulate {
            None
        } else {
            Some(Prim::reorder(dnnl, from, to, accumulate)?)
        };
        Ok(Move { prim, to: *to })
    }
    fn needed(&self) -> bool {
        self.prim.is_some()
    }
    /// `src` (in the move's source layout) in the destination layout: a new block, or `None`
    /// where no reorder is needed (then `src` is already in it).
    fn run(&self, dnnl: &Dnnl, from: &Desc, src: &[f32]) -> Result<Option<Block>, Error> {
        let Some(p) = &self.prim else {
            return Ok(None);
        };
        let mut out = Block::for_desc(dnnl, &self.to);
        let (i, o) = (
            Mem::input(dnnl, from, src)?,
            Mem::output(dnnl, &self.to, &mut out)?,
        );
        p.execute(dnnl, &[(sys::ARG_FROM, &i), (sys::ARG_TO, &o)])?;
        drop(o);
        Ok(Some(out))
    }
    /// `src` (in layout `from`) into `dst` (in the move's destination layout), accumulating
    /// where the move was made to; for moves that were needed when created.
    fn run_into(
        &self,
        dnnl: &Dnnl,
        from: &Desc,
        src: &[f32],
        dst: &mut [f32],
    ) -> Result<(), Error> {
        let p = self
            .prim
            .as_ref()
            .expect("a needed (or accumulating) reorder");
        let (i, o) = (
            Mem::input(dnnl, from, src)?,
            Mem::output(dnnl, &self.to, dst)?,
        );
        p.execute(dnnl, &[(sys::ARG_FROM, &i), (sys::ARG_TO, &o)])
    }
}

struct Prims {
    fwd: Prim,
    src: Desc,
    weights: Desc,
    dst: Desc,
    user_src: Desc,
    user_weights: Desc,
    user_dst: Desc,
    src_in: Move,
    weights_in: Move,
    dst_out: Move,
    bwd: OnceLock<Result<Bwd, Error>>,
}

struct Bwd {
    data: Prim,
    weights: Prim,
    /// Layouts of the backward-data primitive: weights, output gradient, input gradient.
    data_weights: Desc,
    data_gout: Desc,
    data_dx: Desc,
    /// Layouts of the backward-weights primitive: input, output gradient, weight gradient.
    wt_src: Desc,
    wt_gout: Desc,
    wt_dw: Desc,
    gout_in_data: Move,
    gout_in_wt: Move,
    weights_in_data: Move,
    src_in_wt: Move,
    dx_out: Move,
    dw_out: Move,
}

/// What a training forward pass keeps for its backward pass: the weights and the input in the
/// forward primitive's blocked layouts, where they differ from the plain ones.
pub struct Saved {
    weights: Option<Block>,
    src: Option<Block>,
}

impl Saved {
    /// Whether the input was kept (in the forward primitive's blocked layout); when not, the
    /// backward pass needs it passed in for the weight gradient.
    pub fn holds_input(&self) -> bool {
        self.src.is_some()
    }
}

impl Prims {
    fn new(dnnl: &Dnnl, s: &ConvSpec) -> Result<Prims, Error> {
        let any_src = s.any_src(dnnl, s.precision)?;
        let any_dst = s.any_dst(dnnl, DataType::F32)?;
        let any_w = s.any_weights(dnnl, s.precision)?;
        let mut cd = sys::ConvolutionDesc { bytes: [0; 5976] };
        // SAFETY: `cd` is a live local of the size of `dnnl_convolution_desc_t` that the call
        // writes; the memory descriptors are initialised and borrowed for the call (a null bias
        // means none); strides and paddings are 2-element arrays that live until the call returns,
        // as 4-D descriptors need.
        crate::check("dnnl_convolution_forward_desc_init", unsafe {
            (dnnl.api.convolution_forward_desc_init)(
                &mut cd,
                sys::FORWARD_TRAINING,
                sys::CONVOLUTION_DIRECT,
                &any_src.0,
                &any_w.0,
                std::ptr::null(),
                &any_dst.0,
                s.strides().as_ptr(),
                s.pad_l().as_ptr(),
                s.pad_r().as_ptr(),
            )
        })?;
        // SAFETY: `cd` was initialised by the successful call above.
        let fwd =
            unsafe { Prim::new(dnnl, (&cd as *const sys::ConvolutionDesc).cast(), &[], None)? };
        let src = fwd.desc(dnnl, sys::QUERY_SRC_MD);
        let weights = fwd.desc(dnnl, sys::QUERY_WEIGHTS_MD);
        let dst = fwd.desc(dnnl, sys::QUERY_DST_MD);
        let user_src = Desc::new(dnnl, &s.src_dims(), sys::TAG_NCHW)?;
        let user_dst = Desc::new(dnnl, &s.dst_dims(), sys::TAG_NCHW)?;
        let user_weights = s.user_weights(dnnl)?;
        Ok(Prims {
            src_in: Move::new(dnnl, &user_src, &src, false)?,
            weights_in: Move::new(dnnl, &user_weights, &weights, false)?,
            dst_out: Move::new(dnnl, &dst, &user_dst, false)?,
            fwd,
            src,
            weights,
            dst,
            user_src,
            user_weights,
            user_dst,
            bwd: OnceLock::new(),
        })
    }

    fn bwd(&self, dnnl: &Dnnl, s: &ConvSpec) -> Result<&Bwd, Error> {
        self.bwd
            .get_or_init(|| Bwd::new(dnnl, s, self))
            .as_ref()
            .map_err(Clone::clone)
    }
}

impl Bwd {
    fn new(dnnl: &Dnnl, s: &ConvSpec, f: &Prims) -> Result<Bwd, Error> {
        // gradients out in f32, what the primitives read in the convolution's precision
        let p = s.precision;
        let (any_dx, any_gout, any_w) = (
            s.any_src(dnnl, DataType::F32)?,
            s.any_dst(dnnl, p)?,
            s.any_weights(dnnl, p)?,
        );
        let mut cd = sys::ConvolutionDesc { bytes: [0; 5976] };
        // SAFETY: `cd` is a live local of the size of `dnnl_convolution_desc_t` that the call
        // writes; the memory descriptors are initialised and borrowed for the call (a null bias
        // means none); strides and paddings are 2-element arrays that live until the call returns,
        // as 4-D descriptors need.
        crate::check("dnnl_convolution_backward_data_desc_init", unsafe {
            (dnnl.api.convolution_backward_data_desc_init)(
                &mut cd,
                sys::CONVOLUTION_DIRECT,
                &any_dx.0,
                &any_w.0,
                &any_gout.0,
                s.strides().as_ptr(),
                s.pad_l().as_ptr(),
                s.pad_r().as_ptr(),
            )
        })?;
        // SAFETY: `cd` was initialised by the successful call above.
        let data = unsafe {
            Prim::new(
                dnnl,
                (&cd as *const sys::ConvolutionDesc).cast(),
                &[],
                Some(&f.fwd),
            )?
        };
        let (any_src, any_dw) = (s.any_src(dnnl, p)?, s.any_weights(dnnl, DataType::F32)?);
        let mut cd = sys::ConvolutionDesc { bytes: [0; 5976] };
        // SAFETY: `cd` is a live local of the size of `dnnl_convolution_desc_t` that the call
        // writes; the memory descriptors are initialised and borrowed for the call (a null bias
        // means none); strides and paddings are 2-element arrays that live until the call returns,
        // as 4-D descriptors need.
        crate::check("dnnl_convolution_backward_weights_desc_init", unsafe {
            (dnnl.api.convolution_backward_weights_desc_init)(
                &mut cd,
                sys::CONVOLUTION_DIRECT,
                &any_src.0,
                &any_dw.0,
                std::ptr::null(),
                &any_gout.0,
                s.strides().as_ptr(),
                s.pad_l().as_ptr(),
                s.pad_r().as_ptr(),
            )
        })?;
        // SAFETY: `cd` was initialised by the successful call above.
        let weights = unsafe {
            Prim::new(
                dnnl,
                (&cd as *const sys::ConvolutionDesc).cast(),
                &[],
                Some(&f.fwd),
            )?
        };
        let data_weights = data.desc(dnnl, sys::QUERY_WEIGHTS_MD);
        let data_gout = data.desc(dnnl, sys::QUERY_DIFF_DST_MD);
        let data_dx = data.desc(dnnl, sys::QUERY_DIFF_SRC_MD);
        let wt_src = weights.desc(dnnl, sys::QUERY_SRC_MD);
        let wt_gout = weights.desc(dnnl, sys::QUERY_DIFF_DST_MD);
        let wt_dw = weights.desc(dnnl, sys::QUERY_DIFF_WEIGHTS_MD);
        Ok(Bwd {
            gout_in_data: Move::new(dnnl, &f.user_dst, &data_gout, false)?,
            gout_in_wt: Move::new(dnnl, &f.user_dst, &wt_gout, false)?,
            weights_in_data: Move::new(dnnl, &f.user_weights, &data_weights, false)?,
            src_in_wt: Move::new(dnnl, &f.user_src, &wt_src, false)?,
            dx_out: Move::new(dnnl, &data_dx, &f.user_src, true)?,
            dw_out: Move::new(dnnl, &wt_dw, &f.user_weights, true)?,
            data,
            weights,
            data_weights,
            data_gout,
            data_dx,
            wt_src,
            wt_gout,
            wt_dw,
        })
    }
}

impl Dnnl {
    fn conv_prims(&self, s: &ConvSpec) -> Result<Arc<Prims>, Error> {
        if let Some(p) = self.convs.lock().unwrap().map.get(s) {
            return Ok(p.clone());
        }
        // Created outside the lock (primitive creation JIT-compiles kernels); a thread racing
        // on the same new shape creates it twice and one copy is kept.
        let p = Arc::new(Prims::new(self, s)?);
        Ok(self
            .convs
            .lock()
            .unwrap()
            .map
            .entry(*s)
            .or_insert(p)
            .clone())
    }

    /// The implementations oneDNN picked for the shape's forward, backward-data and
    /// backward-weights primitives (as `ONEDNN_VERBOSE` names them).
    pub fn conv_implementations(&self, s: &ConvSpec) -> Result<[String; 3], Error> {
        let p = self.conv_prims(s)?;
        let b = p.bwd(self, s)?;
        Ok([
            p.fwd.implementation(self),
            b.data.implementation(self),
            b.weights.implementation(self),
        ])
    }

    /// `out` (NCHW, overwritten) = `x` (NCHW) convolved with `w` (OIHW). With `keep`, returns
    /// what the backward pass reuses.
    pub fn conv_forward(
        &self,
        s: &ConvSpec,
        x: &[f32],
        w: &[f32],
        out: &mut [f32],
        keep: bool,
    ) -> Result<Option<Saved>, Error> {
        assert_eq!(x.len(), s.batch * s.c_in * s.h * s.w, "input size");
        assert_eq!(out.len(), s.batch * s.c_out * s.oh * s.ow, "output size");
        let p = self.conv_prims(s)?;
        let src_b = p.src_in.run(self, &p.user_src, x)?;
        let w_b = p.weights_in.run(self, &p.user_weights, w)?;
        let src = Mem::input(self, &p.src, src_b.as_deref().unwrap_or(x))?;
        let wm = Mem::input(self, &p.weights, w_b.as_deref().unwrap_or(w))?;
        if p.dst_out.needed() {
            let mut dst_b = Block::for_desc(self, &p.dst);
            {
                let dst = Mem::output(self, &p.dst, &mut dst_b)?;
                p.fwd.execute(
                    self,
                    &[
                        (sys::ARG_SRC, &src),
                        (sys::ARG_WEIGHTS, &wm),
                        (sys::ARG_DST, &dst),
                    ],
                )?;
            }
            p.dst_out.run_into(self, &p.dst, &dst_b, out)?;
        } else {
            let dst = Mem::output(self, &p.dst, out)?;
            p.fwd.execute(
                self,
                &[
                    (sys::ARG_SRC, &src),
                    (sys::ARG_WEIGHTS, &wm),
                    (sys::ARG_DST, &dst),
                ],
            )?;
        }
        drop((src, wm));
        if !keep {
            return Ok(None);
        }
        // kept only where the backward primitives read the same layouts
        let b = p.bwd(self, s)?;
        Ok(Some(Saved {
            weights: w_b.filter(|_| b.data_weights.same(&p.weights, self)),
            src: src_b.filter(|_| b.wt_src.same(&p.src, self)),
        }))
    }

    /// Adds ∂L/∂x into `dx` and ∂L/∂w into `dw` (those given) for the output gradient `gout`
    /// (NCHW). `x` (NCHW) is read for `dw` unless `saved` holds it, `w` (OIHW) for `dx` unless
    /// `saved` holds it in the layout backward-data wants.
    #[expect(
        clippy::too_many_arguments,
        reason = "the convolution, its saved state, its three inputs and its two optional outputs"
    )]
    pub fn conv_backward(
        &self,
        s: &ConvSpec,
        saved: Option<&Saved>,
        x: &[f32],
        w: &[f32],
        gout: &[f32],
        dx: Option<&mut [f32]>,
        dw: Option<&mut [f32]>,
    ) -> Result<(), Error> {
        assert_eq!(
            gout.len(),
            s.batch * s.c_out * s.oh * s.ow,
            "output gradient size"
        );
        let p = self.conv_prims(s)?;
        let b = p.bwd(self, s)?;
        let gout_data = if dx.is_some() {
            b.gout_in_data.run(self, &p.user_dst, gout)?
        } else {
            None
        };
        if let Some(dx) = dx {
            assert_eq!(
                dx.len(),
                s.batch * s.c_in * s.h * s.w,
                "input gradient size"
            );
            let saved_w = saved.and_then(|v| v.weights.as_deref());
            let w_b;
            let wv: &[f32] = match saved_w {
                Some(v) => v,
                None => {
                    w_b = b.weights_in_data.run(self, &p.user_weights, w)?;
                    w_b.as_deref().unwrap_or(w)
                }
            };
            let wm = Mem::input(self, &b.data_weights, wv)?;
            let gm = Mem::input(self, &b.data_gout, gout_data.as_deref().unwrap_or(gout))?;
            let mut dx_b = Block::for_desc(self, &b.data_dx);
            {
                let o = Mem::output(self, &b.data_dx, &mut dx_b)?;
                b.data.execute(
                    self,
                    &[
                        (sys::ARG_DIFF_DST, &gm),
                        (sys::ARG_WEIGHTS, &wm),
                        (sys::ARG_DIFF_SRC, &o),
                    ],
                )?;
            }
            b.dx_out.run_into(self, &b.data_dx, &dx_b, dx)?;
        }
        if let Some(dw) = dw {
            assert_eq!(
                dw.len(),
                s.c_out * (s.c_in / s.groups) * s.k * s.k,
                "weight gradient size"
            );
            // the output gradient once in both layouts when they agree
            let gout_wt = match (&gout_data, b.wt_gout.same(&b.data_gout, self)) {
                (Some(_), true) => None,
                _ => b.gout_in_wt.run(self, &p.user_dst, gout)?,
            };
            let gv: &[f32] = match (&gout_wt, &gout_data) {
                (Some(g), _) => g,
                (None, Some(g)) if b.wt_gout.same(&b.data_gout, self) => g,
                _ => gout,
            };
            let saved_src = saved.and_then(|v| v.src.as_deref());
            let x_b;
            let xv: &[f32] = match saved_src {
                Some(v) => v,
                None => {
                    assert_eq!(x.len(), s.batch * s.c_in * s.h * s.w, "input size");
                    x_b = b.src_in_wt.run(self, &p.user_src, x)?;
                    x_b.as_deref().unwrap_or(x)
                }
            };
            let xm = Mem::input(self, &b.wt_src, xv)?;
            let gm = Mem::input(self, &b.wt_gout, gv)?;
            let mut dw_b = Block::for_desc(self, &b.wt_dw);
            {
                let o = Mem::output(self, &b.wt_dw, &mut dw_b)?;
                b.weights.execute(
                    self,
                    &[
                        (sys::ARG_SRC, &xm),
                        (sys::ARG_DIFF_DST, &gm),
                        (sys::ARG_DIFF_WEIGHTS, &o),
                    ],
                )?;
            }
            b.dw_out.run_into(self, &b.wt_dw, &dw_b, dw)?;
        }
        Ok(())
    }
}
