//! Argument checks of every operation, on buffer lengths (shared by the host backends): the
//! same checks, in the same order, as the GPU kernels' wrappers. Each returns `Ok(false)` when
//! there is nothing to do.

use super::BResult;
use super::cpu::shape_err;
use crate::reference::act::ActShape;
use crate::reference::augment::AugShape;
use crate::reference::conv::{ConvShape, blur_down2x_out};
use crate::reference::coords::CoordsShape;
use crate::reference::fmm::FmmShape;
use crate::reference::fused::{FusedInput, FusedShape};
use crate::reference::linear::{BiasMode, Gemm};
use crate::reference::mbstd::MbstdShape;
use crate::reference::modulate::ModulateShape;
use crate::reference::resample::{ConcatShape, SliceShape, Taps};

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
pub fn upsample_forward(x: usize, y: usize, planes: usize, h: usize, w: usize) -> BResult<bool> {
    let n = planes * h * w * 4;
    if n == 0 {
        return Ok(false);
    }
    need("upsample2x_forward x", x, planes * h * w)?;
    need("upsample2x_forward y", y, n)?;
    Ok(true)
}

/// [`Backend::upsample2x_backward`].
pub fn upsample_backward(dy: usize, dx: usize, planes: usize, h: usize, w: usize) -> BResult<bool> {
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
