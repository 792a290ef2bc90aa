//! The operations the model is written against, provided by two backends:
//! [`gpu::GpuBackend`] (the WGSL kernels, recorded and submitted in batches) and
//! [`cpu::CpuBackend`] (multithreaded Rust with a tiled sgemm). The generator and discriminator
//! are written once, generically over [`Backend`].
//!
//! Every operation has exactly the semantics of the kernel of the same name in
//! [`crate::kernels`] and of its CPU reference in [`crate::reference`]. Buffers are `f32`
//! arrays in the layouts documented there. An output buffer is never also an input of the same
//! call, except where an operation is documented as in place.

mod check;
/// Every operation trait, for code that calls operations on a concrete backend.
pub mod prelude {
    pub use super::{
        ActOps, AdamOps, AugmentOps, Backend, ConvOps, CoordsOps, FmmOps, FusedOps, ImageOps,
        LinearOps, MbstdOps, Memory, ModulateOps, ReduceOps, ResampleOps,
    };
}
pub mod cpu;
pub mod gpu;
pub mod reference;

use crate::gpu::GpuError;
use crate::reference::act::ActShape;
use crate::reference::adam::AdamConfig;
use crate::reference::augment::AugShape;
use crate::reference::conv::ConvShape;
use crate::reference::coords::CoordsShape;
use crate::reference::fmm::FmmShape;
use crate::reference::linear::Gemm;
use crate::reference::mbstd::MbstdShape;
use crate::reference::modulate::ModulateShape;
use crate::reference::resample::{ConcatShape, SliceShape, Taps};

/// Errors of the backends and of the model written on them.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// What was asked cannot be done: an empty or non-finite window, a tile outside its image,
    /// more levels than the model has. The user's input, said in its own terms.
    #[error("{0}")]
    Request(String),
    /// An operation's arguments do not fit its buffers or shapes: a caller's bug, not the input.
    #[error("bad operation arguments: {0}")]
    Shape(String),
    /// A host buffer could not be allocated.
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    /// The CPU backend could not start (its thread pool).
    #[error("CPU backend: {0}")]
    Host(String),
    /// The GPU layer's errors (adapter, device, kernels).
    #[error(transparent)]
    Gpu(#[from] GpuError),
}
pub type BResult<T> = Result<T, BackendError>;

/// Which backend to run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum BackendKind {
    Cpu,
    Gpu,
}

impl BackendKind {
    /// A real GPU when wgpu finds one; otherwise the CPU backend, which measures faster than a
    /// software Vulkan driver on the same cores (BENCHMARKS.md: the per-pixel products run at
    /// a few GFLOP/s through lavapipe and at tens through the CPU backend).
    pub fn auto() -> Self {
        let opts = crate::gpu::GpuOptions::from_env();
        if crate::gpu::enumerate_adapters(&opts)
            .first()
            .is_some_and(|a| !a.is_cpu)
        {
            Self::Gpu
        } else {
            Self::Cpu
        }
    }
}

impl std::str::FromStr for BackendKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "cpu" => Ok(Self::Cpu),
            "gpu" => Ok(Self::Gpu),
            "auto" => Ok(Self::auto()),
            other => Err(format!("unknown backend {other:?} (cpu, gpu or auto)")),
        }
    }
}

/// The backends' switches, set once by the program from its command line (`--no-fused`,
/// `--profile`) and read when a backend is made; [`cpu::CpuBackend::set_fused`] and
/// [`gpu::GpuBackend::set_fused`] change one backend afterwards.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switches {
    /// Renders go through the fused block forward (on by default).
    pub fused: bool,
    /// The GPU backend submits and waits for every operation alone and prints the time per
    /// kernel when dropped (off by default; it serialises everything).
    pub profile: bool,
}

impl Default for Switches {
    fn default() -> Self {
        Self {
            fused: true,
            profile: false,
        }
    }
}

static NO_FUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static PROFILE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl Switches {
    /// The switches that backends made from now on take.
    pub fn set(self) {
        use std::sync::atomic::Ordering::Relaxed;
        NO_FUSED.store(!self.fused, Relaxed);
        PROFILE.store(self.profile, Relaxed);
    }

    /// The switches in effect (the defaults unless [`Switches::set`] was called).
    pub fn current() -> Self {
        use std::sync::atomic::Ordering::Relaxed;
        Self {
            fused: !NO_FUSED.load(Relaxed),
            profile: PROFILE.load(Relaxed),
        }
    }
}

