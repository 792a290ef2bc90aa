//! The CPU backend: every [`Backend`] operation in `f32` on the host, multithreaded with rayon
//! (one pool per backend, `available_parallelism` threads by default).
//!
//! Products go through `matrixmultiply::sgemm` (runtime-detected AVX-512 / AVX2 / FMA kernels):
//! [`Backend::gemm`] with the [`Gemm`] strides, cut into fixed tiles of C (and, for short and wide
//! products such as weight gradients over many pixels, fixed bins of K summed in a fixed order);
//! the convolutions as im2col + sgemm over fixed pixel blocks. Everything else is plain loops over
//! rows or planes.
//!
//! Determinism: every partition of the work depends on the shapes only, never on the number of
//! threads, and each output value is computed by one task in a fixed order, so results are bitwise
//! identical whatever the thread count (they differ from the GPU's in the last bits: other
//! summation orders).
//!
//! Buffers are [`CpuBuf`]s, each behind its own lock: an operation read-locks its inputs and
//! write-locks its outputs, so passing one buffer both as an input and as an output of a call
//! (other than the documented in-place operands) is an error, not a data race.

use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard, TryLockError};

use rayon::prelude::*;

use super::{BResult, Backend};
use crate::gpu::GpuError;
use crate::reference as r;
use crate::reference::act::ActShape;
use crate::reference::adam::AdamConfig;
use crate::reference::augment::{AUG_PARAMS, AugParams, AugShape};
use crate::reference::conv::{BLUR_TAPS, ConvShape, blur_down2x_out};
use crate::reference::coords::CoordsShape;
use crate::reference::fmm::{FMM_EPS, FmmShape};
use crate::reference::fused::{Assembly, FusedInput, FusedShape};
use crate::reference::linear::{BiasMode, Gemm};
use crate::reference::mbstd::{MBSTD_EPS, MbstdShape};
use crate::reference::modulate::ModulateShape;
use crate::reference::resample::{ConcatShape, SliceShape, Taps};

/// Work (multiply-adds or values) below which an operation runs on the calling thread.
const PAR_WORK: usize = 1 << 15;
/// Values per work item of the elementwise operations.
const CHUNK: usize = 1 << 13;
/// Rows and columns of C per gemm tile.
const GEMM_MB: usize = 256;
const GEMM_NB: usize = 2048;
/// K per bin when a product with few tiles is split along K.
const KSPLIT_BIN: usize = 2048;
/// Products with fewer tiles than this (and K of at least two bins) are split along K.
const KSPLIT_MAX_TILES: usize = 8;
/// Most `f32` partial sums one operation allocates for a split reduction.
const PARTIAL_CAP: usize = 1 << 22;
/// Values of one im2col block (1 MiB of `f32`).
const COL_BUDGET: usize = 1 << 18;
/// Values of one activation buffer of a fused block's tile (512 KiB of `f32`: the tile's
/// input and activations stay in L2).
const FUSED_TILE_VALUES: usize = 1 << 17;
/// Output pixels from which a stride-1 convolution's forward and dX skip im2col
/// ([`CpuBackend::conv_shifted`]; smaller maps are batched instead).
const SHIFTED_MIN_PIXELS: usize = 256;
/// Most images side by side in one block of a convolution over small maps (measured on
/// emoji32's discriminator at batch 32: 8 beats 2 and the whole batch).
const CONV_GROUP_MAX: usize = 8;
/// Output channels per conv forward task when there are few pixel blocks.
const CONV_CO_BLOCK: usize = 64;
/// Input channels per conv input-gradient task.
const CONV_CI_BLOCK: usize = 16;
/// Output channels per conv weight-gradient task.
const CONV_W_CO_BLOCK: usize = 64;
/// Output pixels (over the batch) per bin of the conv weight gradient.
const CONV_BIN_PIXELS: usize = 4096;

// ---------------------------------------------------------------------------------------------
// Buffers

/// An `f32` buffer of the CPU backend (behind a lock; its length never changes).
#[derive(Debug)]
pub struct CpuBuf {
    data: RwLock<Vec<f32>>,
    len: usize,
}

impl CpuBuf {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn shape_err(msg: impl Into<String>) -> GpuError {
    GpuError::Shape(msg.into())
}

/// A zero-filled vector of `n` values, or an out-of-memory error.
pub(crate) fn alloc_zeros<T: Clone + Default>(n: usize, label: &str) -> BResult<Vec<T>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| GpuError::OutOfMemory {
        context: format!("host buffer {label} of {n} values"),
    })?;
    v.resize(n, T::default());
    Ok(v)
}

/// Read access to an input (fails if the same call holds it as an output).
fn rd<'a>(name: &str, b: &'a CpuBuf) -> BResult<RwLockReadGuard<'a, Vec<f32>>> {
    match b.data.try_read() {
        Ok(g) => Ok(g),
        Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(TryLockError::WouldBlock) => Err(shape_err(format!(
            "{name}: this buffer is also an output of the same call"
        ))),
    }
}

/// Write access to an output (fails if the same call also passes it as another operand).
fn wr<'a>(name: &str, b: &'a CpuBuf) -> BResult<RwLockWriteGuard<'a, Vec<f32>>> {
    match b.data.try_write() {
        Ok(g) => Ok(g),
        Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
        Err(TryLockError::WouldBlock) => Err(shape_err(format!(
            "{name}: this output buffer is also another operand of the same call"
        ))),
    }
}

/// Read access to an optional input.
fn rd_opt<'a>(name: &str, b: Option<&'a CpuBuf>) -> BResult<Option<RwLockReadGuard<'a, Vec<f32>>>> {
    b.map(|b| rd(name, b)).transpose()
}

// ---------------------------------------------------------------------------------------------
// Size checks shared with the reference backend: the same checks, in the same order, as the GPU
// kernels' wrappers. Each returns `Ok(false)` when there is nothing to do.

/// Argument checks of every operation, on buffer lengths (shared by the host backends).
pub(in crate::backend) mod check {
    use super::*;

    /// Fails unless a buffer of `len` values holds at least `need`.
    pub fn need(name: &str, len: usize, need: usize) -> BResult<()> {
        if len < need {
            return Err(shape_err(format!(
                "{name}: buffer holds {len} values, the shape needs {need}"
            )));
        }
        Ok(())
    }

    fn extent(
        what: &str,
        s: crate::reference::linear::Strides,
        batch: usize,
        rows: usize,
        cols: usize,
    ) -> BResult<usize> {
        if batch == 0 || rows == 0 || cols == 0 {
            return Ok(0);
        }
        let e = (batch - 1)
            .checked_mul(s.sb)
            .and_then(|v| v.checked_add((rows - 1).checked_mul(s.si)?))
            .and_then(|v| v.checked_add((cols - 1).checked_mul(s.sj)?))
            .and_then(|v| v.checked_add(1));
        e.ok_or_else(|| shape_err(format!("gemm {what}: strides {s:?} overflow")))
    }

    /// [`Backend::gemm`]; `bias` is the bias buffer's length if one is passed.
    pub fn gemm(g: &Gemm, a: usize, b: usize, bias: Option<usize>, c: usize) -> BResult<bool> {
        if g.m == 0 || g.n == 0 || g.batch == 0 {
            return Ok(false);
        }
        need("gemm A", a, extent("A", g.a, g.batch, g.m, g.k)?)?;
        need("gemm B", b, extent("B", g.b, g.batch, g.k, g.n)?)?;
        need("gemm C", c, extent("C", g.c, g.batch, g.m, g.n)?)?;
        match (g.bias, bias) {
            (BiasMode::None, _) => {}
            (BiasMode::PerRow, Some(l)) => need("gemm bias", l, g.m)?,
            (BiasMode::PerCol, Some(l)) => need("gemm bias", l, g.n)?,
            _ => return Err(shape_err("gemm: bias mode set but no bias buffer")),
        }
        Ok(true)
    }

    fn fmm(s: &FmmShape) -> BResult<bool> {
        if s.batch == 0 || s.c_out == 0 || s.c_in == 0 {
            return Ok(false);
        }
        if s.rank == 0 {
            return Err(shape_err(format!("fmm: rank must be > 0 ({s:?})")));
        }
        Ok(true)
    }

    /// [`Backend::fmm_forward`].
    pub fn fmm_forward(
        s: &FmmShape,
        ws: usize,
        styles: usize,
        w_out: usize,
        norms: usize,
    ) -> BResult<bool> {
        if !fmm(s)? {
            return Ok(false);
        }
        need("fmm ws", ws, s.c_out * s.c_in)?;
        need("fmm styles", styles, s.batch * s.style_dim())?;
        need("fmm w_out", w_out, s.weight_len())?;
        need("fmm norms", norms, s.batch * s.c_out)?;
        Ok(true)
    }

    /// [`Backend::fmm_backward`].
    #[allow(clippy::too_many_arguments)]
    pub fn fmm_backward(
        s: &FmmShape,
        ws: usize,
        styles: usize,
        norms: usize,
        dw: usize,
        scratch: usize,
        dws: usize,
        dstyles: usize,
    ) -> BResult<bool> {
        if !fmm(s)? {
            return Ok(false);
        }
        need("fmm ws", ws, s.c_out * s.c_in)?;
        need("fmm styles", styles, s.batch * s.style_dim())?;
        need("fmm dw", dw, s.weight_len())?;
        need("fmm dws", dws, s.c_out * s.c_in)?;
        need("fmm dstyles", dstyles, s.batch * s.style_dim())?;
        if s.demod {
            need("fmm norms", norms, s.batch * s.c_out)?;
            need("fmm scratch", scratch, s.weight_len())?;
        }
        Ok(true)
    }

    /// [`Backend::style_modulate_forward`].
    pub fn modulate_forward(m: &ModulateShape, ws: usize, s: usize, w: usize) -> BResult<bool> {
        let n = m.batch * m.c_out * m.c_in;
        if n == 0 {
            return Ok(false);
        }
        need("style_modulate ws", ws, m.c_out * m.c_in)?;
        need("style_modulate s", s, m.batch * m.c_in)?;
        need("style_modulate w", w, n)?;
        Ok(true)
    }

    /// [`Backend::style_modulate_backward`].
    pub fn modulate_backward(
        m: &ModulateShape,
        ws: usize,
        s: usize,
        dw: usize,
        dws: usize,
        ds: usize,
    ) -> BResult<bool> {
        let n = m.batch * m.c_out * m.c_in;
        if n == 0 {
            return Ok(false);
        }
        need("style_modulate ws", ws, m.c_out * m.c_in)?;
        need("style_modulate s", s, m.batch * m.c_in)?;
        need("style_modulate dw", dw, n)?;
        need("style_modulate dws", dws, m.c_out * m.c_in)?;
        need("style_modulate ds", ds, m.batch * m.c_in)?;
        Ok(true)
    }

    /// [`Backend::coords_forward`].
    pub fn coords_forward(
        s: &CoordsShape,
        xs: usize,
        ys: usize,
        freqs: usize,
        emb: usize,
    ) -> BResult<bool> {
        if s.pixels() == 0 || s.n_freq == 0 {
            return Ok(false);
        }
        need("coords xs", xs, s.width)?;
        need("coords ys", ys, s.height)?;
        need("coords freqs", freqs, 2 * s.n_freq)?;
        need("coords emb", emb, s.channels() * s.pixels())?;
        Ok(true)
    }

    /// [`Backend::coords_backward`].
    pub fn coords_backward(
        s: &CoordsShape,
        xs: usize,
        ys: usize,
        freqs: usize,
        demb: usize,
        dfreqs: usize,
    ) -> BResult<bool> {
        if s.n_freq == 0 {
            return Ok(false);
        }
        need("coords xs", xs, s.width)?;
        need("coords ys", ys, s.height)?;
        need("coords freqs", freqs, 2 * s.n_freq)?;
        need("coords demb", demb, s.channels() * s.pixels())?;
        need("coords dfreqs", dfreqs, 2 * s.n_freq)?;
        Ok(true)
    }

    /// The shape part of both act operations.
    pub fn act(s: &ActShape) -> BResult<bool> {
        if s.is_empty() {
            return Ok(false);
        }
        if !(s.gain > 0.0 && s.alpha >= 0.0) {
            return Err(shape_err(format!(
                "act: needs gain > 0 and alpha >= 0 (the backward reads the slope from the output), got gain {} alpha {}",
                s.gain, s.alpha
            )));
        }
        Ok(true)
    }

    /// [`Backend::act_forward`].
    pub fn act_forward(s: &ActShape, x: usize, bias: Option<usize>, y: usize) -> BResult<bool> {
        if !act(s)? {
            return Ok(false);
        }
        need("act_forward x", x, s.len())?;
        need("act_forward y", y, s.len())?;
        if let Some(b) = bias {
            need("act_forward bias", b, s.channels)?;
        }
        Ok(true)
    }

    /// [`Backend::act_backward`].
    pub fn act_backward(s: &ActShape, y: usize, dy: usize, dx: usize) -> BResult<bool> {
        if !act(s)? {
            return Ok(false);
        }
        need("act_backward y", y, s.len())?;
        need("act_backward dy", dy, s.len())?;
        need("act_backward dx", dx, s.len())?;
        Ok(true)
    }

    /// [`Backend::upsample2x_forward`].
    pub fn upsample_forward(
        x: usize,
        y: usize,
        planes: usize,
        h: usize,
        w: usize,
    ) -> BResult<bool> {
        let n = planes * h * w * 4;
        if n == 0 {
            return Ok(false);
        }
        need("upsample2x_forward x", x, planes * h * w)?;
        need("upsample2x_forward y", y, n)?;
        Ok(true)
    }

    /// [`Backend::upsample2x_backward`].
    pub fn upsample_backward(
        dy: usize,
        dx: usize,
        planes: usize,
        h: usize,
        w: usize,
    ) -> BResult<bool> {
        let n = planes * h * w;
        if n == 0 {
            return Ok(false);
        }
        need("upsample2x_backward dy", dy, 4 * n)?;
        need("upsample2x_backward dx", dx, n)?;
        Ok(true)
    }

    /// [`Backend::gather`].
    #[allow(clippy::too_many_arguments)]
    pub fn gather(
        x: usize,
        planes: usize,
        h: usize,
        w: usize,
        rows: &[u32],
        cols: &[u32],
        y: usize,
    ) -> BResult<bool> {
        let n = planes * rows.len() * cols.len();
        if n == 0 {
            return Ok(false);
        }
        let row_max = rows.iter().copied().max().unwrap_or(0);
        let col_max = cols.iter().copied().max().unwrap_or(0);
        if row_max as usize >= h || col_max as usize >= w {
            return Err(shape_err(format!(
                "gather: tables reach row {row_max} and column {col_max} but the input is {h}x{w}"
            )));
        }
        need("gather x", x, planes * h * w)?;
        need("gather y", y, n)?;
        Ok(true)
    }

    /// [`Backend::gather_bilinear`] and its backward (`x` is the `[planes, h, w]` side, `y`
    /// the sampled side).
    #[allow(clippy::too_many_arguments)]
    pub fn gather_bilinear(
        what: &str,
        x: usize,
        planes: usize,
        h: usize,
        w: usize,
        rows: &Taps,
        cols: &Taps,
        y: usize,
    ) -> BResult<bool> {
        let n = planes * rows.len() * cols.len();
        rows.check(h, "rows").map_err(shape_err)?;
        cols.check(w, "columns").map_err(shape_err)?;
        if n == 0 || planes * h * w == 0 {
            return Ok(false);
        }
        need(&format!("{what} x"), x, planes * h * w)?;
        need(&format!("{what} y"), y, n)?;
        Ok(true)
    }

