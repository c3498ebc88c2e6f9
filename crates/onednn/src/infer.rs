//! Inference convolutions for a frozen network: weights packed into the primitive's layout once,
//! a bias (BatchNorm folded into weights and bias by the caller) and post-ops fused into the
//! output (the residual add as a sum post-op, then ReLU or ReLU6), activations kept in the
//! blocked layouts the primitives choose from one layer to the next.

use crate::memory::{Block, DataType, Desc, Mem};
use crate::primitive::{PostOp, Prim};
use crate::{sys, ConvSpec, Dnnl, Error};

/// One convolution of a frozen network at one input shape.
pub struct InferConv {
    prim: Prim,
    src: Desc,
    dst: Desc,
    bias: Desc,
    weights_md: Desc,
    weights: Block,
    bias_values: Vec<f32>,
}

impl InferConv {
    /// The convolution `s` with weights `w` (OIHW / GOIHW) and `bias`, reading its input in
    /// layout `src` (the previous layer's output layout; `None` lets oneDNN choose) and fusing
    /// `post_ops` in order (a [`PostOp::Sum`] adds what the destination holds when it runs).
    pub fn new(
        dnnl: &Dnnl,
        s: &ConvSpec,
        src: Option<&Desc>,
        w: &[f32],
        bias: &[f32],
        post_ops: &[PostOp],
    ) -> Result<InferConv, Error> {
        // with bf16, activations stay bf16 from one layer to the next (the bias is f32)
        let src_any = s.any_src(dnnl, s.precision)?;
        let dst_any = s.any_dst(dnnl, s.precision)?;
        let w_any = s.any_weights(dnnl, s.precision)?;
        let bias_md = Desc::new(dnnl, &[s.c_out], sys::TAG_A)?;
        assert_eq!(bias.len(), s.c_out, "bias size");
        let mut cd = sys::ConvolutionDesc { bytes: [0; 5976] };
        // SAFETY: `cd` is a live local of the size of `dnnl_convolution_desc_t` that the call
        // writes; the memory descriptors are initialised and borrowed for the call (a null bias
        // means none); strides and paddings are 2-element arrays that live until the call returns,
        // as 4-D descriptors need.
        crate::check("dnnl_convolution_forward_desc_init", unsafe {
            (dnnl.api.convolution_forward_desc_init)(
                &mut cd,
                sys::FORWARD_INFERENCE,
                sys::CONVOLUTION_DIRECT,
                &src.unwrap_or(&src_any).0,
                &w_any.0,
                &bias_md.0,
                &dst_any.0,
                s.strides().as_ptr(),
                s.pad_l().as_ptr(),
                s.pad_r().as_ptr(),
            )
        })?;
        // SAFETY: `cd` was initialised by the successful call above.
        let prim = unsafe {
            Prim::new(
                dnnl,
                (&cd as *const sys::ConvolutionDesc).cast(),
                post_ops,
                None,
            )?
        };
        let src = prim.desc(dnnl, sys::QUERY_SRC_MD);
        let dst = prim.desc(dnnl, sys::QUERY_DST_MD);
        let w_md = prim.desc(dnnl, sys::QUERY_WEIGHTS_MD);
        // packed once: the reorder into the primitive's weight layout
        let user_w = s.user_weights(dnnl)?;
        let mut weights = Block::for_desc(dnnl, &w_md);
        {
            let r = Prim::reorder(dnnl, &user_w, &w_md, false)?;
            let (i, o) = (
                Mem::input(dnnl, &user_w, w)?,
                Mem::output(dnnl, &w_md, &mut weights)?,
            );
            r.execute(dnnl, &[(sys::ARG_FROM, &i), (sys::ARG_TO, &o)])?;
        }
        Ok(InferConv {
            prim,
            src,
            dst,
            bias: bias_md,
            weights_md: w_md,
            weights,
            bias_values: bias.to_vec(),
        })
    }

    /// The layout the input must be in.
    pub fn src(&self) -> &Desc {
        &self.src
    }

    /// The layout of the output.
    pub fn dst(&self) -> &Desc {
        &self.dst
    }

    /// Runs the convolution on `src` (in [`Self::src`]'s layout) into `dst` (in [`Self::dst`]'s,
    /// holding the addend when the post-ops include a sum).
    pub fn run(&self, dnnl: &Dnnl, src: &[f32], dst: &mut [f32]) -> Result<(), Error> {
        let s = Mem::input(dnnl, &self.src, src)?;
        let w = Mem::input(dnnl, &self.weights_md, &self.weights)?;
        let b = Mem::input(dnnl, &self.bias, &self.bias_values)?;
        let d = Mem::output(dnnl, &self.dst, dst)?;
        self.prim.execute(
            dnnl,
            &[
                (sys::ARG_SRC, &s),
                (sys::ARG_WEIGHTS, &w),
                (sys::ARG_BIAS, &b),
                (sys::ARG_DST, &d),
            ],
        )
    }
}

/// Reorders `src` from layout `from` into `to` (a new block).
pub fn reorder(dnnl: &Dnnl, from: &Desc, to: &Desc, src: &[f32]) -> Result<Block, Error> {
    let mut out = Block::for_desc(dnnl, to);
    reorder_into(dnnl, from, to, src, &mut out)?;
    Ok(out)
}

/// Reorders `src` from layout `from` into `dst` (layout `to`).
pub fn reorder_into(
    dnnl: &Dnnl,
    from: &Desc,
    to: &Desc,
    src: &[f32],
    dst: &mut [f32],
) -> Result<(), Error> {
    let r = Prim::reorder(dnnl, from, to, false)?;
    let (i, o) = (Mem::input(dnnl, from, src)?, Mem::output(dnnl, to, dst)?);
    r.execute(dnnl, &[(sys::ARG_FROM, &i), (sys::ARG_TO, &o)])
}

/// The plain NCHW layout of an f32 activation.
pub fn nchw(dnnl: &Dnnl, dims: [usize; 4]) -> Result<Desc, Error> {
    Desc::typed(dnnl, &dims, sys::TAG_NCHW, DataType::F32)
}
