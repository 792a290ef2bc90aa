//! `shaders/resample.wgsl`: nearest 2x upsampling (and its backward), gathers at arbitrary
//! pixels through u32 index tables, bilinear sampling by separable taps (and its transpose),
//! channel concatenation and slicing.
//!
//! The gradient of a broadcast concat input (`X2 [1, C2, P]` shared by the batch) is the
//! [`slice_channels`] of `dY` (shape `[B, C2, P]`) summed over the batch, e.g.
//! `crate::kernels::reduce::sum_axes(rec, &slice, &dx2, batch, c2 * pixels, 1, 1.0, acc)`.

use bytemuck::{Pod, Zeroable};

use super::{WG, need, u32_of};
use crate::gpu::{GpuBuffer, GpuContext, GpuError, GpuResult, Kernel, Recorder, Shader, groups_1d};
pub use crate::reference::resample::{ConcatShape, SliceShape, Taps};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
struct Params {
    n: u32,
    planes: u32,
    h: u32,
    w: u32,
    ho: u32,
    wo: u32,
    pixels: u32,
    c1: u32,
    c2: u32,
    c0: u32,
    broadcast: u32,
    accumulate: u32,
}

fn k(entry: &'static str) -> Kernel {
    Kernel::new(Shader::Resample, entry)
}

/// `Y[bc, i, j] = X[bc, i / 2, j / 2]`: `x` `[planes, h, w]` to `y` `[planes, 2h, 2w]`.
pub fn upsample2x_forward(
    rec: &mut Recorder,
    x: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
    planes: usize,
    h: usize,
    w: usize,
) -> GpuResult<()> {
    let n = planes * h * w * 4;
    if n == 0 {
        return Ok(());
    }
    need("upsample2x_forward x", x, planes * h * w)?;
    need("upsample2x_forward y", y, n)?;
    let p = Params {
        n: u32_of("upsample2x outputs", n)?,
        planes: u32_of("planes", planes)?,
        h: u32_of("h", h)?,
        w: u32_of("w", w)?,
        ..Default::default()
    };
    rec.dispatch(
        k("upsample2x_forward"),
        &p,
        &[Some(x.raw()), Some(y.raw())],
        groups_1d(n, WG),
    )
}

/// `dX[bc, i, j] (+)= sum` of the 2x2 block `dY[bc, 2i..2i+2, 2j..2j+2]`.
pub fn upsample2x_backward(
    rec: &mut Recorder,
    dy: &GpuBuffer<f32>,
    dx: &GpuBuffer<f32>,
    planes: usize,
    h: usize,
    w: usize,
    accumulate: bool,
) -> GpuResult<()> {
    let n = planes * h * w;
    if n == 0 {
        return Ok(());
    }
    need("upsample2x_backward dy", dy, 4 * n)?;
    need("upsample2x_backward dx", dx, n)?;
    u32_of("upsample2x_backward dy values", 4 * n)?;
    let p = Params {
        n: u32_of("upsample2x_backward outputs", n)?,
        planes: u32_of("planes", planes)?,
        h: u32_of("h", h)?,
        w: u32_of("w", w)?,
        accumulate: accumulate as u32,
        ..Default::default()
    };
    rec.dispatch(
        k("upsample2x_backward"),
        &p,
        &[Some(dy.raw()), Some(dx.raw())],
        groups_1d(n, WG),
    )
}

/// Row and column index tables of [`gather`] on the device, with their largest entries (known
/// on the host, so that [`gather`] can check them against the input's size without a readback).
pub struct GatherTables {
    rows: GpuBuffer<u32>,
    cols: GpuBuffer<u32>,
    n_rows: usize,
    n_cols: usize,
    row_max: u32,
    col_max: u32,
}

impl GatherTables {
    /// Uploads `rows` (source row of each output row) and `cols` (source column of each output
    /// column).
    pub fn new(ctx: &GpuContext, rows: &[u32], cols: &[u32]) -> GpuResult<Self> {
        Ok(Self {
            rows: GpuBuffer::from_slice(ctx, rows, "gather rows")?,
            cols: GpuBuffer::from_slice(ctx, cols, "gather cols")?,
            n_rows: rows.len(),
            n_cols: cols.len(),
            row_max: rows.iter().copied().max().unwrap_or(0),
            col_max: cols.iter().copied().max().unwrap_or(0),
        })
    }

    /// Replaces the tables' contents (same lengths as at creation).
    pub fn write(&mut self, ctx: &GpuContext, rows: &[u32], cols: &[u32]) -> GpuResult<()> {
        if rows.len() != self.n_rows || cols.len() != self.n_cols {
            return Err(GpuError::Shape(format!(
                "gather tables: writing {}x{} entries into tables of {}x{}",
                rows.len(),
                cols.len(),
                self.n_rows,
                self.n_cols
            )));
        }
        self.rows.write(ctx, rows)?;
        self.cols.write(ctx, cols)?;
        self.row_max = rows.iter().copied().max().unwrap_or(0);
        self.col_max = cols.iter().copied().max().unwrap_or(0);
        Ok(())
    }

