//! Modulate family: StyleGAN2's weight modulation without demodulation (toRGB).

use super::{Float, c};

/// Shape of `W[b, o, i] = gain * ws[o, i] * s[b, i]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModulateShape {
    pub batch: usize,
    pub c_out: usize,
    pub c_in: usize,
    pub gain: f32,
}

pub fn style_modulate_forward<F: Float>(m: &ModulateShape, ws: &[F], s: &[F]) -> Vec<F> {
    let g = c::<F>(m.gain as f64);
    let mut w = vec![F::zero(); m.batch * m.c_out * m.c_in];
    for b in 0..m.batch {
        for o in 0..m.c_out {
            for i in 0..m.c_in {
                w[(b * m.c_out + o) * m.c_in + i] = g * ws[o * m.c_in + i] * s[b * m.c_in + i];
            }
        }
    }
    w
}

/// Gradients of [`style_modulate_forward`]: (dws, ds).
pub fn style_modulate_backward<F: Float>(
    m: &ModulateShape,
    ws: &[F],
    s: &[F],
    dw: &[F],
) -> (Vec<F>, Vec<F>) {
    let g = c::<F>(m.gain as f64);
    let mut dws = vec![F::zero(); m.c_out * m.c_in];
    let mut ds = vec![F::zero(); m.batch * m.c_in];
    for b in 0..m.batch {
        for o in 0..m.c_out {
            for i in 0..m.c_in {
                let d = dw[(b * m.c_out + o) * m.c_in + i];
                dws[o * m.c_in + i] = dws[o * m.c_in + i] + g * d * s[b * m.c_in + i];
                ds[b * m.c_in + i] = ds[b * m.c_in + i] + g * d * ws[o * m.c_in + i];
            }
        }
    }
    (dws, ds)
}
