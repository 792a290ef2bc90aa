//! Decoding one image file and turning it into a planar `[3, R, R]` RGB square in [-1, 1]:
//! centre crop, alpha composited over white, area-average (shrink) or bilinear (enlarge)
//! resampling done row by row so a large image never needs a full float copy.

use std::io::Cursor;

use image::{DynamicImage, ImageReader, Limits};

/// Images with more pixels than this (64 MP) are skipped.
pub const MAX_PIXELS: u64 = 64_000_000;
/// Images whose shorter side is below this are skipped as too small to be training data.
pub const MIN_SIDE: u32 = 8;

/// The samples of a decoded image, one of the layouts the decoders produce.
pub(crate) enum Samples<'a> {
    U8(&'a [u8]),
    U16(&'a [u16]),
    F32(&'a [f32]),
}

impl Samples<'_> {
    /// Sample `k` scaled to [0, 1].
    #[inline]
    fn get(&self, k: usize) -> f32 {
        match self {
            Samples::U8(s) => s[k] as f32 / 255.0,
            Samples::U16(s) => s[k] as f32 / 65535.0,
            Samples::F32(s) => s[k].clamp(0.0, 1.0),
        }
    }
}

/// An interleaved image (1 = grey, 2 = grey + alpha, 3 = RGB, 4 = RGBA channels) and a square
/// window `[x0, x0 + side) x [y0, y0 + side)` in it.
pub(crate) struct Window<'a> {
    pub samples: Samples<'a>,
    pub channels: usize,
    pub width: usize,
    pub x0: usize,
    pub y0: usize,
    pub side: usize,
}

impl Window<'_> {
    /// Row `y` of the window as interleaved RGB in [0, 1], composited over white.
    fn row(&self, y: usize, out: &mut [f32]) {
        let c = self.channels;
        let base = ((self.y0 + y) * self.width + self.x0) * c;
        for x in 0..self.side {
            let k = base + x * c;
            let (r, g, b, a) = match c {
                1 => {
                    let v = self.samples.get(k);
                    (v, v, v, 1.0)
                }
                2 => {
                    let v = self.samples.get(k);
                    (v, v, v, self.samples.get(k + 1))
                }
                3 => (
                    self.samples.get(k),
                    self.samples.get(k + 1),
                    self.samples.get(k + 2),
                    1.0,
                ),
                _ => (
                    self.samples.get(k),
                    self.samples.get(k + 1),
                    self.samples.get(k + 2),
                    self.samples.get(k + 3),
                ),
            };
            let w = 1.0 - a;
            out[3 * x] = r * a + w;
            out[3 * x + 1] = g * a + w;
            out[3 * x + 2] = b * a + w;
        }
    }

    /// The window resampled to `r x r`, planar `[3, r, r]`, values in [-1, 1].
    pub fn resample(&self, r: usize) -> Vec<f32> {
        let s = self.side;
        let wts = resample_weights(s, r);
        // For each source row, the output rows it feeds and with which weight.
        let mut feeds: Vec<Vec<(usize, f64)>> = vec![Vec::new(); s];
        for (o, ws) in wts.iter().enumerate() {
            for &(j, w) in ws {
                feeds[j].push((o, w));
            }
        }
        let plane = r * r;
        let mut acc = vec![0.0f64; 3 * plane];
        let mut row = vec![0.0f32; 3 * s];
        let mut h = vec![0.0f64; 3 * r];
        for (y, fy) in feeds.iter().enumerate() {
            if fy.is_empty() {
                continue;
            }
            self.row(y, &mut row);
            h.iter_mut().for_each(|v| *v = 0.0);
            for (ox, ws) in wts.iter().enumerate() {
                for &(j, w) in ws {
                    for ch in 0..3 {
                        h[ch * r + ox] += w * row[3 * j + ch] as f64;
                    }
                }
            }
            for &(oy, wy) in fy {
                for ch in 0..3 {
                    let dst = &mut acc[ch * plane + oy * r..ch * plane + oy * r + r];
                    for (d, v) in dst.iter_mut().zip(&h[ch * r..ch * r + r]) {
                        *d += wy * v;
                    }
                }
            }
        }
        acc.iter()
            .map(|&v| ((v * 2.0 - 1.0) as f32).clamp(-1.0, 1.0))
            .collect()
    }
}

