//! Augment family (`shaders/augment.wgsl`): DiffAugment's differentiable augmentations of the
//! images D sees (Zhao et al. 2020), per image, on planar `[batch, C, H, W]` images in [-1, 1].
//! The pipeline, in DiffAugment's order:
//!
//! ```text
//! colour:      z1 = s (x + β) + (1 - s)(mean_c(x) + β)      brightness β, saturation s
//!              z2 = k z1 + (1 - k) mean_chw(z1)              contrast k
//! translation: z3[i, j] = z2[clamp(i - ty), clamp(j - tx)]   edge-replicate padding
//! cutout:      y[i, j] = 0 inside the square [cy, cy + n) x [cx, cx + n), else z3[i, j]
//! ```
//!
//! Four kernels make it and its backward: [`color`] (saturation and brightness; with β = 0 it
//! is also its own transpose), [`blend`] (contrast toward a per-image mean, which the reduce
//! kernels compute; also its own transpose), [`shift_forward`] (translation and cutout) and
//! [`shift_backward`] (its transpose, as a gather over rectangles of outputs). The padding
//! replicates the edge because an emoji's border is its background (white, or whatever the
//! colour ops made of it): a shifted emoji keeps a seamless background, where zero padding
//! would draw a grey band that no real image has.

use super::Float;

/// Values per image in a parameter buffer: brightness, saturation, contrast, tx, ty, cutout
/// column, cutout row, cutout side (the integers stored exactly as floats).
pub const AUG_PARAMS: usize = 8;

/// One image's augmentation. The identity is brightness 0, saturation 1, contrast 1, no shift,
/// cutout side 0.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AugParams {
    pub brightness: f32,
    pub saturation: f32,
    pub contrast: f32,
    /// Shift right (columns) and down (rows), in pixels.
    pub tx: i32,
    pub ty: i32,
    /// The cut square's first column and row (may lie partly outside) and side.
    pub cut_x: i32,
    pub cut_y: i32,
    pub cut: i32,
}

impl AugParams {
    pub const IDENTITY: AugParams = AugParams {
        brightness: 0.0,
        saturation: 1.0,
        contrast: 1.0,
        tx: 0,
        ty: 0,
        cut_x: 0,
        cut_y: 0,
        cut: 0,
    };

    pub fn to_f32s(&self) -> [f32; AUG_PARAMS] {
        [
            self.brightness,
            self.saturation,
            self.contrast,
            self.tx as f32,
            self.ty as f32,
            self.cut_x as f32,
            self.cut_y as f32,
            self.cut as f32,
        ]
    }

    pub fn from_f32s(v: &[f32]) -> Self {
        Self {
            brightness: v[0],
            saturation: v[1],
            contrast: v[2],
            tx: v[3] as i32,
            ty: v[4] as i32,
            cut_x: v[5] as i32,
            cut_y: v[6] as i32,
            cut: v[7] as i32,
        }
    }

    /// Whether the cutout removes pixel (row i, column j).
    pub fn cut_out(&self, i: usize, j: usize) -> bool {
        let (i, j) = (i as i64, j as i64);
        let (x0, y0, n) = (self.cut_x as i64, self.cut_y as i64, self.cut as i64);
        n > 0 && i >= y0 && i < y0 + n && j >= x0 && j < x0 + n
    }
}

/// The shape of an augmented batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AugShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl AugShape {
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }
    /// Values per image.
    pub fn per_image(&self) -> usize {
        self.channels * self.pixels()
    }
    pub fn len(&self) -> usize {
        self.batch * self.per_image()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Checks the shape and that every parameter is finite (the integers in range of `i32`).
    pub fn check(&self, params: &[f32]) -> Result<(), String> {
        if params.len() < self.batch * AUG_PARAMS {
            return Err(format!(
                "augment: {} parameters for a batch of {}",
                params.len(),
                self.batch
            ));
        }
        if params[..self.batch * AUG_PARAMS]
            .iter()
            .any(|v| !v.is_finite() || v.abs() > 1e6)
        {
            return Err("augment: a non-finite or absurd parameter".into());
        }
        Ok(())
    }
}

fn param<F: Float>(params: &[f32], b: usize, k: usize) -> F {
    F::from(params[b * AUG_PARAMS + k]).unwrap_or_else(F::nan)
}

/// Saturation about the per-pixel channel mean plus brightness: `y[b, c, p] = s (x[b, c, p] -
/// m[b, p]) + m[b, p] + β` with `m` the mean over channels, `(β, s)` the image's brightness and
/// saturation (β taken as 0 when `!brightness`: the transpose of the saturation).
pub fn color<F: Float>(s: &AugShape, x: &[F], params: &[f32], brightness: bool) -> Vec<F> {
    let (np, nc) = (s.pixels(), s.channels);
    let mut y = vec![F::zero(); s.len()];
    for b in 0..s.batch {
        let beta: F = if brightness {
            param(params, b, 0)
        } else {
            F::zero()
        };
        let sat: F = param(params, b, 1);
        let base = b * nc * np;
        for p in 0..np {
            let mut m = F::zero();
            for c in 0..nc {
                m = m + x[base + c * np + p];
            }
            m = m / F::from(nc).unwrap_or_else(F::one);
            for c in 0..nc {
                let v = x[base + c * np + p];
                y[base + c * np + p] = sat * (v - m) + m + beta;
            }
        }
    }
    y
}

