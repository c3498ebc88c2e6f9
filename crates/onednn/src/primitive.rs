//! Primitive descriptors and primitives (created together, destroyed together), post-op
//! attributes, and reorders between layouts.

use std::ffi::{c_int, c_void, CStr};

use crate::memory::{Block, Desc, Mem};
use crate::{check, sys, Dnnl, Error};

/// A primitive and the descriptor it was created from (kept for its memory-layout queries and
/// as the hint that backward primitives are created with).
pub struct Prim {
    pd: sys::PrimitiveDesc,
    prim: sys::Primitive,
    /// The scratch buffer's layout each execution gets (user-managed scratchpad).
    scratch: Option<Desc>,
    destroy_pd: unsafe extern "C" fn(sys::PrimitiveDesc) -> sys::Status,
    destroy: unsafe extern "C" fn(sys::Primitive) -> sys::Status,
}

// SAFETY: oneDNN primitives are immutable once created and may be executed from several
// threads at once (each with its own stream); the descriptor is only queried; the function
// pointers are plain values.
unsafe impl Send for Prim {}
// SAFETY: as for Send: `&Prim` only executes the primitive and queries its descriptor, which
// oneDNN allows from many threads at once.
unsafe impl Sync for Prim {}

impl Prim {
    /// A primitive for the operation descriptor `op_desc` (a `dnnl_*_desc_t`), with post-ops
    /// `attr` and the forward primitive `hint` (required for backward passes).
    ///
    /// # Safety
    /// `op_desc` must point to an initialised operation descriptor.
    pub(crate) unsafe fn new(
        dnnl: &Dnnl,
        op_desc: *const c_void,
        post_ops: &[PostOp],
        hint: Option<&Prim>,
    ) -> Result<Prim, Error> {
        let attr = Attr::new(dnnl, post_ops)?;
        let mut pd = std::ptr::null_mut();
        check(
            "dnnl_primitive_desc_create",
            (dnnl.api.primitive_desc_create)(
                &mut pd,
                op_desc,
                attr.handle,
                dnnl.engine,
                hint.map_or(std::ptr::null_mut(), |h| h.pd),
            ),
        )?;
        Self::from_pd(dnnl, pd)
    }

    fn from_pd(dnnl: &Dnnl, pd: sys::PrimitiveDesc) -> Result<Prim, Error> {
        let mut prim = std::ptr::null_mut();
        // SAFETY: `pd` is the live descriptor the caller just created; `prim` is a live local the
        // call writes.
        let made = check("dnnl_primitive_create", unsafe {
            (dnnl.api.primitive_create)(&mut prim, pd)
        });
        if let Err(e) = made {
            // SAFETY: no primitive was made, so `pd` is owned by nothing else; it is destroyed once.
            unsafe { (dnnl.api.primitive_desc_destroy)(pd) };
            return Err(e);
        }
        // SAFETY: `pd` is live; the call returns a pointer into `pd` or null, which is read below
        // only when non-null, while `pd` lives.
        let scratch =
            unsafe { (dnnl.api.primitive_desc_query_md)(pd, sys::QUERY_SCRATCHPAD_MD, 0) };
        // SAFETY: non-null, so it points to an initialised descriptor owned by `pd`; copied out.
        let scratch = (!scratch.is_null())
            .then(|| Desc(unsafe { *scratch }))
            .filter(|d| d.bytes(dnnl) > 0);
        Ok(Prim {
            pd,
            prim,
            scratch,
            destroy_pd: dnnl.api.primitive_desc_destroy,
            destroy: dnnl.api.primitive_destroy,
        })
    }

    /// A reorder from layout `from` to `to`; with `accumulate` it adds into the destination
    /// (a sum post-op) instead of overwriting it.
    pub fn reorder(dnnl: &Dnnl, from: &Desc, to: &Desc, accumulate: bool) -> Result<Prim, Error> {
        let attr = Attr::new(dnnl, if accumulate { &[PostOp::Sum] } else { &[] })?;
        let mut pd = std::ptr::null_mut();
        // SAFETY: `from.0` and `to.0` are initialised descriptors and `attr.handle` a live attribute,
        // all borrowed for the call (which copies what it keeps); `pd` is a live local it writes.
        check("dnnl_reorder_primitive_desc_create", unsafe {
            (dnnl.api.reorder_primitive_desc_create)(
                &mut pd,
                &from.0,
                dnnl.engine,
                &to.0,
                dnnl.engine,
                attr.handle,
            )
        })?;
        Self::from_pd(dnnl, pd)
    }

    /// The layout the primitive chose for one of its arguments (`sys::QUERY_*_MD`).
    pub fn desc(&self, dnnl: &Dnnl, what: c_int) -> Desc {
        // SAFETY: `self.pd` lives as long as `self`; the result is checked for null before it is read.
        let md = unsafe { (dnnl.api.primitive_desc_query_md)(self.pd, what, 0) };
        assert!(!md.is_null(), "primitive has no memory argument {what}");
        // SAFETY: non-null (asserted above): an initialised descriptor owned by `self.pd`; copied out.
        Desc(unsafe { *md })
    }

