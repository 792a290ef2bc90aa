//! The built-in Noto Emoji set: `assets/emoji/noto-emoji-{32,64}.png` (RGBA atlases of 48
//! columns of square cells; cell `i` at column `i % 48`, row `i / 48`) and `index.tsv`
//! (`index category short_name unified`). See `assets/emoji/README.md` for the licence.

use std::path::PathBuf;

use super::DataError;
use super::image_io::{Samples, Window};

/// Cells per atlas row.
const COLUMNS: usize = 48;

/// The selectable categories: (selector, category name in `index.tsv`).
pub const EMOJI_CATEGORIES: [(&str, &str); 9] = [
    ("smileys", "Smileys & Emotion"),
    ("people", "People & Body"),
    ("animals", "Animals & Nature"),
    ("food", "Food & Drink"),
    ("travel", "Travel & Places"),
    ("activities", "Activities"),
    ("objects", "Objects"),
    ("symbols", "Symbols"),
    ("flags", "Flags"),
];

/// The folder holding the atlases and the index.
pub fn emoji_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/assets/emoji"))
}

/// Loads the emoji of `category` (all when `None`) at resolution `r`: planar `[N, 3, r, r]`
/// in [-1, 1] over white, and their short names.
pub(crate) fn load(category: Option<&str>, r: usize) -> Result<(Vec<f32>, Vec<String>), DataError> {
    let wanted = match category {
        None => None,
        Some(c) => {
            let c = c.trim();
            let first = |name: &str| {
                name.split_whitespace()
                    .next()
                    .unwrap_or("")
                    .to_ascii_lowercase()
            };
            let hit = EMOJI_CATEGORIES
                .iter()
                .find(|(sel, full)| c.eq_ignore_ascii_case(sel) || first(full) == first(c));
            match hit {
                Some((_, full)) if !c.is_empty() => Some(*full),
                _ => {
                    let valid: Vec<String> = EMOJI_CATEGORIES
                        .iter()
                        .map(|(s, _)| format!("emoji:{s}"))
                        .collect();
                    return Err(DataError::UnknownCategory {
                        name: c.to_string(),
                        valid: format!("emoji, {}", valid.join(", ")),
                    });
                }
            }
        }
    };
    let dir = emoji_dir();
    let index_path = dir.join("index.tsv");
    let index = std::fs::read_to_string(&index_path).map_err(|e| {
        DataError::EmojiAsset(format!(
            "cannot read {} ({e}); the built-in data set ships in assets/emoji/",
            index_path.display()
        ))
    })?;
    let mut cells = Vec::new();
    for (ln, line) in index.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || {
            DataError::EmojiAsset(format!(
                "{} line {}: expected `index category short_name unified`",
                index_path.display(),
                ln + 1
            ))
        };
        if f.len() < 3 {
            return Err(bad());
        }
        let idx: usize = f[0].trim().parse().map_err(|_| bad())?;
        if wanted.is_none_or(|w| w == f[1]) {
            cells.push((idx, f[2].to_string()));
        }
    }
    let cell_px = if r <= 32 { 32 } else { 64 };
    let atlas_path = dir.join(format!("noto-emoji-{cell_px}.png"));
    let atlas = image::open(&atlas_path)
        .map_err(|e| {
            DataError::EmojiAsset(format!(
                "cannot load {} ({e}); the built-in data set ships in assets/emoji/",
                atlas_path.display()
            ))
        })?
        .into_rgba8();
    let (aw, ah) = (atlas.width() as usize, atlas.height() as usize);
    if aw != COLUMNS * cell_px {
        return Err(DataError::EmojiAsset(format!(
            "{} is {aw} px wide, expected {COLUMNS} cells of {cell_px} px",
            atlas_path.display()
        )));
    }
    let rows = ah / cell_px;
    let raw = atlas.as_raw();
    let mut images = Vec::with_capacity(cells.len() * 3 * r * r);
    let mut names = Vec::with_capacity(cells.len());
    for (idx, name) in cells {
        let (col, row) = (idx % COLUMNS, idx / COLUMNS);
        if row >= rows {
            return Err(DataError::EmojiAsset(format!(
                "cell {idx} is outside {} ({rows} rows)",
                atlas_path.display()
            )));
        }
        let win = Window {
            samples: Samples::U8(raw),
            channels: 4,
            width: aw,
            x0: col * cell_px,
            y0: row * cell_px,
            side: cell_px,
        };
        images.extend_from_slice(&win.resample(r));
        names.push(name);
    }
    Ok((images, names))
}
