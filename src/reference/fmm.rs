//! FMM family: factorized multiplicative modulation, the INR-GAN per-image weight.
//!
//! Per image `b`: `A` = the first `c_out * rank` styles as `[c_out, rank]`, `B` = the rest as
//! `[rank, c_in]` (row-major); `M = A B / sqrt(rank)`, `M' = ws ⊙ (1 + M)`, and with `demod`
//! each row is normalised, `W[b, o, :] = M'[o, :] / (‖M'[o, :]‖₂ + 1e-8)` (official
//! `fmm_modulate_linear`, activation `"demod"`); without it `W = M'`.

use super::{Float, c};

/// The epsilon added to each row norm (not inside the square root).
pub const FMM_EPS: f64 = 1e-8;

/// Shape of one FMM weight: `batch` images, each with its own `[c_out, c_in]` weight built from
/// the shared `ws` `[c_out, c_in]` and `styles` `[batch, (c_out + c_in) * rank]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FmmShape {
    pub batch: usize,
    pub c_out: usize,
    pub c_in: usize,
    pub rank: usize,
    pub demod: bool,
}

impl FmmShape {
    /// Styles per image: `(c_out + c_in) * rank`.
    pub fn style_dim(&self) -> usize {
        (self.c_out + self.c_in) * self.rank
    }

    /// Values of the per-image weights `[batch, c_out, c_in]`.
    pub fn weight_len(&self) -> usize {
        self.batch * self.c_out * self.c_in
    }
}

/// `M[b]` (`[c_out, c_in]`) `= A B / sqrt(rank)` of image `b`.
fn modulation<F: Float>(s: &FmmShape, styles: &[F], b: usize) -> Vec<F> {
    let (co, ci, r) = (s.c_out, s.c_in, s.rank);
    let inv = F::one() / c::<F>(r as f64).sqrt();
    let base = b * s.style_dim();
    let (a, bm) = (
        &styles[base..base + co * r],
        &styles[base + co * r..base + s.style_dim()],
    );
    let mut m = vec![F::zero(); co * ci];
    for o in 0..co {
        for i in 0..ci {
            let mut acc = F::zero();
            for k in 0..r {
                acc = acc + a[o * r + k] * bm[k * ci + i];
            }
            m[o * ci + i] = acc * inv;
        }
    }
    m
}

/// Forward: (`W` `[batch, c_out, c_in]`, `norms` `[batch, c_out]` = ‖M'[b, o, :]‖₂).
pub fn fmm_forward<F: Float>(s: &FmmShape, ws: &[F], styles: &[F]) -> (Vec<F>, Vec<F>) {
    let (co, ci) = (s.c_out, s.c_in);
    let eps = c::<F>(FMM_EPS);
    let mut w = vec![F::zero(); s.weight_len()];
    let mut norms = vec![F::zero(); s.batch * co];
    for b in 0..s.batch {
        let m = modulation(s, styles, b);
        for o in 0..co {
            let row: Vec<F> = (0..ci)
                .map(|i| ws[o * ci + i] * (F::one() + m[o * ci + i]))
                .collect();
            let n = row.iter().fold(F::zero(), |acc, &v| acc + v * v).sqrt();
            norms[b * co + o] = n;
            let scale = if s.demod {
                F::one() / (n + eps)
            } else {
                F::one()
            };
            for i in 0..ci {
                w[(b * co + o) * ci + i] = row[i] * scale;
            }
        }
    }
    (w, norms)
}

/// Backward of [`fmm_forward`] for the upstream gradient `dw` `[batch, c_out, c_in]`:
/// (`dws` `[c_out, c_in]`, summed over the batch; `dstyles` `[batch, (c_out + c_in) * rank]`).
pub fn fmm_backward<F: Float>(s: &FmmShape, ws: &[F], styles: &[F], dw: &[F]) -> (Vec<F>, Vec<F>) {
    let (co, ci, r) = (s.c_out, s.c_in, s.rank);
    let inv_sr = F::one() / c::<F>(r as f64).sqrt();
    let eps = c::<F>(FMM_EPS);
    let (_, norms) = fmm_forward(s, ws, styles);
    let mut dws = vec![F::zero(); co * ci];
    let mut dstyles = vec![F::zero(); s.batch * s.style_dim()];
    for b in 0..s.batch {
        let m = modulation(s, styles, b);
        // dM' through the row normalisation
        let mut dmp = vec![F::zero(); co * ci];
        for o in 0..co {
            let g = &dw[(b * co + o) * ci..(b * co + o + 1) * ci];
            if !s.demod {
                dmp[o * ci..(o + 1) * ci].copy_from_slice(g);
                continue;
            }
            let n = norms[b * co + o];
            let inv = F::one() / (n + eps);
            let u: Vec<F> = (0..ci)
                .map(|i| ws[o * ci + i] * (F::one() + m[o * ci + i]) * inv)
                .collect();
            let dot = (0..ci).fold(F::zero(), |acc, i| acc + u[i] * g[i]);
            let coef = if n > F::zero() { dot / n } else { F::zero() };
            for i in 0..ci {
                dmp[o * ci + i] = g[i] * inv - u[i] * coef;
            }
        }
        // shared weight, then dM = dM' ⊙ ws into A and B
        let base = b * s.style_dim();
        for o in 0..co {
            for i in 0..ci {
                let oi = o * ci + i;
                dws[oi] = dws[oi] + dmp[oi] * (F::one() + m[oi]);
                let dm = dmp[oi] * ws[oi] * inv_sr;
                for k in 0..r {
                    let (ia, ib) = (base + o * r + k, base + co * r + k * ci + i);
                    dstyles[ia] = dstyles[ia] + dm * styles[ib];
                    dstyles[ib] = dstyles[ib] + dm * styles[ia];
                }
            }
        }
    }
    (dws, dstyles)
}
