//! Training data: a [`Dataset`] of N RGB images at one resolution R, planar `[N, 3, R, R]` `f32`
//! in [-1, 1] (`x / 127.5 - 1`), composited over white; and a [`Batcher`] that serves shuffled,
//! optionally x-flipped minibatches from a background thread.
//!
//! Sources ([`Dataset::open`]):
//! - `emoji` or `emoji:CATEGORY`: the built-in Noto Emoji atlases in `assets/emoji/`;
//! - a folder of images (PNG, JPEG, WebP, BMP; recursive), or a `.zip` of images as
//!   StyleGAN2-ADA's `dataset_tool` writes: each image is centre-cropped to a square, resized
//!   to R (area average when shrinking, bilinear when enlarging) and converted to RGB over white.
//!   Files that cannot be used are skipped and listed in the [`LoadReport`].

mod batcher;
mod emoji;
pub mod image_io;
mod sources;

pub use batcher::{Batch, Batcher, BatcherState, epoch_order, make_batch};
pub use emoji::EMOJI_CATEGORIES;
pub use image_io::{MAX_PIXELS, MIN_SIDE, decode_image};

use std::path::Path;

/// Why a data set could not be opened or served.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("resolution must be at least 1, got {0}")]
    Resolution(usize),
    #[error("data set {0}: no such file or folder")]
    NotFound(String),
    #[error("data set {0}: not a folder of images or a .zip of images")]
    NotDataSet(String),
    #[error("{path}: {detail}")]
    Io { path: String, detail: String },
    #[error("{path}: not a readable zip archive: {detail}")]
    Zip { path: String, detail: String },
    #[error("no usable image in {path}: {skipped} image file(s) skipped{detail}")]
    NoImages {
        path: String,
        skipped: usize,
        detail: String,
    },
    #[error("built-in emoji set: {0}")]
    EmojiAsset(String),
    #[error("unknown emoji category `{name}`; valid: {valid}")]
    UnknownCategory { name: String, valid: String },
    #[error("batcher: {0}")]
    Batcher(String),
}

/// What loading did: how many images were loaded, and each skipped file with the reason. The
/// caller prints a warning when `skipped` is not empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadReport {
    /// Images in the data set.
    pub loaded: usize,
    /// Files that looked like images (by extension) but could not be used: (path, reason).
    pub skipped: Vec<(String, String)>,
    /// Files ignored without a warning (no image extension, hidden files, folders).
    pub ignored: usize,
}

impl LoadReport {
    /// A one-paragraph warning listing up to `max` skipped files, or `None` when nothing was
    /// skipped.
    pub fn warning(&self, max: usize) -> Option<String> {
        if self.skipped.is_empty() {
            return None;
        }
        let mut s = format!(
            "loaded {} image(s), skipped {} unusable file(s):",
            self.loaded,
            self.skipped.len()
        );
        for (p, r) in self.skipped.iter().take(max) {
            s.push_str(&format!("\n  {p}: {r}"));
        }
        if self.skipped.len() > max {
            s.push_str(&format!("\n  ... and {} more", self.skipped.len() - max));
        }
        Some(s)
    }
}

/// N RGB images at resolution R, planar `[N, 3, R, R]` in [-1, 1], composited over white.
#[derive(Clone, Debug)]
pub struct Dataset {
    /// The spec it was opened from (`emoji:smileys`, a path, ...).
    pub source: String,
    /// R: every image is R x R.
    pub resolution: usize,
    /// `[N, 3, R, R]` values in [-1, 1].
    pub images: Vec<f32>,
    /// One name per image (emoji short name, or path inside the folder / zip).
    pub names: Vec<String>,
}

impl Dataset {
    /// Opens `spec` (`emoji`, `emoji:CATEGORY`, a folder or a `.zip`) at `resolution`; `emoji`
    /// always means the built-in set (write `./emoji` for a folder of that name).
    pub fn open(spec: &str, resolution: usize) -> Result<(Dataset, LoadReport), DataError> {
        if resolution == 0 {
            return Err(DataError::Resolution(resolution));
        }
        let lower = spec.to_ascii_lowercase();
        if lower == "emoji" || lower.starts_with("emoji:") {
            let cat = spec.split_once(':').map(|(_, c)| c);
            let (images, names) = emoji::load(cat, resolution)?;
            let report = LoadReport {
                loaded: names.len(),
                ..LoadReport::default()
            };
            let ds = Dataset {
                source: spec.to_string(),
                resolution,
                images,
                names,
            };
            return Ok((ds, report));
        }
        let path = Path::new(spec);
        let (images, names, report) = sources::load_path(path, resolution)?;
        let ds = Dataset {
            source: spec.to_string(),
            resolution,
            images,
            names,
        };
        Ok((ds, report))
    }

    /// A data set from planar `[N, 3, R, R]` values (names `0`, `1`, ...).
    pub fn from_images(
        source: &str,
        images: Vec<f32>,
        resolution: usize,
    ) -> Result<Dataset, DataError> {
        let per = 3 * resolution * resolution;
        if resolution == 0 {
            return Err(DataError::Resolution(resolution));
        }
        if !images.len().is_multiple_of(per) {
            return Err(DataError::Batcher(format!(
                "{} values are not a whole number of 3x{resolution}x{resolution} images",
                images.len()
            )));
        }
        let n = images.len() / per;
        Ok(Dataset {
            source: source.to_string(),
            resolution,
            images,
            names: (0..n).map(|i| i.to_string()).collect(),
        })
    }

    /// N, the number of images.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there is no image.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// Values per image: `3 * R * R`.
    pub fn image_len(&self) -> usize {
        3 * self.resolution * self.resolution
    }

    /// Image `i`, planar `[3, R, R]`.
    pub fn image(&self, i: usize) -> &[f32] {
        let l = self.image_len();
        &self.images[i * l..(i + 1) * l]
    }
}