/// For each of `dst` output samples, the (source index, weight) pairs that make it from `src`
/// samples: the exact area average of its footprint when shrinking, bilinear with half-pixel
/// centres when enlarging, the identity when equal.
pub fn resample_weights(src: usize, dst: usize) -> Vec<Vec<(usize, f64)>> {
    if src == dst {
        return (0..dst).map(|i| vec![(i, 1.0)]).collect();
    }
    if src > dst {
        return (0..dst)
            .map(|i| {
                // Footprint [i * src / dst, (i + 1) * src / dst) in exact integer arithmetic.
                let lo_n = i * src; // numerator over dst
                let hi_n = (i + 1) * src;
                let j0 = lo_n / dst;
                let j1 = hi_n.div_ceil(dst).min(src);
                (j0..j1)
                    .map(|j| {
                        let a = lo_n.max(j * dst);
                        let b = hi_n.min((j + 1) * dst);
                        (j, (b - a) as f64 / src as f64)
                    })
                    .filter(|&(_, w)| w > 0.0)
                    .collect()
            })
            .collect();
    }
    let scale = src as f64 / dst as f64;
    (0..dst)
        .map(|i| {
            let c = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
            let j0 = (c.floor() as usize).min(src - 1);
            let j1 = (j0 + 1).min(src - 1);
            let t = c - j0 as f64;
            if j0 == j1 || t <= 0.0 {
                vec![(j0, 1.0)]
            } else {
                vec![(j0, 1.0 - t), (j1, t)]
            }
        })
        .collect()
}

/// Decodes an image file's bytes (format guessed from the content) into a planar `[3, r, r]`
/// RGB square in [-1, 1]; `Err` holds the reason the file is unusable.
pub fn decode_image(bytes: &[u8], r: usize) -> Result<Vec<f32>, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?;
    if reader.format().is_none() {
        return Err("not a recognised image format".into());
    }
    let (w, h) = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| format!("cannot read: {e}"))?
        .into_dimensions()
        .map_err(|e| format!("unreadable header: {e}"))?;
    if w as u64 * h as u64 > MAX_PIXELS {
        return Err(format!("too large: {w}x{h} is over 64 megapixels"));
    }
    if w.min(h) < MIN_SIDE {
        return Err(format!(
            "too small: {w}x{h} (the shorter side must be at least {MIN_SIDE})"
        ));
    }
    let mut reader = reader;
    let mut limits = Limits::default();
    limits.max_alloc = Some(2 << 30);
    reader.limits(limits);
    let img = reader.decode().map_err(|e| format!("cannot decode: {e}"))?;
    image_to_square(img, r)
}

/// Centre-crops, composites and resamples a decoded image.
fn image_to_square(img: DynamicImage, r: usize) -> Result<Vec<f32>, String> {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let side = w.min(h);
    if side == 0 {
        return Err("empty image".into());
    }
    let (x0, y0) = ((w - side) / 2, (h - side) / 2);
    let win = |samples, channels| Window {
        samples,
        channels,
        width: w,
        x0,
        y0,
        side,
    };
    let out = match &img {
        DynamicImage::ImageLuma8(b) => win(Samples::U8(b.as_raw()), 1).resample(r),
        DynamicImage::ImageLumaA8(b) => win(Samples::U8(b.as_raw()), 2).resample(r),
        DynamicImage::ImageRgb8(b) => win(Samples::U8(b.as_raw()), 3).resample(r),
        DynamicImage::ImageRgba8(b) => win(Samples::U8(b.as_raw()), 4).resample(r),
        DynamicImage::ImageLuma16(b) => win(Samples::U16(b.as_raw()), 1).resample(r),
        DynamicImage::ImageLumaA16(b) => win(Samples::U16(b.as_raw()), 2).resample(r),
        DynamicImage::ImageRgb16(b) => win(Samples::U16(b.as_raw()), 3).resample(r),
        DynamicImage::ImageRgba16(b) => win(Samples::U16(b.as_raw()), 4).resample(r),
        DynamicImage::ImageRgb32F(b) => win(Samples::F32(b.as_raw()), 3).resample(r),
        DynamicImage::ImageRgba32F(b) => win(Samples::F32(b.as_raw()), 4).resample(r),
        other => {
            let b = other.to_rgba16();
            win(Samples::U16(b.as_raw()), 4).resample(r)
        }
    };
    Ok(out)
}
