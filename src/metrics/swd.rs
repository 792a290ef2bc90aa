//! ProGAN's sliced Wasserstein distance (SWD; Karras et al. 2018,
//! `metrics/sliced_wasserstein.py` in tkarras/progressive_growing_of_gans), on the CPU.
//!
//! For a real and a fake set of N RGB images (planar `[N, 3, H, W]`, values in the uint8 range
//! 0..255, see [`to_u8_range`]):
//! 1. Laplacian pyramid of each image down to 16 px: `G0` = image, `G(k+1) = pyrDown(Gk)`,
//!    level `k` = `Gk - pyrUp(G(k+1))`, and the coarsest level is the Gaussian itself.
//!    pyrDown = 5x5 binomial blur (`[1,4,6,4,1]/16` separable) with mirror (REFLECT_101)
//!    padding, then keep the even rows and columns; pyrUp = zero-insert at the even positions,
//!    then the same blur times 4.
//! 2. Per level, 128 random 7x7x3 patches per image, centres uniform in `[3, S - 4]`.
//! 3. Each set's descriptors are normalised per colour channel with that set's own mean and
//!    (population) std over all patches and positions, then flattened to 147 values.
//! 4. 4 repeats of 128 random unit directions (normal, normalised; shared by both sets in a
//!    repeat): project both sets, sort every projection column, mean |sorted real - sorted
//!    fake| over patches and directions; average over repeats.
//! 5. Report x1000 per level and the mean over levels.
//!
//! Differences from the Python code, which draws from an unseeded numpy RNG: every random
//! draw comes from [`crate::rng::Rng`] seeded by `seed` and the level, and the patch centres
//! of image `i` are the same in both sets (an unpaired real and fake set are still compared
//! through independent-looking samples; identical sets give exactly 0). A channel whose std is
//! 0 (a constant image set) is left unscaled instead of dividing by zero. Sizes that are not
//! powers of two are handled: pyrDown keeps `ceil(S / 2)` samples and pyrUp goes back to `S`;
//! an image under 16 px gives one level at its own size.

use rayon::prelude::*;

use crate::rng::Rng;

/// The knobs of the metric; [`Default`] gives ProGAN's values.
#[derive(Clone, Debug, PartialEq)]
pub struct SwdParams {
    /// Patches drawn per image per level (128).
    pub patches_per_image: usize,
    /// Side of a square patch, odd (7).
    pub patch_size: usize,
    /// Random directions per repeat (128).
    pub directions: usize,
    /// Repeats, each with fresh directions (4).
    pub repeats: usize,
    /// The pyramid stops at the last level at least this large (16).
    pub min_resolution: usize,
}

impl Default for SwdParams {
    fn default() -> Self {
        Self {
            patches_per_image: 128,
            patch_size: 7,
            directions: 128,
            repeats: 4,
            min_resolution: 16,
        }
    }
}

/// SWD x 10^3 per pyramid level (resolution, value), finest first, and their mean.
#[derive(Clone, Debug, PartialEq)]
pub struct SwdResult {
    pub per_level: Vec<(usize, f64)>,
    pub avg: f64,
}

impl std::fmt::Display for SwdResult {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SWDx1e3")?;
        for (r, v) in &self.per_level {
            write!(f, " {r}px {v:.2}")?;
        }
        write!(f, " avg {:.2}", self.avg)
    }
}

/// Why the metric could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum SwdError {
    #[error("swd: {0}")]
    Shape(String),
}

/// Images in [-1, 1] to the uint8 range as ProGAN feeds them: `rint(x * 127.5 + 127.5)`
/// clamped to [0, 255] (still `f32`).
pub fn to_u8_range(x: &[f32]) -> Vec<f32> {
    x.iter()
        .map(|&v| (v * 127.5 + 127.5).round_ties_even().clamp(0.0, 255.0))
        .collect()
}

/// The side of each pyramid level for `res` px images: `res`, `ceil(res / 2)`, ... down to the
/// last one at least `min_res` (just `res` when `res < min_res`).
pub fn level_sizes(res: usize, min_res: usize) -> Vec<usize> {
    let mut v = vec![res];
    let mut s = res;
    while s > 1 && s.div_ceil(2) >= min_res.max(1) {
        s = s.div_ceil(2);
        v.push(s);
    }
    v
}

/// Mirror index without repeating the edge sample (OpenCV's BORDER_REFLECT_101, scipy's
/// `mirror`): for n = 4, ... 2 1 | 0 1 2 3 | 2 1 0 ...
pub fn reflect101(i: isize, n: usize) -> usize {
    if n <= 1 {
        return 0;
    }
    let p = 2 * (n as isize - 1);
    let m = i.rem_euclid(p);
    (if m >= n as isize { p - m } else { m }) as usize
}

