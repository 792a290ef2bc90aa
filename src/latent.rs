//! Latents of the explorer: four anchor seeds at the corners of a square, a point in that square
//! (bilinear interpolation, lerp in w or slerp in z), truncation and per-scale style mixing. The
//! same description drives the window, exports and `inrgan render --recipe`, so an exported
//! picture can be made again exactly.

use serde::{Deserialize, Serialize};

use crate::backend::{BResult, Backend};
use crate::model::generator::Generator;
use crate::model::params::ParamSet;

/// How the point between the anchors is interpolated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Interp {
    /// Linear in w (after the mapping network): the usual choice for StyleGAN-like models.
    #[default]
    LerpW,
    /// Spherical in z (before the mapping network): stays on the Gaussian shell.
    SlerpZ,
}

impl Interp {
    pub fn label(self) -> &'static str {
        match self {
            Interp::LerpW => "lerp in w",
            Interp::SlerpZ => "slerp in z",
        }
    }
}

/// One image's latent, as the explorer describes it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatentSpec {
    /// Anchor seeds at the corners (u, v) = (0, 0), (1, 0), (0, 1), (1, 1).
    pub seeds: [u64; 4],
    /// The point in the square of anchors.
    pub uv: [f32; 2],
    pub interp: Interp,
    /// Truncation towards the average w (1 = none).
    pub psi: f32,
    /// Style mixing: per scale level, the anchor whose w that level takes (`None`: the
    /// interpolated w). Missing entries mean `None`.
    #[serde(default)]
    pub mixing: Vec<Option<u8>>,
}

impl Default for LatentSpec {
    fn default() -> Self {
        Self {
            seeds: [0, 1, 2, 3],
            uv: [0.0, 0.0],
            interp: Interp::LerpW,
            psi: 1.0,
            mixing: Vec::new(),
        }
    }
}

impl LatentSpec {
    /// The plain latent of one seed.
    pub fn seed(seed: u64, psi: f32) -> Self {
        Self {
            seeds: [seed; 4],
            psi,
            ..Self::default()
        }
    }

    /// Bilinear weights of the four anchors at `uv`.
    pub fn weights(&self) -> [f32; 4] {
        let [u, v] = [self.uv[0].clamp(0.0, 1.0), self.uv[1].clamp(0.0, 1.0)];
        [(1.0 - u) * (1.0 - v), u * (1.0 - v), (1.0 - u) * v, u * v]
    }

    /// One w per scale level of `g` (`[w_dim]` each), on the host.
    pub fn level_ws<B: Backend>(
        &self,
        g: &Generator,
        be: &mut B,
        p: &ParamSet<B>,
    ) -> BResult<Vec<Vec<f32>>> {
        let d = g.cfg.w_dim;
        let z: Vec<f32> = self.seeds.iter().flat_map(|&s| g.latent(s)).collect();
        // The anchors' own w (truncated), for lerp and for mixing.
        let anchors = g.map_truncated(be, p, &z, 4, self.psi)?;
        let anchor = |i: usize| anchors[i * d..(i + 1) * d].to_vec();
        let mixed = match self.interp {
            Interp::LerpW => {
                let a = self.weights();
                (0..d)
                    .map(|j| (0..4).map(|i| a[i] * anchors[i * d + j]).sum())
                    .collect()
            }
            Interp::SlerpZ => {
                let zd = g.cfg.z_dim;
                let zi = |i: usize| &z[i * zd..(i + 1) * zd];
                let [u, v] = [self.uv[0].clamp(0.0, 1.0), self.uv[1].clamp(0.0, 1.0)];
                let top = slerp(zi(0), zi(1), u);
                let bottom = slerp(zi(2), zi(3), u);
                let zz = slerp(&top, &bottom, v);
                g.map_truncated(be, p, &zz, 1, self.psi)?
            }
        };
        let levels = g.cfg.levels.len();
        Ok((0..levels)
            .map(|k| match self.mixing.get(k).copied().flatten() {
                Some(i) if (i as usize) < 4 => anchor(i as usize),
                _ => mixed.clone(),
            })
            .collect())
    }
}

/// Spherical interpolation between `a` and `b` (lerp when they are nearly parallel), with the
/// norm interpolated linearly.
pub fn slerp(a: &[f32], b: &[f32], t: f32) -> Vec<f32> {
    let na = a.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let nb = b.iter().map(|&x| (x as f64).powi(2)).sum::<f64>().sqrt();
    let t = t as f64;
    if na < 1e-12 || nb < 1e-12 {
        return a
            .iter()
            .zip(b)
            .map(|(&x, &y)| ((1.0 - t) * x as f64 + t * y as f64) as f32)
            .collect();
    }
    let dot = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| x as f64 * y as f64)
        .sum::<f64>()
        / (na * nb);
    let omega = dot.clamp(-1.0, 1.0).acos();
    let (ka, kb) = if omega.abs() < 1e-6 {
        (1.0 - t, t)
    } else {
        let so = omega.sin();
        (((1.0 - t) * omega).sin() / so, (t * omega).sin() / so)
    };
    let norm = (1.0 - t) * na + t * nb;
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (norm * (ka * x as f64 / na + kb * y as f64 / nb)) as f32)
        .collect()
}

/// The point of a loop through the anchors (0,0) → (1,0) → (1,1) → (0,1) → (0,0) at phase `t`
/// (one lap per unit of `t`).
pub fn loop_uv(t: f64) -> [f32; 2] {
    let s = t.rem_euclid(1.0) * 4.0;
    let f = s.fract() as f32;
    match s as usize {
        0 => [f, 0.0],
        1 => [1.0, f],
        2 => [1.0 - f, 1.0],
        _ => [0.0, 1.0 - f],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slerp_ends_and_norm() {
        let a = [1.0, 0.0, 0.0];
        let b = [0.0, 2.0, 0.0];
        assert_eq!(slerp(&a, &b, 0.0), vec![1.0, 0.0, 0.0]);
        let e = slerp(&a, &b, 1.0);
        assert!((e[1] - 2.0).abs() < 1e-6 && e[0].abs() < 1e-6);
        let m = slerp(&a, &b, 0.5);
        // Halfway along the arc: equal angles to both, norm halfway between.
        assert!((m[0] / 1.5 - (0.5f32).sqrt()).abs() < 1e-5, "{m:?}");
        assert!((m[1] / 1.5 - (0.5f32).sqrt()).abs() < 1e-5, "{m:?}");
    }

    #[test]
    fn loop_visits_the_corners() {
        assert_eq!(loop_uv(0.0), [0.0, 0.0]);
        assert_eq!(loop_uv(0.25), [1.0, 0.0]);
        assert_eq!(loop_uv(0.5), [1.0, 1.0]);
        assert_eq!(loop_uv(0.75), [0.0, 1.0]);
        assert_eq!(loop_uv(0.125), [0.5, 0.0]);
    }

    #[test]
    fn weights_are_a_partition_of_unity() {
        let s = LatentSpec {
            uv: [0.3, 0.8],
            ..LatentSpec::default()
        };
        let w = s.weights();
        assert!((w.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((w[3] - 0.24).abs() < 1e-6);
    }
}
