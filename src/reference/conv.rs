//! Conv family: the discriminator's 2D convolution with equalised learning rate (K = 1 or 3,
//! stride 1 or 2, zero padding K / 2) and StyleGAN2's `[1, 3, 3, 1]` blur with 2x downsampling.

use super::{Float, c};

/// Shape of a convolution `Y[n, co, ho, wo] = w_gain * sum_{ci, ky, kx} W[co, ci, ky, kx]
/// X[n, ci, ho * s + ky - pad, wo * s + kx - pad] + b_gain * b[co]` with `pad = k / 2` and zero
/// padding; `X` is `[batch, c_in, height, width]`, `W` is `[c_out, c_in, k, k]`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvShape {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
    pub height: usize,
    pub width: usize,
    pub k: usize,
    pub stride: usize,
    pub w_gain: f32,
    pub b_gain: f32,
}

impl ConvShape {
    /// Zero padding on each side: `k / 2`.
    pub fn pad(&self) -> usize {
        self.k / 2
    }

    /// `(height + 2 pad - k) / stride + 1`.
    pub fn out_height(&self) -> usize {
        conv_out(self.height, self.k, self.stride)
    }

    /// `(width + 2 pad - k) / stride + 1`.
    pub fn out_width(&self) -> usize {
        conv_out(self.width, self.k, self.stride)
    }

    /// Values in `X`.
    pub fn x_len(&self) -> usize {
        self.batch * self.c_in * self.height * self.width
    }

    /// Values in `W`.
    pub fn w_len(&self) -> usize {
        self.c_out * self.c_in * self.k * self.k
    }

    /// Values in `Y`.
    pub fn y_len(&self) -> usize {
        self.batch * self.c_out * self.out_height() * self.out_width()
    }

    /// `None` when the shape is usable, else why not (odd `k`, stride 1 or 2, non-empty output).
    pub fn problem(&self) -> Option<String> {
        if self.k.is_multiple_of(2) {
            return Some(format!("conv: kernel size {} must be odd", self.k));
        }
        if self.stride != 1 && self.stride != 2 {
            return Some(format!("conv: stride {} must be 1 or 2", self.stride));
        }
        if self.height == 0 || self.width == 0 {
            return Some(format!("conv: empty input {}x{}", self.height, self.width));
        }
        None
    }
}

fn conv_out(size: usize, k: usize, stride: usize) -> usize {
    let padded = size + 2 * (k / 2);
    if padded < k || stride == 0 {
        0
    } else {
        (padded - k) / stride + 1
    }
}

/// The input index read by output index `o` at tap `t`, if inside `0..size`.
fn tap(o: usize, t: usize, s: &ConvShape, size: usize) -> Option<usize> {
    let i = (o * s.stride + t).checked_sub(s.pad())?;
    (i < size).then_some(i)
}

/// Forward convolution (see [`ConvShape`]).
pub fn conv2d_forward<F: Float>(s: &ConvShape, x: &[F], w: &[F], b: Option<&[F]>) -> Vec<F> {
    let (wg, bg) = (c::<F>(s.w_gain as f64), c::<F>(s.b_gain as f64));
    let (ho, wo, k) = (s.out_height(), s.out_width(), s.k);
    let (h, wd) = (s.height, s.width);
    let mut y = vec![F::zero(); s.y_len()];
    for n in 0..s.batch {
        for co in 0..s.c_out {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = F::zero();
                    for ci in 0..s.c_in {
                        for ky in 0..k {
                            let Some(iy) = tap(oy, ky, s, h) else {
                                continue;
                            };
                            for kx in 0..k {
                                let Some(ix) = tap(ox, kx, s, wd) else {
                                    continue;
                                };
                                acc = acc
                                    + w[((co * s.c_in + ci) * k + ky) * k + kx]
                                        * x[((n * s.c_in + ci) * h + iy) * wd + ix];
                            }
                        }
                    }
                    let mut v = wg * acc;
                    if let Some(b) = b {
                        v = v + bg * b[co];
                    }
                    y[((n * s.c_out + co) * ho + oy) * wo + ox] = v;
                }
            }
        }
    }
    y
}