    /// The augment ops: the shape's buffers and finite parameters (`params` reads them as
    /// `f32`; shared by the host backends); None when there is nothing to do.
    pub fn augment(
        s: &AugShape,
        what: &str,
        x: usize,
        y: usize,
        params: impl FnOnce() -> BResult<Vec<f32>>,
    ) -> BResult<Option<Vec<f32>>> {
        if s.is_empty() {
            return Ok(None);
        }
        if s.channels == 0 {
            return Err(shape_err(format!("{what}: no channels")));
        }
        need(&format!("{what} x"), x, s.len())?;
        need(&format!("{what} y"), y, s.len())?;
        let pv = params()?;
        s.check(&pv).map_err(shape_err)?;
        Ok(Some(pv))
    }

    /// [`Backend::concat_channels`].
    pub fn concat(s: &ConcatShape, x1: usize, x2: usize, y: usize) -> BResult<bool> {
        let n = s.batch * s.channels() * s.pixels;
        if n == 0 {
            return Ok(false);
        }
        need("concat_channels x1", x1, s.batch * s.c1 * s.pixels)?;
        let b2 = if s.broadcast { 1 } else { s.batch };
        need("concat_channels x2", x2, b2 * s.c2 * s.pixels)?;
        need("concat_channels y", y, n)?;
        Ok(true)
    }

    /// [`Backend::slice_channels`].
    pub fn slice(s: &SliceShape, x: usize, y: usize) -> BResult<bool> {
        let n = s.batch * s.len * s.pixels;
        if n == 0 {
            return Ok(false);
        }
        if s.c0 + s.len > s.channels {
            return Err(shape_err(format!(
                "slice_channels: channels {}..{} of {}",
                s.c0,
                s.c0 + s.len,
                s.channels
            )));
        }
        need("slice_channels x", x, s.batch * s.channels * s.pixels)?;
        need("slice_channels y", y, n)?;
        Ok(true)
    }

    /// The shape part of the conv operations.
    pub fn conv(s: &ConvShape) -> BResult<bool> {
        if let Some(why) = s.problem() {
            return Err(shape_err(why));
        }
        if s.c_in == 0 || s.c_out == 0 {
            return Ok(false);
        }
        if s.out_height() == 0 || s.out_width() == 0 {
            return Err(shape_err(format!("conv: empty output for {s:?}")));
        }
        Ok(true)
    }

    /// [`Backend::conv2d_forward`].
    pub fn conv_forward(
        s: &ConvShape,
        x: usize,
        w: usize,
        b: Option<usize>,
        y: usize,
    ) -> BResult<bool> {
        if !conv(s)? {
            return Ok(false);
        }
        need("conv2d_forward x", x, s.x_len())?;
        need("conv2d_forward w", w, s.w_len())?;
        need("conv2d_forward y", y, s.y_len())?;
        if let Some(b) = b {
            need("conv2d_forward b", b, s.c_out)?;
        }
        Ok(true)
    }

    /// [`Backend::conv2d_backward_input`].
    pub fn conv_backward_input(s: &ConvShape, dy: usize, w: usize, dx: usize) -> BResult<bool> {
        if !conv(s)? {
            return Ok(false);
        }
        need("conv2d_backward_input dy", dy, s.y_len())?;
        need("conv2d_backward_input w", w, s.w_len())?;
        need("conv2d_backward_input dx", dx, s.x_len())?;
        Ok(true)
    }

    /// [`Backend::conv2d_backward_weight`].
    pub fn conv_backward_weight(s: &ConvShape, dy: usize, x: usize, dw: usize) -> BResult<bool> {
        if !conv(s)? {
            return Ok(false);
        }
        need("conv2d_backward_weight dy", dy, s.y_len())?;
        need("conv2d_backward_weight x", x, s.x_len())?;
        need("conv2d_backward_weight dw", dw, s.w_len())?;
        Ok(true)
    }

    /// The shape part of the blur operations.
    pub fn blur(planes: usize, h: usize, w: usize) -> BResult<bool> {
        if planes == 0 {
            return Ok(false);
        }
        if blur_down2x_out(h) == 0 || blur_down2x_out(w) == 0 {
            return Err(shape_err(format!(
                "blur_down2x: a {h}x{w} input is too small (each side must be at least 2)"
            )));
        }
        Ok(true)
    }

    /// [`Backend::blur_down2x_forward`].
    pub fn blur_forward(x: usize, y: usize, planes: usize, h: usize, w: usize) -> BResult<bool> {
        if !blur(planes, h, w)? {
            return Ok(false);
        }
        need("blur_down2x_forward x", x, planes * h * w)?;
        need(
            "blur_down2x_forward y",
            y,
            planes * blur_down2x_out(h) * blur_down2x_out(w),
        )?;
        Ok(true)
    }

    /// [`Backend::blur_down2x_backward`].
    pub fn blur_backward(dy: usize, dx: usize, planes: usize, h: usize, w: usize) -> BResult<bool> {
        if !blur(planes, h, w)? {
            return Ok(false);
        }
        need(
            "blur_down2x_backward dy",
            dy,
            planes * blur_down2x_out(h) * blur_down2x_out(w),
        )?;
        need("blur_down2x_backward dx", dx, planes * h * w)?;
        Ok(true)
    }

    /// The shape part of the mbstd operations.
    pub fn mbstd(s: &MbstdShape) -> BResult<bool> {
        if s.batch == 0 {
            return Ok(false);
        }
        if let Some(why) = s.problem() {
            return Err(shape_err(why));
        }
        Ok(true)
    }

    /// [`Backend::mbstd_forward`].
    pub fn mbstd_forward(s: &MbstdShape, x: usize, stat: usize, y: usize) -> BResult<bool> {
        if !mbstd(s)? {
            return Ok(false);
        }
        need("mbstd_forward x", x, s.x_len())?;
        need("mbstd_forward stat_scratch", stat, s.stat_len())?;
        need("mbstd_forward y", y, s.y_len())?;
        Ok(true)
    }

    /// [`Backend::mbstd_backward`].
    pub fn mbstd_backward(
        s: &MbstdShape,
        x: usize,
        dy: usize,
        dstat: usize,
        dx: usize,
    ) -> BResult<bool> {
        if !mbstd(s)? {
            return Ok(false);
        }
        need("mbstd_backward x", x, s.x_len())?;
        need("mbstd_backward dy", dy, s.y_len())?;
        need("mbstd_backward dstat_scratch", dstat, s.stat_len())?;
        need("mbstd_backward dx", dx, s.x_len())?;
        Ok(true)
    }

    /// [`Backend::sum_axes`].
    pub fn sum_axes(x: usize, y: usize, outer: usize, mid: usize, inner: usize) -> BResult<bool> {
        if mid == 0 {
            return Ok(false);
        }
        need("sum_axes x", x, outer * mid * inner)?;
        need("sum_axes y", y, mid)?;
        Ok(true)
    }

    /// [`Backend::row_norm`].
    pub fn row_norm(x: usize, y: usize, rows: usize, cols: usize) -> BResult<bool> {
        if rows == 0 {
            return Ok(false);
        }
        need("row_norm x", x, rows * cols)?;
        need("row_norm y", y, rows)?;
        Ok(true)
    }

    /// The elementwise operations on `n` values of `x` and `y`.
    pub fn elementwise(name: &str, x: usize, y: usize, n: usize) -> BResult<bool> {
        need(name, x, n)?;
        need(name, y, n)?;
        Ok(n > 0)
    }

    /// [`Backend::adam_step`].
    pub fn adam(t: u64, p: usize, g: usize, m: usize, v: usize, n: usize) -> BResult<bool> {
        if t == 0 {
            return Err(shape_err("adam_step: the step count t starts at 1"));
        }
        if n == 0 {
            return Ok(false);
        }
        need("adam_step param", p, n)?;
        need("adam_step grad", g, n)?;
        need("adam_step m", m, n)?;
        need("adam_step v", v, n)?;
        Ok(true)
    }

    /// [`Backend::ema_update`].
    pub fn ema(p: usize, e: usize, n: usize) -> BResult<bool> {
        if n == 0 {
            return Ok(false);
        }
        need("ema_update param", p, n)?;
        need("ema_update ema", e, n)?;
        Ok(true)
    }

    /// [`Backend::to_rgba8`].
    pub fn to_rgba8(x: usize, batch: usize, pixels: usize) -> BResult<bool> {
        let n = batch * pixels;
        if n == 0 {
            return Ok(false);
        }
        need("to_rgba8 x", x, 3 * n)?;
        Ok(true)
    }

    /// [`Backend::write`].
    pub fn write(len: usize, data: usize) -> BResult<()> {
        if data > len {
            return Err(shape_err(format!(
                "writing {data} values into a buffer of {len}"
            )));
        }
        Ok(())
    }

    /// [`Backend::fused_level_forward`] (the checks of `kernels::fused::level_forward`, without
    /// the GPU's width and loop limits); `len` gives a buffer's length.
    #[allow(clippy::too_many_arguments)]
    pub fn fused<T>(
        s: &FusedShape,
        input: &FusedInput<'_, T>,
        len: impl Fn(&T) -> usize,
        w: &T,
        bias: &T,
        rgbw: &T,
        rgbb: &T,
        img: &T,
        out: Option<&T>,
    ) -> BResult<bool> {
        if s.layers.is_empty() || s.c_in == 0 || s.layers.iter().any(|l| l.0 == 0) {
            return Err(shape_err(format!(
                "fused block: no layers or an empty one: {} -> {:?}",
                s.c_in, s.layers
            )));
        }
        if s.batch == 0 || s.pixels == 0 {
            return Ok(false);
        }
        s.check_buffers(input, len, w, bias, rgbw, rgbb, img, out)
            .map_err(shape_err)?;
        Ok(true)
    }
}

// ---------------------------------------------------------------------------------------------
// Small numeric helpers

/// Sum in 8 interleaved lanes combined by a fixed tree: deterministic, vectorisable and more
/// accurate than a running sum.
fn sum8(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let mut it = v.chunks_exact(8);
    for c in &mut it {
        for j in 0..8 {
            acc[j] += c[j];
        }
    }
    for (j, &x) in it.remainder().iter().enumerate() {
        acc[j] += x;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `sum_i a[i] b[i]` in 8 interleaved lanes (see [`sum8`]).
fn dot8(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (mut ia, mut ib) = (a.chunks_exact(8), b.chunks_exact(8));
    for (ca, cb) in (&mut ia).zip(&mut ib) {
        for j in 0..8 {
            acc[j] += ca[j] * cb[j];
        }
    }
    for (j, (&x, &y)) in ia.remainder().iter().zip(ib.remainder()).enumerate() {
        acc[j] += x * y;
    }
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]))
}

/// `‖v‖₂` computed as `max |v| * sqrt(sum (v / max)^2)` (the FMM kernel's overflow-safe form).
fn scaled_norm(v: &[f32]) -> f32 {
    let mx = v.iter().fold(0f32, |m, &x| m.max(x.abs()));
    if mx > 0.0 {
        let inv = 1.0 / mx;
        let mut acc = [0f32; 8];
        for (j, &x) in v.iter().enumerate() {
            let s = x * inv;
            acc[j % 8] += s * s;
        }
        let ss = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
        mx * ss.sqrt()
    } else {
        0.0
    }
}

/// A pointer into an output shared by the tasks of one operation, each task writing only its
/// own elements.
#[derive(Clone, Copy)]
struct Ptr(*mut f32);
// SAFETY: tasks write disjoint elements (see each use) and the buffer outlives them.
unsafe impl Send for Ptr {}
unsafe impl Sync for Ptr {}

impl Ptr {
    /// The pointer advanced by `off` values.
    ///
    /// # Safety
    /// `off` must stay inside the allocation.
    unsafe fn at(self, off: usize) -> *mut f32 {
        unsafe { self.0.add(off) }
    }
}

/// A stride as matrixmultiply takes it (0 along an axis of one element, whose stride is unused).
fn st(stride: usize, dim: usize) -> isize {
    if dim <= 1 { 0 } else { stride as isize }
}

/// `C (m x n) = alpha A (m x k) B (k x n) + beta C`, element strides `(rs, cs)` per operand.
///
/// # Safety
/// Every element addressed must lie inside its allocation, C's elements must not alias each
/// other or A and B, and no other thread may touch C's elements meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn sgemm(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    rsa: isize,
    csa: isize,
    b: *const f32,
    rsb: isize,
    csb: isize,
    beta: f32,
    c: *mut f32,
    rsc: isize,
    csc: isize,
) {
    if m == 0 || n == 0 {
        return;
    }
    let (rsa, csa) = (if m <= 1 { 0 } else { rsa }, if k <= 1 { 0 } else { csa });
    let (rsb, csb) = (if k <= 1 { 0 } else { rsb }, if n <= 1 { 0 } else { csb });
    let (rsc, csc) = (if m <= 1 { 0 } else { rsc }, if n <= 1 { 0 } else { csc });
    unsafe { matrixmultiply::sgemm(m, k, n, alpha, a, rsa, csa, b, rsb, csb, beta, c, rsc, csc) }
}

