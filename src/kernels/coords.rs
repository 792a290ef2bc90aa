//! `shaders/coords.wgsl`: Fourier coordinate embeddings (sin/cos of fixed or learned
//! projections of the pixel coordinates) and the gradient of learned frequencies.

use bytemuck::{Pod, Zeroable};

use super::{WG, need, u32_of};
use crate::gpu::{GpuBuffer, GpuResult, Kernel, Recorder, Shader, groups_1d};
pub use crate::reference::coords::CoordsShape;

const FORWARD: Kernel = Kernel::new(Shader::Coords, "coords_forward");
const BACKWARD: Kernel = Kernel::new(Shader::Coords, "coords_backward");

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
struct Params {
    width: u32,
    height: u32,
    n_freq: u32,
    with_cos: u32,
    accumulate: u32,
    _pad: [u32; 3],
}

fn params(s: &CoordsShape, accumulate: bool) -> GpuResult<Params> {
    u32_of("coords channels * pixels", s.channels() * s.pixels())?;
    Ok(Params {
        width: u32_of("width", s.width)?,
        height: u32_of("height", s.height)?,
        n_freq: u32_of("n_freq", s.n_freq)?,
        with_cos: s.with_cos as u32,
        accumulate: accumulate as u32,
        ..Default::default()
    })
}

/// `emb[j, p] = sin(phi_j(p))`, and `emb[n_freq + j, p] = cos(phi_j(p))` with cosines, where
/// `phi_j(p) = freqs[j, 0] xs[c] + freqs[j, 1] ys[r]` for pixel `p = r * width + c`.
pub fn coords_forward(
    rec: &mut Recorder,
    s: &CoordsShape,
    xs: &GpuBuffer<f32>,
    ys: &GpuBuffer<f32>,
    freqs: &GpuBuffer<f32>,
    emb: &GpuBuffer<f32>,
) -> GpuResult<()> {
    if s.pixels() == 0 || s.n_freq == 0 {
        return Ok(());
    }
    let p = params(s, false)?;
    need("coords xs", xs, s.width)?;
    need("coords ys", ys, s.height)?;
    need("coords freqs", freqs, 2 * s.n_freq)?;
    need("coords emb", emb, s.channels() * s.pixels())?;
    let [gx, gy, _] = groups_1d(s.pixels(), WG);
    rec.dispatch(
        FORWARD,
        &p,
        &[
            Some(xs.raw()),
            Some(ys.raw()),
            Some(freqs.raw()),
            Some(emb.raw()),
        ],
        [gx, gy, p.n_freq],
    )
}

/// `dfreqs[j, :] = sum_p (x_p, y_p) (cos(phi_j) demb[j, p] - sin(phi_j) demb[n_freq + j, p])`
/// (the sine term only with cosines); `accumulate` adds into `dfreqs`.
#[allow(clippy::too_many_arguments)]
pub fn coords_backward(
    rec: &mut Recorder,
    s: &CoordsShape,
    xs: &GpuBuffer<f32>,
    ys: &GpuBuffer<f32>,
    freqs: &GpuBuffer<f32>,
    demb: &GpuBuffer<f32>,
    dfreqs: &GpuBuffer<f32>,
    accumulate: bool,
) -> GpuResult<()> {
    if s.n_freq == 0 {
        return Ok(());
    }
    let p = params(s, accumulate)?;
    need("coords xs", xs, s.width)?;
    need("coords ys", ys, s.height)?;
    need("coords freqs", freqs, 2 * s.n_freq)?;
    need("coords demb", demb, s.channels() * s.pixels())?;
    need("coords dfreqs", dfreqs, 2 * s.n_freq)?;
    rec.dispatch(
        BACKWARD,
        &p,
        &[
            Some(xs.raw()),
            Some(ys.raw()),
            Some(freqs.raw()),
            Some(demb.raw()),
            Some(dfreqs.raw()),
        ],
        groups_1d(s.n_freq, 1),
    )
}
