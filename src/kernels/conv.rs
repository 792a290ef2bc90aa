//! `shaders/conv.wgsl`: the discriminator's equalised-learning-rate 2D convolution (forward, dX,
//! dW; db through [`reduce::sum_axes`]) and StyleGAN2's `[1, 3, 3, 1]` blur with 2x downsampling.

use bytemuck::{Pod, Zeroable};

use super::{WG, need, reduce, u32_of};
use crate::gpu::{GpuBuffer, GpuError, GpuResult, Kernel, Recorder, Shader, groups_1d};
pub use crate::reference::conv::{BLUR_TAPS, ConvShape, blur_down2x_out};

/// Output channels (forward) or input channels (dX) per workgroup: `TC` in the shader.
const TILE_C: usize = 8;
/// Output channels per invocation of the weight gradient: `TCW` in the shader.
const TILE_C_WEIGHT: usize = 4;
/// (image, pixel) pairs per invocation of the forward and dX kernels: `PPI` in the shader.
const PAIRS_PER_LANE: usize = 4;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
struct Params {
    batch: u32,
    c_in: u32,
    c_out: u32,
    height: u32,
    width: u32,
    k: u32,
    stride: u32,
    pad: u32,
    out_h: u32,
    out_w: u32,
    has_bias: u32,
    accumulate: u32,
    w_gain: f32,
    b_gain: f32,
    _pad: [f32; 2],
}

fn k(entry: &'static str) -> Kernel {
    Kernel::new(Shader::Conv, entry)
}

/// Validates `s` and fills the parameter block (`None` when there are no channels: nothing to
/// do; batch 0 gives zero workgroups for the per-sample kernels).
fn params(s: &ConvShape, accumulate: bool) -> GpuResult<Option<Params>> {
    if let Some(why) = s.problem() {
        return Err(GpuError::Shape(why));
    }
    if s.c_in == 0 || s.c_out == 0 {
        return Ok(None);
    }
    if s.out_height() == 0 || s.out_width() == 0 {
        return Err(GpuError::Shape(format!("conv: empty output for {s:?}")));
    }
    // Every flat index the shaders form must fit in u32.
    u32_of("conv x values", s.x_len())?;
    u32_of("conv y values", s.y_len())?;
    u32_of("conv weight values", s.w_len())?;
    Ok(Some(Params {
        batch: u32_of("batch", s.batch)?,
        c_in: u32_of("c_in", s.c_in)?,
        c_out: u32_of("c_out", s.c_out)?,
        height: u32_of("height", s.height)?,
        width: u32_of("width", s.width)?,
        k: u32_of("k", s.k)?,
        stride: u32_of("stride", s.stride)?,
        pad: u32_of("pad", s.pad())?,
        out_h: u32_of("out_h", s.out_height())?,
        out_w: u32_of("out_w", s.out_width())?,
        has_bias: 0,
        accumulate: accumulate as u32,
        w_gain: s.w_gain,
        b_gain: s.b_gain,
        _pad: [0.0; 2],
    }))
}

/// `Y = w_gain * conv(X, W) + b_gain * b` (see [`ConvShape`]); `x` `[N, Cin, H, W]`, `w`
/// `[Cout, Cin, K, K]`, optional `b` `[Cout]`, `y` `[N, Cout, Ho, Wo]`.
pub fn conv2d_forward(
    rec: &mut Recorder,
    s: &ConvShape,
    x: &GpuBuffer<f32>,
    w: &GpuBuffer<f32>,
    b: Option<&GpuBuffer<f32>>,
    y: &GpuBuffer<f32>,
) -> GpuResult<()> {
    let Some(mut p) = params(s, false)? else {
        return Ok(());
    };
    need("conv2d_forward x", x, s.x_len())?;
    need("conv2d_forward w", w, s.w_len())?;
    need("conv2d_forward y", y, s.y_len())?;
    if let Some(b) = b {
        need("conv2d_forward b", b, s.c_out)?;
        p.has_bias = 1;
    }
    rec.ctx()
        .check_loops("conv2d_forward", tap_loops(s.c_in, s.k))?;
    let groups = pixel_groups(s.batch * s.out_height() * s.out_width(), s.c_out)?;
    rec.dispatch(
        k("conv_forward"),
        &p,
        &[
            Some(x.raw()),
            Some(w.raw()),
            b.map(|b| b.raw()),
            Some(y.raw()),
        ],
        groups,
    )
}