    /// Output rows `Ho`.
    pub fn rows(&self) -> usize {
        self.n_rows
    }

    /// Output columns `Wo`.
    pub fn cols(&self) -> usize {
        self.n_cols
    }
}

/// `Y[bc, r, c] = X[bc, rows[r], cols[c]]` for `x` `[planes, h, w]`, `y` `[planes, Ho, Wo]`;
/// fails if a table entry lies outside `x`.
pub fn gather(
    rec: &mut Recorder,
    x: &GpuBuffer<f32>,
    planes: usize,
    h: usize,
    w: usize,
    t: &GatherTables,
    y: &GpuBuffer<f32>,
) -> GpuResult<()> {
    let n = planes * t.n_rows * t.n_cols;
    if n == 0 {
        return Ok(());
    }
    if t.row_max as usize >= h || t.col_max as usize >= w {
        return Err(GpuError::Shape(format!(
            "gather: tables reach row {} and column {} but the input is {h}x{w}",
            t.row_max, t.col_max
        )));
    }
    need("gather x", x, planes * h * w)?;
    need("gather y", y, n)?;
    u32_of("gather x values", planes * h * w)?;
    let p = Params {
        n: u32_of("gather outputs", n)?,
        planes: u32_of("planes", planes)?,
        h: u32_of("h", h)?,
        w: u32_of("w", w)?,
        ho: u32_of("rows", t.n_rows)?,
        wo: u32_of("cols", t.n_cols)?,
        ..Default::default()
    };
    rec.dispatch(
        k("gather"),
        &p,
        &[
            Some(x.raw()),
            Some(t.rows.raw()),
            Some(t.cols.raw()),
            Some(y.raw()),
        ],
        groups_1d(n, WG),
    )
}

/// The tap tables of [`gather_bilinear`] on the device: `[row index | column index]` and
/// `[row t | column t]`, checked against the input's size on the host.
pub struct BilinearTables {
    idx: GpuBuffer<u32>,
    t: GpuBuffer<f32>,
    n_rows: usize,
    n_cols: usize,
    h: usize,
    w: usize,
}

impl BilinearTables {
    /// Uploads the taps for an input of `h x w` (fails if a tap reaches past it).
    pub fn new(ctx: &GpuContext, h: usize, w: usize, rows: &Taps, cols: &Taps) -> GpuResult<Self> {
        rows.check(h, "rows").map_err(GpuError::Shape)?;
        cols.check(w, "columns").map_err(GpuError::Shape)?;
        let idx: Vec<u32> = rows.idx.iter().chain(&cols.idx).copied().collect();
        let t: Vec<f32> = rows.t.iter().chain(&cols.t).copied().collect();
        Ok(Self {
            idx: GpuBuffer::from_slice(ctx, &pad1(idx), "bilinear taps")?,
            t: GpuBuffer::from_slice(ctx, &pad1(t), "bilinear weights")?,
            n_rows: rows.len(),
            n_cols: cols.len(),
            h,
            w,
        })
    }
}

/// The inverse tables of [`gather_bilinear_backward`] (`Taps::inverse` of both axes).
pub struct BilinearInverse {
    idx: GpuBuffer<u32>,
    t: GpuBuffer<f32>,
    n_rows: usize,
    n_cols: usize,
    h: usize,
    w: usize,
}

impl BilinearInverse {
    /// Uploads the transposes of the taps for a source of `h x w`.
    pub fn new(ctx: &GpuContext, h: usize, w: usize, rows: &Taps, cols: &Taps) -> GpuResult<Self> {
        rows.check(h, "rows").map_err(GpuError::Shape)?;
        cols.check(w, "columns").map_err(GpuError::Shape)?;
        let (ro, rr, rw) = rows.inverse(h);
        let (co, cc, cw) = cols.inverse(w);
        let idx: Vec<u32> = ro.into_iter().chain(rr).chain(co).chain(cc).collect();
        let t: Vec<f32> = rw.into_iter().chain(cw).collect();
        Ok(Self {
            idx: GpuBuffer::from_slice(ctx, &pad1(idx), "bilinear inverse taps")?,
            t: GpuBuffer::from_slice(ctx, &pad1(t), "bilinear inverse weights")?,
            n_rows: rows.len(),
            n_cols: cols.len(),
            h,
            w,
        })
    }
}

/// A buffer may not be empty: one spare value.
fn pad1<T: Default>(mut v: Vec<T>) -> Vec<T> {
    v.push(T::default());
    v
}

