//! `shaders/linear.wgsl`: the strided batched matrix product behind the dense and the per-pixel
//! modulated linear layers, forward and backward.

use bytemuck::{Pod, Zeroable};

use super::{need, reduce, u32_of};
use crate::gpu::{GpuBuffer, GpuError, GpuResult, Kernel, Recorder, Shader};
pub use crate::reference::linear::{BiasMode, Gemm, LinearShape, ModLinearShape, Strides};

const GEMM: Kernel = Kernel::new(Shader::Linear, "gemm");
const GEMM_SKINNY: Kernel = Kernel::new(Shader::Linear, "gemm_skinny");
/// `gemm_skinny` takes products with fewer columns than this (and a k sum long enough to split
/// across a workgroup's 64 lanes): at one column `gemm` idles 255 of each tile's 256 lanes
/// (the hypernetwork's affine heads on lavapipe: 0.02 GFLOP/s).
const SKINNY_N: usize = 32;
const SKINNY_MIN_K: usize = 32;
/// Rows and columns of C per workgroup (`TM` and `WG * TN` in the shader).
const TILE_M: usize = 4;
const TILE_N: usize = 256;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
struct Params {
    m: u32,
    n: u32,
    k: u32,
    batch: u32,
    a_b: u32,
    a_m: u32,
    a_k: u32,
    b_b: u32,
    b_k: u32,
    b_n: u32,
    c_b: u32,
    c_m: u32,
    c_n: u32,
    bias_mode: u32,
    accumulate: u32,
    has_act: u32,
    alpha: f32,
    bias_gain: f32,
    act_alpha: f32,
    act_gain: f32,
}

/// Records `g` with operands `a`, `b`, optional `bias`, output `c`.
pub fn gemm(
    rec: &mut Recorder,
    g: &Gemm,
    a: &GpuBuffer<f32>,
    b: &GpuBuffer<f32>,
    bias: Option<&GpuBuffer<f32>>,
    c: &GpuBuffer<f32>,
) -> GpuResult<()> {
    if g.m == 0 || g.n == 0 || g.batch == 0 {
        return Ok(());
    }
    let (ea, eb, ec) = g.extents();
    need("gemm A", a, ea)?;
    need("gemm B", b, eb)?;
    need("gemm C", c, ec)?;
    match (g.bias, bias) {
        (BiasMode::None, _) => {}
        (BiasMode::PerRow, Some(bb)) => need("gemm bias", bb, g.m)?,
        (BiasMode::PerCol, Some(bb)) => need("gemm bias", bb, g.n)?,
        _ => {
            return Err(GpuError::Shape(
                "gemm: bias mode set but no bias buffer".into(),
            ));
        }
    }
    let p = Params {
        m: u32_of("m", g.m)?,
        n: u32_of("n", g.n)?,
        k: u32_of("k", g.k)?,
        batch: u32_of("batch", g.batch)?,
        a_b: u32_of("a stride", g.a.sb)?,
        a_m: u32_of("a stride", g.a.si)?,
        a_k: u32_of("a stride", g.a.sj)?,
        b_b: u32_of("b stride", g.b.sb)?,
        b_k: u32_of("b stride", g.b.si)?,
        b_n: u32_of("b stride", g.b.sj)?,
        c_b: u32_of("c stride", g.c.sb)?,
        c_m: u32_of("c stride", g.c.si)?,
        c_n: u32_of("c stride", g.c.sj)?,
        bias_mode: match g.bias {
            BiasMode::None => 0,
            BiasMode::PerRow => 1,
            BiasMode::PerCol => 2,
        },
        accumulate: g.accumulate as u32,
        has_act: g.act.is_some() as u32,
        alpha: g.alpha,
        bias_gain: g.bias_gain,
        act_alpha: g.act.map_or(0.0, |a| a.0),
        act_gain: g.act.map_or(1.0, |a| a.1),
    };
    let row_tiles = g.m.div_ceil(TILE_M);
    // gemm takes four k terms per loop iteration, gemm_skinny one per lane and WG lanes (see
    // linear.wgsl on lavapipe's loop limit).
    let skinny = g.n < SKINNY_N && g.k >= SKINNY_MIN_K && row_tiles <= 65535;
    let loops = if skinny {
        g.k as u64 / 64 + 8
    } else {
        g.k as u64 / 4 + 8
    };
    rec.ctx().check_loops("gemm", loops)?;
    let groups = [
        u32_of(
            "column tiles",
            if skinny { g.n } else { g.n.div_ceil(TILE_N) },
        )?,
        u32_of("row tiles", row_tiles)?,
        u32_of("batch", g.batch)?,
    ];
    rec.dispatch(
        if skinny { GEMM_SKINNY } else { GEMM },
        &p,
        &[
            Some(a.raw()),
            Some(b.raw()),
            bias.map(|b| b.raw()),
            Some(c.raw()),
        ],
        groups,
    )
}

