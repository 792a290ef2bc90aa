//! Fuzz-style tests of every loader (stable Rust, no fuzzing engine): 10,000 mutations each of
//! a valid weights file, model config, checkpoint state, PNG with a recipe, image and zip —
//! bit flips, truncations, insertions, overwritten ranges and random bytes, from a fixed seed.
//! Each must come back as a value or an error; none may panic.

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use inrgan::model::config::ModelConfig;
use inrgan::model::generator::Generator;
use inrgan::model::weights;
use inrgan::rng::Rng;

const CASES: usize = 10_000;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("inrgan-fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// One mutation of `seed`.
fn mutate(seed: &[u8], r: &mut Rng) -> Vec<u8> {
    let mut v = seed.to_vec();
    let pos = |r: &mut Rng, n: usize| (r.next_u64() % (n.max(1) as u64)) as usize;
    match r.next_u64() % 6 {
        0 => {
            for _ in 0..1 + r.next_u64() % 8 {
                let i = pos(r, v.len());
                if let Some(b) = v.get_mut(i) {
                    *b ^= 1 << (r.next_u64() % 8);
                }
            }
        }
        1 => v.truncate(pos(r, v.len())),
        2 => {
            let i = pos(r, v.len() + 1);
            let extra: Vec<u8> = (0..1 + r.next_u64() % 64)
                .map(|_| r.next_u64() as u8)
                .collect();
            v.splice(i..i, extra);
        }
        3 => {
            let i = pos(r, v.len());
            let n = (1 + r.next_u64() % 32) as usize;
            for b in v.iter_mut().skip(i).take(n) {
                *b = r.next_u64() as u8;
            }
        }
        4 => {
            // Digits changed to other digits: keeps text formats parseable, values absurd.
            for _ in 0..1 + r.next_u64() % 4 {
                let i = pos(r, v.len());
                if v.get(i).is_some_and(|b| b.is_ascii_digit()) {
                    v[i] = b'0' + (r.next_u64() % 10) as u8;
                    v.insert(i, b'0' + (r.next_u64() % 10) as u8);
                }
            }
        }
        _ => {
            v = (0..r.next_u64() % 256)
                .map(|_| r.next_u64() as u8)
                .collect();
        }
    }
    v
}

/// Runs `f` on `CASES` mutations of `seed`; a panic fails with the case that made it.
fn fuzz(what: &str, seed: &[u8], mut f: impl FnMut(&[u8])) {
    let mut r = Rng::new(0xf022 ^ what.len() as u64);
    for case in 0..CASES {
        let m = mutate(seed, &mut r);
        if catch_unwind(AssertUnwindSafe(|| f(&m))).is_err() {
            panic!("{what}: case {case} panicked on {} bytes", m.len());
        }
    }
}

fn tiny_weights(dir: &Path) -> Vec<u8> {
    let cfg = ModelConfig::preset("tiny").unwrap();
    let g = Generator::new(&cfg);
    let mut r = Rng::new(1);
    let values: Vec<Vec<f32>> = g.specs().iter().map(|s| s.initial(&mut r)).collect();
    let p = dir.join("tiny.safetensors");
    weights::save(&p, &cfg, g.specs(), &values).unwrap();
    std::fs::read(p).unwrap()
}

#[test]
fn weights_files_never_panic() {
    let dir = tmpdir("weights");
    let seed = tiny_weights(&dir);
    let label = dir.join("mutated.safetensors");
    fuzz("weights", &seed, |b| {
        let _ = weights::load_bytes(&label, b, |c| Generator::new(c).specs().to_vec());
        let _ = weights::read_facts_bytes(&label, b);
    });
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn model_configs_never_panic() {
    let seed = ModelConfig::preset("emoji32").unwrap().to_ron();
    fuzz("config", seed.as_bytes(), |b| {
        if let Ok(c) = ModelConfig::from_ron(&String::from_utf8_lossy(b)) {
            // A config that parses must also make a generator.
            let _ = Generator::new(&c).specs().len();
        }
    });
}

#[test]
fn checkpoint_states_never_panic() {
    let state = inrgan::train::checkpoint::TrainState {
        step: 12,
        images: 384,
        rng: [1, 2, 3, 4],
        adam_t: [12, 13],
        history: vec![(320, "swd_x1e3".into(), 42.5)],
        train: inrgan::train::TrainConfig::default(),
        model: ModelConfig::preset("tiny").unwrap(),
        augment: Default::default(),
    };
    let seed = ron::ser::to_string_pretty(&state, ron::ser::PrettyConfig::default()).unwrap();
    fuzz("state", seed.as_bytes(), |b| {
        let _ = ron::from_str::<inrgan::train::checkpoint::TrainState>(&String::from_utf8_lossy(b));
    });
}

#[test]
fn png_recipes_and_images_never_panic() {
    let dir = tmpdir("png");
    let out = dir.join("r.png");
    let args = inrgan::engine::RenderArgs {
        weights: None,
        preset: "tiny".into(),
        seed: 1,
        psi: 1.0,
        width: 8,
        height: 8,
        window: [-1.0, -1.0, 1.0, 1.0].into(),
        out: out.clone(),
        backend: inrgan::backend::BackendKind::Cpu,
        tile: 8,
        latent: None,
        levels: None,
        raw: None,
        supersample: None,
    };
    inrgan::engine::render(&args, |_| true).unwrap();
    let seed = std::fs::read(&out).unwrap();
    let path = dir.join("m.png");
    fuzz("png", &seed, |b| {
        std::fs::write(&path, b).unwrap();
        let _ = inrgan::engine::read_recipe(&path);
        let _ = inrgan::data::image_io::decode_image(b, 16);
    });
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn zips_never_panic() {
    let dir = tmpdir("zip");
    let png = {
        let mut buf = Vec::new();
        let img = image::RgbaImage::from_fn(6, 5, |x, y| {
            image::Rgba([x as u8 * 40, y as u8 * 50, 90, 255])
        });
        img.write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)
            .unwrap();
        buf
    };
    let mut zbuf = std::io::Cursor::new(Vec::new());
    {
        let mut z = zip::ZipWriter::new(&mut zbuf);
        let opts = zip::write::SimpleFileOptions::default();
        for name in ["a.png", "b/c.png"] {
            z.start_file(name, opts).unwrap();
            z.write_all(&png).unwrap();
        }
        z.finish().unwrap();
    }
    let seed = zbuf.into_inner();
    let path = dir.join("m.zip");
    fuzz("zip", &seed, |b| {
        std::fs::write(&path, b).unwrap();
        let _ = inrgan::data::Dataset::open(path.to_str().unwrap(), 16);
    });
    std::fs::remove_dir_all(dir).ok();
}
