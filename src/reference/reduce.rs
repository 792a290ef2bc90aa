//! Reductions and small elementwise ops.

use super::Float;

/// `Y[m] = scale * sum_{a, i} X[a, m, i]` for `X` viewed as `[outer, mid, inner]`.
pub fn sum_axes<F: Float>(x: &[F], outer: usize, mid: usize, inner: usize, scale: F) -> Vec<F> {
    let mut y = vec![F::zero(); mid];
    for (m, ym) in y.iter_mut().enumerate() {
        let mut s = F::zero();
        for a in 0..outer {
            for i in 0..inner {
                s = s + x[(a * mid + m) * inner + i];
            }
        }
        *ym = scale * s;
    }
    y
}

/// `Y[r] = sqrt(sum_c X[r, c]^2)`.
pub fn row_norm<F: Float>(x: &[F], rows: usize, cols: usize) -> Vec<F> {
    (0..rows)
        .map(|r| {
            x[r * cols..(r + 1) * cols]
                .iter()
                .fold(F::zero(), |s, &v| s + v * v)
                .sqrt()
        })
        .collect()
}

/// `softplus(z) = log(1 + exp(z))`, computed stably.
pub fn softplus<F: Float>(z: F) -> F {
    z.max(F::zero()) + (F::one() + (-z.abs()).exp()).ln()
}

/// `Y = softplus(sign * X)`.
pub fn softplus_forward<F: Float>(x: &[F], sign: F) -> Vec<F> {
    x.iter().map(|&v| softplus(sign * v)).collect()
}

/// Gradient of [`softplus_forward`]: `dX = dY * sign * sigmoid(sign * X)`.
pub fn softplus_backward<F: Float>(x: &[F], dy: &[F], sign: F) -> Vec<F> {
    x.iter()
        .zip(dy)
        .map(|(&v, &g)| {
            let z = sign * v;
            g * sign / (F::one() + (-z).exp())
        })
        .collect()
}

/// `Y = a * X + b * Y`.
pub fn axpby<F: Float>(a: F, x: &[F], b: F, y: &mut [F]) {
    for (yi, &xi) in y.iter_mut().zip(x) {
        *yi = a * xi + b * *yi;
    }
}

/// Number of NaN or infinite values.
pub fn count_nonfinite<F: Float>(x: &[F]) -> u32 {
    x.iter().filter(|v| !v.is_finite()).count() as u32
}