/// `Y[n, o] = w_gain * X W^T + b_gain * b` (computed as `Y^T = W X^T` so that the weight rows are
/// uniform across a workgroup).
pub fn linear_forward(
    rec: &mut Recorder,
    s: &LinearShape,
    x: &GpuBuffer<f32>,
    w: &GpuBuffer<f32>,
    b: Option<&GpuBuffer<f32>>,
    y: &GpuBuffer<f32>,
) -> GpuResult<()> {
    let g = Gemm::linear_forward(s, b.is_some());
    gemm(rec, &g, w, x, b, y)
}

/// `dX = w_gain * dY W` (`accumulate` adds into `dx`).
pub fn linear_backward_input(
    rec: &mut Recorder,
    s: &LinearShape,
    dy: &GpuBuffer<f32>,
    w: &GpuBuffer<f32>,
    dx: &GpuBuffer<f32>,
    accumulate: bool,
) -> GpuResult<()> {
    let g = Gemm::linear_backward_input(s, accumulate);
    gemm(rec, &g, w, dy, None, dx)
}

/// `dW = w_gain * dY^T X` (`accumulate` adds into `dw`).
pub fn linear_backward_weight(
    rec: &mut Recorder,
    s: &LinearShape,
    dy: &GpuBuffer<f32>,
    x: &GpuBuffer<f32>,
    dw: &GpuBuffer<f32>,
    accumulate: bool,
) -> GpuResult<()> {
    let g = Gemm::linear_backward_weight(s, accumulate);
    gemm(rec, &g, dy, x, None, dw)
}

/// `db = b_gain * sum_n dY[n, :]`.
pub fn linear_backward_bias(
    rec: &mut Recorder,
    s: &LinearShape,
    dy: &GpuBuffer<f32>,
    db: &GpuBuffer<f32>,
    accumulate: bool,
) -> GpuResult<()> {
    reduce::sum_axes(rec, dy, db, s.rows, s.d_out, 1, s.b_gain, accumulate)
}

/// Per-pixel modulated linear: `Y[b] = W[b] X[b] + bias` on planar `[batch, c, pixels]` data.
/// `shared_weight` applies one weight `[c_out, c_in]` to every image instead.
pub fn modlinear_forward(
    rec: &mut Recorder,
    s: &ModLinearShape,
    x: &GpuBuffer<f32>,
    w: &GpuBuffer<f32>,
    bias: Option<&GpuBuffer<f32>>,
    y: &GpuBuffer<f32>,
    shared_weight: bool,
) -> GpuResult<()> {
    let g = Gemm::modlinear_forward(s, bias.is_some(), shared_weight);
    gemm(rec, &g, w, x, bias, y)
}

/// `dX[b] = W[b]^T dY[b]`.
pub fn modlinear_backward_input(
    rec: &mut Recorder,
    s: &ModLinearShape,
    dy: &GpuBuffer<f32>,
    w: &GpuBuffer<f32>,
    dx: &GpuBuffer<f32>,
    shared_weight: bool,
    accumulate: bool,
) -> GpuResult<()> {
    let g = Gemm::modlinear_backward_input(s, shared_weight, accumulate);
    gemm(rec, &g, w, dy, None, dx)
}

/// `dW[b] = dY[b] X[b]^T`, one weight gradient per image (`[batch, c_out, c_in]`).
pub fn modlinear_backward_weight(
    rec: &mut Recorder,
    s: &ModLinearShape,
    dy: &GpuBuffer<f32>,
    x: &GpuBuffer<f32>,
    dw: &GpuBuffer<f32>,
    accumulate: bool,
) -> GpuResult<()> {
    let g = Gemm::modlinear_backward_weight(s, accumulate);
    gemm(rec, &g, dy, x, None, dw)
}

/// `dbias[o] = sum_{b, p} dY[b, o, p]`.
pub fn modlinear_backward_bias(
    rec: &mut Recorder,
    s: &ModLinearShape,
    dy: &GpuBuffer<f32>,
    db: &GpuBuffer<f32>,
    accumulate: bool,
) -> GpuResult<()> {
    reduce::sum_axes(rec, dy, db, s.batch, s.c_out, s.pixels, 1.0, accumulate)
}
