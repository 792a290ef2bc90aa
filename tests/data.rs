//! Data sets: the built-in emoji atlas, folders and zips of images (with broken files skipped
//! and counted), and the prefetching batcher (deterministic, one pass per epoch, x-flip,
//! resumable). Fixtures are written to a temporary folder at test time.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use image::{ImageBuffer, Luma, Rgb, Rgba};
use inrgan::data::{
    Batch, Batcher, BatcherState, DataError, Dataset, EMOJI_CATEGORIES, epoch_order, make_batch,
};

/// A fresh temporary folder for one test.
fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("inrgan-data-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// PNG bytes of an RGB image.
fn png_bytes(img: &ImageBuffer<Rgb<u8>, Vec<u8>>) -> Vec<u8> {
    let mut buf = std::io::Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .expect("encode png");
    buf.into_inner()
}

/// A 20x12 RGB image: 4 red columns, 12 blue columns, 4 green columns, so its centre square
/// is pure blue.
fn striped() -> ImageBuffer<Rgb<u8>, Vec<u8>> {
    ImageBuffer::from_fn(20, 12, |x, _| match x {
        0..4 => Rgb([255, 0, 0]),
        4..16 => Rgb([0, 0, 255]),
        _ => Rgb([0, 255, 0]),
    })
}

/// The CRC-32 of PNG chunks.
fn crc32(data: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in data {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                (c >> 1) ^ 0xEDB8_8320
            } else {
                c >> 1
            };
        }
    }
    !c
}

/// A PNG that declares `w x h` pixels but holds no image data.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = b"IHDR".to_vec();
    chunk.extend_from_slice(&w.to_be_bytes());
    chunk.extend_from_slice(&h.to_be_bytes());
    chunk.extend_from_slice(&[8, 2, 0, 0, 0]);
    v.extend_from_slice(&13u32.to_be_bytes());
    v.extend_from_slice(&chunk);
    v.extend_from_slice(&crc32(&chunk).to_be_bytes());
    // An empty IDAT chunk, so the header parses.
    v.extend_from_slice(&0u32.to_be_bytes());
    v.extend_from_slice(b"IDAT");
    v.extend_from_slice(&crc32(b"IDAT").to_be_bytes());
    v
}

/// Writes the mixed fixture folder: 6 usable images (3 PNG kinds at the top, JPEG, WebP and
/// BMP in a subfolder), 5 unusable image files, 2 ignored files.
fn write_mixed_folder(d: &Path) {
    striped().save(d.join("a_rgb.png")).unwrap();
    ImageBuffer::from_fn(16, 16, |x, _| Luma([(x * 16) as u8]))
        .save(d.join("b_gray.png"))
        .unwrap();
    ImageBuffer::from_fn(16, 16, |_, _| Rgb([32768u16, 32768, 32768]))
        .save(d.join("c_16bit.png"))
        .unwrap();
    let full = png_bytes(&striped());
    std::fs::write(d.join("d_truncated.png"), &full[..full.len() / 2]).unwrap();
    std::fs::write(d.join("e_empty.png"), b"").unwrap();
    std::fs::write(d.join("f_text.png"), b"this is not an image\n").unwrap();
    ImageBuffer::from_pixel(1, 1, Rgb([9u8, 9, 9]))
        .save(d.join("g_tiny.png"))
        .unwrap();
    std::fs::write(d.join("h_huge.png"), png_header_only(10_000, 10_000)).unwrap();
    std::fs::write(d.join("readme.txt"), b"notes").unwrap();
    std::fs::write(d.join(".hidden.png"), b"junk").unwrap();
    let sub = d.join("sub");
    std::fs::create_dir_all(&sub).unwrap();
    let rgb = ImageBuffer::from_fn(24, 24, |x, y| Rgb([(x * 10) as u8, (y * 10) as u8, 128]));
    rgb.save(sub.join("i.jpg")).unwrap();
    rgb.save(sub.join("j.bmp")).unwrap();
    rgb.save(sub.join("k.webp")).unwrap();
}

/// Channel `c` of pixel (x, y) of image `i`.
fn px(ds: &Dataset, i: usize, c: usize, x: usize, y: usize) -> f32 {
    let r = ds.resolution;
    ds.image(i)[c * r * r + y * r + x]
}

