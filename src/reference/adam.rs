//! Adam (PyTorch semantics) and the generator's weight EMA, as in StyleGAN2-ADA.

use super::{Float, c};

/// Adam hyper-parameters of one step.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Factor applied to the raw gradient first (e.g. `1 / n_accumulated`).
    pub grad_scale: f64,
    /// Replace NaN by 0, +inf by 1e5 and -inf by -1e5 in the scaled gradient.
    pub nan_to_num: bool,
}

impl AdamConfig {
    /// StyleGAN2-ADA's optimiser: betas (0, 0.99), eps 1e-8, gradients sanitised.
    pub fn stylegan2(lr: f64) -> Self {
        Self {
            lr,
            beta1: 0.0,
            beta2: 0.99,
            eps: 1e-8,
            grad_scale: 1.0,
            nan_to_num: true,
        }
    }

    /// `(lr / (1 - beta1^t), sqrt(1 - beta2^t))` for step `t >= 1`, in f64.
    pub fn corrections(&self, t: u64) -> (f64, f64) {
        let t = t.min(i32::MAX as u64) as i32;
        let bc1 = 1.0 - self.beta1.powi(t);
        let bc2 = 1.0 - self.beta2.powi(t);
        (self.lr / bc1, bc2.sqrt())
    }
}

/// `torch.nan_to_num(g, nan=0, posinf=1e5, neginf=-1e5)`.
pub fn nan_to_num<F: Float>(g: F) -> F {
    if g.is_nan() {
        F::zero()
    } else if g.is_infinite() {
        if g > F::zero() { c(1e5) } else { c(-1e5) }
    } else {
        g
    }
}

/// One Adam step at step count `t >= 1`, updating `p`, `m` and `v` in place:
/// `g = nan_to_num(grad_scale * grad)`, `m = b1 m + (1 - b1) g`, `v = b2 v + (1 - b2) g^2`,
/// `p -= (lr / bc1) * m / (sqrt(v) / sqrt(bc2) + eps)`.
pub fn adam_step<F: Float>(
    cfg: &AdamConfig,
    t: u64,
    p: &mut [F],
    grad: &[F],
    m: &mut [F],
    v: &mut [F],
) {
    let (step_size, bc2_sqrt) = cfg.corrections(t);
    let (ss, bc2s) = (c::<F>(step_size), c::<F>(bc2_sqrt));
    let (b1, omb1) = (c::<F>(cfg.beta1), c::<F>(1.0 - cfg.beta1));
    let (b2, omb2) = (c::<F>(cfg.beta2), c::<F>(1.0 - cfg.beta2));
    let (gs, eps) = (c::<F>(cfg.grad_scale), c::<F>(cfg.eps));
    for i in 0..p.len() {
        let mut g = gs * grad[i];
        if cfg.nan_to_num {
            g = nan_to_num(g);
        }
        m[i] = b1 * m[i] + omb1 * g;
        v[i] = b2 * v[i] + omb2 * (g * g);
        let denom = v[i].sqrt() / bc2s + eps;
        p[i] = p[i] - ss * (m[i] / denom);
    }
}

/// Weight EMA `e = lerp(p, e, beta) = p + beta (e - p)`, with `torch.lerp`'s two forms (the one
/// from the nearer end) so that `beta` near 1 loses no precision.
pub fn ema_update<F: Float>(p: &[F], e: &mut [F], beta: f64) {
    let (b, omb) = (c::<F>(beta), c::<F>(1.0 - beta));
    for (ei, &pi) in e.iter_mut().zip(p) {
        let d = *ei - pi;
        *ei = if beta.abs() < 0.5 {
            pi + b * d
        } else {
            *ei - d * omb
        };
    }
}
