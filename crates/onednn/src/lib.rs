//! runner's binding to oneDNN (the library PyTorch's CPU convolutions run on), opened at run
//! time: `cargo build` needs no oneDNN, and a machine with `libdnnl.so.2` (Debian's
//! `libdnnl-dev` / `libdnnl2`, 2.x) gets its convolutions.
//!
//! No maintained Rust binding exists, so [`sys`] declares the few C entry points used; the safe
//! layer on top owns every handle ([`memory`], [`primitive`]) and offers convolutions on the
//! plain NCHW/OIHW `f32` slices runner's tensors hold ([`conv`]), with primitives created once
//! per shape and cached, and inference convolutions with fused post-ops on oneDNN's blocked
//! layouts ([`infer`]).
//!
//! Threads: oneDNN 2.x as Debian builds it runs on OpenMP. [`Dnnl::load`] sets the OpenMP
//! thread count (to the caller's, normally rayon's) and a passive wait policy before the
//! library (and with it libgomp) is loaded, unless the environment already sets them: spinning
//! OpenMP threads take the cores from rayon's pool between calls, and the callers never run
//! both pools at once.

pub mod conv;
pub mod infer;
pub mod memory;
pub mod primitive;
pub mod sys;

use std::cell::RefCell;
use std::ffi::CStr;
use std::sync::{Mutex, OnceLock};

pub use conv::{ConvSpec, Saved};
pub use memory::DataType;

/// A failed oneDNN call: which entry point and its status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub call: &'static str,
    pub status: i32,
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.status {
            1 => "out of memory",
            2 => "invalid arguments",
            3 => "unimplemented",
            5 => "runtime error",
            _ => "error",
        };
        write!(f, "oneDNN {}: {what} (status {})", self.call, self.status)
    }
}

impl std::error::Error for Error {}

pub(crate) fn check(call: &'static str, status: sys::Status) -> Result<(), Error> {
    if status == sys::SUCCESS {
        Ok(())
    } else {
        Err(Error { call, status })
    }
}

/// The library's name for the dynamic loader.
pub const LIBRARY: &str = "libdnnl.so.2";

/// The opened library and its CPU engine.
pub struct Dnnl {
    pub(crate) api: sys::Api,
    pub(crate) engine: sys::Engine,
    version: (i32, i32, i32),
    isa: &'static str,
    threads: usize,
    pub(crate) convs: Mutex<conv::Cache>,
}

// SAFETY: after `open` nothing of a `Dnnl` is mutated but its conv cache, behind a Mutex; the
// engine handle and the function pointers are plain values, and oneDNN's CPU engine may be used
// (primitives created and executed) from many threads at once. Streams, which may not, are
// per thread (`with_stream`) and never stored here.
unsafe impl Send for Dnnl {}
// SAFETY: as for Send: shared use is the engine's documented thread-safe use; the only state
// changed through `&Dnnl` is the Mutex-guarded conv cache and thread-local streams.
unsafe impl Sync for Dnnl {}

static LOADED: OnceLock<Result<Dnnl, String>> = OnceLock::new();

impl Dnnl {
    /// The process's oneDNN, loaded on the first call with `threads` OpenMP threads; the reason
    /// when it cannot be used (not installed, not 2.x, no CPU engine).
    pub fn load(threads: usize) -> Result<&'static Dnnl, &'static str> {
        LOADED
            .get_or_init(|| Dnnl::open(threads))
            .as_ref()
            .map_err(String::as_str)
    }