/// Runs `$body` with `$be` bound to a `&mut` backend of the kind asked for (the GPU backend on a
/// new [`crate::gpu::GpuContext`], or the CPU backend); their errors go through `?` into the
/// caller's error type. The one place where a [`BackendKind`] becomes a backend.
#[macro_export]
macro_rules! with_backend {
    ($kind:expr, |$be:ident| $body:expr) => {
        match $kind {
            $crate::backend::BackendKind::Gpu => {
                let ctx = $crate::gpu::GpuContext::new()?;
                let $be = &mut $crate::backend::gpu::GpuBackend::new(&ctx);
                $body
            }
            $crate::backend::BackendKind::Cpu => {
                let $be = &mut $crate::backend::cpu::CpuBackend::new()?;
                $body
            }
        }
    };
}

/// Host-side cost of recording GPU work (totals since the backend was made).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Recording {
    /// Kernel dispatches recorded.
    pub dispatches: u64,
    /// Storage buffers created.
    pub buffers: u64,
    /// Host time spent creating those buffers and recording those dispatches (bind groups,
    /// parameter blocks, checks), not waiting for the device.
    pub host: std::time::Duration,
}

impl std::ops::Sub for Recording {
    type Output = Recording;
    fn sub(self, o: Recording) -> Recording {
        Recording {
            dispatches: self.dispatches - o.dispatches,
            buffers: self.buffers - o.buffers,
            host: self.host.saturating_sub(o.host),
        }
    }
}

/// Buffers: allocation, upload, read-back, and the backend's name.
#[allow(clippy::too_many_arguments)]
pub trait Memory {
    /// An `f32` buffer of this backend.
    type Buf;
    /// Human-readable name (`"gpu: <adapter>"` or `"cpu: N threads"`).
    fn name(&self) -> String;
    fn zeros(&mut self, n: usize, label: &str) -> BResult<Self::Buf>;
    /// A buffer for the output of an operation that overwrites all `n` values before anything
    /// reads them (an operation that accumulates into its output, or `axpby`, needs
    /// [`Memory::zeros`]): its contents are unspecified. The CPU backend hands back a freed
    /// buffer of that length without clearing it; debug builds fill it with NaN instead, so that
    /// a read before the write shows in the tests. Default: [`Memory::zeros`].
    fn output(&mut self, n: usize, label: &str) -> BResult<Self::Buf> {
        self.zeros(n, label)
    }
    fn upload(&mut self, data: &[f32], label: &str) -> BResult<Self::Buf>;
    /// Overwrites the start of `buf` with `data`, ordered after all operations issued so far.
    fn write(&mut self, buf: &Self::Buf, data: &[f32]) -> BResult<()>;
    /// All values of `buf`, after all operations issued so far.
    fn read(&mut self, buf: &Self::Buf) -> BResult<Vec<f32>>;
    fn len(&self, buf: &Self::Buf) -> usize;
    /// Submits pending work (a no-op on the CPU).
    fn flush(&mut self) -> BResult<()>;
    /// What recording work has cost the host so far, where the backend records work for a
    /// device (the GPU backend): the benchmarks' host-overhead figures.
    fn recording(&self) -> Option<Recording> {
        None
    }
}

/// Strided products (`shaders/linear.wgsl`, `kernels::linear`, `reference::linear`).
#[allow(clippy::too_many_arguments)]
pub trait LinearOps: Memory {
    fn gemm(
        &mut self,
        g: &Gemm,
        a: &Self::Buf,
        b: &Self::Buf,
        bias: Option<&Self::Buf>,
        c: &Self::Buf,
    ) -> BResult<()>;
}

/// Factorized multiplicative modulation with row demodulation (`fmm`).
#[allow(clippy::too_many_arguments)]
pub trait FmmOps: Memory {
    fn fmm_forward(
        &mut self,
        s: &FmmShape,
        ws: &Self::Buf,
        styles: &Self::Buf,
        w_out: &Self::Buf,
        norms: &Self::Buf,
    ) -> BResult<()>;
    fn fmm_backward(
        &mut self,
        s: &FmmShape,
        ws: &Self::Buf,
        styles: &Self::Buf,
        norms: &Self::Buf,
        dw: &Self::Buf,
        scratch: &Self::Buf,
        dws: &Self::Buf,
        dstyles: &Self::Buf,
        accumulate_dws: bool,
    ) -> BResult<()>;
}

