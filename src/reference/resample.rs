//! Resample family: moving pixels between the INR's scale levels (nearest 2x upsampling, gathers
//! at arbitrary pixels, channel concatenation and slicing). Planar layouts `[.., H * W]`.

use super::Float;

/// `Y[bc, i, j] = X[bc, i / 2, j / 2]`: `X` `[planes, h, w]` to `Y` `[planes, 2h, 2w]`.
pub fn upsample2x_forward<F: Float>(x: &[F], planes: usize, h: usize, w: usize) -> Vec<F> {
    let (ho, wo) = (2 * h, 2 * w);
    let mut y = vec![F::zero(); planes * ho * wo];
    for bc in 0..planes {
        for i in 0..ho {
            for j in 0..wo {
                y[(bc * ho + i) * wo + j] = x[(bc * h + i / 2) * w + j / 2];
            }
        }
    }
    y
}

/// Gradient of [`upsample2x_forward`]: `dX[bc, i, j] = sum` of the 2x2 block of `dY` it fed.
pub fn upsample2x_backward<F: Float>(dy: &[F], planes: usize, h: usize, w: usize) -> Vec<F> {
    let wo = 2 * w;
    let mut dx = vec![F::zero(); planes * h * w];
    for bc in 0..planes {
        for i in 0..h {
            for j in 0..w {
                let base = (bc * 2 * h + 2 * i) * wo + 2 * j;
                dx[(bc * h + i) * w + j] =
                    dy[base] + dy[base + 1] + dy[base + wo] + dy[base + wo + 1];
            }
        }
    }
    dx
}

/// `Y[bc, r, c] = X[bc, rows[r], cols[c]]` for `X` `[planes, h, w]`, `Y` `[planes, rows, cols]`.
/// Panics if a table entry is out of range (the GPU wrapper checks and returns an error).
pub fn gather<F: Float>(
    x: &[F],
    planes: usize,
    h: usize,
    w: usize,
    rows: &[u32],
    cols: &[u32],
) -> Vec<F> {
    let (ho, wo) = (rows.len(), cols.len());
    let mut y = Vec::with_capacity(planes * ho * wo);
    for bc in 0..planes {
        for &r in rows {
            for &c in cols {
                assert!(
                    (r as usize) < h && (c as usize) < w,
                    "gather table out of range"
                );
                y.push(x[(bc * h + r as usize) * w + c as usize]);
            }
        }
    }
    y
}

/// Shape of a channel concatenation `Y [batch, c1 + c2, pixels]` of `X1 [batch, c1, pixels]` and
/// `X2 [batch, c2, pixels]` (or `X2 [1, c2, pixels]` shared by every image when `broadcast`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConcatShape {
    pub batch: usize,
    pub c1: usize,
    pub c2: usize,
    pub pixels: usize,
    pub broadcast: bool,
}

/// A channel range `c0 .. c0 + len` of `X [batch, channels, pixels]`, taken out as
/// `Y [batch, len, pixels]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SliceShape {
    pub batch: usize,
    pub channels: usize,
    pub c0: usize,
    pub len: usize,
    pub pixels: usize,
}

impl ConcatShape {
    /// Output channels `c1 + c2`.
    pub fn channels(&self) -> usize {
        self.c1 + self.c2
    }

    /// The slice of the output that came from `X1` (its gradient is `dX1`).
    pub fn first(&self) -> SliceShape {
        SliceShape {
            batch: self.batch,
            channels: self.channels(),
            c0: 0,
            len: self.c1,
            pixels: self.pixels,
        }
    }

    /// The slice of the output that came from `X2`; with `broadcast` its gradient is this slice
    /// summed over the batch.
    pub fn second(&self) -> SliceShape {
        SliceShape {
            batch: self.batch,
            channels: self.channels(),
            c0: self.c1,
            len: self.c2,
            pixels: self.pixels,
        }
    }
}

/// `Y[b] = [X1[b]; X2[b or 0]]` along channels.
pub fn concat_channels<F: Float>(s: &ConcatShape, x1: &[F], x2: &[F]) -> Vec<F> {
    let p = s.pixels;
    let mut y = Vec::with_capacity(s.batch * s.channels() * p);
    for b in 0..s.batch {
        y.extend_from_slice(&x1[b * s.c1 * p..(b + 1) * s.c1 * p]);
        let b2 = if s.broadcast { 0 } else { b };
        y.extend_from_slice(&x2[b2 * s.c2 * p..(b2 + 1) * s.c2 * p]);
    }
    y
}

/// `Y[b, c] = X[b, c0 + c]` for `c < len`.
pub fn slice_channels<F: Float>(s: &SliceShape, x: &[F]) -> Vec<F> {
    let p = s.pixels;
    let mut y = Vec::with_capacity(s.batch * s.len * p);
    for b in 0..s.batch {
        let start = (b * s.channels + s.c0) * p;
        y.extend_from_slice(&x[start..start + s.len * p]);
    }
    y
}
