//! Weight files: round trip, and clear errors for damaged or mismatched files.

#[path = "common/mod.rs"]
mod common;

use common::*;
use inrgan::backend::gpu::GpuBackend;
use inrgan::model::config::ModelConfig;
use inrgan::model::generator::{Generator, Window};
use inrgan::model::params::ParamSet;
use inrgan::model::weights;

fn tmpdir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("inrgan-test-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn specs_of(c: &ModelConfig) -> Vec<inrgan::model::params::ParamSpec> {
    Generator::new(c).specs().to_vec()
}

#[test]
fn save_load_gives_bitwise_equal_renders() {
    let cfg = ModelConfig::preset("tiny").unwrap();
    let g = Generator::new(&cfg);
    let mut be = GpuBackend::new(ctx());
    let p = ParamSet::init(&mut be, g.specs(), 5).unwrap();
    let host = p.to_host(&mut be).unwrap();
    let dir = tmpdir("roundtrip");
    let path = dir.join("g.safetensors");
    weights::save(&path, &cfg, g.specs(), &host).unwrap();
    assert!(
        path.with_extension("ron").exists(),
        "the config is written beside the weights"
    );
    let (cfg2, specs2, host2) = weights::load(&path, specs_of).unwrap();
    assert_eq!(cfg2, cfg);
    assert_eq!(specs2, g.specs());
    assert_eq!(host2, host);
    let p2 = ParamSet::from_host(&mut be, &specs2, &host2).unwrap();
    let z = g.latent(9);
    let w1 = g.map_truncated(&mut be, &p, &z, 1, 0.7).unwrap();
    let w2 = g.map_truncated(&mut be, &p2, &z, 1, 0.7).unwrap();
    assert_eq!(w1, w2);
    let a = g
        .render(&mut be, &p, &w1, Window::TRAINING, 16, 16)
        .unwrap();
    let b = g
        .render(&mut be, &p2, &w2, Window::TRAINING, 16, 16)
        .unwrap();
    assert_eq!(a, b);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_file_cut_in_half_is_refused_with_a_message() {
    let cfg = ModelConfig::preset("tiny").unwrap();
    let g = Generator::new(&cfg);
    let mut rng = rng(1);
    let host: Vec<Vec<f32>> = g.specs().iter().map(|s| s.initial(&mut rng)).collect();
    let dir = tmpdir("cut");
    let path = dir.join("g.safetensors");
    weights::save(&path, &cfg, g.specs(), &host).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = weights::load(&path, specs_of).unwrap_err().to_string();
    assert!(err.contains("truncated or corrupt"), "{err}");
    std::fs::write(&path, b"not a weights file at all").unwrap();
    let err = weights::load(&path, specs_of).unwrap_err().to_string();
    assert!(err.contains("g.safetensors"), "{err}");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_wrong_shape_is_named() {
    let cfg = ModelConfig::preset("tiny").unwrap();
    let g = Generator::new(&cfg);
    let mut rng = rng(2);
    let mut specs = g.specs().to_vec();
    let i = specs
        .iter()
        .position(|s| s.name == "g.b8.fmm0.weight")
        .unwrap();
    specs[i].shape = vec![specs[i].shape[0], specs[i].shape[1] + 1];
    let host: Vec<Vec<f32>> = specs.iter().map(|s| s.initial(&mut rng)).collect();
    let dir = tmpdir("shape");
    let path = dir.join("g.safetensors");
    weights::save(&path, &cfg, &specs, &host).unwrap();
    let err = weights::load(&path, specs_of).unwrap_err().to_string();
    assert!(
        err.contains("g.b8.fmm0.weight") && err.contains("shape"),
        "{err}"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_failed_write_keeps_the_old_file() {
    let dir = tmpdir("atomic");
    let path = dir.join("x.bin");
    weights::write_atomic(&path, b"old").unwrap();
    // A directory where the temporary file would go makes the write fail.
    let blocker = dir.join(format!(".x.bin.tmp{}", std::process::id()));
    std::fs::create_dir_all(&blocker).unwrap();
    assert!(weights::write_atomic(&path, b"new").is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn render_command_writes_a_png_with_its_recipe() {
    let dir = tmpdir("render");
    let out = dir.join("r.png");
    let args = inrgan::engine::RenderArgs {
        weights: None,
        preset: "tiny".into(),
        seed: 4,
        psi: 0.8,
        width: 40,
        height: 24,
        window: [-2.0, -1.0, 2.0, 1.5].into(),
        out: out.clone(),
        backend: inrgan::backend::BackendKind::Gpu,
        tile: 16,
        latent: None,
        levels: None,
        raw: None,
        supersample: None,
    };
    let mut last = 0.0;
    inrgan::engine::render(&args, |f| {
        last = f;
        true
    })
    .unwrap();
    assert_eq!(last, 1.0);
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()));
    let reader = dec.read_info().unwrap();
    assert_eq!((reader.info().width, reader.info().height), (40, 24));
    let r = inrgan::engine::read_recipe(&out).unwrap();
    assert_eq!(
        (r.seed, r.width, r.height, r.window),
        (4, 40, 24, [-2.0, -1.0, 2.0, 1.5].into())
    );
    std::fs::remove_dir_all(dir).ok();
}

/// Absurd CLI values are errors with a reason, not aborts or silent NaN images.
#[test]
fn absurd_render_values_are_refused() {
    let dir = tmpdir("absurd");
    let base = inrgan::engine::RenderArgs {
        weights: None,
        preset: "tiny".into(),
        seed: 1,
        psi: 1.0,
        width: 16,
        height: 16,
        window: [-1.0, -1.0, 1.0, 1.0].into(),
        out: dir.join("a.png"),
        backend: inrgan::backend::BackendKind::Cpu,
        tile: 16,
        latent: None,
        levels: None,
        raw: None,
        supersample: None,
    };
    let err = |a: &inrgan::engine::RenderArgs| {
        inrgan::engine::render(a, |_| true)
            .expect_err("refused")
            .to_string()
    };
    let e = err(&inrgan::engine::RenderArgs {
        width: 5_000_000_000,
        ..base.clone()
    });
    assert!(e.contains("size"), "{e}");
    let e = err(&inrgan::engine::RenderArgs {
        tile: 4_000_000_000,
        ..base.clone()
    });
    assert!(e.contains("tile"), "{e}");
    for psi in [1e30, f32::NAN] {
        let e = err(&inrgan::engine::RenderArgs {
            psi,
            ..base.clone()
        });
        assert!(e.contains("ψ"), "{e}");
    }
    let e = err(&inrgan::engine::RenderArgs {
        supersample: Some(1000),
        ..base.clone()
    });
    assert!(e.contains("supersample"), "{e}");
    let grid = inrgan::engine::render_grid(
        None,
        "tiny",
        0,
        100_000,
        16,
        1.0,
        inrgan::backend::BackendKind::Cpu,
        &dir.join("g.png"),
    );
    assert!(grid.is_err());
    assert!(!dir.join("a.png").exists() && !dir.join("g.png").exists());
    // In range, it renders.
    inrgan::engine::render(&base, |_| true).unwrap();
    assert!(dir.join("a.png").exists());
    std::fs::remove_dir_all(dir).ok();
}

/// The walk: frames, and one animated PNG with as many frames, looping.
#[test]
fn walk_writes_frames_and_an_animated_png() {
    let dir = tmpdir("walk");
    let m = inrgan::engine::load_model(None, "tiny").unwrap();
    let base = inrgan::engine::RenderArgs {
        weights: None,
        preset: "tiny".into(),
        seed: 0,
        psi: 1.0,
        width: 12,
        height: 12,
        window: [-1.0, -1.0, 1.0, 1.0].into(),
        out: dir.join("frame.png"),
        backend: inrgan::backend::BackendKind::Cpu,
        tile: 16,
        latent: None,
        levels: None,
        raw: None,
        supersample: None,
    };
    let spec = inrgan::latent::LatentSpec {
        seeds: [1, 2, 3, 4],
        ..Default::default()
    };
    let apng = dir.join("walk.png");
    inrgan::engine::walk(
        &m,
        &base,
        &spec,
        5,
        &dir.join("frames"),
        Some(&apng),
        40,
        |_| true,
    )
    .unwrap();
    assert!(dir.join("frames/frame-0004.png").exists());
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&apng).unwrap()));
    let mut reader = dec.read_info().unwrap();
    let actl = reader.info().animation_control.expect("an animated PNG");
    assert_eq!((actl.num_frames, actl.num_plays), (5, 0));
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    let mut n = 0;
    let mut first: Option<Vec<u8>> = None;
    let mut differ = false;
    while reader.next_frame(&mut buf).is_ok() {
        match &first {
            None => first = Some(buf.clone()),
            Some(f) => differ |= *f != buf,
        }
        n += 1;
        if n == 5 {
            break;
        }
    }
    assert_eq!(n, 5);
    assert!(differ, "the walk's frames should differ");
    assert!(inrgan::engine::walk(&m, &base, &spec, 0, &dir, None, 40, |_| true).is_err());
    std::fs::remove_dir_all(dir).ok();
}

/// `--preset` takes a model config file as well as a built-in name: an edited preset loads,
/// and a missing, unparsable or invalid file is a clear error naming it.
#[test]
fn a_preset_may_be_a_ron_file() {
    let dir = tmpdir("preset-file");
    let base = ModelConfig::preset("tiny").unwrap();
    let mut edited = base.clone();
    edited.name = "tiny-edited".into();
    edited.levels[0].emb.random = 3;
    let path = dir.join("edited.ron");
    std::fs::write(&path, edited.to_ron()).unwrap();
    let loaded = ModelConfig::preset(path.to_str().unwrap()).unwrap();
    assert_eq!(loaded, edited);
    assert_ne!(loaded, base);
    let missing = dir.join("missing.ron");
    let e = ModelConfig::preset(missing.to_str().unwrap()).unwrap_err();
    assert!(e.to_string().contains("missing.ron"), "{e}");
    let garbled = dir.join("garbled.ron");
    std::fs::write(&garbled, "(name: \"x\", resolution: ").unwrap();
    let e = ModelConfig::preset(garbled.to_str().unwrap()).unwrap_err();
    assert!(e.to_string().contains("garbled.ron"), "{e}");
    let mut invalid = base;
    invalid.levels.clear();
    let bad = dir.join("invalid.ron");
    std::fs::write(&bad, invalid.to_ron()).unwrap();
    assert!(ModelConfig::preset(bad.to_str().unwrap()).is_err());
    assert!(ModelConfig::preset("no-such-preset").is_err());
    std::fs::remove_dir_all(&dir).ok();
}