/// Gradients of [`conv2d_forward`]: (dX, dW, db).
pub fn conv2d_backward<F: Float>(
    s: &ConvShape,
    x: &[F],
    w: &[F],
    dy: &[F],
) -> (Vec<F>, Vec<F>, Vec<F>) {
    let (wg, bg) = (c::<F>(s.w_gain as f64), c::<F>(s.b_gain as f64));
    let (ho, wo, k) = (s.out_height(), s.out_width(), s.k);
    let (h, wd) = (s.height, s.width);
    let mut dx = vec![F::zero(); s.x_len()];
    let mut dw = vec![F::zero(); s.w_len()];
    let mut db = vec![F::zero(); s.c_out];
    for n in 0..s.batch {
        for co in 0..s.c_out {
            for oy in 0..ho {
                for ox in 0..wo {
                    let g = dy[((n * s.c_out + co) * ho + oy) * wo + ox];
                    db[co] = db[co] + bg * g;
                    for ci in 0..s.c_in {
                        for ky in 0..k {
                            let Some(iy) = tap(oy, ky, s, h) else {
                                continue;
                            };
                            for kx in 0..k {
                                let Some(ix) = tap(ox, kx, s, wd) else {
                                    continue;
                                };
                                let wi = ((co * s.c_in + ci) * k + ky) * k + kx;
                                let xi = ((n * s.c_in + ci) * h + iy) * wd + ix;
                                dx[xi] = dx[xi] + wg * g * w[wi];
                                dw[wi] = dw[wi] + wg * g * x[xi];
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw, db)
}

/// The 1D taps of StyleGAN2's resampling filter, `[1, 3, 3, 1] / 8` (the 2D filter is `f ⊗ f`).
pub const BLUR_TAPS: [f64; 4] = [0.125, 0.375, 0.375, 0.125];

/// Output size of [`blur_down2x_forward`] along an axis of `size`: `(size + 2 - 4) / 2 + 1`,
/// i.e. `size / 2` for `size >= 2` and 0 for `size < 2`.
pub fn blur_down2x_out(size: usize) -> usize {
    if size < 2 { 0 } else { (size - 2) / 2 + 1 }
}

/// `Y[p, i, j] = sum_{a, b in 0..4} f[a] f[b] X[p, 2i + a - 1, 2j + b - 1]` over `planes`
/// planes of `h x w` (zero padding 1 on each side), output `blur_down2x_out(h) x
/// blur_down2x_out(w)`.
pub fn blur_down2x_forward<F: Float>(x: &[F], planes: usize, h: usize, w: usize) -> Vec<F> {
    let (ho, wo) = (blur_down2x_out(h), blur_down2x_out(w));
    let f = BLUR_TAPS.map(c::<F>);
    let mut y = vec![F::zero(); planes * ho * wo];
    for p in 0..planes {
        for i in 0..ho {
            for j in 0..wo {
                let mut acc = F::zero();
                for (a, &fa) in f.iter().enumerate() {
                    let Some(iy) = (2 * i + a).checked_sub(1).filter(|&v| v < h) else {
                        continue;
                    };
                    for (b, &fb) in f.iter().enumerate() {
                        let Some(ix) = (2 * j + b).checked_sub(1).filter(|&v| v < w) else {
                            continue;
                        };
                        acc = acc + fa * fb * x[(p * h + iy) * w + ix];
                    }
                }
                y[(p * ho + i) * wo + j] = acc;
            }
        }
    }
    y
}

/// Gradient of [`blur_down2x_forward`]: `dX` (`planes x h x w`) from `dY`.
pub fn blur_down2x_backward<F: Float>(dy: &[F], planes: usize, h: usize, w: usize) -> Vec<F> {
    let (ho, wo) = (blur_down2x_out(h), blur_down2x_out(w));
    let f = BLUR_TAPS.map(c::<F>);
    let mut dx = vec![F::zero(); planes * h * w];
    for p in 0..planes {
        for i in 0..ho {
            for j in 0..wo {
                let g = dy[(p * ho + i) * wo + j];
                for (a, &fa) in f.iter().enumerate() {
                    let Some(iy) = (2 * i + a).checked_sub(1).filter(|&v| v < h) else {
                        continue;
                    };
                    for (b, &fb) in f.iter().enumerate() {
                        let Some(ix) = (2 * j + b).checked_sub(1).filter(|&v| v < w) else {
                            continue;
                        };
                        let xi = (p * h + iy) * w + ix;
                        dx[xi] = dx[xi] + fa * fb * g;
                    }
                }
            }
        }
    }
    dx
}
