//! Linear family: dense linear layer and the per-pixel modulated linear layer.

use super::{Float, c};

/// Shape of a dense linear layer `Y[n, o] = w_gain * sum_i X[n, i] W[o, i] + b_gain * b[o]`
/// (equalised learning rate: `w_gain = lr_mul / sqrt(d_in)`, `b_gain = lr_mul`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearShape {
    pub rows: usize,
    pub d_in: usize,
    pub d_out: usize,
    pub w_gain: f32,
    pub b_gain: f32,
}

pub fn linear_forward<F: Float>(s: &LinearShape, x: &[F], w: &[F], b: Option<&[F]>) -> Vec<F> {
    let (wg, bg) = (c::<F>(s.w_gain as f64), c::<F>(s.b_gain as f64));
    let mut y = vec![F::zero(); s.rows * s.d_out];
    for n in 0..s.rows {
        for o in 0..s.d_out {
            let mut acc = F::zero();
            for i in 0..s.d_in {
                acc = acc + x[n * s.d_in + i] * w[o * s.d_in + i];
            }
            let mut v = wg * acc;
            if let Some(b) = b {
                v = v + bg * b[o];
            }
            y[n * s.d_out + o] = v;
        }
    }
    y
}

/// Gradients of [`linear_forward`]: (dX, dW, db).
pub fn linear_backward<F: Float>(
    s: &LinearShape,
    x: &[F],
    w: &[F],
    dy: &[F],
) -> (Vec<F>, Vec<F>, Vec<F>) {
    let (wg, bg) = (c::<F>(s.w_gain as f64), c::<F>(s.b_gain as f64));
    let mut dx = vec![F::zero(); s.rows * s.d_in];
    let mut dw = vec![F::zero(); s.d_out * s.d_in];
    let mut db = vec![F::zero(); s.d_out];
    for n in 0..s.rows {
        for o in 0..s.d_out {
            let g = dy[n * s.d_out + o];
            db[o] = db[o] + bg * g;
            for i in 0..s.d_in {
                dx[n * s.d_in + i] = dx[n * s.d_in + i] + wg * g * w[o * s.d_in + i];
                dw[o * s.d_in + i] = dw[o * s.d_in + i] + wg * g * x[n * s.d_in + i];
            }
        }
    }
    (dx, dw, db)
}

/// Shape of the per-pixel modulated linear layer: image `b` applies its own weight
/// `W[b]` (`[c_out, c_in]`) to each of its `pixels` feature vectors, stored planar:
/// `Y[b, o, p] = sum_i W[b, o, i] X[b, i, p] + bias[o]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ModLinearShape {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub pixels: usize,
}

pub fn modlinear_forward<F: Float>(
    s: &ModLinearShape,
    x: &[F],
    w: &[F],
    bias: Option<&[F]>,
) -> Vec<F> {
    let (ci, co, np) = (s.c_in, s.c_out, s.pixels);
    let mut y = vec![F::zero(); s.batch * co * np];
    for b in 0..s.batch {
        for o in 0..co {
            for p in 0..np {
                let mut acc = F::zero();
                for i in 0..ci {
                    acc = acc + w[(b * co + o) * ci + i] * x[(b * ci + i) * np + p];
                }
                if let Some(bias) = bias {
                    acc = acc + bias[o];
                }
                y[(b * co + o) * np + p] = acc;
            }
        }
    }
    y
}

/// Gradients of [`modlinear_forward`]: (dX, dW per image, dbias).
pub fn modlinear_backward<F: Float>(
    s: &ModLinearShape,
    x: &[F],
    w: &[F],
    dy: &[F],
) -> (Vec<F>, Vec<F>, Vec<F>) {
    let (ci, co, np) = (s.c_in, s.c_out, s.pixels);
    let mut dx = vec![F::zero(); s.batch * ci * np];
    let mut dw = vec![F::zero(); s.batch * co * ci];
    let mut db = vec![F::zero(); co];
    for b in 0..s.batch {
        for o in 0..co {
            for p in 0..np {
                let g = dy[(b * co + o) * np + p];
                db[o] = db[o] + g;
                for i in 0..ci {
                    dx[(b * ci + i) * np + p] =
                        dx[(b * ci + i) * np + p] + w[(b * co + o) * ci + i] * g;
                    dw[(b * co + o) * ci + i] =
                        dw[(b * co + o) * ci + i] + g * x[(b * ci + i) * np + p];
                }
            }
        }
    }
    (dx, dw, db)
}
