//! The CPU engine under the ops: oneDNN when it is installed, else the built-in kernels of
//! `runner-kernels` (also the reference the tests compare oneDNN against).
//!
//! The choice is made once per process (`RUNNER_ENGINE=auto|onednn|builtin`, or the CLI's
//! `--engine`, through [`choose`]); `auto` takes oneDNN when `libdnnl.so.2` loads and says why
//! it fell back otherwise. A thread can run a closure on another engine ([`with`]): the tests
//! run every golden and gradient check on both in one process.
//!
//! Per op and pass, each engine does what it does best here. Measured on oneDNN 2.6.3
//! (`avx512_core_amx`, 2 threads; built-in and oneDNN alternated in one process, best of 8, so
//! that load from other processes hits both alike; GFLOP/s, forward / backward-data /
//! backward-weights, batch 4):
//!
//! | layer | built-in | oneDNN (with NCHW reorders) |
//! |---|---|---|
//! | ResNet stem 7×7/2 @224, 3→64 | 22.6 / 27.3 / 25.2 | 107.5 / 23.6 / 98.0 |
//! | 3×3 @56, 64→64 | 30.6 / 38.5 / 25.4 | 143.2 / 163.7 / 249.7 |
//! | 1×1 @56, 24→144 | 46.6 / 49.0 / 36.1 | 77.3 / 64.5 / 80.9 |
//! | depthwise 5×5 @28, 240 | 52.6 / 54.3 / – | 51.6 / 40.0 / – |
//! | depthwise 3×3/2 @56, 96 | 15.2 / 7.1 / – | 8.6 / 7.1 / – |
//!
//! (oneDNN 2.6's depthwise weight gradient is a gemm fallback at ≈ 1.8 GFLOP/s against the
//! built-in ≈ 65.) So with oneDNN, dense and grouped convolutions go to oneDNN, except the
//! input gradient of layers with at most 4 input channels (the stem), and depthwise
//! convolutions stay built-in in training: once their NCHW input and output are reordered,
//! oneDNN does not win. The frozen feature path ([`super::frozen`]) keeps activations in
//! oneDNN's layouts and runs depthwise layers there too. BatchNorm and pooling stay built-in on
//! both engines: they are memory-bound, and the built-in BatchNorm fuses the activation and the
//! residual add that oneDNN's would need as separate passes over NCHW data.

use std::cell::Cell;
use std::sync::OnceLock;

use runner_kernels::conv::{conv2d_backward, conv2d_forward_into};
use runner_kernels::geometry::Conv2dGeom;
use runner_onednn::{ConvSpec, DataType, Dnnl, Saved};

/// The engine a spec or the environment asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EngineChoice {
    /// oneDNN where it loads, else the built-in kernels.
    #[default]
    Auto,
    OneDnn,
    Builtin,
}

impl std::str::FromStr for EngineChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "auto" => Ok(Self::Auto),
            "onednn" => Ok(Self::OneDnn),
            "builtin" => Ok(Self::Builtin),
            other => Err(format!(
                "unknown engine {other:?}: expected auto, onednn or builtin"
            )),
        }
    }
}

/// An engine in use.
#[derive(Clone, Copy)]
pub enum Engine {
    Builtin,
    OneDnn(&'static Dnnl),
}

impl Engine {
    /// oneDNN, loaded on first use with rayon's thread count; the reason when it cannot be.
    pub fn onednn() -> Result<Engine, String> {
        Dnnl::load(rayon::current_num_threads())
            .map(Engine::OneDnn)
            .map_err(str::to_string)
    }

    /// `oneDNN 2.6.3 (avx512_core_amx, 2 OpenMP threads)` or `built-in`.
    pub fn name(&self) -> String {
        match self {
            Engine::Builtin => "built-in".into(),
            Engine::OneDnn(d) => d.describe(),
        }
    }

    pub fn is_onednn(&self) -> bool {
        matches!(self, Engine::OneDnn(_))
    }
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name())
    }
}

