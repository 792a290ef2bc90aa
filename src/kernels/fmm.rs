//! `shaders/fmm.wgsl`: the factorized multiplicative modulation (INR-GAN per-image weights from
//! a shared weight and low-rank styles), forward and backward.

use bytemuck::{Pod, Zeroable};

use super::{WG, need, u32_of};
use crate::gpu::{GpuBuffer, GpuError, GpuResult, Kernel, Recorder, Shader, groups_1d};
pub use crate::reference::fmm::{FMM_EPS, FmmShape};

const MODULATE: Kernel = Kernel::new(Shader::Fmm, "fmm_modulate");
const BACKWARD_ROWS: Kernel = Kernel::new(Shader::Fmm, "fmm_backward_rows");
const BACKWARD_SHARED: Kernel = Kernel::new(Shader::Fmm, "fmm_backward_shared");
const BACKWARD_STYLES: Kernel = Kernel::new(Shader::Fmm, "fmm_backward_styles");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
struct Params {
    batch: u32,
    c_out: u32,
    c_in: u32,
    rank: u32,
    demod: u32,
    accumulate: u32,
    _pad0: [u32; 2],
    inv_sqrt_rank: f32,
    eps: f32,
    _pad1: [f32; 2],
}

/// Validates `s` and builds the shader parameters; `None` when the shape is empty.
fn params(s: &FmmShape, accumulate: bool) -> GpuResult<Option<Params>> {
    if s.batch == 0 || s.c_out == 0 || s.c_in == 0 {
        return Ok(None);
    }
    if s.rank == 0 {
        return Err(GpuError::Shape(format!("fmm: rank must be > 0 ({s:?})")));
    }
    u32_of("fmm batch * style_dim", s.batch * s.style_dim())?;
    u32_of("fmm batch * c_out * c_in", s.weight_len())?;
    Ok(Some(Params {
        batch: u32_of("batch", s.batch)?,
        c_out: u32_of("c_out", s.c_out)?,
        c_in: u32_of("c_in", s.c_in)?,
        rank: u32_of("rank", s.rank)?,
        demod: s.demod as u32,
        accumulate: accumulate as u32,
        inv_sqrt_rank: (1.0 / (s.rank as f64).sqrt()) as f32,
        eps: FMM_EPS as f32,
        ..Default::default()
    }))
}

/// `w_out[b] = rownorm(ws ⊙ (1 + A_b B_b / sqrt(rank)))` (no rownorm without `demod`) and
/// `norms[b, o] = ‖ws ⊙ (1 + M_b)‖` of each row.
pub fn fmm_forward(
    rec: &mut Recorder,
    s: &FmmShape,
    ws: &GpuBuffer<f32>,
    styles: &GpuBuffer<f32>,
    w_out: &GpuBuffer<f32>,
    norms: &GpuBuffer<f32>,
) -> GpuResult<()> {
    let Some(p) = params(s, false)? else {
        return Ok(());
    };
    need("fmm ws", ws, s.c_out * s.c_in)?;
    need("fmm styles", styles, s.batch * s.style_dim())?;
    need("fmm w_out", w_out, s.weight_len())?;
    need("fmm norms", norms, s.batch * s.c_out)?;
    rec.dispatch(
        MODULATE,
        &p,
        &[
            Some(ws.raw()),
            Some(styles.raw()),
            Some(w_out.raw()),
            Some(norms.raw()),
        ],
        groups_1d(s.batch * s.c_out, 1),
    )
}

/// Backward of [`fmm_forward`] given `dw` `[batch, c_out, c_in]` and the forward's `norms`:
/// `dws` `[c_out, c_in]` (summed over the batch; added to when `accumulate_dws`) and `dstyles`
/// `[batch, (c_out + c_in) * rank]` (overwritten). With `demod`, `scratch` (`[batch, c_out,
/// c_in]`) receives the gradient before the row normalisation; without, it is not used.
#[allow(clippy::too_many_arguments)]
pub fn fmm_backward(
    rec: &mut Recorder,
    s: &FmmShape,
    ws: &GpuBuffer<f32>,
    styles: &GpuBuffer<f32>,
    norms: &GpuBuffer<f32>,
    dw: &GpuBuffer<f32>,
    scratch: &GpuBuffer<f32>,
    dws: &GpuBuffer<f32>,
    dstyles: &GpuBuffer<f32>,
    accumulate_dws: bool,
) -> GpuResult<()> {
    let Some(p) = params(s, accumulate_dws)? else {
        return Ok(());
    };
    need("fmm ws", ws, s.c_out * s.c_in)?;
    need("fmm styles", styles, s.batch * s.style_dim())?;
    need("fmm dw", dw, s.weight_len())?;
    need("fmm dws", dws, s.c_out * s.c_in)?;
    need("fmm dstyles", dstyles, s.batch * s.style_dim())?;
    let g = if s.demod {
        need("fmm norms", norms, s.batch * s.c_out)?;
        need("fmm scratch", scratch, s.weight_len())?;
        rec.dispatch(
            BACKWARD_ROWS,
            &p,
            &[
                Some(ws.raw()),
                Some(styles.raw()),
                Some(norms.raw()),
                Some(dw.raw()),
                Some(scratch.raw()),
            ],
            groups_1d(s.batch * s.c_out, 1),
        )?;
        scratch
    } else {
        dw
    };
    rec.dispatch(
        BACKWARD_SHARED,
        &p,
        &[Some(styles.raw()), Some(g.raw()), Some(dws.raw())],
        groups_1d(s.c_out * s.c_in, WG),
    )?;
    rec.dispatch(
        BACKWARD_STYLES,
        &p,
        &[
            Some(ws.raw()),
            Some(styles.raw()),
            Some(g.raw()),
            Some(dstyles.raw()),
        ],
        groups_1d(s.batch * s.style_dim(), WG),
    )
}