#[test]
fn emoji_all_and_categories() {
    let (ds, rep) = Dataset::open("emoji", 32).expect("emoji");
    assert_eq!(ds.len(), 1906);
    assert_eq!(rep.loaded, 1906);
    assert!(rep.skipped.is_empty());
    assert_eq!(ds.images.len(), 1906 * 3 * 32 * 32);
    assert!(ds.images.iter().all(|v| (-1.0..=1.0).contains(v)));
    // Transparent corners composite to pure white, exactly 1.0.
    for i in [0, 500, 1905] {
        for c in 0..3 {
            assert_eq!(px(&ds, i, c, 0, 0), 1.0, "image {i} channel {c}");
        }
    }
    // Not everything is white: the glyphs are there.
    let dark = ds.images.iter().filter(|&&v| v < 0.0).count();
    assert!(dark > ds.images.len() / 20, "dark values {dark}");
    assert_eq!(ds.names[0], "grinning");

    let (sm, _) = Dataset::open("emoji:smileys", 32).expect("smileys");
    assert_eq!(sm.len(), 169);
    assert_eq!(sm.image(0), ds.image(0));
    let (fl, _) = Dataset::open("emoji:FLAGS", 16).expect("flags");
    assert_eq!(fl.len(), 270);
    assert_eq!(fl.images.len(), 270 * 3 * 16 * 16);
    let total: usize = EMOJI_CATEGORIES
        .iter()
        .map(|(s, _)| Dataset::open(&format!("emoji:{s}"), 8).unwrap().0.len())
        .sum();
    assert_eq!(total, 1906);
}

#[test]
fn emoji_64_and_resampling() {
    let (a, _) = Dataset::open("emoji:activities", 64).expect("64");
    assert_eq!(a.len(), 85);
    let (b, _) = Dataset::open("emoji:activities", 48).expect("48");
    assert_eq!(b.images.len(), 85 * 3 * 48 * 48);
    assert!(b.images.iter().all(|v| (-1.0..=1.0).contains(v)));
    assert_eq!(px(&b, 3, 1, 47, 47), 1.0);
    // Enlarging (bilinear from the 64 px atlas) also stays in range with white corners.
    let (c, _) = Dataset::open("emoji:activities", 80).expect("80");
    assert!(c.images.iter().all(|v| (-1.0..=1.0).contains(v)));
    assert_eq!(px(&c, 0, 2, 0, 79), 1.0);
    // Halving with the box filter keeps the mean.
    let (d, _) = Dataset::open("emoji:activities", 32).expect("32");
    let (e, _) = Dataset::open("emoji:activities", 16).expect("16");
    let mean = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
    assert!((mean(&d.images) - mean(&e.images)).abs() < 1e-3);
}

#[test]
fn emoji_unknown_category_lists_valid_ones() {
    let err = Dataset::open("emoji:dragons", 32).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::UnknownCategory { .. }));
    assert!(
        msg.contains("dragons") && msg.contains("emoji:smileys") && msg.contains("emoji:flags")
    );
    assert!(Dataset::open("emoji:", 32).is_err());
    assert!(matches!(
        Dataset::open("emoji", 0),
        Err(DataError::Resolution(0))
    ));
}