/// The process's engine and, when it is not the one asked for, why.
#[derive(Clone, Debug)]
pub(crate) struct Selected {
    pub engine: Engine,
    pub note: Option<String>,
}

impl Selected {
    /// One line for the log, the manifest and the bench: the engine, and why auto fell back.
    pub(crate) fn describe(&self) -> String {
        match &self.note {
            Some(n) => format!("{} ({n})", self.engine.name()),
            None => self.engine.name(),
        }
    }
}

static CHOICE: OnceLock<(EngineChoice, &'static str)> = OnceLock::new();
static SELECTED: OnceLock<Result<Selected, String>> = OnceLock::new();

thread_local! {
    static OVERRIDE: Cell<Option<Engine>> = const { Cell::new(None) };
    static CONV_PRECISION: Cell<DataType> = const { Cell::new(DataType::F32) };
}

fn resolve(choice: EngineChoice, source: &str) -> Result<Selected, String> {
    match choice {
        EngineChoice::Builtin => Ok(Selected {
            engine: Engine::Builtin,
            note: Some(format!("{source}=builtin")),
        }),
        EngineChoice::OneDnn => Engine::onednn()
            .map(|engine| Selected { engine, note: None })
            .map_err(|why| format!("{source}=onednn, but {why}; install oneDNN 2.x (Debian: apt-get install libdnnl-dev) or choose auto or builtin")),
        EngineChoice::Auto => Ok(match Engine::onednn() {
            Ok(engine) => Selected { engine, note: None },
            Err(why) => Selected {
                engine: Engine::Builtin,
                note: Some(format!("auto: {why}")),
            },
        }),
    }
}

/// The engine choice from `RUNNER_ENGINE` (auto when unset).
pub(crate) fn choice_from_env() -> Result<EngineChoice, String> {
    match std::env::var("RUNNER_ENGINE") {
        Ok(v) => v.parse().map_err(|e| format!("RUNNER_ENGINE: {e}")),
        Err(_) => Ok(EngineChoice::Auto),
    }
}

/// Records the process's engine choice: the CLI's `--engine`, which wins over `RUNNER_ENGINE`
/// (read when `flag` is `None`). Nothing is loaded until an op or [`selected`] needs it. The
/// first choice stands.
pub fn choose(flag: Option<EngineChoice>) -> Result<(), String> {
    let choice = match flag {
        Some(c) => (c, "--engine"),
        None => (choice_from_env()?, "RUNNER_ENGINE"),
    };
    let _ = CHOICE.set(choice);
    Ok(())
}

/// The process's engine, resolved on first use from the recorded choice (or `RUNNER_ENGINE`);
/// an error when oneDNN was demanded and cannot be used, or `RUNNER_ENGINE` is not an engine.
pub(crate) fn selected() -> Result<&'static Selected, &'static str> {
    SELECTED
        .get_or_init(|| {
            let (choice, source) = match CHOICE.get() {
                Some(c) => *c,
                None => (choice_from_env()?, "RUNNER_ENGINE"),
            };
            resolve(choice, source)
        })
        .as_ref()
        .map_err(String::as_str)
}

/// What [`current`] runs on, in words, with the reason where auto fell back (for the log and
/// a run's manifest).
pub(crate) fn describe_current() -> String {
    match OVERRIDE.with(Cell::get) {
        Some(e) => e.name(),
        None => match selected() {
            Ok(s) => s.describe(),
            Err(why) => why.to_string(),
        },
    }
}

/// The engine ops on this thread use now.
///
/// Panics when the process's engine cannot be resolved ([`selected`] fails): the CLI checks it
/// before a run starts.
pub(crate) fn current() -> Engine {
    OVERRIDE
        .with(Cell::get)
        .unwrap_or_else(|| match selected() {
            Ok(s) => s.engine,
            Err(why) => panic!("{why}"),
        })
}

/// Runs `f` with this thread's ops on `engine` (tests compare the engines in one process).
pub fn with<R>(engine: Engine, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<Engine>);
    impl Drop for Restore {
        fn drop(&mut self) {
            OVERRIDE.with(|o| o.set(self.0));
        }
    }
    let _restore = Restore(OVERRIDE.with(|o| o.replace(Some(engine))));
    f()
}