/// toRGB's modulation: StyleGAN2 modulation without demodulation (`modulate`).
#[allow(clippy::too_many_arguments)]
pub trait ModulateOps: Memory {
    fn style_modulate_forward(
        &mut self,
        m: &ModulateShape,
        ws: &Self::Buf,
        s: &Self::Buf,
        w: &Self::Buf,
    ) -> BResult<()>;
    fn style_modulate_backward(
        &mut self,
        m: &ModulateShape,
        ws: &Self::Buf,
        s: &Self::Buf,
        dw: &Self::Buf,
        dws: &Self::Buf,
        ds: &Self::Buf,
        accumulate_dws: bool,
    ) -> BResult<()>;
}

/// Fourier coordinate embeddings (`coords`).
#[allow(clippy::too_many_arguments)]
pub trait CoordsOps: Memory {
    fn coords_forward(
        &mut self,
        s: &CoordsShape,
        xs: &Self::Buf,
        ys: &Self::Buf,
        freqs: &Self::Buf,
        emb: &Self::Buf,
    ) -> BResult<()>;
    fn coords_backward(
        &mut self,
        s: &CoordsShape,
        xs: &Self::Buf,
        ys: &Self::Buf,
        freqs: &Self::Buf,
        demb: &Self::Buf,
        dfreqs: &Self::Buf,
        accumulate: bool,
    ) -> BResult<()>;
}

/// Bias and leaky ReLU (`act`).
#[allow(clippy::too_many_arguments)]
pub trait ActOps: Memory {
    fn act_forward(
        &mut self,
        s: &ActShape,
        x: &Self::Buf,
        bias: Option<&Self::Buf>,
        y: &Self::Buf,
    ) -> BResult<()>;
    fn act_backward(
        &mut self,
        s: &ActShape,
        y: &Self::Buf,
        dy: &Self::Buf,
        dx: &Self::Buf,
        accumulate: bool,
    ) -> BResult<()>;
}

/// Moves between levels and channel layouts: upsampling, gathers, concat, slice (`resample`).
#[allow(clippy::too_many_arguments)]
pub trait ResampleOps: Memory {
    fn upsample2x_forward(
        &mut self,
        x: &Self::Buf,
        y: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
    ) -> BResult<()>;
    fn upsample2x_backward(
        &mut self,
        dy: &Self::Buf,
        dx: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        accumulate: bool,
    ) -> BResult<()>;
    /// `y[p, r, c] = x[p, rows[r], cols[c]]` with host index tables.
    fn gather(
        &mut self,
        x: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &[u32],
        cols: &[u32],
        y: &Self::Buf,
    ) -> BResult<()>;
    /// Bilinear sampling by separable taps (`reference::resample::gather_bilinear`): the
    /// bilinear link between scale levels.
    fn gather_bilinear(
        &mut self,
        x: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &Taps,
        cols: &Taps,
        y: &Self::Buf,
    ) -> BResult<()>;
    /// The transpose of [`ResampleOps::gather_bilinear`] into `dx [planes, h, w]` (added to it when
    /// `accumulate`), summed as a gather in a fixed order (`Taps::inverse`).
    fn gather_bilinear_backward(
        &mut self,
        dy: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &Taps,
        cols: &Taps,
        dx: &Self::Buf,
        accumulate: bool,
    ) -> BResult<()>;
    fn concat_channels(
        &mut self,
        s: &ConcatShape,
        x1: &Self::Buf,
        x2: &Self::Buf,
        y: &Self::Buf,
    ) -> BResult<()>;
    fn slice_channels(
        &mut self,
        s: &SliceShape,
        x: &Self::Buf,
        y: &Self::Buf,
        accumulate: bool,
    ) -> BResult<()>;
}