    /// The implementation oneDNN picked (`jit:avx512_core`, `x64:gemm:jit`, …), as
    /// `ONEDNN_VERBOSE` prints it.
    pub fn implementation(&self, dnnl: &Dnnl) -> String {
        let mut s: *const std::ffi::c_char = std::ptr::null();
        // SAFETY: `self.pd` is live; for QUERY_IMPL_INFO_STR the call writes one `const char *` to the
        // out-pointer, which is `s`, a live local of that type.
        let ok = unsafe {
            (dnnl.api.primitive_desc_query)(
                self.pd,
                sys::QUERY_IMPL_INFO_STR,
                0,
                (&mut s as *mut *const std::ffi::c_char).cast(),
            )
        };
        if ok != sys::SUCCESS || s.is_null() {
            return "unknown".into();
        }
        // SAFETY: on success `s` is a NUL-terminated string owned by `self.pd`, which outlives this
        // copy.
        unsafe { CStr::from_ptr(s) }.to_string_lossy().into_owned()
    }

    /// Runs the primitive on this thread's stream with `(DNNL_ARG_*, memory)` arguments and
    /// waits for it.
    pub fn execute(&self, dnnl: &Dnnl, args: &[(c_int, &Mem)]) -> Result<(), Error> {
        let mut args: Vec<sys::ExecArg> = args
            .iter()
            .map(|(arg, m)| sys::ExecArg {
                arg: *arg,
                memory: m.handle,
            })
            .collect();
        let mut block = self.scratch.as_ref().map(|d| Block::for_desc(dnnl, d));
        let scratch = match (&self.scratch, &mut block) {
            (Some(d), Some(b)) => Some(Mem::output(dnnl, d, b)?),
            _ => None,
        };
        if let Some(m) = &scratch {
            args.push(sys::ExecArg {
                arg: sys::ARG_SCRATCHPAD,
                memory: m.handle,
            });
        }
        dnnl.with_stream(|stream| {
            // SAFETY: `self.prim` is live; `stream` is this thread's stream; every handle in `args` is a
            // memory object that lives until this function returns (the caller's `Mem`s and `scratch`),
            // and `with_stream` waits for the stream before returning, so the primitive is done with
            // them; `args.len()` is the length of the array passed.
            check("dnnl_primitive_execute", unsafe {
                (dnnl.api.primitive_execute)(self.prim, stream, args.len() as c_int, args.as_ptr())
            })
        })
    }
}

impl Drop for Prim {
    fn drop(&mut self) {
        // SAFETY: both handles were created in `from_pd`, are owned by this value alone and are
        // destroyed once, the primitive before the descriptor it was made from.
        unsafe {
            (self.destroy)(self.prim);
            (self.destroy_pd)(self.pd);
        }
    }
}

/// An operation fused into a primitive's output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PostOp {
    /// dst ← dst_before + result (the destination holds the addend when the primitive runs).
    Sum,
    /// max(x, 0).
    Relu,
    /// min(max(x, lo), hi) (ReLU6 is `Clip(0, 6)`).
    Clip(f32, f32),
}

/// Primitive attributes: post-ops, and a user-managed scratchpad. oneDNN 2.x's own
/// ("library") scratchpad is a per-thread buffer sized by the primitives created on that thread,
/// so a primitive created on one thread and run on another reads past it; every primitive here
/// gets its scratch buffer with each execution instead (as PyTorch does).
pub struct Attr {
    handle: sys::PrimitiveAttr,
    destroy: unsafe extern "C" fn(sys::PrimitiveAttr) -> sys::Status,
}

impl Attr {
    pub fn new(dnnl: &Dnnl, post_ops: &[PostOp]) -> Result<Attr, Error> {
        let api = &dnnl.api;
        let mut handle = std::ptr::null_mut();
        // SAFETY: `handle` is a live local the call writes.
        check("dnnl_primitive_attr_create", unsafe {
            (api.primitive_attr_create)(&mut handle)
        })?;
        let attr = Attr {
            handle,
            destroy: api.primitive_attr_destroy,
        };
        // SAFETY: `handle` is the live attribute created above (owned by `attr`).
        check("dnnl_primitive_attr_set_scratchpad_mode", unsafe {
            (api.primitive_attr_set_scratchpad_mode)(handle, sys::SCRATCHPAD_MODE_USER)
        })?;
        let mut ops = std::ptr::null_mut();
        // SAFETY: `ops` is a live local the call writes.
        check("dnnl_post_ops_create", unsafe {
            (api.post_ops_create)(&mut ops)
        })?;
        // SAFETY: `ops` is the live post-ops list created above; the other arguments are values.
        let appended = post_ops.iter().try_for_each(|op| unsafe {
            match *op {
                PostOp::Sum => check(
                    "dnnl_post_ops_append_sum",
                    (api.post_ops_append_sum)(ops, 1.0),
                ),
                PostOp::Relu => check(
                    "dnnl_post_ops_append_eltwise",
                    (api.post_ops_append_eltwise)(ops, 1.0, sys::ELTWISE_RELU, 0.0, 0.0),
                ),
                PostOp::Clip(lo, hi) => check(
                    "dnnl_post_ops_append_eltwise",
                    (api.post_ops_append_eltwise)(ops, 1.0, sys::ELTWISE_CLIP, lo, hi),
                ),
            }
        });
        let set = appended.and_then(|_| {
            // SAFETY: `attr.handle` and `ops` are live; the attribute copies the post-ops.
            check("dnnl_primitive_attr_set_post_ops", unsafe {
                (api.primitive_attr_set_post_ops)(attr.handle, ops)
            })
        });
        // SAFETY: `ops` was created above and is not used after this (the attribute keeps its own
        // copy of the post-ops); it is destroyed once.
        unsafe { (api.post_ops_destroy)(ops) };
        set.map(|_| attr)
    }
}

impl Drop for Attr {
    fn drop(&mut self) {
        // SAFETY: `handle` came from dnnl_primitive_attr_create and is destroyed once, here.
        unsafe { (self.destroy)(self.handle) };
    }
}
