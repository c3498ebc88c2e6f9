//! The part of oneDNN 2.x's C API (`oneapi/dnnl/dnnl.h`, `dnnl_types.h`) that this crate calls,
//! declared by hand and checked against Debian's 2.6.3 headers: only these functions, enums and
//! structs. The library is opened at run time ([`Api::load`]), so nothing links against it.
//!
//! Descriptors that the C API passes by pointer but that this crate never reads field by field
//! (`dnnl_memory_desc_t`, `dnnl_convolution_desc_t`) are opaque byte arrays of the C size and
//! alignment. The sizes were printed by a C program compiled against the 2.6.3 headers
//! (`printf("%zu %zu", sizeof(dnnl_memory_desc_t), _Alignof(dnnl_memory_desc_t))`: 696 and 8;
//! `dnnl_convolution_desc_t` 5976 and 8), and a test writes descriptors through the library
//! into buffers with guard bytes behind them. The layouts have been stable through the 2.x
//! series; 3.x changed the API (descriptors became handles), and [`Api::load`] refuses it.

use std::ffi::{c_char, c_int, c_uint, c_void};

pub type Status = c_int;
pub const SUCCESS: Status = 0;

pub type Dim = i64;
/// `dnnl_dims_t`: DNNL_MAX_NDIMS = 12 dimensions.
pub type Dims = [Dim; 12];

/// Opaque handles (`dnnl_engine_t`, …): pointers to library-owned objects.
pub type Engine = *mut c_void;
pub type Stream = *mut c_void;
pub type Memory = *mut c_void;
pub type PrimitiveDesc = *mut c_void;
pub type Primitive = *mut c_void;
pub type PrimitiveAttr = *mut c_void;
pub type PostOps = *mut c_void;

/// `dnnl_memory_desc_t` (696 bytes, 8-aligned, in 2.6).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct MemoryDesc {
    pub bytes: [u8; 696],
}

/// `dnnl_convolution_desc_t` (5976 bytes, 8-aligned, in 2.6).
#[repr(C, align(8))]
#[derive(Clone, Copy)]
pub struct ConvolutionDesc {
    pub bytes: [u8; 5976],
}

/// `dnnl_exec_arg_t`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExecArg {
    pub arg: c_int,
    pub memory: Memory,
}

/// `dnnl_version_t`.
#[repr(C)]
pub struct Version {
    pub major: c_int,
    pub minor: c_int,
    pub patch: c_int,
    pub hash: *const c_char,
    pub cpu_runtime: c_uint,
    pub gpu_runtime: c_uint,
}

// dnnl_engine_kind_t
pub const ENGINE_CPU: c_int = 1;
// dnnl_stream_flags_t
pub const STREAM_DEFAULT_FLAGS: c_uint = 1;
// dnnl_data_type_t
pub const BF16: c_int = 2;
pub const F32: c_int = 3;
// dnnl_format_tag_t
pub const TAG_ANY: c_int = 1;
pub const TAG_NCHW: c_int = 5; // = dnnl_abcd = dnnl_oihw
pub const TAG_OIHW: c_int = 5;
pub const TAG_GOIHW: c_int = 7; // = dnnl_abcde
pub const TAG_A: c_int = 2; // 1-D (bias)
                            // dnnl_prop_kind_t
pub const FORWARD_TRAINING: c_int = 64;
pub const FORWARD_INFERENCE: c_int = 96;
// dnnl_alg_kind_t
pub const CONVOLUTION_DIRECT: c_int = 1;
pub const ELTWISE_RELU: c_int = 0x1f;
pub const ELTWISE_CLIP: c_int = 0xff;
// DNNL_ARG_*
pub const ARG_SRC: c_int = 1;
pub const ARG_DST: c_int = 17;
pub const ARG_WEIGHTS: c_int = 33;
pub const ARG_BIAS: c_int = 41;
pub const ARG_DIFF_SRC: c_int = 129;
pub const ARG_DIFF_DST: c_int = 145;
pub const ARG_DIFF_WEIGHTS: c_int = 161;
pub const ARG_DIFF_BIAS: c_int = 169;
pub const ARG_FROM: c_int = 1;
pub const ARG_SCRATCHPAD: c_int = 80;
pub const ARG_TO: c_int = 17;
// dnnl_query_t
pub const QUERY_IMPL_INFO_STR: c_int = 8;
pub const QUERY_SRC_MD: c_int = 129;
pub const QUERY_DIFF_SRC_MD: c_int = 130;
pub const QUERY_WEIGHTS_MD: c_int = 131;
pub const QUERY_DIFF_WEIGHTS_MD: c_int = 132;
pub const QUERY_DST_MD: c_int = 133;
pub const QUERY_DIFF_DST_MD: c_int = 134;
pub const QUERY_SCRATCHPAD_MD: c_int = 136;
// dnnl_scratchpad_mode_t
pub const SCRATCHPAD_MODE_USER: c_int = 1;
/// `DNNL_MEMORY_ALLOCATE`: let the library allocate a memory object's buffer.
pub const MEMORY_ALLOCATE: *mut c_void = usize::MAX as *mut c_void;