/// Runs `f` with this thread's dense convolutions in `precision` (bf16: inputs and weights
/// rounded to bf16, f32 accumulation and results). A run sets it for its whole life; every
/// other op, the depthwise convolutions and everything on the built-in engine stay f32.
///
/// Panics with bf16 when the current engine cannot compute it ([`bf16_support`]): callers
/// check first, so that no run records bf16 while computing f32.
pub fn with_conv_precision<R>(precision: DataType, f: impl FnOnce() -> R) -> R {
    if precision == DataType::Bf16 {
        if let Err(why) = bf16_support() {
            panic!("bf16 convolutions asked for where they cannot run: {why}");
        }
    }
    struct Restore(DataType);
    impl Drop for Restore {
        fn drop(&mut self) {
            CONV_PRECISION.with(|p| p.set(self.0));
        }
    }
    let _restore = Restore(CONV_PRECISION.with(|p| p.replace(precision)));
    f()
}

/// The precision of this thread's dense convolutions ([`with_conv_precision`]).
pub fn conv_precision() -> DataType {
    CONV_PRECISION.with(Cell::get)
}

/// The instruction set bf16 convolutions run on with the current engine (`avx512_core_bf16`,
/// `avx512_core_amx`), or what is missing for them, in words.
pub fn bf16_support() -> Result<&'static str, String> {
    match current() {
        Engine::OneDnn(d) if d.has_bf16() => Ok(d.isa()),
        Engine::OneDnn(d) => Err(format!(
            "bf16 needs oneDNN's avx512_core_bf16 or avx512_core_amx kernels (a CPU with avx512_bf16 or AMX); {} runs {} on this CPU",
            d.describe(),
            d.isa()
        )),
        Engine::Builtin => Err(format!(
            "bf16 convolutions run on oneDNN only, and this process's engine is {}",
            describe_current()
        )),
    }
}

/// oneDNN's view of a convolution's geometry (explicit bottom/right padding), computed in
/// `precision`.
pub(crate) fn conv_spec(g: &Conv2dGeom, precision: DataType) -> ConvSpec {
    let pad_end = |out: usize, input: usize, start: usize| {
        ((out.saturating_sub(1)) * g.stride + g.k).saturating_sub(input + start)
    };
    ConvSpec {
        batch: g.batch,
        c_in: g.c_in,
        h: g.h,
        w: g.w,
        c_out: g.c_out,
        k: g.k,
        stride: g.stride,
        pad_top: g.pad_top,
        pad_left: g.pad_left,
        pad_bottom: pad_end(g.oh, g.h, g.pad_top),
        pad_right: pad_end(g.ow, g.w, g.pad_left),
        groups: g.groups,
        oh: g.oh,
        ow: g.ow,
        precision,
    }
}

fn is_depthwise(g: &Conv2dGeom) -> bool {
    g.groups == g.c_in && g.groups == g.c_out
}

/// What a convolution's forward pass keeps for its backward pass on its engine.
pub struct ConvSaved {
    engine: Engine,
    /// What the forward pass computed in; the backward pass computes in the same.
    precision: DataType,
    onednn: Option<Saved>,
}

impl ConvSaved {
    /// Whether the backward pass needs the input's values (the built-in kernels always do,
    /// oneDNN not when it kept its own copy).
    pub(crate) fn needs_input(&self) -> bool {
        match (&self.engine, &self.onednn) {
            (Engine::OneDnn(_), Some(s)) => !s.holds_input(),
            _ => true,
        }
    }
}