/// One generator level in one pass (`fused`); optional.
#[allow(clippy::too_many_arguments)]
pub trait FusedOps: Memory {
    /// Whether [`FusedOps::fused_level_forward`] runs here (else the generator runs the block's
    /// layers one by one).
    fn has_fused(&self) -> bool {
        false
    }
    /// Whether [`FusedOps::fused_level_forward`] runs this block here.
    fn fused_fits(&self, s: &crate::reference::fused::FusedShape) -> bool {
        self.has_fused() && s.fits()
    }
    /// One scale block's FMM layers and toRGB outputs in one pass (inference;
    /// `shaders/fused.wgsl`). Packs as in [`crate::reference::fused`].
    #[allow(clippy::too_many_arguments)]
    fn fused_level_forward(
        &mut self,
        s: &crate::reference::fused::FusedShape,
        input: crate::reference::fused::FusedInput<'_, Self::Buf>,
        w: &Self::Buf,
        bias: &Self::Buf,
        rgbw: &Self::Buf,
        rgbb: &Self::Buf,
        img: &Self::Buf,
        out: Option<&Self::Buf>,
    ) -> BResult<()> {
        let _ = (s, input, w, bias, rgbw, rgbb, img, out);
        Err(crate::backend::BackendError::Shape(format!(
            "{}: no fused kernel",
            self.name()
        )))
    }
}

/// The discriminator's convolutions and blur-downsampling (`conv`).
#[allow(clippy::too_many_arguments)]
pub trait ConvOps: Memory {
    fn conv2d_forward(
        &mut self,
        s: &ConvShape,
        x: &Self::Buf,
        w: &Self::Buf,
        b: Option<&Self::Buf>,
        y: &Self::Buf,
    ) -> BResult<()>;
    fn conv2d_backward_input(
        &mut self,
        s: &ConvShape,
        dy: &Self::Buf,
        w: &Self::Buf,
        dx: &Self::Buf,
        accumulate: bool,
    ) -> BResult<()>;
    fn conv2d_backward_weight(
        &mut self,
        s: &ConvShape,
        dy: &Self::Buf,
        x: &Self::Buf,
        dw: &Self::Buf,
        accumulate: bool,
    ) -> BResult<()>;
    fn blur_down2x_forward(
        &mut self,
        x: &Self::Buf,
        y: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
    ) -> BResult<()>;
    fn blur_down2x_backward(
        &mut self,
        dy: &Self::Buf,
        dx: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        accumulate: bool,
    ) -> BResult<()>;
}

/// Minibatch standard deviation (`mbstd`).
#[allow(clippy::too_many_arguments)]
pub trait MbstdOps: Memory {
    fn mbstd_forward(
        &mut self,
        s: &MbstdShape,
        x: &Self::Buf,
        stat: &Self::Buf,
        y: &Self::Buf,
    ) -> BResult<()>;
    fn mbstd_backward(
        &mut self,
        s: &MbstdShape,
        x: &Self::Buf,
        dy: &Self::Buf,
        dstat: &Self::Buf,
        dx: &Self::Buf,
    ) -> BResult<()>;
    /// The tangent of [`MbstdOps::mbstd_forward`] at `x` along `xdot` (the R1 double backward).
    fn mbstd_jvp(
        &mut self,
        s: &MbstdShape,
        x: &Self::Buf,
        xdot: &Self::Buf,
        stat: &Self::Buf,
        ydot: &Self::Buf,
    ) -> BResult<()>;
    /// The tangent of [`MbstdOps::mbstd_backward`]'s `dx` at `x` along `xdot`, `dy` fixed.
    fn mbstd_backward_jvp(
        &mut self,
        s: &MbstdShape,
        x: &Self::Buf,
        xdot: &Self::Buf,
        dy: &Self::Buf,
        dstat: &Self::Buf,
        dxdot: &Self::Buf,
    ) -> BResult<()>;
}

/// Differentiable augmentation of what D sees (`augment`; parameters `[batch, AUG_PARAMS]`).
#[allow(clippy::too_many_arguments)]
pub trait AugmentOps: Memory {
    /// Saturation and, when `brightness`, brightness (`reference::augment::color`).
    fn aug_color(
        &mut self,
        s: &AugShape,
        x: &Self::Buf,
        prm: &Self::Buf,
        y: &Self::Buf,
        brightness: bool,
    ) -> BResult<()>;
    /// Contrast toward the per-image values `mu [batch]` (`reference::augment::blend`).
    fn aug_blend(
        &mut self,
        s: &AugShape,
        x: &Self::Buf,
        prm: &Self::Buf,
        mu: &Self::Buf,
        y: &Self::Buf,
    ) -> BResult<()>;
    /// Translation with edge replication, then cutout (`reference::augment::shift_forward`).
    fn aug_shift_forward(
        &mut self,
        s: &AugShape,
        x: &Self::Buf,
        prm: &Self::Buf,
        y: &Self::Buf,
    ) -> BResult<()>;
    /// The transpose of [`AugmentOps::aug_shift_forward`] into `dx` (overwritten).
    fn aug_shift_backward(
        &mut self,
        s: &AugShape,
        dy: &Self::Buf,
        prm: &Self::Buf,
        dx: &Self::Buf,
    ) -> BResult<()>;
}

