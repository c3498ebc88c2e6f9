//! Memory descriptors, memory objects over buffers this crate or its caller owns, and the
//! 64-byte-aligned scratch blocks that hold tensors in oneDNN's blocked layouts.

use std::marker::PhantomData;
use std::sync::Mutex;

use crate::{check, sys, Dnnl, Error};

/// The element types runner's tensors take in oneDNN: its own tensors are f32; bf16 (bfloat16:
/// f32's exponent, 8 bits of mantissa) is what bf16 convolutions read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DataType {
    #[default]
    F32,
    Bf16,
}

impl DataType {
    fn code(self) -> i32 {
        match self {
            DataType::F32 => sys::F32,
            DataType::Bf16 => sys::BF16,
        }
    }
}

/// A memory descriptor: dimensions, data type, layout (a plain tag, a blocked layout chosen by
/// a primitive, or "any" for a primitive to choose).
#[derive(Clone, Copy)]
pub struct Desc(pub(crate) sys::MemoryDesc);

impl Desc {
    /// f32 with dimensions `dims` in layout `tag` (`sys::TAG_*`).
    pub fn new(dnnl: &Dnnl, dims: &[usize], tag: i32) -> Result<Desc, Error> {
        Desc::typed(dnnl, dims, tag, DataType::F32)
    }

    /// Elements of `data_type` with dimensions `dims` in layout `tag` (`sys::TAG_*`).
    pub fn typed(
        dnnl: &Dnnl,
        dims: &[usize],
        tag: i32,
        data_type: DataType,
    ) -> Result<Desc, Error> {
        let mut d = [0i64; 12];
        assert!(
            dims.len() <= d.len(),
            "oneDNN descriptors have at most 12 dimensions"
        );
        for (o, v) in d.iter_mut().zip(dims) {
            *o = *v as i64;
        }
        let mut md = sys::MemoryDesc { bytes: [0; 696] };
        // SAFETY: `md` is a live local of the size of `dnnl_memory_desc_t` that the call writes; it
        // reads `dims.len()` (≤ 12, asserted above) entries of `d`.
        check("dnnl_memory_desc_init_by_tag", unsafe {
            (dnnl.api.memory_desc_init_by_tag)(
                &mut md,
                dims.len() as i32,
                d.as_ptr(),
                data_type.code(),
                tag,
            )
        })?;
        Ok(Desc(md))
    }

    /// Bytes a buffer of this layout needs (blocked layouts pad channels).
    pub fn bytes(&self, dnnl: &Dnnl) -> usize {
        // SAFETY: `self.0` is an initialised descriptor, borrowed for the call, which only reads it.
        unsafe { (dnnl.api.memory_desc_get_size)(&self.0) }
    }

    /// Floats a buffer of this layout needs (a bf16 tensor packs two values into each: runner's
    /// buffers are `f32` slices whatever they hold).
    pub fn floats(&self, dnnl: &Dnnl) -> usize {
        self.bytes(dnnl).div_ceil(4)
    }

    pub fn same(&self, other: &Desc, dnnl: &Dnnl) -> bool {
        // SAFETY: both are initialised descriptors, borrowed for the call, which only reads them.
        unsafe { (dnnl.api.memory_desc_equal)(&self.0, &other.0) != 0 }
    }
}

/// A memory object over a buffer that outlives it (`'a`).
pub struct Mem<'a> {
    pub(crate) handle: sys::Memory,
    destroy: unsafe extern "C" fn(sys::Memory) -> sys::Status,
    _buf: PhantomData<&'a [f32]>,
}

impl<'a> Mem<'a> {
    /// `buf` seen as `desc`; panics if it is too small. oneDNN only reads a memory object
    /// passed as a primitive's input; callers pass outputs through [`Mem::output`].
    pub fn input(dnnl: &Dnnl, desc: &Desc, buf: &'a [f32]) -> Result<Mem<'a>, Error> {
        assert!(
            buf.len() >= desc.floats(dnnl),
            "buffer smaller than its layout"
        );
        Self::over(dnnl, desc, buf.as_ptr() as *mut f32)
    }

    /// `buf` seen as `desc`, written by the primitive it is given to.
    pub fn output(dnnl: &Dnnl, desc: &Desc, buf: &'a mut [f32]) -> Result<Mem<'a>, Error> {
        assert!(
            buf.len() >= desc.floats(dnnl),
            "buffer smaller than its layout"
        );
        Self::over(dnnl, desc, buf.as_mut_ptr())
    }

    fn over(dnnl: &Dnnl, desc: &Desc, ptr: *mut f32) -> Result<Mem<'a>, Error> {
        let mut handle = std::ptr::null_mut();
        // SAFETY: `desc.0` is initialised; `ptr` is the start of a buffer of at least `desc.floats()`
        // floats (asserted by `input` and `output`) that outlives the memory object (`'a`), and oneDNN
        // does not take ownership of a user buffer; `handle` is a live local the call writes.
        check("dnnl_memory_create", unsafe {
            (dnnl.api.memory_create)(&mut handle, &desc.0, dnnl.engine, ptr.cast())
        })?;
        Ok(Mem {
            handle,
            destroy: dnnl.api.memory_destroy,
            _buf: PhantomData,
        })
    }
}

impl Drop for Mem<'_> {
    fn drop(&mut self) {
        // SAFETY: `handle` came from dnnl_memory_create and is destroyed once, here; the buffer it
        // points into is not freed by it.
        unsafe { (self.destroy)(self.handle) };
    }
}

/// Floats of alignment slack in a [`Block`]'s vector (64 bytes).
const ALIGN: usize = 16;

static POOL: Mutex<Vec<Vec<f32>>> = Mutex::new(Vec::new());
/// Blocks kept between calls (a training convolution holds up to four at once).
const KEEP: usize = 8;

/// A 64-byte-aligned buffer of `len` floats with unspecified contents, from a small pool
/// (fresh allocations of tens of megabytes cost page faults on every call).
pub struct Block {
    v: Vec<f32>,
    off: usize,
    len: usize,
}

impl Block {
    pub fn new(len: usize) -> Block {
        let mut v = {
            let mut pool = POOL.lock().unwrap();
            let pick = pool
                .iter()
                .enumerate()
                .filter(|(_, b)| b.len() >= len + ALIGN)
                .min_by_key(|(_, b)| b.len())
                .map(|(i, _)| i);
            pick.map(|i| pool.swap_remove(i)).unwrap_or_default()
        };
        if v.len() < len + ALIGN {
            v = vec![0.0; len + ALIGN];
        }
        let off = v.as_ptr().align_offset(64).min(ALIGN);
        Block { v, off, len }
    }

    /// A block for a tensor of layout `desc`.
    pub fn for_desc(dnnl: &Dnnl, desc: &Desc) -> Block {
        Block::new(desc.floats(dnnl))
    }
}

impl std::ops::Deref for Block {
    type Target = [f32];
    fn deref(&self) -> &[f32] {
        &self.v[self.off..self.off + self.len]
    }
}

impl std::ops::DerefMut for Block {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.v[self.off..self.off + self.len]
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        let v = std::mem::take(&mut self.v);
        let mut pool = POOL.lock().unwrap();
        pool.push(v);
        if pool.len() > KEEP {
            let i = pool
                .iter()
                .enumerate()
                .min_by_key(|(_, b)| b.len())
                .map(|(i, _)| i)
                .expect("pool is not empty");
            pool.swap_remove(i);
        }
    }
}