    /// The process's oneDNN if [`Dnnl::load`] succeeded before.
    pub fn loaded() -> Option<&'static Dnnl> {
        LOADED.get().and_then(|r| r.as_ref().ok())
    }

    fn open(threads: usize) -> Result<Dnnl, String> {
        set_env_default("OMP_NUM_THREADS", &threads.max(1).to_string());
        // See the crate docs; measured in runner's bench (README's performance notes).
        if std::env::var_os("GOMP_SPINCOUNT").is_none() {
            set_env_default("OMP_WAIT_POLICY", "PASSIVE");
        }
        // SAFETY: the library is oneDNN's (its soname); the version is checked before any
        // other entry point is called.
        let api = unsafe { sys::Api::load(LIBRARY) }
            .map_err(|e| format!("{LIBRARY} could not be loaded ({e})"))?;
        // SAFETY: dnnl_version returns a pointer to a static struct.
        let v = unsafe { &*(api.version)() };
        let version = (v.major, v.minor, v.patch);
        if v.major != 2 {
            return Err(format!(
                "{LIBRARY} is oneDNN {}.{}.{}; runner's binding is for 2.x",
                v.major, v.minor, v.patch
            ));
        }
        // SAFETY: a non-null `hash` of dnnl_version's static struct is a static NUL-terminated string.
        let _hash = (!v.hash.is_null()).then(|| unsafe { CStr::from_ptr(v.hash) });
        // SAFETY: dnnl_get_effective_cpu_isa takes no arguments and only reads the library's state.
        let isa = isa_name(unsafe { (api.get_effective_cpu_isa)() });
        let mut engine = std::ptr::null_mut();
        // SAFETY: `engine` is a live local the call writes the new handle to; index 0 of the CPU
        // engine kind is the host CPU, which always exists.
        check("dnnl_engine_create", unsafe {
            (api.engine_create)(&mut engine, sys::ENGINE_CPU, 0)
        })
        .map_err(|e| e.to_string())?;
        let threads = std::env::var("OMP_NUM_THREADS")
            .ok()
            .and_then(|t| t.parse().ok())
            .unwrap_or(threads);
        Ok(Dnnl {
            api,
            engine,
            version,
            isa,
            threads,
            convs: Mutex::new(conv::Cache::default()),
        })
    }

    /// `major.minor.patch` of the loaded library.
    pub fn version(&self) -> (i32, i32, i32) {
        self.version
    }

    /// The instruction set oneDNN's kernels use on this CPU (`dnnl_get_effective_cpu_isa`).
    pub fn isa(&self) -> &'static str {
        self.isa
    }

    /// Whether oneDNN computes bf16 natively on this CPU (`avx512_core_bf16`, AMX); below that
    /// it would emulate bf16, slower than f32, so runner does not offer bf16 there.
    pub fn has_bf16(&self) -> bool {
        matches!(self.isa, "avx512_core_bf16" | "avx512_core_amx")
    }

    /// OpenMP threads oneDNN runs on.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// One line for logs: `oneDNN 2.6.3 (avx512_core_amx, 2 OpenMP threads)`.
    pub fn describe(&self) -> String {
        let (a, b, c) = self.version;
        format!(
            "oneDNN {a}.{b}.{c} ({}, {} OpenMP threads)",
            self.isa, self.threads
        )
    }

    /// Runs `f` with this thread's stream (created on first use), then waits for it.
    pub(crate) fn with_stream<R>(
        &self,
        f: impl FnOnce(sys::Stream) -> Result<R, Error>,
    ) -> Result<R, Error> {
        thread_local! {
            static STREAM: RefCell<Option<StreamHandle>> = const { RefCell::new(None) };
        }
        STREAM.with(|s| {
            let mut s = s.borrow_mut();
            if s.is_none() {
                let mut h = std::ptr::null_mut();
                // SAFETY: `h` is a live local the call writes the handle to; `self.engine` lives as long as
                // `self`, which is the process's static `Dnnl`.
                check("dnnl_stream_create", unsafe {
                    (self.api.stream_create)(&mut h, self.engine, sys::STREAM_DEFAULT_FLAGS)
                })?;
                *s = Some(StreamHandle(h, self.api.stream_destroy));
            }
            let h = s.as_ref().expect("created above").0;
            let r = f(h)?;
            // SAFETY: `h` is this thread's stream, created above and destroyed only when the thread ends.
            check("dnnl_stream_wait", unsafe { (self.api.stream_wait)(h) })?;
            Ok(r)
        })
    }
}

/// A thread's stream, destroyed when the thread ends.
struct StreamHandle(
    sys::Stream,
    unsafe extern "C" fn(sys::Stream) -> sys::Status,
);

impl Drop for StreamHandle {
    fn drop(&mut self) {
        // SAFETY: the stream came from dnnl_stream_create and is destroyed once, here, as the thread
        // that alone used it ends.
        unsafe { (self.1)(self.0) };
    }
}

fn set_env_default(key: &str, value: &str) {
    if std::env::var_os(key).is_none() {
        // Set once, before the library and its OpenMP runtime are loaded (they read it then).
        std::env::set_var(key, value);
    }
}

/// `dnnl_cpu_isa_t` values of 2.6 (`dnnl_types.h`).
fn isa_name(isa: i32) -> &'static str {
    match isa {
        0x1 => "sse41",
        0x3 => "avx",
        0x7 => "avx2",
        0x407 => "avx2_vnni",
        0xf => "avx512_mic",
        0x1f => "avx512_mic_4ops",
        0x27 => "avx512_core",
        0x67 => "avx512_core_vnni",
        0xe7 => "avx512_core_bf16",
        0x3e7 => "avx512_core_amx",
        _ => "unknown isa",
    }
}