/// Function pointers to the entry points used, resolved once from the opened library (which
/// the struct keeps open).
pub struct Api {
    _lib: libloading::Library,
    pub version: unsafe extern "C" fn() -> *const Version,
    pub get_effective_cpu_isa: unsafe extern "C" fn() -> c_int,
    pub engine_create: unsafe extern "C" fn(*mut Engine, c_int, usize) -> Status,
    pub stream_create: unsafe extern "C" fn(*mut Stream, Engine, c_uint) -> Status,
    pub stream_wait: unsafe extern "C" fn(Stream) -> Status,
    pub stream_destroy: unsafe extern "C" fn(Stream) -> Status,
    pub memory_desc_init_by_tag:
        unsafe extern "C" fn(*mut MemoryDesc, c_int, *const Dim, c_int, c_int) -> Status,
    pub memory_desc_get_size: unsafe extern "C" fn(*const MemoryDesc) -> usize,
    pub memory_desc_equal: unsafe extern "C" fn(*const MemoryDesc, *const MemoryDesc) -> c_int,
    pub memory_create:
        unsafe extern "C" fn(*mut Memory, *const MemoryDesc, Engine, *mut c_void) -> Status,
    pub memory_get_data_handle: unsafe extern "C" fn(Memory, *mut *mut c_void) -> Status,
    pub memory_destroy: unsafe extern "C" fn(Memory) -> Status,
    pub convolution_forward_desc_init: unsafe extern "C" fn(
        *mut ConvolutionDesc,
        c_int,
        c_int,
        *const MemoryDesc,
        *const MemoryDesc,
        *const MemoryDesc,
        *const MemoryDesc,
        *const Dim,
        *const Dim,
        *const Dim,
    ) -> Status,
    pub convolution_backward_data_desc_init: unsafe extern "C" fn(
        *mut ConvolutionDesc,
        c_int,
        *const MemoryDesc,
        *const MemoryDesc,
        *const MemoryDesc,
        *const Dim,
        *const Dim,
        *const Dim,
    ) -> Status,
    pub convolution_backward_weights_desc_init: unsafe extern "C" fn(
        *mut ConvolutionDesc,
        c_int,
        *const MemoryDesc,
        *const MemoryDesc,
        *const MemoryDesc,
        *const MemoryDesc,
        *const Dim,
        *const Dim,
        *const Dim,
    ) -> Status,
    pub primitive_desc_create: unsafe extern "C" fn(
        *mut PrimitiveDesc,
        *const c_void,
        PrimitiveAttr,
        Engine,
        PrimitiveDesc,
    ) -> Status,
    pub primitive_desc_query_md:
        unsafe extern "C" fn(PrimitiveDesc, c_int, c_int) -> *const MemoryDesc,
    pub primitive_desc_query:
        unsafe extern "C" fn(PrimitiveDesc, c_int, c_int, *mut c_void) -> Status,
    pub primitive_desc_destroy: unsafe extern "C" fn(PrimitiveDesc) -> Status,
    pub primitive_create: unsafe extern "C" fn(*mut Primitive, PrimitiveDesc) -> Status,
    pub primitive_execute: unsafe extern "C" fn(Primitive, Stream, c_int, *const ExecArg) -> Status,
    pub primitive_destroy: unsafe extern "C" fn(Primitive) -> Status,
    pub reorder_primitive_desc_create: unsafe extern "C" fn(
        *mut PrimitiveDesc,
        *const MemoryDesc,
        Engine,
        *const MemoryDesc,
        Engine,
        PrimitiveAttr,
    ) -> Status,
    pub primitive_attr_create: unsafe extern "C" fn(*mut PrimitiveAttr) -> Status,
    pub primitive_attr_destroy: unsafe extern "C" fn(PrimitiveAttr) -> Status,
    pub primitive_attr_set_post_ops: unsafe extern "C" fn(PrimitiveAttr, PostOps) -> Status,
    pub primitive_attr_set_scratchpad_mode: unsafe extern "C" fn(PrimitiveAttr, c_int) -> Status,
    pub post_ops_create: unsafe extern "C" fn(*mut PostOps) -> Status,
    pub post_ops_destroy: unsafe extern "C" fn(PostOps) -> Status,
    pub post_ops_append_sum: unsafe extern "C" fn(PostOps, f32) -> Status,
    pub post_ops_append_eltwise: unsafe extern "C" fn(PostOps, f32, c_int, f32, f32) -> Status,
}

