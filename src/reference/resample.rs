//! Resample family: moving pixels between the INR's scale levels (nearest 2x upsampling, gathers
//! at arbitrary pixels, nearest or bilinear, channel concatenation and slicing). Planar layouts `[.., H * W]`.

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

/// One axis of a bilinear link: output index `i` blends the source indices `idx[i]` and
/// `idx[i] + 1` with weights `1 - t[i]` and `t[i]` (the weights computed in the buffer's float
/// type from the `f32` `t`, so every backend blends with the same two numbers).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Taps {
    pub idx: Vec<u32>,
    pub t: Vec<f32>,
}

impl Taps {
    /// Outputs along this axis.
    pub fn len(&self) -> usize {
        self.idx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.idx.is_empty()
    }

    /// The largest source index read (`idx + 1`), or None when empty.
    pub fn max_source(&self) -> Option<u32> {
        self.idx.iter().map(|&i| i.saturating_add(1)).max()
    }

    /// Checks that the tables have equal lengths and every source index lies below `n`.
    pub fn check(&self, n: usize, axis: &str) -> Result<(), String> {
        if self.idx.len() != self.t.len() {
            return Err(format!(
                "bilinear {axis} taps: {} indices but {} weights",
                self.idx.len(),
                self.t.len()
            ));
        }
        if let Some(m) = self.max_source()
            && m as usize >= n
        {
            return Err(format!(
                "bilinear {axis} taps reach {m} but the input has {n} {axis}"
            ));
        }
        if self.t.iter().any(|t| !t.is_finite()) {
            return Err(format!("bilinear {axis} taps: a non-finite weight"));
        }
        Ok(())
    }

    /// The transpose as a gather: for each source index `s < n`, the outputs that read it and
    /// with which weight, in increasing output order (`offsets [n + 1]` into `outs` and
    /// `weights`, two entries per output). The backward sums in this fixed order: no atomics,
    /// bitwise reproducible.
    pub fn inverse(&self, n: usize) -> (Vec<u32>, Vec<u32>, Vec<f32>) {
        let mut count = vec![0u32; n + 1];
        for &i in &self.idx {
            let i = i as usize;
            if i + 1 < n + 1 {
                count[i + 1] += 1;
            }
            if i + 2 < n + 1 {
                count[i + 2] += 1;
            }
        }
        for s in 0..n {
            count[s + 1] += count[s];
        }
        let offsets = count.clone();
        let total = offsets[n] as usize;
        let mut fill = offsets.clone();
        let mut outs = vec![0u32; total];
        let mut weights = vec![0f32; total];
        for (o, (&i, &t)) in self.idx.iter().zip(&self.t).enumerate() {
            for (s, w) in [(i as usize, 1.0 - t), (i as usize + 1, t)] {
                if s < n {
                    let e = fill[s] as usize;
                    outs[e] = o as u32;
                    weights[e] = w;
                    fill[s] += 1;
                }
            }
        }
        (offsets, outs, weights)
    }
}

/// Bilinear sampling by separable taps: `Y[bc, r, c] = (1 - tr) ((1 - tc) X[bc, ir, ic] + tc
/// X[bc, ir, ic + 1]) + tr ((1 - tc) X[bc, ir + 1, ic] + tc X[bc, ir + 1, ic + 1])` with
/// `(ir, tr) = rows[r]`, `(ic, tc) = cols[c]`, for `X` `[planes, h, w]`, `Y` `[planes, rows,
/// cols]`. Panics if a tap is out of range (the backends check and return an error).
pub fn gather_bilinear<F: Float>(
    x: &[F],
    planes: usize,
    h: usize,
    w: usize,
    rows: &Taps,
    cols: &Taps,
) -> Vec<F> {
    let one = F::one();
    let mut y = Vec::with_capacity(planes * rows.len() * cols.len());
    for bc in 0..planes {
        for (&ir, &tr) in rows.idx.iter().zip(&rows.t) {
            assert!((ir as usize) + 1 < h, "bilinear rows out of range");
            let tr = F::from(tr).unwrap_or_else(F::nan);
            let r0 = &x[(bc * h + ir as usize) * w..];
            let r1 = &x[(bc * h + ir as usize + 1) * w..];
            for (&ic, &tc) in cols.idx.iter().zip(&cols.t) {
                let ic = ic as usize;
                assert!(ic + 1 < w, "bilinear columns out of range");
                let tc = F::from(tc).unwrap_or_else(F::nan);
                let a = (one - tc) * r0[ic] + tc * r0[ic + 1];
                let b = (one - tc) * r1[ic] + tc * r1[ic + 1];
                y.push((one - tr) * a + tr * b);
            }
        }
    }
    y
}

/// Gradient of [`gather_bilinear`] (its transpose), written as the plain scatter it is:
/// `dX [planes, h, w]`.
pub fn gather_bilinear_backward<F: Float>(
    dy: &[F],
    planes: usize,
    h: usize,
    w: usize,
    rows: &Taps,
    cols: &Taps,
) -> Vec<F> {
    let one = F::one();
    let mut dx = vec![F::zero(); planes * h * w];
    let (nr, nc) = (rows.len(), cols.len());
    for bc in 0..planes {
        for (r, (&ir, &tr)) in rows.idx.iter().zip(&rows.t).enumerate() {
            let tr = F::from(tr).unwrap_or_else(F::nan);
            for (c, (&ic, &tc)) in cols.idx.iter().zip(&cols.t).enumerate() {
                let tc = F::from(tc).unwrap_or_else(F::nan);
                let g = dy[(bc * nr + r) * nc + c];
                let (ir, ic) = (ir as usize, ic as usize);
                for (i, wr) in [(ir, one - tr), (ir + 1, tr)] {
                    for (j, wc) in [(ic, one - tc), (ic + 1, tc)] {
                        let k = (bc * h + i) * w + j;
                        dx[k] = dx[k] + wr * wc * g;
                    }
                }
            }
        }
    }
    dx
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