/// Reductions, losses and elementwise updates (`reduce`).
#[allow(clippy::too_many_arguments)]
pub trait ReduceOps: Memory {
    fn sum_axes(
        &mut self,
        x: &Self::Buf,
        y: &Self::Buf,
        outer: usize,
        mid: usize,
        inner: usize,
        scale: f32,
        accumulate: bool,
    ) -> BResult<()>;
    fn row_norm(&mut self, x: &Self::Buf, y: &Self::Buf, rows: usize, cols: usize) -> BResult<()>;
    fn softplus_forward(
        &mut self,
        x: &Self::Buf,
        y: &Self::Buf,
        n: usize,
        sign: f32,
    ) -> BResult<()>;
    /// In place: `dy <- dy * sign * sigmoid(sign * x)`.
    fn softplus_backward(
        &mut self,
        x: &Self::Buf,
        dy: &Self::Buf,
        n: usize,
        sign: f32,
    ) -> BResult<()>;
    /// In place: `y <- a x + b y`.
    fn axpby(&mut self, a: f32, x: &Self::Buf, b: f32, y: &Self::Buf, n: usize) -> BResult<()>;
    /// Number of NaN or infinite values in `x[..n]` (waits for pending work).
    fn count_nonfinite(&mut self, x: &Self::Buf, n: usize) -> BResult<u32>;
}

/// Optimiser steps (`adam`).
#[allow(clippy::too_many_arguments)]
pub trait AdamOps: Memory {
    fn adam_step(
        &mut self,
        cfg: &AdamConfig,
        t: u64,
        p: &Self::Buf,
        g: &Self::Buf,
        m: &Self::Buf,
        v: &Self::Buf,
        n: usize,
    ) -> BResult<()>;
    fn ema_update(&mut self, p: &Self::Buf, e: &Self::Buf, beta: f64, n: usize) -> BResult<()>;
}

/// Conversion to 8-bit images (`image`).
#[allow(clippy::too_many_arguments)]
pub trait ImageOps: Memory {
    /// Planar `[batch, 3, pixels]` to packed RGBA8 (waits for pending work).
    fn to_rgba8(&mut self, x: &Self::Buf, batch: usize, pixels: usize) -> BResult<Vec<u32>>;
}

/// Every operation the model is written against: one trait per kernel family (each mirrors
/// `shaders/<family>.wgsl`), and the operations derived from them.
pub trait Backend:
    Memory
    + LinearOps
    + FmmOps
    + ModulateOps
    + CoordsOps
    + ActOps
    + ResampleOps
    + FusedOps
    + ConvOps
    + MbstdOps
    + AugmentOps
    + ReduceOps
    + AdamOps
    + ImageOps
{
    /// Per-image packs `y[b] = [parts[0][b] | parts[1][b] | ...]` (`parts`: a buffer of
    /// `batch * n` values and its `n`): the fused blocks' weight packs. The default concatenates
    /// pairwise (each step copies the pack so far); backends may do it in one pass.
    fn pack(
        &mut self,
        batch: usize,
        parts: &[(&Self::Buf, usize)],
        label: &str,
    ) -> BResult<Self::Buf> {
        let Some((&(first, n0), rest)) = parts.split_first() else {
            return self.zeros(0, label);
        };
        let mut pack = self.zeros(batch * n0, label)?;
        self.copy(first, &pack, batch * n0)?;
        let mut len = n0;
        for &(part, n) in rest {
            let y = self.zeros(batch * (len + n), label)?;
            let cat = ConcatShape {
                batch,
                c1: len,
                c2: n,
                pixels: 1,
                broadcast: false,
            };
            self.concat_channels(&cat, &pack, part, &y)?;
            pack = y;
            len += n;
        }
        Ok(pack)
    }
    /// `y = x[..n]` (a channel slice of one plane).
    fn copy(&mut self, x: &Self::Buf, y: &Self::Buf, n: usize) -> BResult<()> {
        let s = SliceShape {
            batch: 1,
            channels: n,
            c0: 0,
            len: n,
            pixels: 1,
        };
        self.slice_channels(&s, x, y, false)
    }
}