/// Contrast: `y[b, i] = k_b (x[b, i] - mu[b]) + mu[b]` with `k_b` the image's contrast and
/// `mu` a per-image value (forward: the image's mean; backward: the mean of the gradient).
pub fn blend<F: Float>(s: &AugShape, x: &[F], params: &[f32], mu: &[F]) -> Vec<F> {
    let n = s.per_image();
    let mut y = vec![F::zero(); s.len()];
    for b in 0..s.batch {
        let k: F = param(params, b, 2);
        for i in 0..n {
            let v = x[b * n + i];
            y[b * n + i] = k * (v - mu[b]) + mu[b];
        }
    }
    y
}

/// The per-image mean of `x` (what [`blend`] blends toward).
pub fn image_means<F: Float>(s: &AugShape, x: &[F]) -> Vec<F> {
    let n = s.per_image();
    (0..s.batch)
        .map(|b| {
            let mut acc = F::zero();
            for &v in &x[b * n..(b + 1) * n] {
                acc = acc + v;
            }
            acc / F::from(n.max(1)).unwrap_or_else(F::one)
        })
        .collect()
}

fn clamp_index(i: i64, n: usize) -> usize {
    i.clamp(0, n as i64 - 1) as usize
}

/// Every (output, source) index pair of the translation and cutout: output `[b, c, i, j]`
/// outside the cut square reads source `[b, c, clamp(i - ty), clamp(j - tx)]`.
fn shift_pairs(s: &AugShape, params: &[f32], mut f: impl FnMut(usize, usize)) {
    let (h, w) = (s.height, s.width);
    for b in 0..s.batch {
        let a = AugParams::from_f32s(&params[b * AUG_PARAMS..]);
        for c in 0..s.channels {
            let base = (b * s.channels + c) * h * w;
            for i in 0..h {
                let si = clamp_index(i as i64 - a.ty as i64, h);
                for j in 0..w {
                    if !a.cut_out(i, j) {
                        let sj = clamp_index(j as i64 - a.tx as i64, w);
                        f(base + i * w + j, base + si * w + sj);
                    }
                }
            }
        }
    }
}

/// Translation with edge-replicate padding, then cutout: `y[b, c, i, j] = 0` inside the cut
/// square, else `x[b, c, clamp(i - ty), clamp(j - tx)]`.
pub fn shift_forward<F: Float>(s: &AugShape, x: &[F], params: &[f32]) -> Vec<F> {
    let mut y = vec![F::zero(); s.len()];
    shift_pairs(s, params, |o, src| y[o] = x[src]);
    y
}

/// The transpose of [`shift_forward`], as the plain scatter it is.
pub fn shift_backward<F: Float>(s: &AugShape, dy: &[F], params: &[f32]) -> Vec<F> {
    let mut dx = vec![F::zero(); s.len()];
    shift_pairs(s, params, |o, src| dx[src] = dx[src] + dy[o]);
    dx
}

/// The outputs `[lo, hi)` along an axis of `n` that a translation by `t` with edge-replicate
/// padding reads from source index `s` (the gather form of [`shift_backward`]).
pub fn shift_sources(s: usize, t: i64, n: usize) -> (usize, usize) {
    let n1 = n as i64 - 1;
    let s = s as i64;
    let (lo, hi) = if n1 == 0 {
        (0, 0)
    } else if s == 0 {
        (i64::MIN, t)
    } else if s == n1 {
        (n1 + t, i64::MAX)
    } else {
        (s + t, s + t)
    };
    let lo = lo.clamp(0, n1 + 1);
    let hi = hi.saturating_add(1).clamp(0, n1 + 1);
    (lo as usize, hi.max(lo) as usize)
}

/// The whole pipeline forward (the oracle of the composed kernels).
pub fn augment<F: Float>(s: &AugShape, x: &[F], params: &[f32]) -> Vec<F> {
    let z1 = color(s, x, params, true);
    let mu = image_means(s, &z1);
    let z2 = blend(s, &z1, params, &mu);
    shift_forward(s, &z2, params)
}

/// The whole pipeline's transpose: `dx` for `dy` (the augmentation is affine in `x`).
pub fn augment_backward<F: Float>(s: &AugShape, dy: &[F], params: &[f32]) -> Vec<F> {
    let g2 = shift_backward(s, dy, params);
    let nu = image_means(s, &g2);
    let g1 = blend(s, &g2, params, &nu);
    color(s, &g1, params, false)
}