/// Resolves `name` in `lib` as a function pointer of type `T`.
///
/// # Safety
/// `T` must be the symbol's C signature.
unsafe fn sym<T: Copy>(lib: &libloading::Library, name: &str) -> Result<T, String> {
    let mut c_name = name.as_bytes().to_vec();
    c_name.push(0);
    lib.get::<T>(&c_name)
        .map(|s| *s)
        .map_err(|e| format!("{name}: {e}"))
}

impl Api {
    /// Opens `path` (a file name such as `libdnnl.so.2`, found by the dynamic loader's search
    /// path) and resolves the entry points.
    ///
    /// # Safety
    /// Loading a shared library runs its initialisers; the library must be oneDNN 2.x, whose
    /// signatures this file declares (checked by the caller through `dnnl_version`).
    pub unsafe fn load(path: &str) -> Result<Api, String> {
        let lib = libloading::Library::new(path).map_err(|e| e.to_string())?;
        Ok(Api {
            version: sym(&lib, "dnnl_version")?,
            get_effective_cpu_isa: sym(&lib, "dnnl_get_effective_cpu_isa")?,
            engine_create: sym(&lib, "dnnl_engine_create")?,
            stream_create: sym(&lib, "dnnl_stream_create")?,
            stream_wait: sym(&lib, "dnnl_stream_wait")?,
            stream_destroy: sym(&lib, "dnnl_stream_destroy")?,
            memory_desc_init_by_tag: sym(&lib, "dnnl_memory_desc_init_by_tag")?,
            memory_desc_get_size: sym(&lib, "dnnl_memory_desc_get_size")?,
            memory_desc_equal: sym(&lib, "dnnl_memory_desc_equal")?,
            memory_create: sym(&lib, "dnnl_memory_create")?,
            memory_get_data_handle: sym(&lib, "dnnl_memory_get_data_handle")?,
            memory_destroy: sym(&lib, "dnnl_memory_destroy")?,
            convolution_forward_desc_init: sym(&lib, "dnnl_convolution_forward_desc_init")?,
            convolution_backward_data_desc_init: sym(
                &lib,
                "dnnl_convolution_backward_data_desc_init",
            )?,
            convolution_backward_weights_desc_init: sym(
                &lib,
                "dnnl_convolution_backward_weights_desc_init",
            )?,
            primitive_desc_create: sym(&lib, "dnnl_primitive_desc_create")?,
            primitive_desc_query_md: sym(&lib, "dnnl_primitive_desc_query_md")?,
            primitive_desc_query: sym(&lib, "dnnl_primitive_desc_query")?,
            primitive_desc_destroy: sym(&lib, "dnnl_primitive_desc_destroy")?,
            primitive_create: sym(&lib, "dnnl_primitive_create")?,
            primitive_execute: sym(&lib, "dnnl_primitive_execute")?,
            primitive_destroy: sym(&lib, "dnnl_primitive_destroy")?,
            reorder_primitive_desc_create: sym(&lib, "dnnl_reorder_primitive_desc_create")?,
            primitive_attr_create: sym(&lib, "dnnl_primitive_attr_create")?,
            primitive_attr_destroy: sym(&lib, "dnnl_primitive_attr_destroy")?,
            primitive_attr_set_post_ops: sym(&lib, "dnnl_primitive_attr_set_post_ops")?,
            primitive_attr_set_scratchpad_mode: sym(
                &lib,
                "dnnl_primitive_attr_set_scratchpad_mode",
            )?,
            post_ops_create: sym(&lib, "dnnl_post_ops_create")?,
            post_ops_destroy: sym(&lib, "dnnl_post_ops_destroy")?,
            post_ops_append_sum: sym(&lib, "dnnl_post_ops_append_sum")?,
            post_ops_append_eltwise: sym(&lib, "dnnl_post_ops_append_eltwise")?,
            _lib: lib,
        })
    }
}
