//! The generator: the window rule reproduces the training forward, superresolution and tiles are
//! consistent, extrapolation is finite and not a copy of the centre.

#[path = "common/mod.rs"]
mod common;

use common::*;
use inrgan::backend::gpu::GpuBackend;
use inrgan::backend::prelude::*;
use inrgan::model::config::ModelConfig;
use inrgan::model::generator::{Generator, PlanRequest, Window};
use inrgan::model::params::ParamSet;

fn tiny() -> (Generator, u64) {
    let cfg = ModelConfig::preset("tiny").expect("tiny preset");
    (Generator::new(&cfg), 11)
}

/// w for latent seeds 1..=batch (no truncation), on the GPU backend.
fn ws<'a>(
    g: &Generator,
    be: &mut GpuBackend<'a>,
    p: &ParamSet<GpuBackend<'a>>,
    batch: usize,
) -> Vec<f32> {
    let z: Vec<f32> = (0..batch as u64).flat_map(|s| g.latent(s + 1)).collect();
    g.map_truncated(be, p, &z, batch, 1.0).expect("mapping")
}

#[test]
fn window_plan_on_the_training_square_is_the_training_forward() {
    let (g, seed) = tiny();
    let mut be = GpuBackend::new(ctx());
    let p = ParamSet::init(&mut be, g.specs(), seed).unwrap();
    let batch = 3;
    let w = ws(&g, &mut be, &p, batch);
    let r = g.cfg.resolution;
    let train = g
        .render_plan(&mut be, &p, &w, batch, &g.training_plan())
        .unwrap();
    let plan = g.window_plan(Window::TRAINING, r, r).unwrap();
    let win = g.render_plan(&mut be, &p, &w, batch, &plan).unwrap();
    assert_eq!(train.len(), batch * 3 * r * r);
    assert!(train.iter().all(|v| v.is_finite()));
    assert_eq!(
        train, win,
        "the window rule must reproduce the training forward bitwise"
    );
    // Images differ between latents.
    let per = 3 * r * r;
    assert_ne!(train[..per], train[per..2 * per]);
}

#[test]
fn superresolution_contains_the_training_pixels_and_averages_close_to_them() {
    let (g, seed) = tiny();
    let mut be = GpuBackend::new(ctx());
    let p = ParamSet::init(&mut be, g.specs(), seed).unwrap();
    let w = ws(&g, &mut be, &p, 1);
    let r = g.cfg.resolution;
    let f = 4;
    let base = g.render(&mut be, &p, &w, Window::TRAINING, r, r).unwrap();
    let sr = g
        .render(&mut be, &p, &w, Window::TRAINING, f * r, f * r)
        .unwrap();
    let (n, nf) = (r * r, f * f * r * r);
    // Exact: the 4x render evaluated at the training pixels' own coordinates (left edges,
    // bottom edges) is the training image.
    for c in 0..3 {
        for y in 0..r {
            for x in 0..r {
                let a = base[c * n + y * r + x];
                let b = sr[c * nf + (f * y + f - 1) * f * r + f * x];
                assert!(
                    (a - b).abs() <= 1e-5,
                    "channel {c} pixel ({x},{y}): {a} vs {b}"
                );
            }
        }
    }
    // Downsampled by a 4x4 box filter, the superresolved image stays close to the training
    // image: the coarse levels are identical and only the finest level varies inside a pixel.
    // Tolerance: the mean absolute difference is below a third of the image's own mean absolute
    // deviation (untrained weights, whose finest level varies fastest).
    let mut err = 0.0f64;
    for c in 0..3 {
        for y in 0..r {
            for x in 0..r {
                let mut s = 0.0f64;
                for dy in 0..f {
                    for dx in 0..f {
                        s += sr[c * nf + (f * y + dy) * f * r + f * x + dx] as f64;
                    }
                }
                err += (s / (f * f) as f64 - base[c * n + y * r + x] as f64).abs();
            }
        }
    }
    let mean = err / (3 * n) as f64;
    let avg = base.iter().map(|&v| v as f64).sum::<f64>() / base.len() as f64;
    let spread = base.iter().map(|&v| (v as f64 - avg).abs()).sum::<f64>() / base.len() as f64;
    eprintln!(
        "box-downsampled 4x render: mean |diff| {mean:.4}, image mean |deviation| {spread:.4}"
    );
    assert!(
        mean < spread / 3.0,
        "box-downsampled 4x render differs by {mean} on average (image spread {spread})"
    );
}

