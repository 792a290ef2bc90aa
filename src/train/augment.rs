//! Differentiable augmentation of everything D sees (DiffAugment, Zhao et al. 2020; with ADA's
//! adaptive probability, Karras et al. 2020): reals and fakes alike, in the G phase (the
//! gradient flows back through it into G), the D phase and the R1 step. Small data sets
//! overfit D within a few hundred thousand images; augmenting what D sees, and nothing that G
//! is asked to produce, keeps D honest without leaking the augmentations into the samples.
//!
//! Per image, three ops each fire with probability `p` (`Fixed`: `p` as configured, 1 by
//! default, DiffAugment's setting; `Adaptive`: `p` starts at 0 and follows ADA's heuristic, the
//! sign of D on the reals against a target of 0.6):
//! - colour: brightness U(-1/2, 1/2), saturation U(0, 2), contrast U(1/2, 3/2);
//! - translation: integer shifts in [-R/8, R/8] per axis, edge-replicate padding (an emoji's
//!   border is its background; see [`crate::reference::augment`]);
//! - cutout: a square of side R/2 set to 0 (mid grey), its centre uniform over the image.
//!
//! The parameters are drawn from the run's RNG, so a resumed run augments exactly as one that
//! never stopped.

use serde::{Deserialize, Serialize};

use crate::backend::{BResult, Backend};
use crate::reference::augment::{AUG_PARAMS, AugParams, AugShape};
use crate::rng::Rng;

/// How D's inputs are augmented.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AugmentMode {
    /// D sees the images as they are (runs from before augmentation existed).
    #[default]
    None,
    /// Each op fires with the configured probability (DiffAugment: 1).
    Fixed,
    /// The probability follows ADA's overfitting heuristic.
    Adaptive,
}

impl std::str::FromStr for AugmentMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "none" | "off" => Ok(Self::None),
            "fixed" | "on" | "diffaugment" => Ok(Self::Fixed),
            "adaptive" | "ada" => Ok(Self::Adaptive),
            other => Err(format!(
                "unknown augmentation {other:?} (none, fixed or adaptive)"
            )),
        }
    }
}

impl std::fmt::Display for AugmentMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Fixed => "fixed",
            Self::Adaptive => "adaptive",
        })
    }
}

/// The augmentation of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AugmentConfig {
    pub mode: AugmentMode,
    /// Probability of each op (`Fixed`), or the adaptive probability's start.
    pub p: f64,
    pub color: bool,
    /// Largest shift as a fraction of the image side (0: no translation).
    pub translation: f64,
    /// Side of the cut square as a fraction of the image side (0: no cutout).
    pub cutout: f64,
    /// Adaptive: the target of the mean sign of D on the reals, the steps between adjustments,
    /// and the thousands of images over which p may move by 1.
    pub target: f64,
    pub interval: u64,
    pub speed_kimg: f64,
}

impl Default for AugmentConfig {
    fn default() -> Self {
        Self {
            mode: AugmentMode::None,
            p: 1.0,
            color: true,
            translation: 0.125,
            cutout: 0.5,
            target: 0.6,
            interval: 4,
            speed_kimg: 500.0,
        }
    }
}

impl AugmentConfig {
    /// The configuration of `mode` with the defaults (`Adaptive` starts at p = 0).
    pub fn with_mode(mode: AugmentMode) -> Self {
        Self {
            mode,
            p: if mode == AugmentMode::Adaptive {
                0.0
            } else {
                1.0
            },
            ..Default::default()
        }
    }

    /// The default for a data set of `n` images: DiffAugment below 10,000 images, where D
    /// overfits within a short run; none above.
    pub fn default_for(n: usize) -> Self {
        Self::with_mode(if n < 10_000 {
            AugmentMode::Fixed
        } else {
            AugmentMode::None
        })
    }

    /// Checks the values.
    pub fn validate(&self) -> Result<(), String> {
        let unit = |v: f64| v.is_finite() && (0.0..=1.0).contains(&v);
        if !unit(self.p) || !unit(self.translation) || !unit(self.cutout) || !unit(self.target) {
            return Err(format!(
                "augmentation: p, translation, cutout and target must lie in [0, 1]: {self:?}"
            ));
        }
        if self.mode == AugmentMode::Adaptive
            && (self.interval == 0 || !(self.speed_kimg.is_finite() && self.speed_kimg > 0.0))
        {
            return Err("adaptive augmentation needs an interval and a positive speed".into());
        }
        Ok(())
    }
}

/// The adaptive probability and ADA's running statistic (saved in checkpoints).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct AugmentState {
    pub p: f64,
    /// Sum of sign(D(real)) and the count since the last adjustment.
    pub sign_sum: f64,
    pub sign_count: u64,
}

impl AugmentState {
    pub fn new(cfg: &AugmentConfig) -> Self {
        Self {
            p: cfg.p,
            ..Default::default()
        }
    }

