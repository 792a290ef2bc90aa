//! `shaders/modulate.wgsl`: StyleGAN2 weight modulation without demodulation (toRGB).

use bytemuck::{Pod, Zeroable};

use super::{WG, need, u32_of};
use crate::gpu::{GpuBuffer, GpuResult, Kernel, Recorder, Shader, groups_1d};
pub use crate::reference::modulate::ModulateShape;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
struct Params {
    batch: u32,
    c_out: u32,
    c_in: u32,
    accumulate: u32,
    gain: f32,
    _pad: [f32; 3],
}

fn params(m: &ModulateShape, accumulate: bool) -> GpuResult<Params> {
    Ok(Params {
        batch: u32_of("batch", m.batch)?,
        c_out: u32_of("c_out", m.c_out)?,
        c_in: u32_of("c_in", m.c_in)?,
        accumulate: accumulate as u32,
        gain: m.gain,
        ..Default::default()
    })
}

/// `w[b, o, i] = gain * ws[o, i] * s[b, i]`.
pub fn style_modulate_forward(
    rec: &mut Recorder,
    m: &ModulateShape,
    ws: &GpuBuffer<f32>,
    s: &GpuBuffer<f32>,
    w: &GpuBuffer<f32>,
) -> GpuResult<()> {
    let n = m.batch * m.c_out * m.c_in;
    if n == 0 {
        return Ok(());
    }
    need("style_modulate ws", ws, m.c_out * m.c_in)?;
    need("style_modulate s", s, m.batch * m.c_in)?;
    need("style_modulate w", w, n)?;
    rec.dispatch(
        Kernel::new(Shader::Modulate, "style_modulate_forward"),
        &params(m, false)?,
        &[Some(ws.raw()), Some(s.raw()), Some(w.raw())],
        groups_1d(n, WG),
    )
}

/// `dws (+)= gain sum_b dw[b] * s[b]` and `ds = gain sum_o dw[b, o, :] * ws[o, :]`.
#[allow(clippy::too_many_arguments)]
pub fn style_modulate_backward(
    rec: &mut Recorder,
    m: &ModulateShape,
    ws: &GpuBuffer<f32>,
    s: &GpuBuffer<f32>,
    dw: &GpuBuffer<f32>,
    dws: &GpuBuffer<f32>,
    ds: &GpuBuffer<f32>,
    accumulate_dws: bool,
) -> GpuResult<()> {
    let n = m.batch * m.c_out * m.c_in;
    if n == 0 {
        return Ok(());
    }
    need("style_modulate ws", ws, m.c_out * m.c_in)?;
    need("style_modulate s", s, m.batch * m.c_in)?;
    need("style_modulate dw", dw, n)?;
    need("style_modulate dws", dws, m.c_out * m.c_in)?;
    need("style_modulate ds", ds, m.batch * m.c_in)?;
    rec.dispatch(
        Kernel::new(Shader::Modulate, "style_modulate_backward_shared"),
        &params(m, accumulate_dws)?,
        &[Some(s.raw()), Some(dw.raw()), Some(dws.raw())],
        groups_1d(m.c_out * m.c_in, WG),
    )?;
    rec.dispatch(
        Kernel::new(Shader::Modulate, "style_modulate_backward_styles"),
        &params(m, false)?,
        &[Some(ws.raw()), Some(dw.raw()), Some(ds.raw())],
        groups_1d(m.batch * m.c_in, WG),
    )
}
