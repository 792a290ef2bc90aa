//! The built-in Noto Emoji set: `assets/emoji/noto-emoji-{32,64}.png` (RGBA atlases of 48
//! columns of square cells; cell `i` at column `i % 48`, row `i / 48`) and `index.tsv`
//! (`index category short_name unified`). See `assets/emoji/README.md` for the licence.

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
    use crate::assets::{Asset, read};
    let (index_bytes, index_path) = read(Asset::EmojiIndex).map_err(DataError::EmojiAsset)?;
    let index = String::from_utf8_lossy(&index_bytes);
    let mut cells = Vec::new();
    for (ln, line) in index.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split('\t').collect();
        let bad = || {
            DataError::EmojiAsset(format!(
                "{} line {}: expected `index category short_name unified`",
                index_path,
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
    let (atlas_bytes, atlas_path) = read(if cell_px == 32 {
        Asset::Emoji32
    } else {
        Asset::Emoji64
    })
    .map_err(DataError::EmojiAsset)?;
    let atlas = image::load_from_memory(&atlas_bytes)
        .map_err(|e| DataError::EmojiAsset(format!("cannot decode {atlas_path} ({e})")))?
        .into_rgba8();
    let (aw, ah) = (atlas.width() as usize, atlas.height() as usize);
    if aw != COLUMNS * cell_px {
        return Err(DataError::EmojiAsset(format!(
            "{atlas_path} is {aw} px wide, expected {COLUMNS} cells of {cell_px} px"
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
                "cell {idx} is outside {atlas_path} ({rows} rows)"
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
