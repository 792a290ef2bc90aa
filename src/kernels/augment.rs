//! `shaders/augment.wgsl`: DiffAugment's differentiable augmentations (colour, translation,
//! cutout) and their transposes, per image from a parameter buffer `[batch, AUG_PARAMS]`. See
//! [`crate::reference::augment`] for the pipeline; the per-image means it blends toward come
//! from [`crate::kernels::reduce::sum_axes`].

use bytemuck::{Pod, Zeroable};

use super::{WG, need, u32_of};
use crate::gpu::{GpuBuffer, GpuError, GpuResult, Kernel, Recorder, Shader, groups_1d};
pub use crate::reference::augment::{AUG_PARAMS, AugParams, AugShape};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
struct Params {
    n: u32,
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    with_brightness: u32,
    _pad0: u32,
    _pad1: u32,
}

fn k(entry: &'static str) -> Kernel {
    Kernel::new(Shader::Augment, entry)
}

fn params(s: &AugShape, n: usize) -> GpuResult<Params> {
    if s.channels == 0 {
        return Err(GpuError::Shape("augment: no channels".into()));
    }
    Ok(Params {
        n: u32_of("augment invocations", n)?,
        batch: u32_of("batch", s.batch)?,
        channels: u32_of("channels", s.channels)?,
        height: u32_of("height", s.height)?,
        width: u32_of("width", s.width)?,
        with_brightness: 0,
        _pad0: 0,
        _pad1: 0,
    })
}

fn check(
    s: &AugShape,
    what: &str,
    x: &GpuBuffer<f32>,
    prm: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
) -> GpuResult<()> {
    u32_of(what, s.len())?;
    need(&format!("{what} x"), x, s.len())?;
    need(&format!("{what} params"), prm, s.batch * AUG_PARAMS)?;
    need(&format!("{what} y"), y, s.len())
}

/// Saturation and (when `brightness`) brightness: `reference::augment::color`.
pub fn color(
    rec: &mut Recorder,
    s: &AugShape,
    x: &GpuBuffer<f32>,
    prm: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
    brightness: bool,
) -> GpuResult<()> {
    if s.is_empty() {
        return Ok(());
    }
    check(s, "aug_color", x, prm, y)?;
    let n = s.batch * s.pixels();
    let mut p = params(s, n)?;
    p.with_brightness = brightness as u32;
    rec.dispatch(
        k("aug_color"),
        &p,
        &[Some(x.raw()), Some(prm.raw()), Some(y.raw())],
        groups_1d(n, WG),
    )
}

/// Contrast toward the per-image values `mu [batch]`: `reference::augment::blend`.
pub fn blend(
    rec: &mut Recorder,
    s: &AugShape,
    x: &GpuBuffer<f32>,
    prm: &GpuBuffer<f32>,
    mu: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
) -> GpuResult<()> {
    if s.is_empty() {
        return Ok(());
    }
    check(s, "aug_blend", x, prm, y)?;
    need("aug_blend mu", mu, s.batch)?;
    let p = params(s, s.len())?;
    rec.dispatch(
        k("aug_blend"),
        &p,
        &[
            Some(x.raw()),
            Some(prm.raw()),
            Some(y.raw()),
            Some(mu.raw()),
        ],
        groups_1d(s.len(), WG),
    )
}

/// Translation (edge replicate) and cutout: `reference::augment::shift_forward`.
pub fn shift_forward(
    rec: &mut Recorder,
    s: &AugShape,
    x: &GpuBuffer<f32>,
    prm: &GpuBuffer<f32>,
    y: &GpuBuffer<f32>,
) -> GpuResult<()> {
    if s.is_empty() {
        return Ok(());
    }
    check(s, "aug_shift_forward", x, prm, y)?;
    let p = params(s, s.len())?;
    rec.dispatch(
        k("aug_shift_forward"),
        &p,
        &[Some(x.raw()), Some(prm.raw()), Some(y.raw())],
        groups_1d(s.len(), WG),
    )
}

/// The transpose of [`shift_forward`] (a gather, fixed order): `dx` overwritten.
pub fn shift_backward(
    rec: &mut Recorder,
    s: &AugShape,
    dy: &GpuBuffer<f32>,
    prm: &GpuBuffer<f32>,
    dx: &GpuBuffer<f32>,
) -> GpuResult<()> {
    if s.is_empty() {
        return Ok(());
    }
    check(s, "aug_shift_backward", dy, prm, dx)?;
    let p = params(s, s.len())?;
    rec.dispatch(
        k("aug_shift_backward"),
        &p,
        &[Some(dy.raw()), Some(prm.raw()), Some(dx.raw())],
        groups_1d(s.len(), WG),
    )
}