/// Loop back-edges of one invocation of the forward or dX kernel summing over `channels` and
/// the k x k taps (lavapipe cuts an invocation's loops after 65535: `GpuContext::check_loops`),
/// with the stores' loops.
fn tap_loops(channels: usize, k: usize) -> u64 {
    let k = k as u64;
    channels as u64 * k * (k + 1) + (PAIRS_PER_LANE * (TILE_C + 1)) as u64
}

/// Workgroups of the per-pixel kernels: tiles of WG * PAIRS_PER_LANE (image, pixel) pairs along
/// x (spilling into z past 65535), tiles of TILE_C channels along y.
fn pixel_groups(pairs: usize, channels: usize) -> GpuResult<[u32; 3]> {
    if pairs == 0 {
        // No images: nothing to dispatch.
        return Ok([0, 0, 0]);
    }
    let tiles = pairs.div_ceil(WG as usize * PAIRS_PER_LANE);
    let gx = tiles.min(65535);
    Ok([
        u32_of("conv pixel tiles", gx)?,
        u32_of("conv channel tiles", channels.div_ceil(TILE_C))?,
        u32_of("conv pixel tiles", tiles.div_ceil(gx))?,
    ])
}

/// `dX (+)= w_gain * conv_transpose(dY, W)`: the gradient of [`conv2d_forward`] for `x`.
pub fn conv2d_backward_input(
    rec: &mut Recorder,
    s: &ConvShape,
    dy: &GpuBuffer<f32>,
    w: &GpuBuffer<f32>,
    dx: &GpuBuffer<f32>,
    accumulate: bool,
) -> GpuResult<()> {
    let Some(p) = params(s, accumulate)? else {
        return Ok(());
    };
    need("conv2d_backward_input dy", dy, s.y_len())?;
    need("conv2d_backward_input w", w, s.w_len())?;
    need("conv2d_backward_input dx", dx, s.x_len())?;
    rec.ctx()
        .check_loops("conv2d_backward_input", tap_loops(s.c_out, s.k))?;
    let groups = pixel_groups(s.batch * s.height * s.width, s.c_in)?;
    rec.dispatch(
        k("conv_backward_input"),
        &p,
        &[Some(dy.raw()), Some(w.raw()), Some(dx.raw())],
        groups,
    )
}

/// `dW (+)= w_gain * sum_{n, oy, ox} dY[n, co, oy, ox] X[n, ci, oy s + ky - pad, ox s + kx - pad]`.
pub fn conv2d_backward_weight(
    rec: &mut Recorder,
    s: &ConvShape,
    dy: &GpuBuffer<f32>,
    x: &GpuBuffer<f32>,
    dw: &GpuBuffer<f32>,
    accumulate: bool,
) -> GpuResult<()> {
    // With batch 0 this still runs: dW gets the empty sum, zero.
    let Some(p) = params(s, accumulate)? else {
        return Ok(());
    };
    need("conv2d_backward_weight dy", dy, s.y_len())?;
    need("conv2d_backward_weight x", x, s.x_len())?;
    need("conv2d_backward_weight dw", dw, s.w_len())?;
    // dw_row takes four pixels per iteration (see conv.wgsl on lavapipe's loop limit).
    let loops = s.batch as u64 * (1 + s.out_height() as u64 * (s.out_width() as u64 / 4 + 2))
        + TILE_C_WEIGHT as u64;
    rec.ctx().check_loops("conv2d_backward_weight", loops)?;
    let groups = [
        u32_of(
            "conv weight tiles",
            (s.c_in * s.k * s.k).div_ceil(WG as usize),
        )?,
        u32_of("c_out tiles", s.c_out.div_ceil(TILE_C_WEIGHT))?,
        1,
    ];
    rec.dispatch(
        k("conv_backward_weight"),
        &p,
        &[Some(dy.raw()), Some(x.raw()), Some(dw.raw())],
        groups,
    )
}

