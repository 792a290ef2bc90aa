//! `shaders/act.wgsl`: bias + leaky ReLU with gain, forward and backward (from the output).

use bytemuck::{Pod, Zeroable};

use super::{WG, need, reduce, u32_of};
use crate::gpu::{GpuBuffer, GpuError, GpuResult, Kernel, Recorder, Shader, groups_1d};
pub use crate::reference::act::{ActShape, DEFAULT_ALPHA, DEFAULT_GAIN};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
struct Params {
    n: u32,
    channels: u32,
    inner: u32,
    has_bias: u32,
    accumulate: u32,
    _pad0: [u32; 3],
    alpha: f32,
    gain: f32,
    b_gain: f32,
    _pad1: f32,
}

fn params(s: &ActShape, has_bias: bool, accumulate: bool) -> GpuResult<Params> {
    let valid = s.gain > 0.0 && s.alpha >= 0.0;
    if !valid {
        return Err(GpuError::Shape(format!(
            "act: needs gain > 0 and alpha >= 0 (the backward reads the slope from the output), got gain {} alpha {}",
            s.gain, s.alpha
        )));
    }
    Ok(Params {
        n: u32_of("act values", s.len())?,
        channels: u32_of("channels", s.channels)?,
        inner: u32_of("inner", s.inner)?,
        has_bias: has_bias as u32,
        accumulate: accumulate as u32,
        alpha: s.alpha,
        gain: s.gain,
        b_gain: s.b_gain,
        ..Default::default()
    })
}

/// `Y = lrelu_alpha(X + b_gain * bias[c]) * gain` for `X` viewed as `[outer, channels, inner]`.
pub fn act_forward(
    rec: &mut Recorder,
    s: &ActShape,
    x: &GpuBuffer<f32>,
    bias: Option<&GpuBuffer<f32>>,
    y: &GpuBuffer<f32>,
) -> GpuResult<()> {
    if s.is_empty() {
        return Ok(());
    }
    let p = params(s, bias.is_some(), false)?;
    need("act_forward x", x, s.len())?;
    need("act_forward y", y, s.len())?;
    if let Some(b) = bias {
        need("act_forward bias", b, s.channels)?;
    }
    rec.dispatch(
        Kernel::new(Shader::Act, "act_forward"),
        &p,
        &[Some(x.raw()), bias.map(|b| b.raw()), Some(y.raw())],
        groups_1d(s.len(), WG),
    )
}

/// `dX (+)= dY * gain * (Y > 0 ? 1 : alpha)` from the forward output `y`.
pub fn act_backward(
    rec: &mut Recorder,
    s: &ActShape,
    y: &GpuBuffer<f32>,
    dy: &GpuBuffer<f32>,
    dx: &GpuBuffer<f32>,
    accumulate: bool,
) -> GpuResult<()> {
    if s.is_empty() {
        return Ok(());
    }
    let p = params(s, false, accumulate)?;
    need("act_backward y", y, s.len())?;
    need("act_backward dy", dy, s.len())?;
    need("act_backward dx", dx, s.len())?;
    rec.dispatch(
        Kernel::new(Shader::Act, "act_backward"),
        &p,
        &[Some(y.raw()), Some(dy.raw()), Some(dx.raw())],
        groups_1d(s.len(), WG),
    )
}

/// `dbias[c] (+)= b_gain * sum dX[.., c, ..]` (a [`reduce::sum_axes`] of the output of
/// [`act_backward`]).
pub fn act_backward_bias(
    rec: &mut Recorder,
    s: &ActShape,
    dx: &GpuBuffer<f32>,
    db: &GpuBuffer<f32>,
    accumulate: bool,
) -> GpuResult<()> {
    reduce::sum_axes(
        rec, dx, db, s.outer, s.channels, s.inner, s.b_gain, accumulate,
    )
}
