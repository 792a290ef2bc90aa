//! Coords family: Fourier coordinate embeddings and the host helpers that place the grid.
//!
//! Pixel `p = r * width + c` sits at `(x, y) = (xs[c], ys[r])`; frequency `j` has the phase
//! `phi_j = freqs[j, 0] x + freqs[j, 1] y`. The embedding is planar `[D, height * width]`:
//! channels `0..n_freq` hold `sin(phi_j)`, and with `with_cos` channels `n_freq..2 n_freq` hold
//! `cos(phi_j)` (all sines, then all cosines, as the official `CoordFuser`).

use std::f64::consts::PI;

use super::Float;

/// Shape of one embedding: a `width` × `height` grid, `n_freq` frequencies, optional cosines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoordsShape {
    pub width: usize,
    pub height: usize,
    pub n_freq: usize,
    pub with_cos: bool,
}

impl CoordsShape {
    /// Pixels of the grid.
    pub fn pixels(&self) -> usize {
        self.width * self.height
    }

    /// Channels of the embedding: `n_freq * (1 + with_cos)`.
    pub fn channels(&self) -> usize {
        self.n_freq * (1 + self.with_cos as usize)
    }
}

/// The embedding `[channels, height * width]` (see the module doc).
pub fn coords_forward<F: Float>(s: &CoordsShape, xs: &[F], ys: &[F], freqs: &[F]) -> Vec<F> {
    let np = s.pixels();
    let mut e = vec![F::zero(); s.channels() * np];
    for j in 0..s.n_freq {
        for (r, &y) in ys[..s.height].iter().enumerate() {
            for (cc, &x) in xs[..s.width].iter().enumerate() {
                let px = r * s.width + cc;
                let phi = freqs[2 * j] * x + freqs[2 * j + 1] * y;
                e[j * np + px] = phi.sin();
                if s.with_cos {
                    e[(s.n_freq + j) * np + px] = phi.cos();
                }
            }
        }
    }
    e
}

/// Gradient of [`coords_forward`] with respect to `freqs` (`[n_freq, 2]`) for the upstream `de`.
pub fn coords_backward<F: Float>(
    s: &CoordsShape,
    xs: &[F],
    ys: &[F],
    freqs: &[F],
    de: &[F],
) -> Vec<F> {
    let np = s.pixels();
    let mut df = vec![F::zero(); 2 * s.n_freq];
    for j in 0..s.n_freq {
        for (r, &y) in ys[..s.height].iter().enumerate() {
            for (cc, &x) in xs[..s.width].iter().enumerate() {
                let px = r * s.width + cc;
                let phi = freqs[2 * j] * x + freqs[2 * j + 1] * y;
                let mut g = phi.cos() * de[j * np + px];
                if s.with_cos {
                    g = g - phi.sin() * de[(s.n_freq + j) * np + px];
                }
                df[2 * j] = df[2 * j] + g * x;
                df[2 * j + 1] = df[2 * j + 1] + g * y;
            }
        }
    }
    df
}

/// The official training grid at `res`² (docs/model.md §2, `generate_coords`): `x_c = -1 + 2c/R`
/// (each pixel's left edge), `y_r = 1 - 2(r + 1)/R` (y points up; the top row is highest).
/// Returns `(xs, ys)`, computed in f64.
pub fn training_grid(res: usize) -> (Vec<f32>, Vec<f32>) {
    let rf = res as f64;
    let xs = (0..res)
        .map(|c| (-1.0 + 2.0 * c as f64 / rf) as f32)
        .collect();
    let ys = (0..res)
        .map(|r| (1.0 - 2.0 * (r + 1) as f64 / rf) as f32)
        .collect();
    (xs, ys)
}

/// The training-grid rule for any window `[x0, x1) × [y0, y1)` at `width` × `height` pixels:
/// `x_c = x0 + (x1 - x0) c / width`, `y_r = y1 - (y1 - y0)(r + 1) / height`. The window
/// `[-1, 1)²` at `R` × `R` is exactly [`training_grid`]`(R)`. Returns `(xs, ys)`.
pub fn window_grid(
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
    width: usize,
    height: usize,
) -> (Vec<f32>, Vec<f32>) {
    let (w, h) = (width as f64, height as f64);
    let xs = (0..width)
        .map(|c| (x0 + (x1 - x0) * c as f64 / w) as f32)
        .collect();
    let ys = (0..height)
        .map(|r| (y1 - (y1 - y0) * (r + 1) as f64 / h) as f32)
        .collect();
    (xs, ys)
}

/// Frequencies per direction of the logarithmic basis at `res`: `ceil(log2(res))` (0 for 1).
pub fn log_basis_len(res: usize) -> usize {
    let mut n = 0;
    while (1usize << n) < res {
        n += 1;
    }
    n
}

/// The official fixed logarithmic Fourier basis at `res` (`generate_logarithmic_basis` with
/// `remove_lowest_freq = false`), as rows `[f_x, f_y]`, `n = ceil(log2 res)` rows per direction,
/// `k = 0..n` within each, directions in this order:
/// 1. "horizontal" `[0, (π/2) 2^k]` (phase along y),
/// 2. "vertical" `[(π/2) 2^k, 0]` (phase along x),
/// 3. with `diagonal`, main diagonal `[-(π/4) 2^k, (π/4) 2^k]` (phase `(π/4) 2^k (y - x)`),
/// 4. with `diagonal`, anti-diagonal `[(π/4) 2^k, (π/4) 2^k]` (phase `(π/4) 2^k (x + y)`).
///
/// The lowest frequency has a period of 4 coordinate units; the highest, 4 pixels at `res`.
pub fn log_basis(res: usize, diagonal: bool) -> Vec<[f32; 2]> {
    let n = log_basis_len(res);
    let dirs: &[[f64; 2]] = if diagonal {
        &[[0.0, 0.5], [0.5, 0.0], [-0.25, 0.25], [0.25, 0.25]]
    } else {
        &[[0.0, 0.5], [0.5, 0.0]]
    };
    dirs.iter()
        .flat_map(|d| {
            (0..n).map(move |k| {
                let f = PI * (1u64 << k) as f64;
                [(d[0] * f) as f32, (d[1] * f) as f32]
            })
        })
        .collect()
}