/// The binomial kernel `[1, 4, 6, 4, 1] / 16`.
const K5: [f64; 5] = [1.0 / 16.0, 4.0 / 16.0, 6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0];

/// A `h x w` plane convolved with `gain *` the 5x5 binomial kernel, REFLECT_101 borders.
pub fn blur5(src: &[f64], h: usize, w: usize, gain: f64) -> Vec<f64> {
    let mut tmp = vec![0.0f64; h * w];
    for y in 0..h {
        let row = &src[y * w..(y + 1) * w];
        for x in 0..w {
            let mut s = 0.0;
            for (t, k) in K5.iter().enumerate() {
                s += k * row[reflect101(x as isize + t as isize - 2, w)];
            }
            tmp[y * w + x] = s;
        }
    }
    let mut out = vec![0.0f64; h * w];
    for y in 0..h {
        let rows: [usize; 5] =
            std::array::from_fn(|t| reflect101(y as isize + t as isize - 2, h) * w);
        for x in 0..w {
            let mut s = 0.0;
            for (t, k) in K5.iter().enumerate() {
                s += k * tmp[rows[t] + x];
            }
            out[y * w + x] = gain * s;
        }
    }
    out
}

/// OpenCV's pyrDown as ProGAN writes it: blur, then keep the even rows and columns
/// (`ceil(h / 2) x ceil(w / 2)`).
pub fn pyr_down(src: &[f64], h: usize, w: usize) -> (Vec<f64>, usize, usize) {
    let b = blur5(src, h, w, 1.0);
    let (h2, w2) = (h.div_ceil(2), w.div_ceil(2));
    let mut out = Vec::with_capacity(h2 * w2);
    for y in 0..h2 {
        for x in 0..w2 {
            out.push(b[2 * y * w + 2 * x]);
        }
    }
    (out, h2, w2)
}

/// OpenCV's pyrUp as ProGAN writes it, to a `th x tw` plane (`ceil(th / 2) = h`): the samples
/// at the even positions of a zero plane, blurred with 4 times the kernel.
pub fn pyr_up(src: &[f64], h: usize, w: usize, th: usize, tw: usize) -> Vec<f64> {
    let mut z = vec![0.0f64; th * tw];
    for y in 0..h.min(th.div_ceil(2)) {
        for x in 0..w.min(tw.div_ceil(2)) {
            z[2 * y * tw + 2 * x] = src[y * w + x];
        }
    }
    blur5(&z, th, tw, 4.0)
}

/// The Laplacian pyramid of one `h x w` plane with `levels` levels, finest first: band-pass
/// levels `Gk - pyrUp(G(k+1))`, then the coarsest Gaussian. Each entry is (plane, h, w).
pub fn laplacian_pyramid(
    plane: &[f64],
    h: usize,
    w: usize,
    levels: usize,
) -> Vec<(Vec<f64>, usize, usize)> {
    let mut out = Vec::with_capacity(levels);
    let (mut g, mut gh, mut gw) = (plane.to_vec(), h, w);
    for _ in 1..levels {
        let (d, dh, dw) = pyr_down(&g, gh, gw);
        let up = pyr_up(&d, dh, dw, gh, gw);
        let lap: Vec<f64> = g.iter().zip(&up).map(|(a, b)| a - b).collect();
        out.push((lap, gh, gw));
        (g, gh, gw) = (d, dh, dw);
    }
    out.push((g, gh, gw));
    out
}

/// The plane a Laplacian pyramid stands for: the coarsest level, upsampled and added to each
/// finer band in turn.
pub fn reconstruct(pyramid: &[(Vec<f64>, usize, usize)]) -> Vec<f64> {
    let Some((last, mut h, mut w)) = pyramid.last().cloned() else {
        return Vec::new();
    };
    let mut img = last;
    for (band, bh, bw) in pyramid.iter().rev().skip(1) {
        let up = pyr_up(&img, h, w, *bh, *bw);
        img = band.iter().zip(&up).map(|(a, b)| a + b).collect();
        (h, w) = (*bh, *bw);
    }
    img
}

/// Level `level` of the pyramid of one `s x s` plane with `levels` levels in all.
fn level_plane(plane: &[f64], s: usize, level: usize, levels: usize) -> (Vec<f64>, usize) {
    let (mut g, mut gs) = (plane.to_vec(), s);
    for _ in 0..level {
        let (d, ds, _) = pyr_down(&g, gs, gs);
        (g, gs) = (d, ds);
    }
    if level + 1 < levels {
        let (d, ds, _) = pyr_down(&g, gs, gs);
        let up = pyr_up(&d, ds, ds, gs, gs);
        g.iter_mut().zip(&up).for_each(|(a, b)| *a -= b);
    }
    (g, gs)
}

