//! Bias + leaky ReLU with gain (StyleGAN2's `bias_act` with `act = lrelu`).

use super::{Float, c};

/// Default leaky-ReLU slope of the model.
pub const DEFAULT_ALPHA: f32 = 0.2;
/// Default gain of the model (`sqrt(2)`, keeps the activations' second moment).
pub const DEFAULT_GAIN: f32 = std::f32::consts::SQRT_2;

/// `X` viewed as `[outer, channels, inner]` (planar maps: `inner` = pixels; rows `[N, C]`:
/// `inner = 1`); `Y = lrelu_alpha(X + b_gain * bias[c]) * gain`. `alpha = 1` makes it linear.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActShape {
    pub outer: usize,
    pub channels: usize,
    pub inner: usize,
    pub alpha: f32,
    pub gain: f32,
    pub b_gain: f32,
}

impl ActShape {
    /// The model's default activation (slope 0.2, gain sqrt 2, bias gain 1).
    pub fn lrelu(outer: usize, channels: usize, inner: usize) -> Self {
        Self {
            outer,
            channels,
            inner,
            alpha: DEFAULT_ALPHA,
            gain: DEFAULT_GAIN,
            b_gain: 1.0,
        }
    }

    /// Number of values `outer * channels * inner`.
    pub fn len(&self) -> usize {
        self.outer * self.channels * self.inner
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Forward: `Y = act(X + b_gain * bias[c]) * gain`.
pub fn act_forward<F: Float>(s: &ActShape, x: &[F], bias: Option<&[F]>) -> Vec<F> {
    let (alpha, gain, bg) = (
        c::<F>(s.alpha as f64),
        c::<F>(s.gain as f64),
        c::<F>(s.b_gain as f64),
    );
    x.iter()
        .enumerate()
        .map(|(i, &v)| {
            let ch = (i / s.inner) % s.channels;
            let z = match bias {
                Some(b) => v + bg * b[ch],
                None => v,
            };
            let a = if z > F::zero() { z } else { alpha * z };
            a * gain
        })
        .collect()
}

/// Gradients (dX, dbias) from the forward OUTPUT `y`: `dX = dY * gain * (Y > 0 ? 1 : alpha)`,
/// `dbias[c] = b_gain * sum dX[.., c, ..]`. Valid because `gain > 0` keeps the sign of the
/// pre-activation (and `alpha >= 0` keeps negative inputs non-positive).
pub fn act_backward<F: Float>(s: &ActShape, y: &[F], dy: &[F]) -> (Vec<F>, Vec<F>) {
    let (alpha, gain, bg) = (
        c::<F>(s.alpha as f64),
        c::<F>(s.gain as f64),
        c::<F>(s.b_gain as f64),
    );
    let dx: Vec<F> = y
        .iter()
        .zip(dy)
        .map(|(&yv, &g)| g * gain * if yv > F::zero() { F::one() } else { alpha })
        .collect();
    let db = super::reduce::sum_axes(&dx, s.outer, s.channels, s.inner, bg);
    (dx, db)
}