fn failed(e: runner_onednn::Error) -> ! {
    // The primitives of these shapes exist on every CPU oneDNN supports; a failure here is a
    // bug or an exhausted machine, not bad input.
    panic!("{e}")
}

/// `out` = conv(x, w) (+ bias) on the current engine; `out` has batch·c_out·oh·ow floats (its
/// contents are overwritten). With `keep`, the result holds what the backward pass reuses.
pub fn conv_forward(
    g: &Conv2dGeom,
    x: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    out: &mut [f32],
    keep: bool,
) -> ConvSaved {
    // depthwise layers run built-in in training (module docs), forward and backward alike
    let engine = match current() {
        Engine::OneDnn(_) if is_depthwise(g) => Engine::Builtin,
        e => e,
    };
    let precision = match engine {
        Engine::OneDnn(_) => conv_precision(),
        Engine::Builtin => DataType::F32,
    };
    let onednn = match engine {
        Engine::OneDnn(d) if g.batch > 0 => {
            let saved = d
                .conv_forward(&conv_spec(g, precision), x, w, out, keep)
                .unwrap_or_else(|e| failed(e));
            if let Some(b) = bias {
                add_bias(g, b, out);
            }
            saved
        }
        _ => {
            out.fill(0.0);
            conv2d_forward_into(g, x, w, bias, out);
            None
        }
    };
    ConvSaved {
        engine,
        precision,
        onednn,
    }
}

fn add_bias(g: &Conv2dGeom, b: &[f32], out: &mut [f32]) {
    use rayon::prelude::*;
    assert_eq!(b.len(), g.c_out, "bias size");
    let ohw = g.oh * g.ow;
    out.par_chunks_mut(g.c_out * ohw).for_each(|o| {
        for (plane, bv) in o.chunks_mut(ohw).zip(b) {
            plane.iter_mut().for_each(|v| *v += bv);
        }
    });
}

/// db += the sum of each output channel's gradient.
fn bias_grad(g: &Conv2dGeom, gout: &[f32], db: &mut [f32]) {
    let ohw = g.oh * g.ow;
    for go_b in gout.chunks(g.c_out * ohw) {
        for (d, plane) in db.iter_mut().zip(go_b.chunks(ohw)) {
            *d += plane.iter().sum::<f32>();
        }
    }
}

/// Adds ∂L/∂x, ∂L/∂w and ∂L/∂bias into those given, on the engine the forward pass ran on.
/// `x` may be empty when `saved` does not [need it](ConvSaved::needs_input).
#[expect(
    clippy::too_many_arguments,
    reason = "the backward pass's saved state, its three inputs and its three optional outputs, as the built-in kernel takes them"
)]
pub fn conv_backward(
    g: &Conv2dGeom,
    saved: &ConvSaved,
    x: &[f32],
    w: &[f32],
    gout: &[f32],
    dx: Option<&mut [f32]>,
    dw: Option<&mut [f32]>,
    db: Option<&mut [f32]>,
) {
    let Engine::OneDnn(d) = saved.engine else {
        return conv2d_backward(g, x, w, gout, dx, dw, db);
    };
    if g.batch == 0 {
        return conv2d_backward(g, x, w, gout, dx, dw, db);
    }
    if let Some(db) = db {
        bias_grad(g, gout, db);
    }
    // the input gradient of layers with few input channels stays built-in (module docs)
    let (dx_onednn, dx_builtin) = if g.c_in <= FEW_INPUT_CHANNELS {
        (None, dx)
    } else {
        (dx, None)
    };
    d.conv_backward(
        &conv_spec(g, saved.precision),
        saved.onednn.as_ref(),
        x,
        w,
        gout,
        dx_onednn,
        dw,
    )
    .unwrap_or_else(|e| failed(e));
    if let Some(dx) = dx_builtin {
        conv2d_backward(g, &[], w, gout, Some(dx), None, None);
    }
}

/// Up to this many input channels, the input gradient is computed built-in (module docs).
const FEW_INPUT_CHANNELS: usize = 4;