    /// The probability this step augments with.
    pub fn p(&self, cfg: &AugmentConfig) -> f64 {
        match cfg.mode {
            AugmentMode::None => 0.0,
            AugmentMode::Fixed => cfg.p,
            AugmentMode::Adaptive => self.p,
        }
    }

    /// Adds D's logits on the reals of a step of `batch` images; after every `interval` steps
    /// moves p by `sign(r - target) · batch · interval / (speed_kimg · 1000)` (ADA).
    pub fn observe(&mut self, cfg: &AugmentConfig, real_logits: &[f32], batch: usize, step: u64) {
        if cfg.mode != AugmentMode::Adaptive {
            return;
        }
        for &v in real_logits {
            self.sign_sum += if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            };
            self.sign_count += 1;
        }
        if cfg.interval > 0 && step.is_multiple_of(cfg.interval) && self.sign_count > 0 {
            let r = self.sign_sum / self.sign_count as f64;
            let adjust = (r - cfg.target).signum() * (batch as f64 * cfg.interval as f64)
                / (cfg.speed_kimg * 1000.0);
            self.p = (self.p + adjust).clamp(0.0, 1.0);
            self.sign_sum = 0.0;
            self.sign_count = 0;
        }
    }
}

/// Draws the parameters of `batch` images of side `res` from `rng` with probability `p` per op
/// (`[batch, AUG_PARAMS]`). Every draw is made whether or not its op fires, so the stream of
/// random numbers does not depend on p.
pub fn sample(cfg: &AugmentConfig, p: f64, batch: usize, res: usize, rng: &mut Rng) -> Vec<f32> {
    let mut out = Vec::with_capacity(batch * AUG_PARAMS);
    let shift = (res as f64 * cfg.translation).round() as i64;
    let side = (res as f64 * cfg.cutout).round() as i64;
    for _ in 0..batch {
        let mut a = AugParams::IDENTITY;
        let fire = [rng.uniform(), rng.uniform(), rng.uniform()];
        let (bri, sat, con) = (rng.uniform(), rng.uniform(), rng.uniform());
        let (tx, ty) = (rng.uniform(), rng.uniform());
        let (cx, cy) = (rng.uniform(), rng.uniform());
        if cfg.color && fire[0] < p {
            a.brightness = (bri - 0.5) as f32;
            a.saturation = (2.0 * sat) as f32;
            a.contrast = (con + 0.5) as f32;
        }
        if shift > 0 && fire[1] < p {
            // Uniform integers in [-shift, shift].
            let pick = |u: f64| ((u * (2 * shift + 1) as f64).floor() as i64 - shift) as i32;
            a.tx = pick(tx);
            a.ty = pick(ty);
        }
        if side > 0 && fire[2] < p {
            // The centre uniform over [0, res] (DiffAugment), the square around it.
            let pick = |u: f64| ((u * (res as f64 + 1.0)).floor() as i64 - side / 2) as i32;
            a.cut_x = pick(cx);
            a.cut_y = pick(cy);
            a.cut = side as i32;
        }
        out.extend_from_slice(&a.to_f32s());
    }
    out
}

/// `x [batch, 3, R, R]` augmented by the parameters `prm` (a new buffer).
pub fn forward<B: Backend>(be: &mut B, s: &AugShape, x: &B::Buf, prm: &B::Buf) -> BResult<B::Buf> {
    let n = s.len();
    let z1 = be.output(n, "aug colour")?;
    be.aug_color(s, x, prm, &z1, true)?;
    let mu = be.zeros(s.batch, "aug mean")?;
    let per = s.per_image();
    be.sum_axes(&z1, &mu, 1, s.batch, per, 1.0 / per.max(1) as f32, false)?;
    let z2 = be.output(n, "aug contrast")?;
    be.aug_blend(s, &z1, prm, &mu, &z2)?;
    let y = be.output(n, "augmented")?;
    be.aug_shift_forward(s, &z2, prm, &y)?;
    Ok(y)
}

/// The gradient with respect to the un-augmented images for `dy`, the gradient with respect
/// to the augmented ones (the pipeline is affine in x: no tape is needed).
pub fn backward<B: Backend>(
    be: &mut B,
    s: &AugShape,
    dy: &B::Buf,
    prm: &B::Buf,
) -> BResult<B::Buf> {
    let n = s.len();
    let g2 = be.output(n, "daug shift")?;
    be.aug_shift_backward(s, dy, prm, &g2)?;
    let nu = be.zeros(s.batch, "daug mean")?;
    let per = s.per_image();
    be.sum_axes(&g2, &nu, 1, s.batch, per, 1.0 / per.max(1) as f32, false)?;
    let g1 = be.output(n, "daug contrast")?;
    be.aug_blend(s, &g2, prm, &nu, &g1)?;
    let dx = be.output(n, "daug")?;
    be.aug_color(s, &g1, prm, &dx, false)?;
    Ok(dx)
}
