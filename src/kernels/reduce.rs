//! `shaders/reduce.wgsl`: sums over axes, row norms, softplus, axpby, non-finite counts.

use bytemuck::{Pod, Zeroable};

use super::{WG, need, u32_of};
use crate::gpu::{GpuBuffer, GpuResult, Kernel, Recorder, Shader, groups_1d};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
struct Params {
    n: u32,
    outer: u32,
    inner: u32,
    accumulate: u32,
    scale: f32,
    beta: f32,
    _pad: [f32; 2],
}

fn k(entry: &'static str) -> Kernel {
    Kernel::new(Shader::Reduce, entry)
}

/// `y[m] = scale * sum_{a, i} x[a, m, i]` for `x` viewed as `[outer, mid, inner]`.
#[allow(clippy::too_many_arguments)]
pub fn sum_axes(
    rec: &mut Recorder,
    x: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
    outer: usize,
    mid: usize,
    inner: usize,
    scale: f32,
    accumulate: bool,
) -> GpuResult<()> {
    if mid == 0 {
        return Ok(());
    }
    need("sum_axes x", x, outer * mid * inner)?;
    need("sum_axes y", y, mid)?;
    let p = Params {
        n: u32_of("mid", mid)?,
        outer: u32_of("outer", outer)?,
        inner: u32_of("inner", inner)?,
        accumulate: accumulate as u32,
        scale,
        ..Default::default()
    };
    rec.dispatch(
        k("sum_axes"),
        &p,
        &[Some(x.raw()), Some(y.raw())],
        groups_1d(mid, 1),
    )
}

/// `y[r] = |x[r, :]|_2` for `x` viewed as `[rows, cols]`.
pub fn row_norm(
    rec: &mut Recorder,
    x: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
    rows: usize,
    cols: usize,
) -> GpuResult<()> {
    if rows == 0 {
        return Ok(());
    }
    need("row_norm x", x, rows * cols)?;
    need("row_norm y", y, rows)?;
    let p = Params {
        outer: u32_of("rows", rows)?,
        inner: u32_of("cols", cols)?,
        ..Default::default()
    };
    rec.dispatch(
        k("row_norm"),
        &p,
        &[Some(x.raw()), Some(y.raw())],
        groups_1d(rows, 1),
    )
}

fn elementwise(
    rec: &mut Recorder,
    entry: &'static str,
    n: usize,
    scale: f32,
    beta: f32,
    x: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
) -> GpuResult<()> {
    need(entry, x, n)?;
    need(entry, y, n)?;
    let p = Params {
        n: u32_of("n", n)?,
        scale,
        beta,
        ..Default::default()
    };
    rec.dispatch(
        k(entry),
        &p,
        &[Some(x.raw()), Some(y.raw())],
        groups_1d(n, WG),
    )
}

/// `y = softplus(sign * x)` over `n` values.
pub fn softplus_forward(
    rec: &mut Recorder,
    x: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
    n: usize,
    sign: f32,
) -> GpuResult<()> {
    elementwise(rec, "softplus_forward", n, sign, 0.0, x, y)
}

/// In place: `dy <- dy * sign * sigmoid(sign * x)` (the gradient of [`softplus_forward`]).
pub fn softplus_backward(
    rec: &mut Recorder,
    x: &GpuBuffer<f32>,
    dy: &GpuBuffer<f32>,
    n: usize,
    sign: f32,
) -> GpuResult<()> {
    elementwise(rec, "softplus_backward", n, sign, 0.0, x, dy)
}

/// `y = a * x + b * y` over `n` values.
pub fn axpby(
    rec: &mut Recorder,
    a: f32,
    x: &GpuBuffer<f32>,
    b: f32,
    y: &GpuBuffer<f32>,
    n: usize,
) -> GpuResult<()> {
    elementwise(rec, "axpby", n, a, b, x, y)
}

/// `count += number of NaN or infinite values in x[..n]` (`count` is one `u32`).
pub fn count_nonfinite(
    rec: &mut Recorder,
    x: &GpuBuffer<f32>,
    n: usize,
    count: &GpuBuffer<u32>,
) -> GpuResult<()> {
    need("count_nonfinite x", x, n)?;
    need("count_nonfinite count", count, 1)?;
    let p = Params {
        n: u32_of("n", n)?,
        ..Default::default()
    };
    rec.dispatch(
        k("count_nonfinite"),
        &p,
        &[Some(x.raw()), Some(count.raw())],
        groups_1d(n, WG),
    )
}
