//! How visible a coarse grid's cell boundaries are in a magnified render: the mean colour step
//! between neighbouring pixels that straddle a boundary of a `g x g` grid over the image,
//! against the mean step between all other neighbours. A smooth function scores about 1; a
//! nearest-upsampled level's hard cell edges score several times that.

/// Steps of one grid: the ratio and the two means it divides.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Seams {
    /// Mean |step| across the grid's cell boundaries (mean over the three channels).
    pub boundary: f64,
    /// Mean |step| between all other horizontal and vertical neighbours.
    pub elsewhere: f64,
    /// `boundary / elsewhere`.
    pub ratio: f64,
}

/// Whether the pair (i, i + 1) of a row or column of `n` pixels crosses a boundary of a grid of
/// `g` cells over the whole row.
fn crosses(i: usize, n: usize, g: usize) -> bool {
    (i * g) / n != ((i + 1) * g) / n
}

/// The seams of the `grid x grid` cells of an image of `width x height` pixels covering the
/// grid's square, `px(x, y, c)` its colour (any scale). Pairs that cross a boundary of any of
/// the `exclude` grids (coarser ones, measured on their own) count in neither mean.
pub fn seams(
    width: usize,
    height: usize,
    grid: usize,
    exclude: &[usize],
    px: impl Fn(usize, usize, usize) -> f64,
) -> Seams {
    let (mut sb, mut nb, mut so, mut no) = (0.0f64, 0usize, 0.0f64, 0usize);
    let mut add = |a: (usize, usize), b: (usize, usize), across: bool, excluded: bool| {
        if excluded {
            return;
        }
        let d = (0..3)
            .map(|c| (px(a.0, a.1, c) - px(b.0, b.1, c)).abs())
            .sum::<f64>()
            / 3.0;
        if across {
            sb += d;
            nb += 1;
        } else {
            so += d;
            no += 1;
        }
    };
    for y in 0..height {
        for x in 0..width.saturating_sub(1) {
            let ex = exclude.iter().any(|&e| crosses(x, width, e));
            add((x, y), (x + 1, y), crosses(x, width, grid), ex);
        }
    }
    for y in 0..height.saturating_sub(1) {
        for x in 0..width {
            let ex = exclude.iter().any(|&e| crosses(y, height, e));
            add((x, y), (x, y + 1), crosses(y, height, grid), ex);
        }
    }
    let boundary = sb / nb.max(1) as f64;
    let elsewhere = so / no.max(1) as f64;
    Seams {
        boundary,
        elsewhere,
        ratio: boundary / elsewhere.max(1e-12),
    }
}

/// [`seams`] of a planar RGB image `[3, height, width]`.
pub fn seams_planar(
    rgb: &[f32],
    width: usize,
    height: usize,
    grid: usize,
    exclude: &[usize],
) -> Seams {
    let n = width * height;
    seams(width, height, grid, exclude, |x, y, c| {
        rgb[c * n + y * width + x] as f64
    })
}

/// [`seams`] of an interleaved 8-bit image with `channels` values a pixel (RGB or RGBA).
pub fn seams_u8(
    pixels: &[u8],
    channels: usize,
    width: usize,
    height: usize,
    grid: usize,
    exclude: &[usize],
) -> Seams {
    seams(width, height, grid, exclude, |x, y, c| {
        pixels[(y * width + x) * channels + c] as f64
    })
}