#[test]
fn folder_loads_good_and_counts_bad() {
    let d = temp_dir("mixed");
    write_mixed_folder(&d);
    let (ds, rep) = Dataset::open(d.to_str().unwrap(), 8).expect("folder");
    let skipped: Vec<&str> = rep.skipped.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(rep.loaded, 6, "skipped: {:?}", rep.skipped);
    assert_eq!(ds.len(), 6);
    assert_eq!(
        skipped,
        [
            "d_truncated.png",
            "e_empty.png",
            "f_text.png",
            "g_tiny.png",
            "h_huge.png"
        ]
    );
    assert_eq!(rep.ignored, 2);
    let reasons: Vec<&str> = rep.skipped.iter().map(|(_, r)| r.as_str()).collect();
    assert!(reasons[1].contains("empty"), "{reasons:?}");
    assert!(reasons[3].contains("too small"), "{reasons:?}");
    assert!(reasons[4].contains("too large"), "{reasons:?}");
    assert!(rep.warning(10).unwrap().contains("skipped 5"));
    assert_eq!(
        ds.names,
        [
            "a_rgb.png",
            "b_gray.png",
            "c_16bit.png",
            "sub/i.jpg",
            "sub/j.bmp",
            "sub/k.webp"
        ]
    );
    assert!(ds.images.iter().all(|v| (-1.0..=1.0).contains(v)));
    // The centre crop of the striped image is pure blue.
    for (c, want) in [(0, -1.0), (1, -1.0), (2, 1.0)] {
        assert!(ds.image(0)[c * 64..(c + 1) * 64].iter().all(|&v| v == want));
    }
    // Grayscale becomes equal RGB channels; the ramp rises left to right.
    assert_eq!(px(&ds, 1, 0, 5, 2), px(&ds, 1, 2, 5, 2));
    assert!(px(&ds, 1, 0, 7, 0) > px(&ds, 1, 0, 0, 0));
    // 16-bit mid grey: 32768 / 65535 * 2 - 1.
    assert!((px(&ds, 2, 1, 3, 3) - (32768.0 / 65535.0 * 2.0 - 1.0)).abs() < 1e-6);
    // JPEG, BMP and WebP of the same gradient agree (JPEG within its loss).
    for i in [3, 5] {
        for (a, b) in ds.image(i).iter().zip(ds.image(4)) {
            assert!((a - b).abs() < 0.08, "image {i}: {a} vs {b}");
        }
    }
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn alpha_composites_over_white() {
    let d = temp_dir("alpha");
    ImageBuffer::from_fn(10, 10, |x, _| {
        if x < 5 {
            Rgba([0u8, 0, 0, 0])
        } else {
            Rgba([0, 0, 0, 255])
        }
    })
    .save(d.join("half.png"))
    .unwrap();
    let (ds, _) = Dataset::open(d.to_str().unwrap(), 10).expect("alpha");
    assert_eq!(px(&ds, 0, 0, 0, 0), 1.0);
    assert_eq!(px(&ds, 0, 1, 9, 9), -1.0);
    let _ = std::fs::remove_dir_all(&d);
}

#[test]
fn folder_of_only_broken_files_is_an_error_naming_it() {
    let d = temp_dir("broken");
    std::fs::write(d.join("a.png"), b"").unwrap();
    std::fs::write(d.join("b.jpg"), b"nope").unwrap();
    let err = Dataset::open(d.to_str().unwrap(), 8).unwrap_err();
    assert!(
        matches!(err, DataError::NoImages { skipped: 2, .. }),
        "{err}"
    );
    assert!(err.to_string().contains(d.to_str().unwrap()), "{err}");
    let empty = temp_dir("empty");
    let err = Dataset::open(empty.to_str().unwrap(), 8).unwrap_err();
    assert!(err.to_string().contains(empty.to_str().unwrap()), "{err}");
    let missing = d.join("missing");
    assert!(matches!(
        Dataset::open(missing.to_str().unwrap(), 8),
        Err(DataError::NotFound(_))
    ));
    let _ = std::fs::remove_dir_all(&d);
    let _ = std::fs::remove_dir_all(&empty);
}

#[test]
fn zip_of_images() {
    let d = temp_dir("zip");
    let path = d.join("set.zip");
    {
        let f = std::fs::File::create(&path).unwrap();
        let mut z = zip::ZipWriter::new(f);
        let opt = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        z.add_directory("00000/", opt).unwrap();
        z.start_file("00000/img00000001.png", opt).unwrap();
        z.write_all(&png_bytes(&ImageBuffer::from_pixel(12, 12, Rgb([0, 0, 0]))))
            .unwrap();
        z.start_file("00000/img00000000.png", opt).unwrap();
        z.write_all(&png_bytes(&striped())).unwrap();
        z.start_file("00000/img00000002.png", opt).unwrap();
        z.write_all(b"broken").unwrap();
        z.start_file("dataset.json", opt).unwrap();
        z.write_all(b"{\"labels\": null}").unwrap();
        z.finish().unwrap();
    }
    let (ds, rep) = Dataset::open(path.to_str().unwrap(), 6).expect("zip");
    assert_eq!(ds.len(), 2);
    assert_eq!(rep.skipped.len(), 1);
    assert_eq!(rep.ignored, 1);
    assert_eq!(ds.names[0], "00000/img00000000.png");
    assert_eq!(px(&ds, 0, 2, 3, 3), 1.0);
    assert!(ds.image(1).iter().all(|&v| v == -1.0));
    let _ = std::fs::remove_dir_all(&d);
}

/// 7 images of 3x3 whose values encode the image index and the column, so order and flips
/// can be read back.
fn tiny_dataset() -> Arc<Dataset> {
    let (n, r) = (7, 3);
    let mut v = Vec::new();
    for i in 0..n {
        for c in 0..3 {
            for _y in 0..r {
                for x in 0..r {
                    v.push(i as f32 * 0.1 + x as f32 * 0.01 + c as f32 * 0.001);
                }
            }
        }
    }
    Arc::new(Dataset::from_images("tiny", v, r).unwrap())
}

/// The next `k` batches.
fn take(b: &mut Batcher, k: usize) -> Vec<Batch> {
    (0..k).map(|_| b.next_batch().expect("batch")).collect()
}

#[test]
fn batcher_is_deterministic_and_covers_each_epoch() {
    let ds = tiny_dataset();
    let mut a = Batcher::new(ds.clone(), 3, true, 42).unwrap();
    let mut b = Batcher::new(ds.clone(), 3, true, 42).unwrap();
    let mut c = Batcher::new(ds.clone(), 3, true, 43).unwrap();
    let (ba, bb, bc) = (take(&mut a, 7), take(&mut b, 7), take(&mut c, 7));
    let idx = |v: &[Batch]| v.iter().flat_map(|b| b.indices.clone()).collect::<Vec<_>>();
    let imgs = |v: &[Batch]| v.iter().flat_map(|b| b.images.clone()).collect::<Vec<_>>();
    assert_eq!(idx(&ba), idx(&bb));
    assert_eq!(imgs(&ba), imgs(&bb));
    assert_ne!(idx(&ba), idx(&bc));
    // 21 samples = 3 epochs of 7, each a permutation, matching epoch_order.
    let all = idx(&ba);
    for e in 0..3 {
        let mut ep = all[e * 7..(e + 1) * 7].to_vec();
        assert_eq!(ep, epoch_order(7, 42, e as u64));
        ep.sort();
        assert_eq!(ep, (0..7).collect::<Vec<_>>());
    }
    assert_ne!(all[0..7], all[7..14]);
    assert_eq!(ba[2].epoch, 0); // positions 6, 7, 8 straddle epochs 0 and 1
    assert_eq!(ba[3].epoch, 1);
    assert_eq!(
        a.state(),
        BatcherState {
            seed: 42,
            epoch: 3,
            position: 0
        }
    );
    // A batch larger than the data set wraps into the next epoch.
    let big = make_batch(&ds, 10, false, &BatcherState::new(1)).unwrap();
    assert_eq!(big.indices.len(), 10);
    assert_eq!(big.state_after.epoch, 1);
    assert_eq!(big.state_after.position, 3);
    assert!(Batcher::new(ds.clone(), 0, false, 1).is_err());
}

#[test]
fn batcher_flips_when_asked() {
    let ds = tiny_dataset();
    let r = ds.resolution;
    let mut on = Batcher::new(ds.clone(), 4, true, 7).unwrap();
    let mut off = Batcher::new(ds.clone(), 4, false, 7).unwrap();
    let (bon, boff) = (take(&mut on, 10), take(&mut off, 10));
    let flips: Vec<bool> = bon.iter().flat_map(|b| b.flipped.clone()).collect();
    let nflip = flips.iter().filter(|&&f| f).count();
    assert!(nflip > 5 && nflip < 35, "{nflip} of 40 flipped");
    assert!(boff.iter().all(|b| b.flipped.iter().all(|&f| !f)));
    for (b, c) in bon.iter().zip(&boff) {
        // Same order with and without flips.
        assert_eq!(b.indices, c.indices);
        for (k, (&i, &f)) in b.indices.iter().zip(&b.flipped).enumerate() {
            let src = ds.image(i);
            let got = &b.images[k * 3 * r * r..(k + 1) * 3 * r * r];
            assert_eq!(&c.images[k * 3 * r * r..(k + 1) * 3 * r * r], src);
            for row in 0..3 * r {
                for x in 0..r {
                    let sx = if f { r - 1 - x } else { x };
                    assert_eq!(got[row * r + x], src[row * r + sx]);
                }
            }
        }
    }
}

#[test]
fn batcher_resumes_from_saved_state() {
    let ds = tiny_dataset();
    let mut a = Batcher::new(ds.clone(), 3, true, 99).unwrap();
    let first = take(&mut a, 4);
    let saved = serde_json::to_string(&a.state()).unwrap();
    assert_eq!(a.state(), first[3].state_after);
    let rest = take(&mut a, 5);
    drop(a);
    let state: BatcherState = serde_json::from_str(&saved).unwrap();
    let mut b = Batcher::resume(ds.clone(), 3, true, state.clone()).unwrap();
    let resumed = take(&mut b, 5);
    for (x, y) in rest.iter().zip(&resumed) {
        assert_eq!(x.indices, y.indices);
        assert_eq!(x.flipped, y.flipped);
        assert_eq!(x.images, y.images);
        assert_eq!(x.state_after, y.state_after);
    }
    // The sample sequence does not depend on the batch size.
    let mut c = Batcher::resume(ds.clone(), 5, true, state).unwrap();
    let seq: Vec<usize> = take(&mut c, 3)
        .iter()
        .flat_map(|b| b.indices.clone())
        .collect();
    let want: Vec<usize> = rest.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(seq, want);
    // The thread's batches are the pure function's.
    let pure = make_batch(&ds, 3, true, &first[3].state_after).unwrap();
    assert_eq!(pure.images, rest[0].images);
}
