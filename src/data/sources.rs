//! Folders (recursive) and zip archives of images. Candidates are the files whose extension
//! is an image one (png, jpg, jpeg, webp, bmp), in sorted path order; the format is then
//! guessed from the content. Hidden files and folders (`.name`) and other files are ignored.
//! Decoding runs in parallel (rayon) and keeps the sorted order.

use std::io::Read;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use super::image_io::decode_image;
use super::{DataError, LoadReport};

/// File extensions taken as images (case-insensitive).
const IMAGE_EXTENSIONS: [&str; 5] = ["png", "jpg", "jpeg", "webp", "bmp"];
/// Files larger than this (1 GiB) are skipped unread.
const MAX_FILE_BYTES: u64 = 1 << 30;
/// Zip entries are read this many at a time, then decoded in parallel.
const ZIP_CHUNK: usize = 64;

type Loaded = (Vec<f32>, Vec<String>, LoadReport);

/// True when `name`'s extension is an image one.
fn is_image_name(name: &str) -> bool {
    Path::new(name)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x)))
}

/// True when `name` starts with a dot.
fn is_hidden(name: &str) -> bool {
    name.starts_with('.')
}

/// Loads a folder or a zip at `path`.
pub(crate) fn load_path(path: &Path, r: usize) -> Result<Loaded, DataError> {
    let shown = path.display().to_string();
    let meta = std::fs::metadata(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            DataError::NotFound(shown.clone())
        } else {
            DataError::Io {
                path: shown.clone(),
                detail: e.to_string(),
            }
        }
    })?;
    if meta.is_dir() {
        return load_folder(path, r);
    }
    let is_zip_ext = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"));
    let mut magic = [0u8; 4];
    let is_zip_magic = std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok()
        && &magic == b"PK\x03\x04";
    if is_zip_ext || is_zip_magic {
        return load_zip(path, r);
    }
    Err(DataError::NotDataSet(shown))
}

/// Collects the decoded images, in order, into the data set arrays and the report.
fn collect(
    path: &Path,
    results: Vec<(String, Result<Vec<f32>, String>)>,
    ignored: usize,
    r: usize,
) -> Result<Loaded, DataError> {
    let mut images = Vec::new();
    let mut names = Vec::new();
    let mut report = LoadReport {
        ignored,
        ..LoadReport::default()
    };
    for (name, res) in results {
        match res {
            Ok(img) => {
                debug_assert_eq!(img.len(), 3 * r * r);
                images.extend_from_slice(&img);
                names.push(name);
            }
            Err(why) => report.skipped.push((name, why)),
        }
    }
    report.loaded = names.len();
    if names.is_empty() {
        let detail = match report.skipped.first() {
            Some((p, why)) => format!(" (first: {p}: {why})"),
            None => " (no .png, .jpg, .jpeg, .webp or .bmp file found)".to_string(),
        };
        return Err(DataError::NoImages {
            path: path.display().to_string(),
            skipped: report.skipped.len(),
            detail,
        });
    }
    Ok((images, names, report))
}

/// Recursively lists the image files under `dir`, sorted, and counts the ignored entries.
fn walk(dir: &Path, files: &mut Vec<PathBuf>, ignored: &mut usize) -> Result<(), DataError> {
    let io = |e: std::io::Error| DataError::Io {
        path: dir.display().to_string(),
        detail: e.to_string(),
    };
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(io)?
        .collect::<Result<_, _>>()
        .map_err(io)?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name().to_string_lossy().into_owned();
        if is_hidden(&name) {
            *ignored += 1;
            continue;
        }
        let p = e.path();
        let ft = e.file_type().map_err(io)?;
        if ft.is_dir() {
            walk(&p, files, ignored)?;
        } else if is_image_name(&name) && (ft.is_file() || p.is_file()) {
            files.push(p);
        } else {
            *ignored += 1;
        }
    }
    Ok(())
}

/// Loads every image file under the folder `dir`.
fn load_folder(dir: &Path, r: usize) -> Result<Loaded, DataError> {
    let mut files = Vec::new();
    let mut ignored = 0;
    walk(dir, &mut files, &mut ignored)?;
    let results: Vec<(String, Result<Vec<f32>, String>)> = files
        .par_iter()
        .map(|p| {
            let name = p
                .strip_prefix(dir)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned();
            let res = match std::fs::metadata(p) {
                Ok(m) if m.len() > MAX_FILE_BYTES => {
                    Err(format!("file too large ({} bytes)", m.len()))
                }
                Ok(_) => match std::fs::read(p) {
                    Ok(bytes) => decode_image(&bytes, r),
                    Err(e) => Err(format!("cannot read: {e}")),
                },
                Err(e) => Err(format!("cannot read: {e}")),
            };
            (name, res)
        })
        .collect();
    collect(dir, results, ignored, r)
}

/// Loads every image entry of the zip archive at `path`.
fn load_zip(path: &Path, r: usize) -> Result<Loaded, DataError> {
    let zerr = |e: &dyn std::fmt::Display| DataError::Zip {
        path: path.display().to_string(),
        detail: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(|e| DataError::Io {
        path: path.display().to_string(),
        detail: e.to_string(),
    })?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).map_err(|e| zerr(&e))?;
    let mut entries = Vec::new();
    let mut ignored = 0;
    for i in 0..zip.len() {
        let (name, is_dir) = match zip.by_index_raw(i) {
            Ok(f) => (f.name().to_string(), f.is_dir()),
            Err(e) => return Err(zerr(&e)),
        };
        let base = name.rsplit('/').next().unwrap_or(&name);
        let hidden = name.split('/').any(is_hidden) || name.starts_with("__MACOSX/");
        if is_dir {
            continue;
        }
        if hidden || !is_image_name(base) {
            ignored += 1;
            continue;
        }
        entries.push((name, i));
    }
    entries.sort();
    let mut results = Vec::with_capacity(entries.len());
    for chunk in entries.chunks(ZIP_CHUNK) {
        let mut raw = Vec::with_capacity(chunk.len());
        for (name, i) in chunk {
            let bytes = match zip.by_index(*i) {
                Ok(f) if f.size() > MAX_FILE_BYTES => {
                    Err(format!("file too large ({} bytes)", f.size()))
                }
                Ok(mut f) => {
                    let mut b = Vec::with_capacity(f.size() as usize);
                    f.read_to_end(&mut b)
                        .map(|_| b)
                        .map_err(|e| format!("cannot read from the archive: {e}"))
                }
                Err(e) => Err(format!("cannot read from the archive: {e}")),
            };
            raw.push((name.clone(), bytes));
        }
        let decoded: Vec<_> = raw
            .into_par_iter()
            .map(|(name, bytes)| (name, bytes.and_then(|b| decode_image(&b, r))))
            .collect();
        results.extend(decoded);
    }
    collect(path, results, ignored, r)
}
