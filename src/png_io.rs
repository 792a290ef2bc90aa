//! PNG files: an RGBA image written atomically (temp file, then rename), with text chunks; an
//! animated PNG streamed frame by frame.

use std::io::Write;
use std::path::Path;

#[derive(Debug, thiserror::Error)]
pub enum PngError {
    #[error("{path}: {detail}")]
    Write { path: String, detail: String },
    #[error("{0}x{1} RGBA needs {2} bytes, got {3}")]
    Size(usize, usize, usize, usize),
}

/// Writes `rgba` (`width * height * 4` bytes, rows top-down) to `path` with `text` chunks
/// (keyword, text).
pub fn write_rgba(
    path: &Path,
    width: usize,
    height: usize,
    rgba: &[u8],
    text: &[(&str, String)],
) -> Result<(), PngError> {
    if rgba.len() != width * height * 4 {
        return Err(PngError::Size(
            width,
            height,
            width * height * 4,
            rgba.len(),
        ));
    }
    let err = |e: &dyn std::fmt::Display| PngError::Write {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let mut buf = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut buf, width as u32, height as u32);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        for (k, v) in text {
            enc.add_text_chunk((*k).into(), v.clone())
                .map_err(|e| err(&e))?;
        }
        let mut w = enc.write_header().map_err(|e| err(&e))?;
        w.write_image_data(rgba).map_err(|e| err(&e))?;
        w.finish().map_err(|e| err(&e))?;
    }
    if let Some(d) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).map_err(|e| err(&e))?;
    }
    let tmp = path.with_extension(format!("png.tmp{}", std::process::id()));
    let res = (|| -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&buf)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(err(&e));
    }
    Ok(())
}

/// Writes an animated PNG (APNG, looping forever) of `frames` frames of `width x height` RGBA,
/// each shown `delay_ms`, streamed: `next(i)` gives frame `i` (so only one frame is in memory),
/// to a temporary file renamed to `path` at the end.
pub fn write_apng(
    path: &Path,
    width: usize,
    height: usize,
    frames: usize,
    delay_ms: u16,
    mut next: impl FnMut(usize) -> Result<Vec<u8>, String>,
) -> Result<(), PngError> {
    let err = |e: &dyn std::fmt::Display| PngError::Write {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    if frames == 0 {
        return Err(err(&"an animation needs a frame"));
    }
    let tmp = path.with_extension(format!("png.tmp{}", std::process::id()));
    let res = (|| -> Result<(), PngError> {
        let f = std::fs::File::create(&tmp).map_err(|e| err(&e))?;
        let mut enc = png::Encoder::new(std::io::BufWriter::new(f), width as u32, height as u32);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_animated(frames as u32, 0).map_err(|e| err(&e))?;
        enc.set_frame_delay(delay_ms, 1000).map_err(|e| err(&e))?;
        let mut w = enc.write_header().map_err(|e| err(&e))?;
        for i in 0..frames {
            let rgba = next(i).map_err(|e| err(&e))?;
            if rgba.len() != width * height * 4 {
                return Err(PngError::Size(
                    width,
                    height,
                    width * height * 4,
                    rgba.len(),
                ));
            }
            w.write_image_data(&rgba).map_err(|e| err(&e))?;
        }
        w.finish().map_err(|e| err(&e))?;
        std::fs::rename(&tmp, path).map_err(|e| err(&e))
    })();
    if res.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    res
}

/// Planar RGB floats `[n, 3, h * w]` in [-1, 1] to a grid of `cols` columns, RGBA bytes; returns
/// (width, height, bytes).
pub fn grid(planar: &[f32], n: usize, h: usize, w: usize, cols: usize) -> (usize, usize, Vec<u8>) {
    let cols = cols.clamp(1, n.max(1));
    let rows = n.div_ceil(cols);
    let (gw, gh) = (cols * w, rows * h);
    let mut out = vec![255u8; gw * gh * 4];
    let px = h * w;
    for i in 0..n {
        let (cx, cy) = ((i % cols) * w, (i / cols) * h);
        for y in 0..h {
            for x in 0..w {
                let o = ((cy + y) * gw + cx + x) * 4;
                for c in 0..3 {
                    out[o + c] =
                        crate::reference::image::quantize(planar[(i * 3 + c) * px + y * w + x]);
                }
                out[o + 3] = 255;
            }
        }
    }
    (gw, gh, out)
}