/// Mixes two words into a seed (SplitMix64-style finaliser).
fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(23);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The descriptors of one set at one level: `[n * patches, 3 * ps * ps]`, laid out
/// (channel, row, column) within a patch; `centres` holds (x, y) per patch.
fn descriptors(
    images: &[f32],
    res: usize,
    level: usize,
    levels: usize,
    centres: &[(usize, usize)],
    p: &SwdParams,
) -> Vec<f32> {
    let ps = p.patch_size;
    let half = ps / 2;
    let d = 3 * ps * ps;
    let per_img = p.patches_per_image * d;
    let plane = res * res;
    let mut out = vec![0.0f32; images.len() / (3 * plane) * per_img];
    out.par_chunks_mut(per_img)
        .zip(images.par_chunks(3 * plane))
        .zip(centres.par_chunks(p.patches_per_image))
        .for_each(|((dst, img), cs)| {
            let planes: Vec<(Vec<f64>, usize)> = (0..3)
                .map(|c| {
                    let src: Vec<f64> = img[c * plane..(c + 1) * plane]
                        .iter()
                        .map(|&v| v as f64)
                        .collect();
                    level_plane(&src, res, level, levels)
                })
                .collect();
            for (q, &(x, y)) in cs.iter().enumerate() {
                let o = &mut dst[q * d..(q + 1) * d];
                for (c, (pl, s)) in planes.iter().enumerate() {
                    for dy in 0..ps {
                        let row = (y + dy - half) * s;
                        for dx in 0..ps {
                            o[(c * ps + dy) * ps + dx] = pl[row + x + dx - half] as f32;
                        }
                    }
                }
            }
        });
    out
}

/// Normalises descriptors `[m, 3 * ps * ps]` per colour channel to zero mean and unit
/// (population) std over all patches and positions.
fn normalise(desc: &mut [f32], ps: usize) {
    let d = 3 * ps * ps;
    let pp = ps * ps;
    let m = desc.len() / d;
    if m == 0 {
        return;
    }
    const CHUNK: usize = 1024;
    // Per-chunk partial sums in a fixed chunking, summed in order: deterministic.
    let sums: Vec<[f64; 3]> = desc
        .par_chunks(CHUNK * d)
        .map(|ch| {
            let mut s = [0.0f64; 3];
            for row in ch.chunks_exact(d) {
                for (c, sc) in s.iter_mut().enumerate() {
                    *sc += row[c * pp..(c + 1) * pp]
                        .iter()
                        .map(|&v| v as f64)
                        .sum::<f64>();
                }
            }
            s
        })
        .collect();
    let count = (m * pp) as f64;
    let mean: [f64; 3] = std::array::from_fn(|c| sums.iter().map(|s| s[c]).sum::<f64>() / count);
    let sq: Vec<[f64; 3]> = desc
        .par_chunks(CHUNK * d)
        .map(|ch| {
            let mut s = [0.0f64; 3];
            for row in ch.chunks_exact(d) {
                for (c, sc) in s.iter_mut().enumerate() {
                    *sc += row[c * pp..(c + 1) * pp]
                        .iter()
                        .map(|&v| (v as f64 - mean[c]).powi(2))
                        .sum::<f64>();
                }
            }
            s
        })
        .collect();
    let inv: [f64; 3] = std::array::from_fn(|c| {
        let std = (sq.iter().map(|s| s[c]).sum::<f64>() / count).sqrt();
        if std > 1e-8 { 1.0 / std } else { 1.0 }
    });
    desc.par_chunks_mut(d).for_each(|row| {
        for c in 0..3 {
            for v in &mut row[c * pp..(c + 1) * pp] {
                *v = ((*v as f64 - mean[c]) * inv[c]) as f32;
            }
        }
    });
}

/// Directions projected per parallel task.
const DIR_GROUP: usize = 16;

/// The projections of `desc` (`[m, d]`) on the unit directions `dirs` (`[d, nd]`), each
/// column sorted ascending: `nd` columns of `m`.
fn project_sorted(desc: &[f32], m: usize, d: usize, dirs: &[f32], nd: usize) -> Vec<Vec<f32>> {
    let groups: Vec<usize> = (0..nd.div_ceil(DIR_GROUP)).collect();
    let cols: Vec<Vec<Vec<f32>>> = groups
        .par_iter()
        .map(|&g| {
            let j0 = g * DIR_GROUP;
            let gw = DIR_GROUP.min(nd - j0);
            let mut b = vec![0.0f32; d * gw];
            for k in 0..d {
                b[k * gw..(k + 1) * gw].copy_from_slice(&dirs[k * nd + j0..k * nd + j0 + gw]);
            }
            let mut c = vec![0.0f32; m * gw];
            if m > 0 && d > 0 {
                // SAFETY: a is m x d (row stride d), b is d x gw (row stride gw), c is m x gw
                // (row stride gw); the slices hold exactly those many elements.
                unsafe {
                    matrixmultiply::sgemm(
                        m,
                        d,
                        gw,
                        1.0,
                        desc.as_ptr(),
                        d as isize,
                        1,
                        b.as_ptr(),
                        gw as isize,
                        1,
                        0.0,
                        c.as_mut_ptr(),
                        gw as isize,
                        1,
                    );
                }
            }
            (0..gw)
                .map(|j| {
                    let mut col: Vec<f32> = (0..m).map(|i| c[i * gw + j]).collect();
                    col.sort_unstable_by(f32::total_cmp);
                    col
                })
                .collect()
        })
        .collect();
    cols.into_iter().flatten().collect()
}