/// Renders `win` whole and in `tile`-pixel tiles on `be` (weights from `seed`, latent seed 3
/// for the bilinear case as before, 1 otherwise) and checks they agree bitwise.
fn tiles_equal_whole<B: Backend>(
    g: &Generator,
    be: &mut B,
    seed: u64,
    latent: u64,
    win: Window,
    tile: usize,
) {
    let p = ParamSet::init(be, g.specs(), seed).unwrap();
    let z = g.latent(latent);
    let w = g.map_truncated(be, &p, &z, 1, 1.0).expect("mapping");
    let (width, height) = (37, 29);
    let whole = g.render(be, &p, &w, win, width, height).unwrap();
    assert!(whole.iter().all(|v| v.is_finite()));
    let mut tiled = vec![f32::NAN; whole.len()];
    let n = width * height;
    g.render_tiles(
        be,
        &p,
        &w,
        win,
        width,
        height,
        tile,
        |c0, r0, cols, rows, rgb| {
            for c in 0..3 {
                for y in 0..rows {
                    for x in 0..cols {
                        tiled[c * n + (r0 + y) * width + c0 + x] =
                            rgb[c * cols * rows + y * cols + x];
                    }
                }
            }
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(whole, tiled, "tiles must equal the whole image exactly");
}

/// Tiles agree bitwise with the whole image: nearest links on the GPU backend; bilinear links
/// (outside the square too) on the CPU backend, fused and layer by layer, and the GPU backend.
#[test]
fn tiles_join_without_seams() {
    let (g, seed) = tiny();
    tiles_equal_whole(
        &g,
        &mut GpuBackend::new(ctx()),
        seed,
        1,
        Window::new(-1.7, -0.9, 2.3, 1.45),
        16,
    );
    for name in ["tiny-bilinear", "tiny-smooth"] {
        let g = Generator::new(&ModelConfig::preset(name).unwrap());
        let win = Window::new(-2.7, -0.9, 1.3, 2.45);
        tiles_equal_whole(
            &g,
            &mut inrgan::backend::cpu::CpuBackend::new().unwrap(),
            4,
            3,
            win,
            11,
        );
        tiles_equal_whole(&g, &mut GpuBackend::new(ctx()), 4, 3, win, 11);
    }
}

#[test]
fn extrapolation_is_finite_and_not_a_copy_of_the_centre() {
    let (g, seed) = tiny();
    let mut be = GpuBackend::new(ctx());
    let p = ParamSet::init(&mut be, g.specs(), seed).unwrap();
    let w = ws(&g, &mut be, &p, 1);
    let r = 16;
    // 8x the image's extent.
    let far = g
        .render(
            &mut be,
            &p,
            &w,
            Window::new(-8.0, -8.0, 8.0, 8.0),
            4 * r,
            4 * r,
        )
        .unwrap();
    assert!(far.iter().all(|v| v.is_finite()));
    let centre = g.render(&mut be, &p, &w, Window::TRAINING, r, r).unwrap();
    // The log bases alone repeat every 8 units; the random frequencies must break that.
    let shifted = g
        .render(&mut be, &p, &w, Window::new(7.0, -1.0, 9.0, 1.0), r, r)
        .unwrap();
    let diff: f32 = centre
        .iter()
        .zip(&shifted)
        .map(|(a, b)| (a - b).abs())
        .sum::<f32>()
        / centre.len() as f32;
    assert!(
        diff > 1e-3,
        "the square 8 units to the right repeats the centre (mean diff {diff})"
    );
}

#[test]
fn bad_windows_are_errors() {
    let (g, _) = tiny();
    assert!(
        g.window_plan(Window::new(1.0, -1.0, -1.0, 1.0), 8, 8)
            .is_err()
    );
    assert!(
        g.window_plan(Window::new(-1.0, -1.0, 1.0, 1.0), 0, 8)
            .is_err()
    );
    assert!(
        g.window_plan(Window::new(f64::NAN, -1.0, 1.0, 1.0), 8, 8)
            .is_err()
    );
    assert!(
        g.plan(&PlanRequest::new(Window::TRAINING, 8, 8).tile(4..9, 0..8))
            .is_err()
    );
    // They are the request's errors, said in its terms, not a kernel's.
    let e = g
        .window_plan(Window::new(1.0, -1.0, -1.0, 1.0), 8, 8)
        .unwrap_err();
    assert!(
        matches!(e, inrgan::backend::BackendError::Request(_)),
        "{e:?}"
    );
    assert!(
        e.to_string().starts_with("empty or non-finite window"),
        "{e}"
    );
}

#[test]
fn presets_instantiate_with_unique_names() {
    for (name, _) in inrgan::model::config::PRESETS {
        let cfg = ModelConfig::preset(name).unwrap();
        let g = Generator::new(&cfg);
        let mut names: Vec<&str> = g.specs().iter().map(|s| s.name.as_str()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "{name}: duplicate parameter names");
        let (m, f, rgb) = g.param_counts();
        let (px, hyper) = g.macs_per_image();
        eprintln!(
            "{name}: params mapping {m} fmm {f} rgb {rgb}; MACs/image pixel {px} hyper {hyper}"
        );
        assert!(m > 0 && f > 0 && rgb > 0 && px > 0);
    }
}

#[test]
fn paper256_renders() {
    let cfg = ModelConfig::preset("paper256").unwrap();
    let g = Generator::new(&cfg);
    let mut be = GpuBackend::new(ctx());
    let p = ParamSet::init(&mut be, g.specs(), 3).unwrap();
    let w = ws(&g, &mut be, &p, 1);
    // A small window at the full model's finest density keeps this cheap on lavapipe.
    let img = g
        .render(
            &mut be,
            &p,
            &w,
            Window::new(-0.125, 0.0, 0.0, 0.125),
            16,
            16,
        )
        .unwrap();
    assert_eq!(img.len(), 3 * 16 * 16);
    assert!(img.iter().all(|v| v.is_finite()));
    let _ = be.flush();
}

#[test]
fn preview_stops_early_and_matches_the_coarse_levels() {
    let (g, seed) = tiny();
    let mut be = GpuBackend::new(ctx());
    let p = ParamSet::init(&mut be, g.specs(), seed).unwrap();
    let w = ws(&g, &mut be, &p, 1);
    // A preview of the first level at its own resolution (4²) is that level's RGB: compare with
    // the full training forward's level-0 image.
    let wb = be.upload(&w, "w").unwrap();
    let full = g
        .synthesize(&mut be, &p, &wb, 1, &g.training_plan())
        .unwrap();
    let lvl0 = be.read(full.level_img(0).unwrap()).unwrap();
    let res0 = g.cfg.levels[0].res;
    let plan = g
        .plan(&PlanRequest::new(Window::TRAINING, res0, res0).levels(1))
        .unwrap();
    let prev = g.synthesize(&mut be, &p, &wb, 1, &plan).unwrap();
    assert_eq!(be.read(prev.img()).unwrap(), lvl0);
    // At the full output size the preview is a valid, cheaper image.
    let r = g.cfg.resolution;
    let plan2 = g
        .plan(&PlanRequest::new(Window::TRAINING, r, r).levels(2))
        .unwrap();
    let img = g.render_plan(&mut be, &p, &w, 1, &plan2).unwrap();
    assert_eq!(img.len(), 3 * r * r);
    assert!(
        g.plan(&PlanRequest::new(Window::TRAINING, r, r).levels(0))
            .is_err()
    );
    assert!(
        g.plan(&PlanRequest::new(Window::TRAINING, r, r).levels(4))
            .is_err()
    );
}

/// The design choice behind the presets' random frequencies (ARCHITECTURE.md): with only the
/// official log-spaced bases, the generator is periodic with period 8 (4 image widths), so far-out
/// extrapolation repeats the centre; the presets' few random frequencies break the period.
#[test]
fn log_bases_alone_tile_the_plane_and_random_frequencies_break_it() {
    let mut be = GpuBackend::new(ctx());
    let mut measure = |cfg: &ModelConfig| {
        let g = Generator::new(cfg);
        let p = ParamSet::init(&mut be, g.specs(), 4).unwrap();
        let w = ws(&g, &mut be, &p, 1);
        let r = cfg.resolution;
        let centre = g.render(&mut be, &p, &w, Window::TRAINING, r, r).unwrap();
        let far = g
            .render(&mut be, &p, &w, Window::new(7.0, -1.0, 9.0, 1.0), r, r)
            .unwrap();
        let spread = centre.iter().map(|v| v.abs()).sum::<f32>() / centre.len() as f32;
        let diff = centre
            .iter()
            .zip(&far)
            .map(|(a, b)| (a - b).abs())
            .sum::<f32>()
            / centre.len() as f32;
        diff / spread
    };
    let cfg = ModelConfig::preset("emoji32").unwrap();
    let mut periodic = cfg.clone();
    for l in &mut periodic.levels {
        l.emb.random = 0;
    }
    let with_random = measure(&cfg);
    let log_only = measure(&periodic);
    eprintln!(
        "relative difference 8 units right of the centre: log only {log_only:.2e}, with random {with_random:.3}"
    );
    assert!(
        log_only < 1e-3,
        "log bases alone should repeat every 8 units ({log_only})"
    );
    assert!(
        with_random > 0.1,
        "random frequencies should break the period ({with_random})"
    );
}

#[test]
fn w_avg_tracks_the_batch_mean_and_truncation_pulls_towards_it() {
    let (g, seed) = tiny();
    let mut be = GpuBackend::new(ctx());
    let p = ParamSet::init(&mut be, g.specs(), seed).unwrap();
    let batch = 4;
    let z: Vec<f32> = (0..batch as u64).flat_map(|s| g.latent(s + 1)).collect();
    let mt = g.map(&mut be, &p, &z, batch).unwrap();
    let w = be.read(mt.w()).unwrap();
    g.update_w_avg(&mut be, &p, mt.w(), batch, 0.9).unwrap();
    let avg = be.read(&p.bufs[g.w_avg_index()]).unwrap();
    let d = g.cfg.w_dim;
    for i in 0..d {
        let mean: f64 = (0..batch).map(|b| w[b * d + i] as f64).sum::<f64>() / batch as f64;
        // lerp(mean, 0, 0.9) = 0.1 * mean
        assert!((avg[i] as f64 - 0.1 * mean).abs() < 1e-5, "w_avg[{i}]");
    }
    // psi = 0 gives w_avg itself; psi = 1 the plain w.
    let w0 = g
        .map_truncated(&mut be, &p, &z[..g.cfg.z_dim], 1, 0.0)
        .unwrap();
    assert_close("psi 0", &w0, &to64(&avg), 1e-6, 1e-6);
    let w1 = g
        .map_truncated(&mut be, &p, &z[..g.cfg.z_dim], 1, 1.0)
        .unwrap();
    assert_close("psi 1", &w1, &to64(&w[..d]), 1e-6, 1e-6);
}

/// The fused inference path (one dispatch per scale block) against the unfused kernels that
/// training uses, on the training grid and on an extrapolation window, batch 2.
/// `render_plan` (fused blocks where the backend has them) against the training path's layer by
/// layer forward, for two images over three plans (the training grid, a window outside the
/// square, a superresolved square).
fn fused_matches_unfused<B: Backend>(be: &mut B, name: &str, seed: u64, tol: f32) {
    let cfg = ModelConfig::preset(name).unwrap();
    let g = Generator::new(&cfg);
    assert!(be.has_fused());
    let p = ParamSet::init(be, g.specs(), seed).unwrap();
    let batch = 2;
    let z: Vec<f32> = (0..batch as u64).flat_map(|s| g.latent(s + 1)).collect();
    let w = g.map_truncated(be, &p, &z, batch, 1.0).unwrap();
    for plan in [
        g.training_plan(),
        g.window_plan(Window::new(-3.0, -1.5, 2.5, 4.0), 21, 19)
            .unwrap(),
        g.window_plan(Window::TRAINING, 75, 75).unwrap(),
    ] {
        let fused = g.render_plan(be, &p, &w, batch, &plan).unwrap();
        let wb = be.upload(&w, "w").unwrap();
        let tape = g.synthesize(be, &p, &wb, batch, &plan).unwrap();
        let unfused = be.read(tape.img()).unwrap();
        assert_eq!(fused.len(), unfused.len());
        let worst = fused
            .iter()
            .zip(&unfused)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(
            worst < tol,
            "{name} on {}: fused and unfused differ by {worst}",
            be.name()
        );
        assert_ne!(fused, vec![0.0; fused.len()]);
    }
}

/// The presets (and parameter seeds) whose fused blocks both backends check.
const FUSED_CASES: [(&str, u64); 5] = [
    ("tiny", 11),
    ("tiny-smooth", 12),
    ("emoji32", 5),
    ("emoji32-smooth", 7),
    ("emoji64", 6),
];

#[test]
fn fused_blocks_match_the_unfused_layers() {
    // emoji64: a 5x256 block, the longest that stays under lavapipe's loop limit.
    for (name, seed) in FUSED_CASES {
        let mut be = GpuBackend::new(ctx());
        be.set_fused(true);
        fused_matches_unfused(&mut be, name, seed, 2e-4);
    }
}

#[test]
fn strips_are_sized_by_the_path_the_backend_takes() {
    // emoji32 (levels 8², 16², 32²; widths 3x256, 2x128, 2x64): unfused, the finest level's
    // input [128 features | embeddings] bounds a strip; fused, the finest level stores only RGB
    // and the middle level's 128 features (a quarter of a cell per output pixel) bound it.
    let cfg = ModelConfig::preset("emoji32").unwrap();
    let g = Generator::new(&cfg);
    let mut be = GpuBackend::new(ctx());
    let levels = cfg.levels.len();
    be.set_fused(false);
    assert_eq!(g.frame_channels_on(&be, levels), g.frame_channels(levels));
    assert!(g.frame_channels(levels) > 128);
    be.set_fused(true);
    let c_mid = *cfg.levels[1].widths.last().unwrap();
    let c_coarse = *cfg.levels[0].widths.last().unwrap();
    assert_eq!(
        g.frame_channels_on(&be, levels),
        (c_mid / 4).max(c_coarse / 16).max(3)
    );
    // A preview that stops at the middle level: its RGB, and the coarse level's features.
    assert_eq!(g.frame_channels_on(&be, 2), (c_coarse / 4).max(3));
    // The CPU backend's fused path stores the same buffers.
    let mut cpu = inrgan::backend::cpu::CpuBackend::new().unwrap();
    cpu.set_fused(true);
    assert_eq!(
        g.frame_channels_on(&cpu, levels),
        g.frame_channels_on(&be, levels)
    );
    cpu.set_fused(false);
    assert_eq!(g.frame_channels_on(&cpu, levels), g.frame_channels(levels));
    // Strips of the fused height join into the frame the whole window gives.
    let p = ParamSet::init(&mut be, g.specs(), 3).unwrap();
    let w = ws(&g, &mut be, &p, 1);
    let wb = be.upload(&w, "w").unwrap();
    let (size, rows) = (45, 17);
    let plan = g.window_plan(Window::TRAINING, size, size).unwrap();
    let whole = g.render_plan(&mut be, &p, &w, 1, &plan).unwrap();
    let mut joined = vec![0.0; 3 * size * size];
    for r0 in (0..size).step_by(rows) {
        let r1 = (r0 + rows).min(size);
        let plan = g
            .plan(
                &PlanRequest::new(Window::TRAINING, size, size)
                    .tile(0..size, r0..r1)
                    .levels(levels),
            )
            .unwrap();
        let tape = g.synthesize_fast(&mut be, &p, &[&wb], 1, &plan).unwrap();
        let strip = be.read(tape.img()).unwrap();
        let n = (r1 - r0) * size;
        for c in 0..3 {
            joined[c * size * size + r0 * size..][..n].copy_from_slice(&strip[c * n..][..n]);
        }
    }
    let worst = whole
        .iter()
        .zip(&joined)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        worst < 1e-5,
        "strips differ from the whole frame by {worst}"
    );
}

#[test]
fn cpu_fused_blocks_match_the_unfused_layers() {
    // The CPU backend's fused blocks (tiles of pixels through every layer).
    for (name, seed) in FUSED_CASES {
        let mut be = inrgan::backend::cpu::CpuBackend::new().unwrap();
        be.set_fused(true);
        fused_matches_unfused(&mut be, name, seed, 1e-4);
    }
}