/// `db (+)= b_gain * sum_{n, pixels} dY[n, co, :]` (a [`reduce::sum_axes`]).
pub fn conv2d_backward_bias(
    rec: &mut Recorder,
    s: &ConvShape,
    dy: &GpuBuffer<f32>,
    db: &GpuBuffer<f32>,
    accumulate: bool,
) -> GpuResult<()> {
    if let Some(why) = s.problem() {
        return Err(GpuError::Shape(why));
    }
    reduce::sum_axes(
        rec,
        dy,
        db,
        s.batch,
        s.c_out,
        s.out_height() * s.out_width(),
        s.b_gain,
        accumulate,
    )
}

/// Parameters of the blur over `planes` planes of `h x w` (errors when the output is empty).
fn blur_params(planes: usize, h: usize, w: usize, accumulate: bool) -> GpuResult<Option<Params>> {
    if planes == 0 {
        return Ok(None);
    }
    let (ho, wo) = (blur_down2x_out(h), blur_down2x_out(w));
    if ho == 0 || wo == 0 {
        return Err(GpuError::Shape(format!(
            "blur_down2x: a {h}x{w} input is too small (each side must be at least 2)"
        )));
    }
    u32_of("blur input values", planes * h * w)?;
    Ok(Some(Params {
        batch: u32_of("planes", planes)?,
        height: u32_of("height", h)?,
        width: u32_of("width", w)?,
        out_h: u32_of("out_h", ho)?,
        out_w: u32_of("out_w", wo)?,
        accumulate: accumulate as u32,
        ..Default::default()
    }))
}

/// `Y[p, i, j] = sum_{a, b} f[a] f[b] X[p, 2i + a - 1, 2j + b - 1]`, `f = [1, 3, 3, 1] / 8`:
/// `x` `[planes, h, w]` to `y` `[planes, h / 2, w / 2]` (`blur_down2x_out` of each side).
pub fn blur_down2x_forward(
    rec: &mut Recorder,
    x: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
    planes: usize,
    h: usize,
    w: usize,
) -> GpuResult<()> {
    let Some(p) = blur_params(planes, h, w, false)? else {
        return Ok(());
    };
    let n = planes * blur_down2x_out(h) * blur_down2x_out(w);
    need("blur_down2x_forward x", x, planes * h * w)?;
    need("blur_down2x_forward y", y, n)?;
    rec.dispatch(
        k("blur_down2x_forward"),
        &p,
        &[Some(x.raw()), Some(y.raw())],
        groups_1d(n, WG),
    )
}

/// `dX (+)=` the transpose of [`blur_down2x_forward`] applied to `dY`.
pub fn blur_down2x_backward(
    rec: &mut Recorder,
    dy: &GpuBuffer<f32>,
    dx: &GpuBuffer<f32>,
    planes: usize,
    h: usize,
    w: usize,
    accumulate: bool,
) -> GpuResult<()> {
    let Some(p) = blur_params(planes, h, w, accumulate)? else {
        return Ok(());
    };
    let n = planes * h * w;
    need(
        "blur_down2x_backward dy",
        dy,
        planes * blur_down2x_out(h) * blur_down2x_out(w),
    )?;
    need("blur_down2x_backward dx", dx, n)?;
    rec.dispatch(
        k("blur_down2x_backward"),
        &p,
        &[Some(dy.raw()), Some(dx.raw())],
        groups_1d(n, WG),
    )
}