/// ProGAN's `sliced_wasserstein` on two normalised descriptor sets of `m` rows of `d`.
fn sliced_wasserstein(
    a: &[f32],
    b: &[f32],
    m: usize,
    d: usize,
    p: &SwdParams,
    rng: &mut Rng,
) -> f64 {
    let nd = p.directions;
    let mut total = 0.0;
    for _ in 0..p.repeats {
        let mut dirs: Vec<f64> = (0..d * nd).map(|_| rng.normal()).collect();
        for j in 0..nd {
            let norm = (0..d).map(|k| dirs[k * nd + j].powi(2)).sum::<f64>().sqrt();
            let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
            for k in 0..d {
                dirs[k * nd + j] *= inv;
            }
        }
        let dirs: Vec<f32> = dirs.iter().map(|&v| v as f32).collect();
        let pa = project_sorted(a, m, d, &dirs, nd);
        let pb = project_sorted(b, m, d, &dirs, nd);
        let per_col: Vec<f64> = pa
            .par_iter()
            .zip(&pb)
            .map(|(x, y)| x.iter().zip(y).map(|(u, v)| (u - v).abs() as f64).sum())
            .collect();
        total += per_col.iter().sum::<f64>() / (m * nd).max(1) as f64;
    }
    total / p.repeats.max(1) as f64
}

/// [`swd_with`] with ProGAN's parameters.
pub fn swd(
    real: &[f32],
    fake: &[f32],
    n: usize,
    res: usize,
    seed: u64,
) -> Result<SwdResult, SwdError> {
    swd_with(&SwdParams::default(), real, fake, n, res, seed)
}

/// The SWD between `n` real and `n` fake `res x res` RGB images, planar `[n, 3, res, res]`
/// in the uint8 range, with the draws seeded by `seed`.
pub fn swd_with(
    p: &SwdParams,
    real: &[f32],
    fake: &[f32],
    n: usize,
    res: usize,
    seed: u64,
) -> Result<SwdResult, SwdError> {
    let need = n * 3 * res * res;
    if real.len() != need || fake.len() != need {
        return Err(SwdError::Shape(format!(
            "{n} images of 3x{res}x{res} need {need} values, got {} real and {} fake",
            real.len(),
            fake.len()
        )));
    }
    if n == 0 {
        return Err(SwdError::Shape("no image".into()));
    }
    if p.patch_size.is_multiple_of(2)
        || p.patches_per_image == 0
        || p.directions == 0
        || p.repeats == 0
    {
        return Err(SwdError::Shape(format!(
            "bad parameters {p:?}: the patch size must be odd and the counts at least 1"
        )));
    }
    let sizes = level_sizes(res, p.min_resolution);
    if let Some(&s) = sizes.iter().find(|&&s| s < p.patch_size) {
        return Err(SwdError::Shape(format!(
            "a {s} px pyramid level is smaller than the {} px patches",
            p.patch_size
        )));
    }
    let levels = sizes.len();
    let d = 3 * p.patch_size * p.patch_size;
    let m = n * p.patches_per_image;
    let half = p.patch_size / 2;
    let mut per_level = Vec::with_capacity(levels);
    for (l, &s) in sizes.iter().enumerate() {
        let mut rng = Rng::new(mix(seed, l as u64));
        let span = (s - 2 * half) as u64;
        let centres: Vec<(usize, usize)> = (0..m)
            .map(|_| {
                let x = half + rng.below(span) as usize;
                let y = half + rng.below(span) as usize;
                (x, y)
            })
            .collect();
        let mut a = descriptors(real, res, l, levels, &centres, p);
        let mut b = descriptors(fake, res, l, levels, &centres, p);
        normalise(&mut a, p.patch_size);
        normalise(&mut b, p.patch_size);
        let mut drng = Rng::new(mix(seed ^ 0xD1B5_4A32_D192_ED03, l as u64));
        let v = sliced_wasserstein(&a, &b, m, d, p, &mut drng);
        per_level.push((s, v * 1e3));
    }
    let avg = per_level.iter().map(|(_, v)| v).sum::<f64>() / levels as f64;
    Ok(SwdResult { per_level, avg })
}