/// Bilinear sampling by separable taps (`reference::resample::gather_bilinear`): `x`
/// `[planes, h, w]` to `y` `[planes, Ho, Wo]`.
pub fn gather_bilinear(
    rec: &mut Recorder,
    x: &GpuBuffer<f32>,
    planes: usize,
    t: &BilinearTables,
    y: &GpuBuffer<f32>,
) -> GpuResult<()> {
    let (h, w) = (t.h, t.w);
    let n = planes * t.n_rows * t.n_cols;
    if n == 0 || planes * h * w == 0 {
        return Ok(());
    }
    need("gather_bilinear x", x, planes * h * w)?;
    need("gather_bilinear y", y, n)?;
    u32_of("gather_bilinear x values", planes * h * w)?;
    let p = Params {
        n: u32_of("gather_bilinear outputs", n)?,
        planes: u32_of("planes", planes)?,
        h: u32_of("h", h)?,
        w: u32_of("w", w)?,
        ho: u32_of("rows", t.n_rows)?,
        wo: u32_of("cols", t.n_cols)?,
        ..Default::default()
    };
    rec.dispatch(
        k("gather_bilinear"),
        &p,
        &[
            Some(x.raw()),
            Some(t.idx.raw()),
            Some(t.t.raw()),
            Some(y.raw()),
        ],
        groups_1d(n, WG),
    )
}

/// The transpose of [`gather_bilinear`]: `dy` `[planes, Ho, Wo]` into `dx` `[planes, h, w]`
/// (added when `accumulate`), in a fixed order.
pub fn gather_bilinear_backward(
    rec: &mut Recorder,
    dy: &GpuBuffer<f32>,
    planes: usize,
    t: &BilinearInverse,
    dx: &GpuBuffer<f32>,
    accumulate: bool,
) -> GpuResult<()> {
    let (h, w) = (t.h, t.w);
    let n = planes * h * w;
    if n == 0 || planes * t.n_rows * t.n_cols == 0 {
        return Ok(());
    }
    need(
        "gather_bilinear_backward dy",
        dy,
        planes * t.n_rows * t.n_cols,
    )?;
    need("gather_bilinear_backward dx", dx, n)?;
    u32_of(
        "gather_bilinear_backward dy values",
        planes * t.n_rows * t.n_cols,
    )?;
    let p = Params {
        n: u32_of("gather_bilinear_backward outputs", n)?,
        planes: u32_of("planes", planes)?,
        h: u32_of("h", h)?,
        w: u32_of("w", w)?,
        ho: u32_of("rows", t.n_rows)?,
        wo: u32_of("cols", t.n_cols)?,
        accumulate: accumulate as u32,
        ..Default::default()
    };
    rec.dispatch(
        k("gather_bilinear_backward"),
        &p,
        &[
            Some(dy.raw()),
            Some(t.idx.raw()),
            Some(t.t.raw()),
            Some(dx.raw()),
        ],
        groups_1d(n, WG),
    )
}

/// `Y [B, C1 + C2, P] = [X1; X2]` along channels (`X2 [1, C2, P]` for every image if `broadcast`).
pub fn concat_channels(
    rec: &mut Recorder,
    s: &ConcatShape,
    x1: &GpuBuffer<f32>,
    x2: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
) -> GpuResult<()> {
    let n = s.batch * s.channels() * s.pixels;
    if n == 0 {
        return Ok(());
    }
    need("concat_channels x1", x1, s.batch * s.c1 * s.pixels)?;
    let b2 = if s.broadcast { 1 } else { s.batch };
    need("concat_channels x2", x2, b2 * s.c2 * s.pixels)?;
    need("concat_channels y", y, n)?;
    let p = Params {
        n: u32_of("concat outputs", n)?,
        planes: u32_of("batch", s.batch)?,
        pixels: u32_of("pixels", s.pixels)?,
        c1: u32_of("c1", s.c1)?,
        c2: u32_of("c2", s.c2)?,
        broadcast: s.broadcast as u32,
        ..Default::default()
    };
    rec.dispatch(
        k("concat_channels"),
        &p,
        &[Some(x1.raw()), Some(x2.raw()), Some(y.raw())],
        groups_1d(n, WG),
    )
}

/// `Y[b, c] (+)= X[b, c0 + c]` for `c < len`: the backward of [`concat_channels`] (with
/// `s = concat.first()` / `concat.second()`; sum over the batch for a broadcast input).
pub fn slice_channels(
    rec: &mut Recorder,
    s: &SliceShape,
    x: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
    accumulate: bool,
) -> GpuResult<()> {
    let n = s.batch * s.len * s.pixels;
    if n == 0 {
        return Ok(());
    }
    if s.c0 + s.len > s.channels {
        return Err(GpuError::Shape(format!(
            "slice_channels: channels {}..{} of {}",
            s.c0,
            s.c0 + s.len,
            s.channels
        )));
    }
    need("slice_channels x", x, s.batch * s.channels * s.pixels)?;
    need("slice_channels y", y, n)?;
    u32_of("slice_channels x values", s.batch * s.channels * s.pixels)?;
    let p = Params {
        n: u32_of("slice outputs", n)?,
        planes: u32_of("batch", s.batch)?,
        pixels: u32_of("pixels", s.pixels)?,
        c1: u32_of("channels", s.channels)?,
        c2: u32_of("len", s.len)?,
        c0: u32_of("c0", s.c0)?,
        accumulate: accumulate as u32,
        ..Default::default()
    };
    rec.dispatch(
        k("slice_channels"),
        &p,
        &[Some(x.raw()), Some(y.raw())],
        groups_1d(n, WG),
    )
}