/// Whether `(i, j) -> i * si + j * sj` is one-to-one on `m x n` (a sufficient test).
fn injective(m: usize, n: usize, si: usize, sj: usize) -> bool {
    match (m, n) {
        (1, 1) => true,
        (1, _) => sj > 0,
        (_, 1) => si > 0,
        _ => {
            (sj > 0 && n.checked_mul(sj).is_some_and(|v| si >= v))
                || (si > 0 && m.checked_mul(si).is_some_and(|v| sj >= v))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The backend

/// The multithreaded `f32` CPU backend (see the module doc).
pub struct CpuBackend {
    pool: rayon::ThreadPool,
    threads: usize,
    /// Renders run each scale block fused (tiles of pixels through all its layers).
    fused: bool,
}

impl CpuBackend {
    /// A backend with one worker per available hardware thread.
    pub fn new() -> BResult<Self> {
        let n = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        Self::with_threads(n)
    }

    /// A backend with `threads` workers (at least 1); results do not depend on the count.
    pub fn with_threads(threads: usize) -> BResult<Self> {
        let threads = threads.max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("inrgan-cpu-{i}"))
            .build()
            .map_err(|e| GpuError::Internal {
                context: "cpu backend thread pool".into(),
                message: e.to_string(),
            })?;
        Ok(Self {
            pool,
            threads,
            fused: std::env::var("INRGAN_FUSED").map_or(true, |v| v != "0"),
        })
    }

    /// Turns the fused block forward of renders on or off (on unless `INRGAN_FUSED=0`).
    pub fn set_fused(&mut self, on: bool) {
        self.fused = on;
    }

    /// Number of worker threads.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Runs `f(task)` for every task: on the calling thread when `work` is small or there is one
    /// task, else in parallel on the pool; `init` makes each worker's scratch state.
    fn tasks<T, S>(
        &self,
        tasks: Vec<T>,
        work: usize,
        init: impl Fn() -> S + Sync + Send,
        f: impl Fn(&mut S, T) + Sync + Send,
    ) where
        T: Send,
    {
        if work < PAR_WORK || tasks.len() <= 1 || self.threads == 1 {
            let mut s = init();
            for t in tasks {
                f(&mut s, t);
            }
        } else {
            self.pool.install(|| {
                tasks
                    .into_par_iter()
                    .with_max_len(1)
                    .for_each_init(&init, |s, t| f(s, t))
            });
        }
    }

    /// Runs `f(index, row)` over the rows of `row` values of `out` (`work` in total).
    fn rows<T: Send>(
        &self,
        out: &mut [T],
        row: usize,
        work: usize,
        f: impl Fn(usize, &mut [T]) + Sync + Send,
    ) {
        if row == 0 {
            return;
        }
        if work < PAR_WORK || out.len() <= row || self.threads == 1 {
            out.chunks_mut(row).enumerate().for_each(|(i, r)| f(i, r));
        } else {
            self.pool.install(|| {
                out.par_chunks_mut(row)
                    .enumerate()
                    .for_each(|(i, r)| f(i, r))
            });
        }
    }

    /// Runs `f(start, chunk)` over fixed chunks of `out` (an elementwise operation).
    fn chunks<T: Send>(&self, out: &mut [T], f: impl Fn(usize, &mut [T]) + Sync + Send) {
        if out.len() < PAR_WORK || self.threads == 1 {
            f(0, out);
        } else {
            self.pool.install(|| {
                out.par_chunks_mut(CHUNK)
                    .enumerate()
                    .for_each(|(i, c)| f(i * CHUNK, c))
            });
        }
    }

    // ---- gemm ----

    /// [`Gemm`] on checked operands (`bias` only when the mode uses one).
    fn gemm_f32(
        &self,
        g: &Gemm,
        a: &[f32],
        b: &[f32],
        bias: Option<&[f32]>,
        c: &mut [f32],
    ) -> BResult<()> {
        let (m, n, k, batch) = (g.m, g.n, g.k, g.batch);
        if !injective(m, n, g.c.si, g.c.sj) {
            // C's elements alias: the plain loop gives the sequential meaning.
            r::linear::gemm(g, a, b, bias, c);
            return Ok(());
        }
        let single = (m - 1) * g.c.si + (n - 1) * g.c.sj + 1;
        let disjoint = batch == 1 || g.c.sb >= single;
        let (mt, nt) = (m.div_ceil(GEMM_MB), n.div_ceil(GEMM_NB));
        let tiles = mt * nt;
        let work = batch * m * n * k.max(1);
        if batch * tiles < KSPLIT_MAX_TILES && k >= 2 * KSPLIT_BIN {
            let cap = (PARTIAL_CAP / (batch * m * n)).max(1);
            let bins = k.div_ceil(KSPLIT_BIN).min(cap).min(64);
            if bins >= 2 {
                return self.gemm_ksplit(g, a, b, bias, c, bins, disjoint);
            }
        }
        let beta = if g.accumulate { 1.0 } else { 0.0 };
        let cp = Ptr(c.as_mut_ptr());
        let (ap, bp) = (a, b);
        let tile = |_: &mut (), t: usize| {
            let bt = t / tiles;
            let (mi, ni) = ((t % tiles) / nt, (t % tiles) % nt);
            let (m0, n0) = (mi * GEMM_MB, ni * GEMM_NB);
            let (mc, nc) = (GEMM_MB.min(m - m0), GEMM_NB.min(n - n0));
            let co = bt * g.c.sb + m0 * g.c.si + n0 * g.c.sj;
            // SAFETY: the checks bound every element by the operands' lengths; tiles of one
            // product write disjoint elements of C (injective), and products of different batch
            // entries run concurrently only when their C ranges are disjoint.
            unsafe {
                sgemm(
                    mc,
                    k,
                    nc,
                    g.alpha,
                    ap.as_ptr().add(bt * g.a.sb + m0 * g.a.si),
                    st(g.a.si, m),
                    st(g.a.sj, k),
                    bp.as_ptr().add(bt * g.b.sb + n0 * g.b.sj),
                    st(g.b.si, k),
                    st(g.b.sj, n),
                    beta,
                    cp.at(co),
                    st(g.c.si, m),
                    st(g.c.sj, n),
                );
                if let Some(bias) = bias {
                    let bg = g.bias_gain;
                    for i in 0..mc {
                        let row = co + i * g.c.si;
                        if g.c.sj == 1 || nc == 1 {
                            // A contiguous row of the tile: no other task touches it.
                            let row = std::slice::from_raw_parts_mut(cp.at(row), nc);
                            match g.bias {
                                BiasMode::PerRow => {
                                    let bv = bg * bias[m0 + i];
                                    row.iter_mut().for_each(|v| *v += bv);
                                }
                                _ => {
                                    for (v, &bv) in row.iter_mut().zip(&bias[n0..n0 + nc]) {
                                        *v += bg * bv;
                                    }
                                }
                            }
                        } else {
                            for j in 0..nc {
                                let bv = match g.bias {
                                    BiasMode::PerRow => bias[m0 + i],
                                    _ => bias[n0 + j],
                                };
                                *cp.at(row + j * g.c.sj) += bg * bv;
                            }
                        }
                    }
                }
            }
        };
        if disjoint {
            self.tasks((0..batch * tiles).collect(), work, || (), tile);
        } else {
            for bt in 0..batch {
                self.tasks(
                    (bt * tiles..(bt + 1) * tiles).collect(),
                    work / batch,
                    || (),
                    tile,
                );
            }
        }
        Ok(())
    }

    /// [`Gemm`] with K cut into `bins` fixed bins: partial products in parallel, then summed in
    /// bin order (plus bias and the old C).
    #[allow(clippy::too_many_arguments)]
    fn gemm_ksplit(
        &self,
        g: &Gemm,
        a: &[f32],
        b: &[f32],
        bias: Option<&[f32]>,
        c: &mut [f32],
        bins: usize,
        disjoint: bool,
    ) -> BResult<()> {
        let (m, n, k, batch) = (g.m, g.n, g.k, g.batch);
        let kb = k.div_ceil(bins);
        let bins = k.div_ceil(kb);
        let mn = m * n;
        let mut part = alloc_zeros::<f32>(batch * bins * mn, "gemm partial sums")?;
        let tasks: Vec<(usize, &mut [f32])> = part.chunks_mut(mn).enumerate().collect();
        self.tasks(
            tasks,
            batch * mn * k,
            || (),
            |_, (t, p)| {
                let (bt, bin) = (t / bins, t % bins);
                let k0 = bin * kb;
                let kc = kb.min(k - k0);
                // SAFETY: A and B offsets stay within the checked extents; `p` is this task's own
                // contiguous m x n block.
                unsafe {
                    sgemm(
                        m,
                        kc,
                        n,
                        g.alpha,
                        a.as_ptr().add(bt * g.a.sb + k0 * g.a.sj),
                        st(g.a.si, m),
                        st(g.a.sj, k),
                        b.as_ptr().add(bt * g.b.sb + k0 * g.b.si),
                        st(g.b.si, k),
                        st(g.b.sj, n),
                        0.0,
                        p.as_mut_ptr(),
                        n as isize,
                        1,
                    )
                }
            },
        );
        let part = &part;
        let cp = Ptr(c.as_mut_ptr());
        let reduce = |_: &mut (), t: usize| {
            let (bt, i) = (t / m, t % m);
            for j in 0..n {
                let mut v = 0f32;
                for bin in 0..bins {
                    v += part[((bt * bins + bin) * m + i) * n + j];
                }
                match (g.bias, bias) {
                    (BiasMode::PerRow, Some(bb)) => v += g.bias_gain * bb[i],
                    (BiasMode::PerCol, Some(bb)) => v += g.bias_gain * bb[j],
                    _ => {}
                }
                let ci = bt * g.c.sb + i * g.c.si + j * g.c.sj;
                // SAFETY: `ci` is within C's checked extent; rows of one product are disjoint
                // (injective) and different batch entries run together only when disjoint.
                unsafe {
                    let p = cp.at(ci);
                    if g.accumulate {
                        v += *p;
                    }
                    *p = v;
                }
            }
        };
        if disjoint {
            self.tasks((0..batch * m).collect(), batch * mn * bins, || (), reduce);
        } else {
            for bt in 0..batch {
                self.tasks((bt * m..(bt + 1) * m).collect(), mn * bins, || (), reduce);
            }
        }
        Ok(())
    }

    // ---- conv ----

    /// Output pixels per im2col block for `rows` rows of columns (a multiple of 16 in 16..=1024).
    fn pixel_block(rows: usize) -> usize {
        ((COL_BUDGET / rows.max(1)).clamp(16, 1024) / 16) * 16
    }

    /// Images per block of a convolution whose output maps have `hw_out` pixels, for blocks
    /// of `pb` pixels: maps smaller than a block are batched side by side, so that small maps
    /// (4x4 at the end of the discriminator) still make wide products (1 for larger maps).
    fn image_group(pb: usize, hw_out: usize) -> usize {
        (pb / hw_out.max(1)).clamp(1, CONV_GROUP_MAX)
    }

    fn conv_forward_f32(
        &self,
        s: &ConvShape,
        x: &[f32],
        w: &[f32],
        b: Option<&[f32]>,
        y: &mut [f32],
    ) {
        let (h, wd, k) = (s.height, s.width, s.k);
        let hw_out = s.out_height() * s.out_width();
        let ckk = s.c_in * k * k;
        if k > 1 && s.stride == 1 && hw_out >= SHIFTED_MIN_PIXELS {
            let yp = Ptr(y.as_mut_ptr());
            self.conv_shifted(s, x, w, false, |n, co, r, row| {
                let bv = b.map_or(0.0, |b| s.b_gain * b[co]);
                // SAFETY: within Y; each task writes its own (image, channel block).
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(
                        yp.at((n * s.c_out + co) * hw_out + r * s.width),
                        s.width,
                    )
                };
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = v + bv;
                }
            });
            return;
        }
        let direct = k == 1 && s.stride == 1;
        let pb = Self::pixel_block(ckk);
        let g = Self::image_group(pb, hw_out);
        // Tasks: (group of g images or one image, pixel block, output-channel block).
        let (groups, pblocks) = if g > 1 {
            (s.batch.div_ceil(g), 1)
        } else {
            (s.batch, hw_out.div_ceil(pb))
        };
        let cob = if groups * pblocks < 2 * self.threads {
            CONV_CO_BLOCK.min(s.c_out)
        } else {
            s.c_out
        };
        let coblocks = s.c_out.div_ceil(cob);
        let yp = Ptr(y.as_mut_ptr());
        let work = s.batch * hw_out * s.c_out * ckk;
        let tasks = (0..groups * pblocks * coblocks).collect();
        /// Output channels co0.. (`nco` rows of np, `ldc` apart at `c`) = w_gain W taps, for
        /// the taps' ckk rows of np values `ldb` apart at `taps`.
        ///
        /// # Safety
        /// `taps` must hold ckk rows of np values `ldb` apart, and `c` nco rows of np values
        /// `ldc` apart that no other task writes.
        #[allow(clippy::too_many_arguments)]
        unsafe fn outputs(
            s: &ConvShape,
            w: &[f32],
            co0: usize,
            nco: usize,
            taps: *const f32,
            ldb: usize,
            np: usize,
            c: *mut f32,
            ldc: usize,
        ) {
            let ckk = s.c_in * s.k * s.k;
            unsafe {
                sgemm(
                    nco,
                    ckk,
                    np,
                    s.w_gain,
                    w[co0 * ckk..].as_ptr(),
                    ckk as isize,
                    1,
                    taps,
                    ldb as isize,
                    1,
                    0.0,
                    c,
                    ldc as isize,
                    1,
                )
            }
        }
        let workspace = || (Vec::new(), Vec::new());
        self.tasks(
            tasks,
            work,
            workspace,
            |(cols, prod): &mut (Vec<f32>, Vec<f32>), t| {
                let (gi, rest) = (t / (pblocks * coblocks), t % (pblocks * coblocks));
                let (p0, co0) = ((rest / coblocks) * pb, (rest % coblocks) * cob);
                let nco = cob.min(s.c_out - co0);
                let bias = |co: usize| b.map_or(0.0, |b| s.b_gain * b[co0 + co]);
                if g > 1 {
                    // Images n0.. side by side: one product, then each image's rows scattered.
                    let n0 = gi * g;
                    let ni = g.min(s.batch - n0);
                    let np = ni * hw_out;
                    let cols = scratch(cols, ckk * np);
                    for i in 0..ni {
                        let xn = &x[(n0 + i) * s.c_in * h * wd..(n0 + i + 1) * s.c_in * h * wd];
                        im2col_at(s, xn, 0, hw_out, &mut cols[i * hw_out..], np);
                    }
                    let prod = scratch(prod, nco * np);
                    // SAFETY: cols holds ckk rows of np; `prod` is this worker's own.
                    unsafe {
                        outputs(s, w, co0, nco, cols.as_ptr(), np, np, prod.as_mut_ptr(), np)
                    };
                    for i in 0..ni {
                        for co in 0..nco {
                            let src = &prod[co * np + i * hw_out..co * np + (i + 1) * hw_out];
                            let bv = bias(co);
                            // SAFETY: within Y; each task writes its own (images, channel block).
                            let dst = unsafe {
                                std::slice::from_raw_parts_mut(
                                    yp.at(((n0 + i) * s.c_out + co0 + co) * hw_out),
                                    hw_out,
                                )
                            };
                            for (d, &v) in dst.iter_mut().zip(src) {
                                *d = v + bv;
                            }
                        }
                    }
                    return;
                }
                let n = gi;
                let np = pb.min(hw_out - p0);
                let xn = &x[n * s.c_in * h * wd..(n + 1) * s.c_in * h * wd];
                let (bptr, rsb) = if direct {
                    (xn[p0..].as_ptr(), (h * wd) as isize)
                } else {
                    im2col(s, xn, p0, np, cols);
                    (cols.as_ptr(), np as isize)
                };
                let yo = (n * s.c_out + co0) * hw_out + p0;
                // SAFETY: W, X/cols and Y offsets are within their checked lengths; each task
                // writes its own (image, channel block, pixel block) of Y.
                unsafe {
                    outputs(s, w, co0, nco, bptr, rsb as usize, np, yp.at(yo), hw_out);
                    if b.is_some() {
                        for co in 0..nco {
                            let bv = bias(co);
                            let row = std::slice::from_raw_parts_mut(yp.at(yo + co * hw_out), np);
                            row.iter_mut().for_each(|v| *v += bv);
                        }
                    }
                }
            },
        );
    }

    /// A stride-1 convolution without im2col: each image of `src` (`c_src` planes) is copied
    /// once with its zero border (`xp`, rows `wp = width + k - 1` long), and each of the k*k
    /// taps is one product of the tap's weights with `xp` shifted by the tap, summed into
    /// `c_dst` outputs of padded rows; `finish(image, channel, row, its values)`
    /// stores each output row (its first `width` values; the rest of a padded row is
    /// discarded). The products read the image where it lies instead of an im2col copy k*k
    /// times its size. The forward uses W as stored; dX (the transposed convolution) the same
    /// weights transposed and the taps mirrored.
    #[allow(clippy::too_many_arguments)]
    fn conv_shifted(
        &self,
        s: &ConvShape,
        src: &[f32],
        w: &[f32],
        transposed: bool,
        finish: impl Fn(usize, usize, usize, &[f32]) + Sync + Send,
    ) {
        let (h, wd, k, pad) = (s.height, s.width, s.k, s.pad());
        let (hp, wp) = (h + 2 * pad, wd + 2 * pad);
        let (hw, kk) = (h * wd, k * k);
        let (c_src, c_dst) = if transposed {
            (s.c_out, s.c_in)
        } else {
            (s.c_in, s.c_out)
        };
        // Output positions in padded rows: the last row needs only its `wd` values (so the
        // shifted reads stay inside `xp`).
        let npp = (h - 1) * wp + wd;
        let cb = if s.batch < 2 * self.threads {
            CONV_CO_BLOCK.min(c_dst)
        } else {
            c_dst
        };
        let blocks = c_dst.div_ceil(cb);
        let work = s.batch * hw * s.c_out * s.c_in * kk;
        let tasks = (0..s.batch * blocks).collect();
        let workspace = || (Vec::new(), Vec::new());
        self.tasks(
            tasks,
            work,
            workspace,
            |(xp, acc): &mut (Vec<f32>, Vec<f32>), t| {
                let (n, c0) = (t / blocks, (t % blocks) * cb);
                let nc = cb.min(c_dst - c0);
                let xp = scratch(xp, c_src * hp * wp);
                xp.fill(0.0);
                let xn = &src[n * c_src * hw..(n + 1) * c_src * hw];
                for (plane, sp) in xp.chunks_exact_mut(hp * wp).zip(xn.chunks_exact(hw)) {
                    for (r, row) in sp.chunks_exact(wd).enumerate() {
                        plane[(r + pad) * wp + pad..][..wd].copy_from_slice(row);
                    }
                }
                let acc = scratch(acc, nc * npp);
                for ky in 0..k {
                    for kx in 0..k {
                        // Forward: A(co, ci) = W[co, ci, ky, kx], read at the tap's shift. dX:
                        // A(ci, co) = W[co, ci, ky, kx], read at the mirrored shift.
                        let (a0, rsa, csa, shift) = if transposed {
                            let shift = (k - 1 - ky) * wp + (k - 1 - kx);
                            (c0 * kk + ky * k + kx, kk, s.c_in * kk, shift)
                        } else {
                            (
                                c0 * s.c_in * kk + ky * k + kx,
                                s.c_in * kk,
                                kk,
                                ky * wp + kx,
                            )
                        };
                        // SAFETY: the tap's weights and `xp` from the shift (npp values a row,
                        // rows hp * wp apart) lie within their lengths; `acc` is this worker's own.
                        unsafe {
                            sgemm(
                                nc,
                                c_src,
                                npp,
                                s.w_gain,
                                w[a0..].as_ptr(),
                                rsa as isize,
                                csa as isize,
                                xp[shift..].as_ptr(),
                                (hp * wp) as isize,
                                1,
                                if ky + kx == 0 { 0.0 } else { 1.0 },
                                acc.as_mut_ptr(),
                                npp as isize,
                                1,
                            )
                        };
                    }
                }
                for c in 0..nc {
                    for r in 0..h {
                        finish(n, c0 + c, r, &acc[c * npp + r * wp..][..wd]);
                    }
                }
            },
        );
    }

    fn conv_backward_input_f32(
        &self,
        s: &ConvShape,
        dy: &[f32],
        w: &[f32],
        dx: &mut [f32],
        acc: bool,
    ) {
        let (h, wd, k) = (s.height, s.width, s.k);
        let (hw, hw_out) = (h * wd, s.out_height() * s.out_width());
        let (kk, ckk) = (k * k, s.c_in * k * k);
        if k > 1 && s.stride == 1 && hw_out >= SHIFTED_MIN_PIXELS {
            let dxp = Ptr(dx.as_mut_ptr());
            self.conv_shifted(s, dy, w, true, |n, ci, r, row| {
                // SAFETY: within dX; each task writes its own (image, channel block).
                let dst = unsafe {
                    std::slice::from_raw_parts_mut(dxp.at((n * s.c_in + ci) * hw + r * wd), wd)
                };
                for (d, &v) in dst.iter_mut().zip(row) {
                    *d = if acc { *d + v } else { v };
                }
            });
            return;
        }
        let direct = k == 1 && s.stride == 1;
        let cib = CONV_CI_BLOCK.min(s.c_in);
        let g = Self::image_group(Self::pixel_block(cib * kk), hw_out);
        let work = s.batch * hw_out * s.c_out * ckk;
        let dx = &mut dx[..s.x_len()];
        // Tasks: (first image, first input channel, that block's planes in each of the task's
        // images): one image each, or g images side by side for small maps.
        let n_cb = s.c_in.div_ceil(cib);
        let mut tasks: Vec<(usize, usize, Vec<&mut [f32]>)> = (0..s.batch.div_ceil(g) * n_cb)
            .map(|t| ((t / n_cb) * g, (t % n_cb) * cib, Vec::new()))
            .collect();
        if hw > 0 {
            for (n, img) in dx.chunks_mut(s.c_in * hw).enumerate() {
                for (cb, sl) in img.chunks_mut(cib * hw).enumerate() {
                    tasks[(n / g) * n_cb + cb].2.push(sl);
                }
            }
        }
        /// dcols (the taps of input channels ci0.., `rows` rows of np) = w_gain W^T dY, for
        /// dY's c_out rows of np values `ld` apart starting at `dy`.
        ///
        /// # Safety
        /// `dy` must hold c_out rows of np values `ld` apart, and `dcols` rows * np values.
        #[allow(clippy::too_many_arguments)]
        unsafe fn columns(
            s: &ConvShape,
            w: &[f32],
            ci0: usize,
            rows: usize,
            dy: *const f32,
            ld: usize,
            np: usize,
            dcols: &mut [f32],
        ) {
            let ckk = s.c_in * s.k * s.k;
            unsafe {
                sgemm(
                    rows,
                    s.c_out,
                    np,
                    s.w_gain,
                    w[ci0 * s.k * s.k..].as_ptr(),
                    1,
                    ckk as isize,
                    dy,
                    ld as isize,
                    1,
                    0.0,
                    dcols.as_mut_ptr(),
                    np as isize,
                    1,
                )
            }
        }
        let workspace = || (Vec::new(), Vec::new());
        self.tasks(
            tasks,
            work,
            workspace,
            |(dcols, dyg): &mut (Vec<f32>, Vec<f32>), (n0, ci0, mut planes)| {
                let Some(nci) = planes.first().map(|p| p.len() / hw) else {
                    return;
                };
                if g == 1 && direct {
                    let dyn_ = &dy[n0 * s.c_out * hw_out..(n0 + 1) * s.c_out * hw_out];
                    // SAFETY: in bounds by the checks; `planes[0]` is this task's own slice.
                    unsafe {
                        sgemm(
                            nci,
                            s.c_out,
                            hw,
                            s.w_gain,
                            w[ci0..].as_ptr(),
                            1,
                            ckk as isize,
                            dyn_.as_ptr(),
                            hw_out as isize,
                            1,
                            if acc { 1.0 } else { 0.0 },
                            planes[0].as_mut_ptr(),
                            hw as isize,
                            1,
                        )
                    };
                    return;
                }
                if !acc {
                    planes.iter_mut().for_each(|p| p.fill(0.0));
                }
                let rows = nci * kk;
                if g > 1 {
                    // The task's images side by side: dY gathered, one product, col2im each.
                    let np = planes.len() * hw_out;
                    let dyg = scratch(dyg, s.c_out * np);
                    for co in 0..s.c_out {
                        for i in 0..planes.len() {
                            let src = &dy[((n0 + i) * s.c_out + co) * hw_out..][..hw_out];
                            dyg[co * np + i * hw_out..][..hw_out].copy_from_slice(src);
                        }
                    }
                    let dcols = scratch(dcols, rows * np);
                    // SAFETY: `dyg` holds c_out rows of np; `dcols` is this worker's own.
                    unsafe { columns(s, w, ci0, rows, dyg.as_ptr(), np, np, dcols) };
                    for (i, dxs) in planes.iter_mut().enumerate() {
                        col2im(s, &dcols[i * hw_out..], np, nci, 0, hw_out, dxs);
                    }
                    return;
                }
                let dyn_ = &dy[n0 * s.c_out * hw_out..(n0 + 1) * s.c_out * hw_out];
                let dxs = &mut *planes[0];
                let pbk = Self::pixel_block(rows);
                let mut p0 = 0;
                while p0 < hw_out {
                    let np = pbk.min(hw_out - p0);
                    let dcols = scratch(dcols, rows * np);
                    // SAFETY: dY's c_out planes of this image from p0, np values each, lie in
                    // it; `dcols` is this worker's own.
                    unsafe { columns(s, w, ci0, rows, dyn_[p0..].as_ptr(), hw_out, np, dcols) };
                    col2im(s, dcols, np, nci, p0, np, dxs);
                    p0 += np;
                }
            },
        );
    }

    fn conv_backward_weight_f32(
        &self,
        s: &ConvShape,
        dy: &[f32],
        x: &[f32],
        dw: &mut [f32],
        acc: bool,
    ) -> BResult<()> {
        let wl = s.w_len();
        let dw = &mut dw[..wl];
        let (h, wd, k) = (s.height, s.width, s.k);
        let (hw, hw_out) = (h * wd, s.out_height() * s.out_width());
        let ckk = s.c_in * k * k;
        let direct = k == 1 && s.stride == 1;
        let total = s.batch * hw_out;
        if total == 0 {
            if !acc {
                dw.fill(0.0);
            }
            return Ok(());
        }
        let bins = total
            .div_ceil(CONV_BIN_PIXELS)
            .min((PARTIAL_CAP / wl).max(1))
            .max(1);
        let bin = total.div_ceil(bins);
        let bins = total.div_ceil(bin);
        let cob = CONV_W_CO_BLOCK.min(s.c_out);
        let mut part = alloc_zeros::<f32>(bins * wl, "conv weight gradient partial sums")?;
        let mut tasks = Vec::new();
        for (bi, pw) in part.chunks_mut(wl).enumerate() {
            for (cb, sl) in pw.chunks_mut(cob * ckk).enumerate() {
                tasks.push((bi, cb * cob, sl));
            }
        }
        let pb = Self::pixel_block(ckk);
        let workspace = || (Vec::new(), Vec::new());
        self.tasks(
            tasks,
            total * s.c_out * ckk,
            workspace,
            |(cols, dyg): &mut (Vec<f32>, Vec<f32>), (bi, co0, ps)| {
                let nco = ps.len() / ckk;
                let (q1, mut q) = ((bi * bin + bin).min(total), bi * bin);
                while q < q1 && hw_out < pb {
                    // Small maps: blocks of pb output positions across images (q = n hw_out + p),
                    // dY and the taps gathered side by side, so the sum over pixels is long.
                    let nq = pb.min(q1 - q);
                    let cols = scratch(cols, ckk * nq);
                    let dyg = scratch(dyg, nco * nq);
                    let mut j = 0;
                    while j < nq {
                        let (n, p) = ((q + j) / hw_out, (q + j) % hw_out);
                        let len = (hw_out - p).min(nq - j);
                        let xn = &x[n * s.c_in * hw..(n + 1) * s.c_in * hw];
                        im2col_at(s, xn, p, len, &mut cols[j..], nq);
                        for co in 0..nco {
                            let src = &dy[(n * s.c_out + co0 + co) * hw_out + p..][..len];
                            dyg[co * nq + j..][..len].copy_from_slice(src);
                        }
                        j += len;
                    }
                    // SAFETY: scratch within its lengths; `ps` is this task's own rows.
                    unsafe {
                        sgemm(
                            nco,
                            nq,
                            ckk,
                            s.w_gain,
                            dyg.as_ptr(),
                            nq as isize,
                            1,
                            cols.as_ptr(),
                            1,
                            nq as isize,
                            1.0,
                            ps.as_mut_ptr(),
                            ckk as isize,
                            1,
                        )
                    };
                    q += nq;
                }
                while q < q1 {
                    let (n, p) = (q / hw_out, q % hw_out);
                    let p1 = hw_out.min(p + (q1 - q));
                    let xn = &x[n * s.c_in * hw..(n + 1) * s.c_in * hw];
                    let mut p0 = p;
                    while p0 < p1 {
                        let np = pb.min(p1 - p0);
                        let (bptr, csb) = if direct {
                            (xn[p0..].as_ptr(), hw as isize)
                        } else {
                            im2col(s, xn, p0, np, cols);
                            (cols.as_ptr(), np as isize)
                        };
                        // SAFETY: in bounds by the checks; `ps` is this task's own block of rows.
                        unsafe {
                            sgemm(
                                nco,
                                np,
                                ckk,
                                s.w_gain,
                                dy[(n * s.c_out + co0) * hw_out + p0..].as_ptr(),
                                hw_out as isize,
                                1,
                                bptr,
                                1,
                                csb,
                                1.0,
                                ps.as_mut_ptr(),
                                ckk as isize,
                                1,
                            )
                        };
                        p0 += np;
                    }
                    q = n * hw_out + p1;
                }
            },
        );
        let part = &part;
        self.chunks(dw, |start, out| {
            for (j, o) in out.iter_mut().enumerate() {
                let mut v = 0f32;
                for bi in 0..bins {
                    v += part[bi * wl + start + j];
                }
                *o = if acc { *o + v } else { v };
            }
        });
        Ok(())
    }

    // ---- fused ----

    /// One fused block (see [`Backend::fused_level_forward`]): each task takes one image's tile
    /// of pixels through every layer with the activations in two small buffers that stay in
    /// cache (the fully fused MLP, with sgemm on the tile), then adds its RGB to `img` and
    /// stores the last features. `x` is the dense input, or the previous features of an
    /// assembly (`asm`: with its parsed geometry).
    #[allow(clippy::too_many_arguments)]
    fn fused_f32(
        &self,
        s: &FusedShape,
        x: Option<&[f32]>,
        asm: Option<(&Assembly, &r::fused::Geometry)>,
        w: &[f32],
        bias: &[f32],
        rgbw: &[f32],
        rgbb: &[f32],
        img: &mut [f32],
        out: Option<&mut [f32]>,
    ) {
        let np = s.pixels;
        let (woff, wlen) = s.weight_offsets();
        let (boff, _) = s.bias_offsets();
        let (roff, rlen) = s.rgb_offsets();
        let (rboff, _) = s.rgb_bias_offsets();
        let c_last = s.c_last();
        let widest = s.layers.iter().map(|l| l.0).max().unwrap_or(1);
        let tile = ((FUSED_TILE_VALUES / widest.max(s.c_in)).clamp(16, 1024) / 16) * 16;
        let tiles = np.div_ceil(tile);
        let macs: usize = (0..s.layers.len())
            .map(|j| s.layers[j].0 * s.c_in_of(j))
            .sum();
        let imgp = Ptr(img.as_mut_ptr());
        let outp = out.map(|o| Ptr(o.as_mut_ptr()));
        let (alpha, gain) = (s.alpha, s.gain);
        // The embeddings are the same for every image: with a batch, computed once (as the
        // unfused path's `coords_forward`), else per tile.
        let emb = |a: &Assembly, geo: &r::fused::Geometry, f: usize, q: usize| {
            let (r, c) = (q / a.cols, q % a.cols);
            let phi = geo.freqs[2 * f] * geo.xs[c] + geo.freqs[2 * f + 1] * geo.ys[r];
            (phi.sin(), phi.cos())
        };
        let table: Option<Vec<f32>> = match asm {
            Some((a, geo)) if s.batch > 1 && a.n_freq > 0 => {
                let mut t = vec![0f32; 2 * a.n_freq * np];
                let (sin, cos) = t.split_at_mut(a.n_freq * np);
                for f in 0..a.n_freq {
                    for q in 0..np {
                        (sin[f * np + q], cos[f * np + q]) = emb(a, geo, f, q);
                    }
                }
                Some(t)
            }
            _ => None,
        };
        // Per worker: the assembled input, two activation buffers, the tile's RGB.
        let workspace = || (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        self.tasks(
            (0..s.batch * tiles).collect(),
            s.batch * np * macs,
            workspace,
            |(xin, ha, hb, rgb): &mut (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>), t| {
                let (b, t0) = (t / tiles, (t % tiles) * tile);
                let nt = tile.min(np - t0);
                // The tile's input: rows `rsx` apart.
                let (xptr, rsx) = match asm {
                    None => {
                        let x = x.unwrap_or(&[]);
                        let xb = if s.broadcast_input {
                            0
                        } else {
                            b * s.c_in * np
                        };
                        (x[xb + t0..].as_ptr(), np)
                    }
                    Some((a, geo)) => {
                        let xin = scratch(xin, s.c_in * nt);
                        let feat = x.unwrap_or(&[]);
                        let prev_np = a.prev_rows * a.prev_cols;
                        // Per pixel of the tile: its first source cell and (bilinear) weights;
                        // then channel by channel, so each channel's plane is read in order.
                        let (xin_prev, xin_emb) = xin.split_at_mut(a.c_prev * nt);
                        let px: Vec<(usize, f32, f32)> = (t0..t0 + nt)
                            .map(|q| {
                                let (r, c) = (q / a.cols, q % a.cols);
                                let src = geo.rows[r] as usize * a.prev_cols + geo.cols[c] as usize;
                                if a.bilinear {
                                    (src, geo.row_t[r], geo.col_t[c])
                                } else {
                                    (src, 0.0, 0.0)
                                }
                            })
                            .collect();
                        let pc = a.prev_cols;
                        for (i, out) in xin_prev.chunks_exact_mut(nt).enumerate() {
                            let plane = &feat
                                [(b * a.c_prev + i) * prev_np..(b * a.c_prev + i + 1) * prev_np];
                            if a.bilinear {
                                // As the unfused path's gather_bilinear, value for value.
                                for (o, &(src, tr, tc)) in out.iter_mut().zip(&px) {
                                    let (ur, uc) = (1.0 - tr, 1.0 - tc);
                                    let top = uc * plane[src] + tc * plane[src + 1];
                                    let bottom = uc * plane[src + pc] + tc * plane[src + pc + 1];
                                    *o = ur * top + tr * bottom;
                                }
                            } else {
                                for (o, &(src, _, _)) in out.iter_mut().zip(&px) {
                                    *o = plane[src];
                                }
                            }
                        }
                        if table.is_none() {
                            // As the unfused path's embeddings (coords_forward).
                            for tt in 0..nt {
                                for f in 0..a.n_freq {
                                    (xin_emb[f * nt + tt], xin_emb[(a.n_freq + f) * nt + tt]) =
                                        emb(a, geo, f, t0 + tt);
                                }
                            }
                        }
                        if let Some(t) = &table {
                            for (i, row) in xin[a.c_prev * nt..].chunks_exact_mut(nt).enumerate() {
                                row.copy_from_slice(&t[i * np + t0..i * np + t0 + nt]);
                            }
                        }
                        (xin.as_ptr(), nt)
                    }
                };
                let ha = scratch(ha, widest * nt);
                let hb = scratch(hb, widest * nt);
                let rgb = scratch(rgb, 3 * nt);
                rgb.fill(0.0);
                let (mut src, mut rs) = (xptr, rsx);
                let mut cur: &mut [f32] = ha;
                let mut next: &mut [f32] = hb;
                for (j, &(co, has_rgb)) in s.layers.iter().enumerate() {
                    let ci = s.c_in_of(j);
                    // SAFETY: the weights and the input tile lie within their checked lengths;
                    // `cur` is this worker's own and aliases neither.
                    unsafe {
                        sgemm(
                            co,
                            ci,
                            nt,
                            1.0,
                            w[b * wlen + woff[j]..].as_ptr(),
                            ci as isize,
                            1,
                            src,
                            rs as isize,
                            1,
                            0.0,
                            cur.as_mut_ptr(),
                            nt as isize,
                            1,
                        )
                    };
                    for (o, row) in cur[..co * nt].chunks_exact_mut(nt).enumerate() {
                        let bv = bias[boff[j] + o];
                        for v in row {
                            let z = *v + bv;
                            *v = if z > 0.0 { z } else { alpha * z } * gain;
                        }
                    }
                    if has_rgb {
                        // SAFETY: as above; `rgb` is this worker's own.
                        unsafe {
                            sgemm(
                                3,
                                co,
                                nt,
                                1.0,
                                rgbw[b * rlen + roff[j]..].as_ptr(),
                                co as isize,
                                1,
                                cur.as_ptr(),
                                nt as isize,
                                1,
                                1.0,
                                rgb.as_mut_ptr(),
                                nt as isize,
                                1,
                            )
                        };
                        for (c, row) in rgb.chunks_exact_mut(nt).enumerate() {
                            let bv = rgbb[rboff[j] + c];
                            row.iter_mut().for_each(|v| *v += bv);
                        }
                    }
                    (src, rs) = (cur.as_ptr(), nt);
                    std::mem::swap(&mut cur, &mut next);
                }
                // The last layer's output is in `next` now.
                for (c, row) in rgb.chunks_exact(nt).enumerate() {
                    // SAFETY: within img; each task owns (image b, pixels t0..t0 + nt).
                    let dst = unsafe {
                        std::slice::from_raw_parts_mut(imgp.at((b * 3 + c) * np + t0), nt)
                    };
                    for (d, &v) in dst.iter_mut().zip(row) {
                        *d += v;
                    }
                }
                if let Some(op) = outp {
                    for (o, row) in next[..c_last * nt].chunks_exact(nt).enumerate() {
                        // SAFETY: within out; each task owns (image b, pixels t0..t0 + nt).
                        let dst = unsafe {
                            std::slice::from_raw_parts_mut(op.at((b * c_last + o) * np + t0), nt)
                        };
                        dst.copy_from_slice(row);
                    }
                }
            },
        );
    }

    // ---- fmm ----

    fn fmm_forward_f32(
        &self,
        s: &FmmShape,
        ws: &[f32],
        styles: &[f32],
        w_out: &mut [f32],
        norms: &mut [f32],
    ) {
        let (co, ci, rk) = (s.c_out, s.c_in, s.rank);
        let sd = s.style_dim();
        let inv = (1.0 / (rk as f64).sqrt()) as f32;
        let eps = FMM_EPS as f32;
        let w_out = &mut w_out[..s.weight_len()];
        let norms = &mut norms[..s.batch * co];
        let tasks: Vec<_> = w_out
            .chunks_mut(ci)
            .zip(norms.iter_mut())
            .enumerate()
            .collect();
        self.tasks(
            tasks,
            s.weight_len() * rk,
            || (),
            |_, (row, (wrow, nrm))| {
                let (b, o) = (row / co, row % co);
                let sty = &styles[b * sd..(b + 1) * sd];
                modulation_row(sty, co, ci, rk, o, wrow);
                for (i, v) in wrow.iter_mut().enumerate() {
                    *v = ws[o * ci + i] * (1.0 + *v * inv);
                }
                let nv = scaled_norm(wrow);
                *nrm = nv;
                if s.demod {
                    let sc = 1.0 / (nv + eps);
                    wrow.iter_mut().for_each(|v| *v *= sc);
                }
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn fmm_backward_f32(
        &self,
        s: &FmmShape,
        ws: &[f32],
        styles: &[f32],
        norms: &[f32],
        dw: &[f32],
        mut scratch: Option<&mut [f32]>,
        dws: &mut [f32],
        dstyles: &mut [f32],
        acc: bool,
    ) -> BResult<()> {
        let (co, ci, rk, batch) = (s.c_out, s.c_in, s.rank, s.batch);
        let sd = s.style_dim();
        let wl = s.weight_len();
        let inv = (1.0 / (rk as f64).sqrt()) as f32;
        let eps = FMM_EPS as f32;
        // 1. M (kept for dws) per row and, with demod, dM' through the row normalisation.
        let mut mm = alloc_zeros::<f32>(wl, "fmm modulation")?;
        {
            let grows: Vec<Option<&mut [f32]>> = match scratch.as_deref_mut() {
                Some(sc) => sc[..wl].chunks_mut(ci).map(Some).collect(),
                None => (0..batch * co).map(|_| None).collect(),
            };
            let rows: Vec<_> = mm.chunks_mut(ci).zip(grows).enumerate().collect();
            self.tasks(
                rows,
                wl * rk,
                || (),
                |_, (row, (mrow, grow))| {
                    let (b, o) = (row / co, row % co);
                    modulation_row(&styles[b * sd..(b + 1) * sd], co, ci, rk, o, mrow);
                    mrow.iter_mut().for_each(|v| *v *= inv);
                    if let Some(grow) = grow {
                        let nv = norms[row];
                        let ninv = 1.0 / (nv + eps);
                        let d = &dw[row * ci..(row + 1) * ci];
                        for i in 0..ci {
                            grow[i] = ws[o * ci + i] * (1.0 + mrow[i]) * ninv;
                        }
                        let dot = dot8(grow, d);
                        let coef = if nv > 0.0 { dot / nv } else { 0.0 };
                        for i in 0..ci {
                            grow[i] = d[i] * ninv - grow[i] * coef;
                        }
                    }
                },
            );
        }
        // The gradient before the row normalisation.
        let g: &[f32] = match scratch.as_deref() {
            Some(sc) => &sc[..wl],
            None => &dw[..wl],
        };
        // 2. dws[o, i] (+)= sum_b g[b, o, i] (1 + M[b, o, i]), over b in order.
        let per = co * ci;
        {
            let mm = &mm;
            self.rows(&mut dws[..per], ci, wl, |o, out| {
                let mut accv = vec![0f32; ci];
                for b in 0..batch {
                    let r0 = b * per + o * ci;
                    for (i, a) in accv.iter_mut().enumerate() {
                        *a += g[r0 + i] * (1.0 + mm[r0 + i]);
                    }
                }
                for (v, a) in out.iter_mut().zip(accv) {
                    *v = if acc { a + *v } else { a };
                }
            });
        }
        // 3. dM = g * ws, then dA = dM B^T / sqrt(r) and dB = A^T dM / sqrt(r).
        self.chunks(&mut mm, |start, out| {
            for (j, v) in out.iter_mut().enumerate() {
                *v = g[start + j] * ws[(start + j) % per];
            }
        });
        let dm = &mm;
        let na = co * rk;
        self.rows(
            &mut dstyles[..batch * sd],
            sd,
            batch * per * rk * 2,
            |b, out| {
                let sty = &styles[b * sd..(b + 1) * sd];
                let dmb = &dm[b * per..(b + 1) * per];
                let (da, db) = out.split_at_mut(na);
                for o in 0..co {
                    let drow = &dmb[o * ci..(o + 1) * ci];
                    for kk in 0..rk {
                        da[o * rk + kk] = dot8(drow, &sty[na + kk * ci..na + (kk + 1) * ci]) * inv;
                    }
                }
                db.fill(0.0);
                for o in 0..co {
                    let drow = &dmb[o * ci..(o + 1) * ci];
                    for kk in 0..rk {
                        let a = sty[o * rk + kk];
                        for (v, &d) in db[kk * ci..(kk + 1) * ci].iter_mut().zip(drow) {
                            *v += a * d;
                        }
                    }
                }
                db.iter_mut().for_each(|v| *v *= inv);
            },
        );
        Ok(())
    }
}

/// Row `o` of `A B` (before the `1 / sqrt(rank)`) of one image's packed styles into `out`.
fn modulation_row(sty: &[f32], co: usize, ci: usize, rk: usize, o: usize, out: &mut [f32]) {
    out.fill(0.0);
    let bm = &sty[co * rk..];
    for kk in 0..rk {
        let ak = sty[o * rk + kk];
        let brow = &bm[kk * ci..(kk + 1) * ci];
        for (v, &bv) in out.iter_mut().zip(brow) {
            *v += ak * bv;
        }
    }
}

/// The first `n` values of a worker's scratch vector, grown as needed but not cleared: for
/// buffers that are entirely overwritten (products with beta 0, gathers, [`im2col_at`]).
fn scratch(v: &mut Vec<f32>, n: usize) -> &mut [f32] {
    if v.len() < n {
        v.resize(n, 0.0);
    }
    &mut v[..n]
}

/// Fills `cols` (`c_in k k` rows of `np` values) with the taps of output pixels `p0..p0 + np`
/// of one image `xn` (`[c_in, height, width]`); zero outside the image.
fn im2col(s: &ConvShape, xn: &[f32], p0: usize, np: usize, cols: &mut Vec<f32>) {
    let cols = scratch(cols, s.c_in * s.k * s.k * np);
    im2col_at(s, xn, p0, np, cols, np);
}

/// [`im2col`] into the first `np` values of rows `ld` apart (several images' pixels side by
/// side in one block); every value of those runs is written, taps outside the image as zeros.
fn im2col_at(s: &ConvShape, xn: &[f32], p0: usize, np: usize, cols: &mut [f32], ld: usize) {
    let (h, wd, k, stride) = (s.height, s.width, s.k, s.stride);
    let (wo, pad) = (s.out_width(), s.pad());
    for ci in 0..s.c_in {
        let plane = &xn[ci * h * wd..(ci + 1) * h * wd];
        for ky in 0..k {
            for kx in 0..k {
                let r = (ci * k + ky) * k + kx;
                let row = &mut cols[r * ld..r * ld + np];
                let (mut j, mut p) = (0, p0);
                while j < np {
                    let (oy, ox0) = (p / wo, p % wo);
                    let len = (wo - ox0).min(np - j);
                    let seg = &mut row[j..j + len];
                    let iy = (oy * stride + ky).wrapping_sub(pad);
                    if iy < h {
                        let src = &plane[iy * wd..(iy + 1) * wd];
                        if stride == 1 {
                            // ix = ox + kx - pad: a contiguous run of the row, zeros outside.
                            let start = (ox0 + kx) as isize - pad as isize;
                            let lo = (-start).clamp(0, len as isize) as usize;
                            let hi =
                                (wd as isize - start).clamp(lo as isize, len as isize) as usize;
                            seg[..lo].fill(0.0);
                            let s0 = (start + lo as isize) as usize;
                            seg[lo..hi].copy_from_slice(&src[s0..s0 + hi - lo]);
                            seg[hi..].fill(0.0);
                        } else {
                            for (t, v) in seg.iter_mut().enumerate() {
                                let ix = ((ox0 + t) * stride + kx).wrapping_sub(pad);
                                *v = if ix < wd { src[ix] } else { 0.0 };
                            }
                        }
                    } else {
                        seg.fill(0.0);
                    }
                    j += len;
                    p += len;
                }
            }
        }
    }
}

/// Adds the column gradients `dcols` (`nci k k` rows of `np` values, output pixels `p0..`) into
/// the input-gradient planes `dxs` (`[nci, height, width]`); rows of `dcols` are `ld` apart.
#[allow(clippy::too_many_arguments)]
fn col2im(
    s: &ConvShape,
    dcols: &[f32],
    ld: usize,
    nci: usize,
    p0: usize,
    np: usize,
    dxs: &mut [f32],
) {
    let (h, wd, k, stride) = (s.height, s.width, s.k, s.stride);
    let (wo, pad) = (s.out_width(), s.pad());
    for ci in 0..nci {
        let plane = &mut dxs[ci * h * wd..(ci + 1) * h * wd];
        for ky in 0..k {
            for kx in 0..k {
                let r = (ci * k + ky) * k + kx;
                let row = &dcols[r * ld..r * ld + np];
                let (mut j, mut p) = (0, p0);
                while j < np {
                    let (oy, ox0) = (p / wo, p % wo);
                    let len = (wo - ox0).min(np - j);
                    let iy = (oy * stride + ky).wrapping_sub(pad);
                    if iy < h {
                        let dst = &mut plane[iy * wd..(iy + 1) * wd];
                        for (t, &v) in row[j..j + len].iter().enumerate() {
                            let ix = ((ox0 + t) * stride + kx).wrapping_sub(pad);
                            if ix < wd {
                                dst[ix] += v;
                            }
                        }
                    }
                    j += len;
                    p += len;
                }
            }
        }
    }
}

/// The group mean and standard deviation of `x` (`[batch, channels, pixels]`) at sample group
/// `m`, channel `ch`, pixel `q`, in `f32` as the kernel computes them.
fn mbstd_moments(s: &MbstdShape, x: &[f32], m: usize, ch: usize, q: usize) -> (f32, f32) {
    let stride = s.groups() * s.channels * s.pixels();
    let base = (m * s.channels + ch) * s.pixels() + q;
    let inv_g = (1.0 / s.group as f64) as f32;
    let mut mu = 0f32;
    for g in 0..s.group {
        mu += x[base + g * stride];
    }
    mu *= inv_g;
    let mut sq = 0f32;
    for g in 0..s.group {
        let d = x[base + g * stride] - mu;
        sq += d * d;
    }
    (mu, (sq * inv_g + MBSTD_EPS as f32).sqrt())
}

impl Backend for CpuBackend {
    type Buf = CpuBuf;

    fn name(&self) -> String {
        format!("cpu: {} threads", self.threads)
    }

    fn zeros(&mut self, n: usize, label: &str) -> BResult<CpuBuf> {
        Ok(CpuBuf {
            data: RwLock::new(alloc_zeros(n, label)?),
            len: n,
        })
    }

    fn upload(&mut self, data: &[f32], label: &str) -> BResult<CpuBuf> {
        let mut v = alloc_zeros::<f32>(0, label)?;
        v.try_reserve_exact(data.len())
            .map_err(|_| GpuError::OutOfMemory {
                context: format!("host buffer {label} of {} values", data.len()),
            })?;
        v.extend_from_slice(data);
        Ok(CpuBuf {
            data: RwLock::new(v),
            len: data.len(),
        })
    }

    fn write(&mut self, buf: &CpuBuf, data: &[f32]) -> BResult<()> {
        check::write(buf.len, data.len())?;
        wr("write", buf)?[..data.len()].copy_from_slice(data);
        Ok(())
    }

    fn read(&mut self, buf: &CpuBuf) -> BResult<Vec<f32>> {
        Ok(rd("read", buf)?.clone())
    }

    fn len(&self, buf: &CpuBuf) -> usize {
        buf.len
    }

    fn flush(&mut self) -> BResult<()> {
        Ok(())
    }

    fn gemm(
        &mut self,
        g: &Gemm,
        a: &CpuBuf,
        b: &CpuBuf,
        bias: Option<&CpuBuf>,
        c: &CpuBuf,
    ) -> BResult<()> {
        if !check::gemm(g, a.len, b.len, bias.map(|b| b.len), c.len)? {
            return Ok(());
        }
        let (ag, bg) = (rd("gemm A", a)?, rd("gemm B", b)?);
        let biasg = match g.bias {
            BiasMode::None => None,
            _ => rd_opt("gemm bias", bias)?,
        };
        let mut cg = wr("gemm C", c)?;
        self.gemm_f32(g, &ag, &bg, biasg.as_deref().map(|v| v.as_slice()), &mut cg)?;
        if let Some((alpha, gain)) = g.act {
            let f = |v: &mut f32| *v = if *v > 0.0 { *v } else { alpha * *v } * gain;
            let (m, n) = (g.m, g.n);
            if g.c.sj == 1 && g.c.si == n && (g.batch == 1 || g.c.sb == m * n) {
                // One contiguous block (the layers' [batch, c_out, pixels]).
                let len = g.batch * m * n;
                self.rows(&mut cg[..len], n.max(1), len, |_, row| {
                    row.iter_mut().for_each(f)
                });
            } else {
                for bt in 0..g.batch {
                    for i in 0..m {
                        for j in 0..n {
                            f(&mut cg[bt * g.c.sb + i * g.c.si + j * g.c.sj]);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    fn fmm_forward(
        &mut self,
        s: &FmmShape,
        ws: &CpuBuf,
        styles: &CpuBuf,
        w_out: &CpuBuf,
        norms: &CpuBuf,
    ) -> BResult<()> {
        if !check::fmm_forward(s, ws.len, styles.len, w_out.len, norms.len)? {
            return Ok(());
        }
        let (wsg, sg) = (rd("fmm ws", ws)?, rd("fmm styles", styles)?);
        let (mut wg, mut ng) = (wr("fmm w_out", w_out)?, wr("fmm norms", norms)?);
        self.fmm_forward_f32(s, &wsg, &sg, &mut wg, &mut ng);
        Ok(())
    }

    fn fmm_backward(
        &mut self,
        s: &FmmShape,
        ws: &CpuBuf,
        styles: &CpuBuf,
        norms: &CpuBuf,
        dw: &CpuBuf,
        scratch: &CpuBuf,
        dws: &CpuBuf,
        dstyles: &CpuBuf,
        accumulate_dws: bool,
    ) -> BResult<()> {
        if !check::fmm_backward(
            s,
            ws.len,
            styles.len,
            norms.len,
            dw.len,
            scratch.len,
            dws.len,
            dstyles.len,
        )? {
            return Ok(());
        }
        let (wsg, sg, dwg) = (
            rd("fmm ws", ws)?,
            rd("fmm styles", styles)?,
            rd("fmm dw", dw)?,
        );
        let (ng, mut scg) = if s.demod {
            (
                Some(rd("fmm norms", norms)?),
                Some(wr("fmm scratch", scratch)?),
            )
        } else {
            (None, None)
        };
        let (mut dwsg, mut dsg) = (wr("fmm dws", dws)?, wr("fmm dstyles", dstyles)?);
        self.fmm_backward_f32(
            s,
            &wsg,
            &sg,
            ng.as_deref().map_or(&[], |v| v.as_slice()),
            &dwg,
            scg.as_deref_mut().map(|v| v.as_mut_slice()),
            &mut dwsg,
            &mut dsg,
            accumulate_dws,
        )
    }

    fn style_modulate_forward(
        &mut self,
        m: &ModulateShape,
        ws: &CpuBuf,
        s: &CpuBuf,
        w: &CpuBuf,
    ) -> BResult<()> {
        if !check::modulate_forward(m, ws.len, s.len, w.len)? {
            return Ok(());
        }
        let (wsg, sg) = (rd("style_modulate ws", ws)?, rd("style_modulate s", s)?);
        let mut wg = wr("style_modulate w", w)?;
        let (co, ci, gain) = (m.c_out, m.c_in, m.gain);
        let n = m.batch * co * ci;
        self.rows(&mut wg[..n], ci, n, |row, out| {
            let (b, o) = (row / co, row % co);
            let (wr_, sr) = (&wsg[o * ci..(o + 1) * ci], &sg[b * ci..(b + 1) * ci]);
            for i in 0..ci {
                out[i] = gain * wr_[i] * sr[i];
            }
        });
        Ok(())
    }

    fn style_modulate_backward(
        &mut self,
        m: &ModulateShape,
        ws: &CpuBuf,
        s: &CpuBuf,
        dw: &CpuBuf,
        dws: &CpuBuf,
        ds: &CpuBuf,
        accumulate_dws: bool,
    ) -> BResult<()> {
        if !check::modulate_backward(m, ws.len, s.len, dw.len, dws.len, ds.len)? {
            return Ok(());
        }
        let (wsg, sg, dwg) = (
            rd("style_modulate ws", ws)?,
            rd("style_modulate s", s)?,
            rd("style_modulate dw", dw)?,
        );
        let (mut dwsg, mut dsg) = (wr("style_modulate dws", dws)?, wr("style_modulate ds", ds)?);
        let (co, ci, gain, batch) = (m.c_out, m.c_in, m.gain, m.batch);
        let per = co * ci;
        let (wsv, sv, dwv) = (&wsg[..], &sg[..], &dwg[..]);
        self.rows(&mut dwsg[..per], ci, batch * per, |o, out| {
            let mut accv = vec![0f32; ci];
            for b in 0..batch {
                let (d, sr) = (&dwv[b * per + o * ci..], &sv[b * ci..]);
                for i in 0..ci {
                    accv[i] += d[i] * sr[i];
                }
            }
            for (v, a) in out.iter_mut().zip(accv) {
                let g = gain * a;
                *v = if accumulate_dws { g + *v } else { g };
            }
        });
        self.rows(&mut dsg[..batch * ci], ci, batch * per, |b, out| {
            out.fill(0.0);
            for o in 0..co {
                let (d, w) = (&dwv[b * per + o * ci..], &wsv[o * ci..]);
                for i in 0..ci {
                    out[i] += d[i] * w[i];
                }
            }
            out.iter_mut().for_each(|v| *v *= gain);
        });
        Ok(())
    }

    fn coords_forward(
        &mut self,
        s: &CoordsShape,
        xs: &CpuBuf,
        ys: &CpuBuf,
        freqs: &CpuBuf,
        emb: &CpuBuf,
    ) -> BResult<()> {
        if !check::coords_forward(s, xs.len, ys.len, freqs.len, emb.len)? {
            return Ok(());
        }
        let (xg, yg, fg) = (
            rd("coords xs", xs)?,
            rd("coords ys", ys)?,
            rd("coords freqs", freqs)?,
        );
        let mut eg = wr("coords emb", emb)?;
        let (np, nf, wd) = (s.pixels(), s.n_freq, s.width);
        let (xv, yv, fv) = (&xg[..], &yg[..], &fg[..]);
        self.rows(
            &mut eg[..s.channels() * np],
            np,
            s.channels() * np * 8,
            |c, out| {
                let (j, cos) = if c < nf { (c, false) } else { (c - nf, true) };
                let (fx, fy) = (fv[2 * j], fv[2 * j + 1]);
                for (px, v) in out.iter_mut().enumerate() {
                    let phi = fx * xv[px % wd] + fy * yv[px / wd];
                    *v = if cos { phi.cos() } else { phi.sin() };
                }
            },
        );
        Ok(())
    }

    fn coords_backward(
        &mut self,
        s: &CoordsShape,
        xs: &CpuBuf,
        ys: &CpuBuf,
        freqs: &CpuBuf,
        demb: &CpuBuf,
        dfreqs: &CpuBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::coords_backward(s, xs.len, ys.len, freqs.len, demb.len, dfreqs.len)? {
            return Ok(());
        }
        let (xg, yg, fg) = (
            rd("coords xs", xs)?,
            rd("coords ys", ys)?,
            rd("coords freqs", freqs)?,
        );
        let dg = rd("coords demb", demb)?;
        let mut dfg = wr("coords dfreqs", dfreqs)?;
        let (np, nf, wd) = (s.pixels(), s.n_freq, s.width);
        let (xv, yv, fv, de) = (&xg[..], &yg[..], &fg[..], &dg[..]);
        self.rows(&mut dfg[..2 * nf], 2, s.channels() * np * 8, |j, out| {
            let (fx, fy) = (fv[2 * j], fv[2 * j + 1]);
            let (mut ax, mut ay) = ([0f32; 8], [0f32; 8]);
            for px in 0..np {
                let (x, y) = (xv[px % wd], yv[px / wd]);
                let phi = fx * x + fy * y;
                let mut g = phi.cos() * de[j * np + px];
                if s.with_cos {
                    g -= phi.sin() * de[(nf + j) * np + px];
                }
                ax[px % 8] += g * x;
                ay[px % 8] += g * y;
            }
            let tree =
                |a: [f32; 8]| ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
            let (gx, gy) = (tree(ax), tree(ay));
            if accumulate {
                out[0] += gx;
                out[1] += gy;
            } else {
                out[0] = gx;
                out[1] = gy;
            }
        });
        Ok(())
    }

    fn act_forward(
        &mut self,
        s: &ActShape,
        x: &CpuBuf,
        bias: Option<&CpuBuf>,
        y: &CpuBuf,
    ) -> BResult<()> {
        if !check::act_forward(s, x.len, bias.map(|b| b.len), y.len)? {
            return Ok(());
        }
        let xg = rd("act_forward x", x)?;
        let bg_ = rd_opt("act_forward bias", bias)?;
        let mut yg = wr("act_forward y", y)?;
        let (alpha, gain, bgain) = (s.alpha, s.gain, s.b_gain);
        let (inner, chans, n) = (s.inner, s.channels, s.len());
        let (xv, bv) = (&xg[..], bg_.as_deref().map(|v| v.as_slice()));
        let act = move |z: f32| (if z > 0.0 { z } else { alpha * z }) * gain;
        if inner >= 64 {
            self.rows(&mut yg[..n], inner, n, |pl, out| {
                let xr = &xv[pl * inner..(pl + 1) * inner];
                match bv {
                    Some(b) => {
                        let add = bgain * b[pl % chans];
                        for (v, &z) in out.iter_mut().zip(xr) {
                            *v = act(z + add);
                        }
                    }
                    None => {
                        for (v, &z) in out.iter_mut().zip(xr) {
                            *v = act(z);
                        }
                    }
                }
            });
        } else {
            self.chunks(&mut yg[..n], |start, out| {
                for (j, v) in out.iter_mut().enumerate() {
                    let i = start + j;
                    let z = match bv {
                        Some(b) => xv[i] + bgain * b[(i / inner) % chans],
                        None => xv[i],
                    };
                    *v = act(z);
                }
            });
        }
        Ok(())
    }

    fn act_backward(
        &mut self,
        s: &ActShape,
        y: &CpuBuf,
        dy: &CpuBuf,
        dx: &CpuBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::act_backward(s, y.len, dy.len, dx.len)? {
            return Ok(());
        }
        let (yg, dyg) = (rd("act_backward y", y)?, rd("act_backward dy", dy)?);
        let mut dxg = wr("act_backward dx", dx)?;
        let (alpha, gain) = (s.alpha, s.gain);
        let (yv, dyv) = (&yg[..], &dyg[..]);
        self.chunks(&mut dxg[..s.len()], |start, out| {
            for (j, v) in out.iter_mut().enumerate() {
                let i = start + j;
                let slope = if yv[i] > 0.0 { 1.0 } else { alpha };
                let g = dyv[i] * gain * slope;
                *v = if accumulate { *v + g } else { g };
            }
        });
        Ok(())
    }

    fn upsample2x_forward(
        &mut self,
        x: &CpuBuf,
        y: &CpuBuf,
        planes: usize,
        h: usize,
        w: usize,
    ) -> BResult<()> {
        if !check::upsample_forward(x.len, y.len, planes, h, w)? {
            return Ok(());
        }
        let xg = rd("upsample2x_forward x", x)?;
        let mut yg = wr("upsample2x_forward y", y)?;
        let xv = &xg[..];
        let n = planes * h * w * 4;
        self.rows(&mut yg[..n], 2 * w, n, |r, out| {
            let (p, i) = (r / (2 * h), r % (2 * h));
            let src = &xv[(p * h + i / 2) * w..(p * h + i / 2 + 1) * w];
            for (j, v) in out.iter_mut().enumerate() {
                *v = src[j / 2];
            }
        });
        Ok(())
    }

    fn upsample2x_backward(
        &mut self,
        dy: &CpuBuf,
        dx: &CpuBuf,
        planes: usize,
        h: usize,
        w: usize,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::upsample_backward(dy.len, dx.len, planes, h, w)? {
            return Ok(());
        }
        let dyg = rd("upsample2x_backward dy", dy)?;
        let mut dxg = wr("upsample2x_backward dx", dx)?;
        let dyv = &dyg[..];
        let n = planes * h * w;
        self.rows(&mut dxg[..n], w, 4 * n, |r, out| {
            let (p, i) = (r / h, r % h);
            let base = (p * 2 * h + 2 * i) * 2 * w;
            let (d0, d1) = (&dyv[base..base + 2 * w], &dyv[base + 2 * w..base + 4 * w]);
            for (j, v) in out.iter_mut().enumerate() {
                let g = d0[2 * j] + d0[2 * j + 1] + d1[2 * j] + d1[2 * j + 1];
                *v = if accumulate { *v + g } else { g };
            }
        });
        Ok(())
    }

    fn gather(
        &mut self,
        x: &CpuBuf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &[u32],
        cols: &[u32],
        y: &CpuBuf,
    ) -> BResult<()> {
        if !check::gather(x.len, planes, h, w, rows, cols, y.len)? {
            return Ok(());
        }
        let xg = rd("gather x", x)?;
        let mut yg = wr("gather y", y)?;
        let xv = &xg[..];
        let (nr, nc) = (rows.len(), cols.len());
        self.rows(
            &mut yg[..planes * nr * nc],
            nc,
            planes * nr * nc,
            |r, out| {
                let (p, rr) = (r / nr, rows[r % nr] as usize);
                let src = &xv[(p * h + rr) * w..(p * h + rr + 1) * w];
                for (v, &c) in out.iter_mut().zip(cols) {
                    *v = src[c as usize];
                }
            },
        );
        Ok(())
    }

    fn gather_bilinear(
        &mut self,
        x: &CpuBuf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &Taps,
        cols: &Taps,
        y: &CpuBuf,
    ) -> BResult<()> {
        if !check::gather_bilinear("gather_bilinear", x.len, planes, h, w, rows, cols, y.len)? {
            return Ok(());
        }
        let xg = rd("gather_bilinear x", x)?;
        let mut yg = wr("gather_bilinear y", y)?;
        let xv = &xg[..];
        let (nr, nc) = (rows.len(), cols.len());
        // Per column: (index, 1 - t, t), computed once.
        let cw: Vec<(usize, f32, f32)> = cols
            .idx
            .iter()
            .zip(&cols.t)
            .map(|(&i, &t)| (i as usize, 1.0 - t, t))
            .collect();
        self.rows(
            &mut yg[..planes * nr * nc],
            nc,
            4 * planes * nr * nc,
            |r, out| {
                let (p, rr) = (r / nr, r % nr);
                let (ir, tr) = (rows.idx[rr] as usize, rows.t[rr]);
                let r0 = &xv[(p * h + ir) * w..(p * h + ir + 1) * w];
                let r1 = &xv[(p * h + ir + 1) * w..(p * h + ir + 2) * w];
                for (v, &(ic, uc, tc)) in out.iter_mut().zip(&cw) {
                    let a = uc * r0[ic] + tc * r0[ic + 1];
                    let b = uc * r1[ic] + tc * r1[ic + 1];
                    *v = (1.0 - tr) * a + tr * b;
                }
            },
        );
        Ok(())
    }

    fn gather_bilinear_backward(
        &mut self,
        dy: &CpuBuf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &Taps,
        cols: &Taps,
        dx: &CpuBuf,
        accumulate: bool,
    ) -> BResult<()> {
        let what = "gather_bilinear_backward";
        if !check::gather_bilinear(what, dx.len, planes, h, w, rows, cols, dy.len)? {
            return Ok(());
        }
        let dyg = rd("gather_bilinear_backward dy", dy)?;
        let mut dxg = wr("gather_bilinear_backward dx", dx)?;
        let dyv = &dyg[..];
        let (nr, nc) = (rows.len(), cols.len());
        let (roff, rout, rwt) = rows.inverse(h);
        let (coff, cout, cwt) = cols.inverse(w);
        // One task per (plane, source row): the rows of dY it feeds, each reduced over columns
        // by the column inverse, summed in output order.
        self.rows(
            &mut dxg[..planes * h * w],
            w,
            8 * planes * nr * nc,
            |r, out| {
                let (p, i) = (r / h, r % h);
                let mut acc = vec![0f32; w];
                for e in roff[i] as usize..roff[i + 1] as usize {
                    let (rr, wr_) = (rout[e] as usize, rwt[e]);
                    let d = &dyv[(p * nr + rr) * nc..(p * nr + rr + 1) * nc];
                    for (j, a) in acc.iter_mut().enumerate() {
                        let mut s = 0f32;
                        for f in coff[j] as usize..coff[j + 1] as usize {
                            s += cwt[f] * d[cout[f] as usize];
                        }
                        *a += wr_ * s;
                    }
                }
                for (v, a) in out.iter_mut().zip(acc) {
                    *v = if accumulate { *v + a } else { a };
                }
            },
        );
        Ok(())
    }

    fn aug_color(
        &mut self,
        s: &AugShape,
        x: &CpuBuf,
        prm: &CpuBuf,
        y: &CpuBuf,
        brightness: bool,
    ) -> BResult<()> {
        let Some(pv) = check::augment(s, "aug_color", x.len, y.len, || {
            Ok(rd("aug_color params", prm)?.clone())
        })?
        else {
            return Ok(());
        };
        let xg = rd("aug_color x", x)?;
        let mut yg = wr("aug_color y", y)?;
        let (np, nc, xv) = (s.pixels(), s.channels, &xg[..]);
        let inv = 1.0 / nc as f32;
        self.rows(&mut yg[..s.len()], nc * np, s.len() * 2, |b, out| {
            let beta = if brightness { pv[b * AUG_PARAMS] } else { 0.0 };
            let sat = pv[b * AUG_PARAMS + 1];
            let xb = &xv[b * nc * np..(b + 1) * nc * np];
            for p in 0..np {
                let mut m = 0.0f32;
                for c in 0..nc {
                    m += xb[c * np + p];
                }
                m *= inv;
                for c in 0..nc {
                    out[c * np + p] = sat * (xb[c * np + p] - m) + m + beta;
                }
            }
        });
        Ok(())
    }

    fn aug_blend(
        &mut self,
        s: &AugShape,
        x: &CpuBuf,
        prm: &CpuBuf,
        mu: &CpuBuf,
        y: &CpuBuf,
    ) -> BResult<()> {
        let Some(pv) = check::augment(s, "aug_blend", x.len, y.len, || {
            Ok(rd("aug_blend params", prm)?.clone())
        })?
        else {
            return Ok(());
        };
        check::need("aug_blend mu", mu.len, s.batch)?;
        let mv = rd("aug_blend mu", mu)?.clone();
        let xg = rd("aug_blend x", x)?;
        let mut yg = wr("aug_blend y", y)?;
        let (n, xv) = (s.per_image(), &xg[..]);
        self.rows(&mut yg[..s.len()], n, s.len(), |b, out| {
            let (k, m) = (pv[b * AUG_PARAMS + 2], mv[b]);
            for (o, &v) in out.iter_mut().zip(&xv[b * n..(b + 1) * n]) {
                *o = k * (v - m) + m;
            }
        });
        Ok(())
    }

    fn aug_shift_forward(
        &mut self,
        s: &AugShape,
        x: &CpuBuf,
        prm: &CpuBuf,
        y: &CpuBuf,
    ) -> BResult<()> {
        let Some(pv) = check::augment(s, "aug_shift_forward", x.len, y.len, || {
            Ok(rd("aug_shift_forward params", prm)?.clone())
        })?
        else {
            return Ok(());
        };
        let xg = rd("aug_shift_forward x", x)?;
        let mut yg = wr("aug_shift_forward y", y)?;
        let (h, w, xv) = (s.height, s.width, &xg[..]);
        self.rows(&mut yg[..s.len()], h * w, s.len(), |plane, out| {
            let a = AugParams::from_f32s(&pv[(plane / s.channels) * AUG_PARAMS..]);
            let src = &xv[plane * h * w..(plane + 1) * h * w];
            for i in 0..h {
                let si = (i as i64 - a.ty as i64).clamp(0, h as i64 - 1) as usize;
                for j in 0..w {
                    let sj = (j as i64 - a.tx as i64).clamp(0, w as i64 - 1) as usize;
                    out[i * w + j] = if a.cut_out(i, j) {
                        0.0
                    } else {
                        src[si * w + sj]
                    };
                }
            }
        });
        Ok(())
    }

    fn aug_shift_backward(
        &mut self,
        s: &AugShape,
        dy: &CpuBuf,
        prm: &CpuBuf,
        dx: &CpuBuf,
    ) -> BResult<()> {
        let Some(pv) = check::augment(s, "aug_shift_backward", dy.len, dx.len, || {
            Ok(rd("aug_shift_backward params", prm)?.clone())
        })?
        else {
            return Ok(());
        };
        let dyg = rd("aug_shift_backward dy", dy)?;
        let mut dxg = wr("aug_shift_backward dx", dx)?;
        let (h, w, dyv) = (s.height, s.width, &dyg[..]);
        self.rows(&mut dxg[..s.len()], h * w, s.len() * 2, |plane, out| {
            let a = AugParams::from_f32s(&pv[(plane / s.channels) * AUG_PARAMS..]);
            let d = &dyv[plane * h * w..(plane + 1) * h * w];
            for i in 0..h {
                let (r0, r1) = r::augment::shift_sources(i, a.ty as i64, h);
                for j in 0..w {
                    let (c0, c1) = r::augment::shift_sources(j, a.tx as i64, w);
                    // As the kernel: rows, each summed over its columns, in increasing order.
                    let mut acc = 0.0f32;
                    for oi in r0..r1 {
                        let mut row = 0.0f32;
                        for oj in c0..c1 {
                            if !a.cut_out(oi, oj) {
                                row += d[oi * w + oj];
                            }
                        }
                        acc += row;
                    }
                    out[i * w + j] = acc;
                }
            }
        });
        Ok(())
    }

    fn pack(&mut self, batch: usize, parts: &[(&CpuBuf, usize)], label: &str) -> BResult<CpuBuf> {
        let total: usize = parts.iter().map(|p| p.1).sum();
        let mut guards = Vec::with_capacity(parts.len());
        for &(b, n) in parts {
            check::need(label, b.len, batch * n)?;
            guards.push((rd(label, b)?, n));
        }
        let y = self.zeros(batch * total, label)?;
        {
            let mut yg = wr(label, &y)?;
            // One pass: each image's row is its parts side by side.
            self.rows(&mut yg[..batch * total], total, batch * total, |b, row| {
                let mut at = 0;
                for (g, n) in &guards {
                    row[at..at + n].copy_from_slice(&g[b * n..(b + 1) * n]);
                    at += n;
                }
            });
        }
        Ok(y)
    }

    fn has_fused(&self) -> bool {
        self.fused
    }

    fn fused_fits(&self, s: &FusedShape) -> bool {
        // Any width: the tile's buffers are sized to the block.
        self.fused && !s.layers.is_empty() && s.c_in > 0 && s.layers.iter().all(|l| l.0 > 0)
    }

    fn fused_level_forward(
        &mut self,
        s: &FusedShape,
        input: FusedInput<'_, CpuBuf>,
        w: &CpuBuf,
        bias: &CpuBuf,
        rgbw: &CpuBuf,
        rgbb: &CpuBuf,
        img: &CpuBuf,
        out: Option<&CpuBuf>,
    ) -> BResult<()> {
        if !check::fused(s, &input, |b: &CpuBuf| b.len, w, bias, rgbw, rgbb, img, out)? {
            return Ok(());
        }
        let (x, asm) = match input {
            FusedInput::Dense(x) => (Some(x), None),
            FusedInput::Assembled { a, feat, geom } => {
                let geo = a.parse(&rd("fused geometry", geom)?).map_err(shape_err)?;
                (feat, Some((a, geo)))
            }
        };
        let xg = match x {
            Some(x) => Some(rd("fused x", x)?),
            None => None,
        };
        let (wg, bg, rwg, rbg) = (
            rd("fused weights", w)?,
            rd("fused bias", bias)?,
            rd("fused rgb weights", rgbw)?,
            rd("fused rgb bias", rgbb)?,
        );
        let mut ig = wr("fused img", img)?;
        let mut og = match out {
            Some(o) => Some(wr("fused out", o)?),
            None => None,
        };
        self.fused_f32(
            s,
            xg.as_deref().map(|v| &v[..]),
            asm.as_ref().map(|(a, g)| (*a, g)),
            &wg,
            &bg,
            &rwg,
            &rbg,
            &mut ig,
            og.as_deref_mut().map(|v| &mut v[..]),
        );
        Ok(())
    }

    fn concat_channels(
        &mut self,
        s: &ConcatShape,
        x1: &CpuBuf,
        x2: &CpuBuf,
        y: &CpuBuf,
    ) -> BResult<()> {
        if !check::concat(s, x1.len, x2.len, y.len)? {
            return Ok(());
        }
        let (g1, g2) = (rd("concat_channels x1", x1)?, rd("concat_channels x2", x2)?);
        let mut yg = wr("concat_channels y", y)?;
        let (v1, v2) = (&g1[..], &g2[..]);
        let (p, c) = (s.pixels, s.channels());
        let n = s.batch * c * p;
        self.rows(&mut yg[..n], p, n, |r, out| {
            let (b, ch) = (r / c, r % c);
            let src = if ch < s.c1 {
                &v1[(b * s.c1 + ch) * p..(b * s.c1 + ch + 1) * p]
            } else {
                let b2 = if s.broadcast { 0 } else { b };
                let c2 = ch - s.c1;
                &v2[(b2 * s.c2 + c2) * p..(b2 * s.c2 + c2 + 1) * p]
            };
            out.copy_from_slice(src);
        });
        Ok(())
    }

    fn slice_channels(
        &mut self,
        s: &SliceShape,
        x: &CpuBuf,
        y: &CpuBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::slice(s, x.len, y.len)? {
            return Ok(());
        }
        let xg = rd("slice_channels x", x)?;
        let mut yg = wr("slice_channels y", y)?;
        let xv = &xg[..];
        let p = s.pixels;
        let n = s.batch * s.len * p;
        self.rows(&mut yg[..n], p, n, |r, out| {
            let (b, ch) = (r / s.len, r % s.len);
            let src = &xv[(b * s.channels + s.c0 + ch) * p..(b * s.channels + s.c0 + ch + 1) * p];
            if accumulate {
                for (v, &a) in out.iter_mut().zip(src) {
                    *v += a;
                }
            } else {
                out.copy_from_slice(src);
            }
        });
        Ok(())
    }

    fn conv2d_forward(
        &mut self,
        s: &ConvShape,
        x: &CpuBuf,
        w: &CpuBuf,
        b: Option<&CpuBuf>,
        y: &CpuBuf,
    ) -> BResult<()> {
        if !check::conv_forward(s, x.len, w.len, b.map(|b| b.len), y.len)? {
            return Ok(());
        }
        let (xg, wg) = (rd("conv2d_forward x", x)?, rd("conv2d_forward w", w)?);
        let bg = rd_opt("conv2d_forward b", b)?;
        let mut yg = wr("conv2d_forward y", y)?;
        self.conv_forward_f32(s, &xg, &wg, bg.as_deref().map(|v| v.as_slice()), &mut yg);
        Ok(())
    }

    fn conv2d_backward_input(
        &mut self,
        s: &ConvShape,
        dy: &CpuBuf,
        w: &CpuBuf,
        dx: &CpuBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::conv_backward_input(s, dy.len, w.len, dx.len)? {
            return Ok(());
        }
        let (dyg, wg) = (
            rd("conv2d_backward_input dy", dy)?,
            rd("conv2d_backward_input w", w)?,
        );
        let mut dxg = wr("conv2d_backward_input dx", dx)?;
        self.conv_backward_input_f32(s, &dyg, &wg, &mut dxg, accumulate);
        Ok(())
    }

    fn conv2d_backward_weight(
        &mut self,
        s: &ConvShape,
        dy: &CpuBuf,
        x: &CpuBuf,
        dw: &CpuBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::conv_backward_weight(s, dy.len, x.len, dw.len)? {
            return Ok(());
        }
        let (dyg, xg) = (
            rd("conv2d_backward_weight dy", dy)?,
            rd("conv2d_backward_weight x", x)?,
        );
        let mut dwg = wr("conv2d_backward_weight dw", dw)?;
        self.conv_backward_weight_f32(s, &dyg, &xg, &mut dwg, accumulate)
    }

    fn blur_down2x_forward(
        &mut self,
        x: &CpuBuf,
        y: &CpuBuf,
        planes: usize,
        h: usize,
        w: usize,
    ) -> BResult<()> {
        if !check::blur_forward(x.len, y.len, planes, h, w)? {
            return Ok(());
        }
        let xg = rd("blur_down2x_forward x", x)?;
        let mut yg = wr("blur_down2x_forward y", y)?;
        let xv = &xg[..];
        let (ho, wo) = (blur_down2x_out(h), blur_down2x_out(w));
        let f = BLUR_TAPS.map(|v| v as f32);
        // Separable, one plane per task: rows first (t = the horizontal pass at every input
        // row), then columns.
        self.rows(
            &mut yg[..planes * ho * wo],
            ho * wo,
            planes * ho * wo * 16,
            |p, out| {
                let plane = &xv[p * h * w..(p + 1) * h * w];
                let mut t = vec![0f32; h * wo];
                for (src, trow) in plane.chunks_exact(w).zip(t.chunks_exact_mut(wo)) {
                    for (j, v) in trow.iter_mut().enumerate() {
                        let mut acc = 0f32;
                        for (bb, &fb) in f.iter().enumerate() {
                            let ix = (2 * j + bb).wrapping_sub(1);
                            if ix < w {
                                acc += fb * src[ix];
                            }
                        }
                        *v = acc;
                    }
                }
                for (i, orow) in out.chunks_exact_mut(wo).enumerate() {
                    orow.fill(0.0);
                    for (a, &fa) in f.iter().enumerate() {
                        let iy = (2 * i + a).wrapping_sub(1);
                        if iy < h {
                            for (o, &tv) in orow.iter_mut().zip(&t[iy * wo..(iy + 1) * wo]) {
                                *o += fa * tv;
                            }
                        }
                    }
                }
            },
        );
        Ok(())
    }

    fn blur_down2x_backward(
        &mut self,
        dy: &CpuBuf,
        dx: &CpuBuf,
        planes: usize,
        h: usize,
        w: usize,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::blur_backward(dy.len, dx.len, planes, h, w)? {
            return Ok(());
        }
        let dyg = rd("blur_down2x_backward dy", dy)?;
        let mut dxg = wr("blur_down2x_backward dx", dx)?;
        let dyv = &dyg[..];
        let (ho, wo) = (blur_down2x_out(h), blur_down2x_out(w));
        let f = BLUR_TAPS.map(|v| v as f32);
        // The transpose of the forward's two passes, one plane per task: output row i spreads
        // into input rows 2i - 1 ..= 2i + 2 (u), then each column j into columns 2j - 1 ..= 2j + 2.
        self.rows(
            &mut dxg[..planes * h * w],
            h * w,
            planes * h * w * 16,
            |p, out| {
                let g = &dyv[p * ho * wo..(p + 1) * ho * wo];
                let mut u = vec![0f32; h * wo];
                for (i, grow) in g.chunks_exact(wo).enumerate() {
                    for (a, &fa) in f.iter().enumerate() {
                        let iy = (2 * i + a).wrapping_sub(1);
                        if iy < h {
                            for (o, &gv) in u[iy * wo..(iy + 1) * wo].iter_mut().zip(grow) {
                                *o += fa * gv;
                            }
                        }
                    }
                }
                for (urow, orow) in u.chunks_exact(wo).zip(out.chunks_exact_mut(w)) {
                    if !accumulate {
                        orow.fill(0.0);
                    }
                    for (j, &uv) in urow.iter().enumerate() {
                        for (bb, &fb) in f.iter().enumerate() {
                            let ix = (2 * j + bb).wrapping_sub(1);
                            if ix < w {
                                orow[ix] += fb * uv;
                            }
                        }
                    }
                }
            },
        );
        Ok(())
    }

    fn mbstd_forward(
        &mut self,
        s: &MbstdShape,
        x: &CpuBuf,
        stat: &CpuBuf,
        y: &CpuBuf,
    ) -> BResult<()> {
        if !check::mbstd_forward(s, x.len, stat.len, y.len)? {
            return Ok(());
        }
        let xg = rd("mbstd_forward x", x)?;
        let (mut sg, mut yg) = (
            wr("mbstd_forward stat_scratch", stat)?,
            wr("mbstd_forward y", y)?,
        );
        let xv = &xg[..];
        let (np, cpf, nf, mm) = (
            s.pixels(),
            s.channels_per_stat(),
            s.num_channels,
            s.groups(),
        );
        let inv_count = (1.0 / (cpf * np) as f64) as f32;
        let work = s.x_len() * 4;
        self.rows(&mut sg[..s.stat_len()], 1, work, |mf, out| {
            let (m, f) = (mf / nf, mf % nf);
            let mut acc = 0f32;
            for cc in 0..cpf {
                for q in 0..np {
                    acc += mbstd_moments(s, xv, m, f * cpf + cc, q).1;
                }
            }
            out[0] = acc * inv_count;
        });
        let sv = &sg[..];
        let cy = s.channels + nf;
        self.rows(&mut yg[..s.y_len()], np, s.y_len(), |r, out| {
            let (n, ch) = (r / cy, r % cy);
            if ch < s.channels {
                out.copy_from_slice(
                    &xv[(n * s.channels + ch) * np..(n * s.channels + ch + 1) * np],
                );
            } else {
                out.fill(sv[(n % mm) * nf + ch - s.channels]);
            }
        });
        Ok(())
    }

    fn mbstd_backward(
        &mut self,
        s: &MbstdShape,
        x: &CpuBuf,
        dy: &CpuBuf,
        dstat: &CpuBuf,
        dx: &CpuBuf,
    ) -> BResult<()> {
        if !check::mbstd_backward(s, x.len, dy.len, dstat.len, dx.len)? {
            return Ok(());
        }
        let (xg, dyg) = (rd("mbstd_backward x", x)?, rd("mbstd_backward dy", dy)?);
        let (mut dsg, mut dxg) = (
            wr("mbstd_backward dstat_scratch", dstat)?,
            wr("mbstd_backward dx", dx)?,
        );
        let (xv, dyv) = (&xg[..], &dyg[..]);
        let (np, cpf, nf, mm) = (
            s.pixels(),
            s.channels_per_stat(),
            s.num_channels,
            s.groups(),
        );
        let cy = s.channels + nf;
        self.rows(&mut dsg[..s.stat_len()], 1, s.y_len(), |mf, out| {
            let (m, f) = (mf / nf, mf % nf);
            let mut acc = 0f32;
            for g in 0..s.group {
                let o = ((g * mm + m) * cy + s.channels + f) * np;
                acc += sum8(&dyv[o..o + np]);
            }
            out[0] = acc;
        });
        let dsv = &dsg[..];
        let inv_denom = (1.0 / (s.group * cpf * np) as f64) as f32;
        self.rows(&mut dxg[..s.x_len()], np, s.x_len() * 4, |r, out| {
            let (n, ch) = (r / s.channels, r % s.channels);
            let m = n % mm;
            let ds = dsv[m * nf + ch / cpf];
            let (xr, dyr) = (&xv[r * np..(r + 1) * np], &dyv[(n * cy + ch) * np..]);
            for (q, v) in out.iter_mut().enumerate() {
                let (mu, sd) = mbstd_moments(s, xv, m, ch, q);
                *v = dyr[q] + ds * (xr[q] - mu) * inv_denom / sd;
            }
        });
        Ok(())
    }

    fn mbstd_jvp(
        &mut self,
        s: &MbstdShape,
        x: &CpuBuf,
        xdot: &CpuBuf,
        stat: &CpuBuf,
        ydot: &CpuBuf,
    ) -> BResult<()> {
        if !check::mbstd_forward(s, x.len, stat.len, ydot.len)? {
            return Ok(());
        }
        check::need("mbstd_jvp xdot", xdot.len, s.x_len())?;
        let (xg, xdg) = (rd("mbstd_jvp x", x)?, rd("mbstd_jvp xdot", xdot)?);
        let out = r::mbstd::mbstd_jvp(s, &xg[..s.x_len()], &xdg[..s.x_len()]);
        drop((xg, xdg));
        let mut yg = wr("mbstd_jvp ydot", ydot)?;
        yg[..out.len()].copy_from_slice(&out);
        Ok(())
    }

    fn mbstd_backward_jvp(
        &mut self,
        s: &MbstdShape,
        x: &CpuBuf,
        xdot: &CpuBuf,
        dy: &CpuBuf,
        dstat: &CpuBuf,
        dxdot: &CpuBuf,
    ) -> BResult<()> {
        if !check::mbstd_backward(s, x.len, dy.len, dstat.len, dxdot.len)? {
            return Ok(());
        }
        check::need("mbstd_backward_jvp xdot", xdot.len, s.x_len())?;
        let (xg, xdg, dyg) = (
            rd("mbstd_backward_jvp x", x)?,
            rd("mbstd_backward_jvp xdot", xdot)?,
            rd("mbstd_backward_jvp dy", dy)?,
        );
        let out =
            r::mbstd::mbstd_backward_jvp(s, &xg[..s.x_len()], &xdg[..s.x_len()], &dyg[..s.y_len()]);
        drop((xg, xdg, dyg));
        let mut og = wr("mbstd_backward_jvp dxdot", dxdot)?;
        og[..out.len()].copy_from_slice(&out);
        Ok(())
    }

    fn sum_axes(
        &mut self,
        x: &CpuBuf,
        y: &CpuBuf,
        outer: usize,
        mid: usize,
        inner: usize,
        scale: f32,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::sum_axes(x.len, y.len, outer, mid, inner)? {
            return Ok(());
        }
        let xg = rd("sum_axes x", x)?;
        let mut yg = wr("sum_axes y", y)?;
        let xv = &xg[..];
        self.rows(&mut yg[..mid], 1, outer * mid * inner, |m, out| {
            let mut acc = 0f32;
            for a in 0..outer {
                let o = (a * mid + m) * inner;
                acc += sum8(&xv[o..o + inner]);
            }
            let v = scale * acc;
            out[0] = if accumulate { v + out[0] } else { v };
        });
        Ok(())
    }

    fn row_norm(&mut self, x: &CpuBuf, y: &CpuBuf, rows: usize, cols: usize) -> BResult<()> {
        if !check::row_norm(x.len, y.len, rows, cols)? {
            return Ok(());
        }
        let xg = rd("row_norm x", x)?;
        let mut yg = wr("row_norm y", y)?;
        let xv = &xg[..];
        self.rows(&mut yg[..rows], 1, rows * cols, |r, out| {
            let row = &xv[r * cols..(r + 1) * cols];
            out[0] = dot8(row, row).sqrt();
        });
        Ok(())
    }

    fn softplus_forward(&mut self, x: &CpuBuf, y: &CpuBuf, n: usize, sign: f32) -> BResult<()> {
        if !check::elementwise("softplus_forward", x.len, y.len, n)? {
            return Ok(());
        }
        let xg = rd("softplus_forward x", x)?;
        let mut yg = wr("softplus_forward y", y)?;
        let xv = &xg[..];
        self.chunks(&mut yg[..n], |start, out| {
            for (j, v) in out.iter_mut().enumerate() {
                *v = r::reduce::softplus(sign * xv[start + j]);
            }
        });
        Ok(())
    }

    fn softplus_backward(&mut self, x: &CpuBuf, dy: &CpuBuf, n: usize, sign: f32) -> BResult<()> {
        if !check::elementwise("softplus_backward", x.len, dy.len, n)? {
            return Ok(());
        }
        let xg = rd("softplus_backward x", x)?;
        let mut dyg = wr("softplus_backward dy", dy)?;
        let xv = &xg[..];
        self.chunks(&mut dyg[..n], |start, out| {
            for (j, v) in out.iter_mut().enumerate() {
                let z = sign * xv[start + j];
                let sig = 1.0 / (1.0 + (-z).exp());
                *v = *v * sign * sig;
            }
        });
        Ok(())
    }

    fn axpby(&mut self, a: f32, x: &CpuBuf, b: f32, y: &CpuBuf, n: usize) -> BResult<()> {
        if !check::elementwise("axpby", x.len, y.len, n)? {
            return Ok(());
        }
        let xg = rd("axpby x", x)?;
        let mut yg = wr("axpby y", y)?;
        let xv = &xg[..];
        self.chunks(&mut yg[..n], |start, out| {
            for (j, v) in out.iter_mut().enumerate() {
                *v = a * xv[start + j] + b * *v;
            }
        });
        Ok(())
    }

    fn count_nonfinite(&mut self, x: &CpuBuf, n: usize) -> BResult<u32> {
        check::need("count_nonfinite x", x.len, n)?;
        let xg = rd("count_nonfinite x", x)?;
        let xv = &xg[..n];
        let count = |c: &[f32]| c.iter().filter(|v| !v.is_finite()).count();
        let total = if n < PAR_WORK || self.threads == 1 {
            count(xv)
        } else {
            self.pool
                .install(|| xv.par_chunks(CHUNK).map(count).sum::<usize>())
        };
        Ok(total.min(u32::MAX as usize) as u32)
    }

    fn adam_step(
        &mut self,
        cfg: &AdamConfig,
        t: u64,
        p: &CpuBuf,
        g: &CpuBuf,
        m: &CpuBuf,
        v: &CpuBuf,
        n: usize,
    ) -> BResult<()> {
        if !check::adam(t, p.len, g.len, m.len, v.len, n)? {
            return Ok(());
        }
        let gg = rd("adam_step grad", g)?;
        let (mut pg, mut mg, mut vg) = (
            wr("adam_step param", p)?,
            wr("adam_step m", m)?,
            wr("adam_step v", v)?,
        );
        let gv = &gg[..n];
        let tasks: Vec<_> = pg[..n]
            .chunks_mut(CHUNK)
            .zip(mg[..n].chunks_mut(CHUNK))
            .zip(vg[..n].chunks_mut(CHUNK))
            .enumerate()
            .collect();
        self.tasks(
            tasks,
            n,
            || (),
            |_, (i, ((pc, mc), vc))| {
                let start = i * CHUNK;
                r::adam::adam_step(cfg, t, pc, &gv[start..start + pc.len()], mc, vc);
            },
        );
        Ok(())
    }

    fn ema_update(&mut self, p: &CpuBuf, e: &CpuBuf, beta: f64, n: usize) -> BResult<()> {
        if !check::ema(p.len, e.len, n)? {
            return Ok(());
        }
        let pg = rd("ema_update param", p)?;
        let mut eg = wr("ema_update ema", e)?;
        let pv = &pg[..n];
        self.chunks(&mut eg[..n], |start, out| {
            r::adam::ema_update(&pv[start..start + out.len()], out, beta);
        });
        Ok(())
    }

    fn to_rgba8(&mut self, x: &CpuBuf, batch: usize, pixels: usize) -> BResult<Vec<u32>> {
        if !check::to_rgba8(x.len, batch, pixels)? {
            return Ok(Vec::new());
        }
        let xg = rd("to_rgba8 x", x)?;
        let xv = &xg[..];
        let mut out = alloc_zeros::<u32>(batch * pixels, "rgba8")?;
        self.chunks(&mut out, |start, o| {
            for (j, v) in o.iter_mut().enumerate() {
                let (b, q) = ((start + j) / pixels, (start + j) % pixels);
                let base = b * 3 * pixels + q;
                *v = r::image::pack_rgba(
                    r::image::quantize(xv[base]),
                    r::image::quantize(xv[base + pixels]),
                    r::image::quantize(xv[base + 2 * pixels]),
                    255,
                );
            }
        });
        Ok(out)
    }
}
