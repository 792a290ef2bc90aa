//! `shaders/mbstd.wgsl`: the minibatch standard deviation layer of the discriminator's epilogue,
//! forward (statistics, then concatenation) and backward (statistic gradient, then dX).

use bytemuck::{Pod, Zeroable};

use super::{WG, need, u32_of};
use crate::gpu::{GpuBuffer, GpuError, GpuResult, Kernel, Recorder, Shader, groups_1d};
pub use crate::reference::mbstd::{MBSTD_EPS, MbstdShape};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
struct Params {
    batch: u32,
    channels: u32,
    pixels: u32,
    group: u32,
    num_f: u32,
    m: u32,
    cpf: u32,
    _pad0: u32,
    eps: f32,
    inv_count: f32,
    inv_g: f32,
    inv_denom: f32,
}

fn k(entry: &'static str) -> Kernel {
    Kernel::new(Shader::Mbstd, entry)
}

/// Validates `s` and fills the parameter block (`None` for an empty batch: nothing to do).
fn params(s: &MbstdShape) -> GpuResult<Option<Params>> {
    if s.batch == 0 {
        return Ok(None);
    }
    if let Some(why) = s.problem() {
        return Err(GpuError::Shape(why));
    }
    u32_of("mbstd y values", s.y_len())?;
    let cpf = s.channels_per_stat();
    Ok(Some(Params {
        batch: u32_of("batch", s.batch)?,
        channels: u32_of("channels", s.channels)?,
        pixels: u32_of("pixels", s.pixels())?,
        group: u32_of("group", s.group)?,
        num_f: u32_of("num_channels", s.num_channels)?,
        m: u32_of("groups", s.groups())?,
        cpf: u32_of("channels per stat", cpf)?,
        _pad0: 0,
        eps: MBSTD_EPS as f32,
        inv_count: (1.0 / (cpf * s.pixels()) as f64) as f32,
        inv_g: (1.0 / s.group as f64) as f32,
        inv_denom: (1.0 / (s.group * cpf * s.pixels()) as f64) as f32,
    }))
}

/// Every mbstd operation is two dispatches: a statistics pass over the `[M, F]` group values
/// (one workgroup each), then an elementwise pass over `n` values that reads them.
fn two_pass(
    rec: &mut Recorder,
    s: &MbstdShape,
    p: &Params,
    stat: (&'static str, &[&GpuBuffer<f32>]),
    then: (&'static str, &[&GpuBuffer<f32>], usize),
) -> GpuResult<()> {
    fn raw<'b>(b: &[&'b GpuBuffer<f32>]) -> Vec<Option<&'b wgpu::Buffer>> {
        b.iter().map(|b| Some(b.raw())).collect()
    }
    rec.dispatch(k(stat.0), p, &raw(stat.1), groups_1d(s.stat_len(), 1))?;
    rec.dispatch(k(then.0), p, &raw(then.1), groups_1d(then.2, WG))
}

/// `y [N, C + F, H, W] = concat(x, stat)`, with the statistics `[M, F]` left in `stat_scratch`.
pub fn mbstd_forward(
    rec: &mut Recorder,
    s: &MbstdShape,
    x: &GpuBuffer<f32>,
    stat_scratch: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
) -> GpuResult<()> {
    let Some(p) = params(s)? else {
        return Ok(());
    };
    need("mbstd_forward x", x, s.x_len())?;
    need("mbstd_forward stat_scratch", stat_scratch, s.stat_len())?;
    need("mbstd_forward y", y, s.y_len())?;
    two_pass(
        rec,
        s,
        &p,
        ("mbstd_stat", &[x, stat_scratch]),
        ("mbstd_concat", &[x, stat_scratch, y], s.y_len()),
    )
}

/// `dx [N, C, H, W]` from `dy [N, C + F, H, W]` and the forward input `x`; the statistic
/// gradients `[M, F]` are left in `dstat_scratch`.
pub fn mbstd_backward(
    rec: &mut Recorder,
    s: &MbstdShape,
    x: &GpuBuffer<f32>,
    dy: &GpuBuffer<f32>,
    dstat_scratch: &GpuBuffer<f32>,
    dx: &GpuBuffer<f32>,
) -> GpuResult<()> {
    let Some(p) = params(s)? else {
        return Ok(());
    };
    need("mbstd_backward x", x, s.x_len())?;
    need("mbstd_backward dy", dy, s.y_len())?;
    need("mbstd_backward dstat_scratch", dstat_scratch, s.stat_len())?;
    need("mbstd_backward dx", dx, s.x_len())?;
    two_pass(
        rec,
        s,
        &p,
        ("mbstd_backward_stat", &[dy, dstat_scratch]),
        (
            "mbstd_backward_input",
            &[x, dy, dstat_scratch, dx],
            s.x_len(),
        ),
    )
}

/// The tangent of [`mbstd_forward`] at `x` along `xdot` into `ydot [N, C + F, H, W]`; the
/// statistics' tangents `[M, F]` are left in `stat_scratch`.
pub fn mbstd_jvp(
    rec: &mut Recorder,
    s: &MbstdShape,
    x: &GpuBuffer<f32>,
    xdot: &GpuBuffer<f32>,
    stat_scratch: &GpuBuffer<f32>,
    ydot: &GpuBuffer<f32>,
) -> GpuResult<()> {
    let Some(p) = params(s)? else {
        return Ok(());
    };
    need("mbstd_jvp x", x, s.x_len())?;
    need("mbstd_jvp xdot", xdot, s.x_len())?;
    need("mbstd_jvp stat_scratch", stat_scratch, s.stat_len())?;
    need("mbstd_jvp ydot", ydot, s.y_len())?;
    two_pass(
        rec,
        s,
        &p,
        ("mbstd_jvp_stat", &[x, xdot, stat_scratch]),
        ("mbstd_concat", &[xdot, stat_scratch, ydot], s.y_len()),
    )
}

/// The tangent of [`mbstd_backward`]'s `dx` at `x` along `xdot`, with `dy` fixed (the R1
/// double backward); the statistic gradients are left in `dstat_scratch`.
#[allow(clippy::too_many_arguments)]
pub fn mbstd_backward_jvp(
    rec: &mut Recorder,
    s: &MbstdShape,
    x: &GpuBuffer<f32>,
    xdot: &GpuBuffer<f32>,
    dy: &GpuBuffer<f32>,
    dstat_scratch: &GpuBuffer<f32>,
    dxdot: &GpuBuffer<f32>,
) -> GpuResult<()> {
    let Some(p) = params(s)? else {
        return Ok(());
    };
    need("mbstd_backward_jvp x", x, s.x_len())?;
    need("mbstd_backward_jvp xdot", xdot, s.x_len())?;
    need("mbstd_backward_jvp dy", dy, s.y_len())?;
    need(
        "mbstd_backward_jvp dstat_scratch",
        dstat_scratch,
        s.stat_len(),
    )?;
    need("mbstd_backward_jvp dxdot", dxdot, s.x_len())?;
    two_pass(
        rec,
        s,
        &p,
        ("mbstd_backward_stat", &[dy, dstat_scratch]),
        (
            "mbstd_backward_jvp",
            &[x, xdot, dstat_scratch, dxdot],
            s.x_len(),
        ),
    )
}
