//! The bilinear link between scale levels (coordinate space, halo cells) and anti-aliased
//! zoom-out: the training-grid property (tiles: tests/generator.rs), superresolution contains the
//! training pixels, no seams at 8x on random weights (and nearest links fail the same test),
//! supersampling equals the box average of the full-density render, old configs load as
//! nearest.

#[path = "common/mod.rs"]
mod common;

use common::*;
use inrgan::backend::cpu::CpuBackend;
use inrgan::backend::prelude::*;
use inrgan::metrics::seams::seams_planar;
use inrgan::model::config::{LinkMode, ModelConfig};
use inrgan::model::generator::{Generator, Link, Window, box_average};
use inrgan::model::params::ParamSet;
use inrgan::reference::resample as r;

fn model(preset: &str) -> Generator {
    Generator::new(&ModelConfig::preset(preset).expect("preset"))
}

/// w of latent seed `seed` (no truncation).
fn w_of<B: Backend>(g: &Generator, be: &mut B, p: &ParamSet<B>, seed: u64) -> Vec<f32> {
    g.map_truncated(be, p, &g.latent(seed), 1, 1.0)
        .expect("mapping")
}

#[test]
fn presets_link_as_documented_and_old_configs_load_as_nearest() {
    for (name, link) in [
        ("tiny", LinkMode::Nearest),
        ("tiny-bilinear", LinkMode::Bilinear),
        ("tiny-smooth", LinkMode::Bilinear),
        ("emoji32", LinkMode::Bilinear),
        ("emoji32-smooth", LinkMode::Bilinear),
        ("emoji64", LinkMode::Bilinear),
        ("paper256", LinkMode::Bilinear),
    ] {
        assert_eq!(ModelConfig::preset(name).unwrap().link, link, "{name}");
    }
    // A config written before the field existed (the shipped model's) is nearest.
    let old = ModelConfig::preset("emoji32").unwrap().to_ron();
    let old = old
        .lines()
        .filter(|l| !l.trim_start().starts_with("link:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(!old.contains("link"));
    assert_eq!(ModelConfig::from_ron(&old).unwrap().link, LinkMode::Nearest);
    assert!(ModelConfig::from_ron(&old.replace("rank:", "link: Cubic,\n    rank:")).is_err());
}

/// On the training grid at the training size each link is a fixed 2x linear upsampling: per
/// axis weights 3/4 on the nearer centre and 1/4 on the other (2-D: 9/16, 3/16, 3/16, 1/16),
/// the coarse levels on their grids plus one ring of halo cells, samples at cell centres.
#[test]
fn bilinear_link_on_the_training_grid_is_a_fixed_2x_linear_upsampling() {
    for preset in ["tiny-bilinear", "emoji32", "emoji32-smooth"] {
        let g = model(preset);
        let plan = g.training_plan();
        let n = plan.levels.len();
        assert_eq!(
            plan,
            g.window_plan(Window::TRAINING, g.cfg.resolution, g.cfg.resolution)
                .unwrap()
        );
        for (k, lv) in plan.levels.iter().enumerate() {
            let res = g.cfg.levels[k].res;
            let side = if k + 1 == n { res } else { res + 2 };
            assert_eq!((lv.cols, lv.rows), (side, side), "{preset} level {k}");
            // Centres: the first column of a halo grid is cell -1.
            let j0 = if k + 1 == n { 0.0 } else { -1.0 };
            let want_x0 = -1.0 + 2.0 * (j0 + 0.5) / res as f64;
            assert_eq!(lv.xs[0], want_x0 as f32, "{preset} level {k} first centre");
            assert_eq!(lv.ys[0], -want_x0 as f32, "{preset} level {k} top centre");
            if k == 0 {
                assert_eq!(lv.link, Link::None);
                continue;
            }
            let Link::Bilinear { rows, cols } = &lv.link else {
                panic!("{preset} level {k}: {:?}", lv.link);
            };
            // Fine index i reads coarse halo-grid entries (i + 1) / 2 .. + 1; weight of the
            // second: 3/4 for even i, 1/4 for odd (columns ascend; rows descend, mirrored).
            for (i, (&idx, &t)) in cols.idx.iter().zip(&cols.t).enumerate() {
                let off = if k + 1 == n { 0 } else { 1 };
                let fine = i as i64 - off;
                assert_eq!(idx as i64, (fine + 1).div_euclid(2), "{preset} col {i}");
                let want = if fine.rem_euclid(2) == 0 { 0.75 } else { 0.25 };
                assert_eq!(t, want, "{preset} level {k} column {i}");
            }
            // The square is symmetric: top-down rows mirror ascending columns.
            assert_eq!(
                rows.idx, cols.idx,
                "{preset} level {k}: rows mirror columns"
            );
            assert_eq!(rows.t, cols.t, "{preset} level {k}");
        }
    }
    // What those taps compute: the [1, 3, 3, 1] / 4 stencil per axis in the interior.
    let mut rng = rng(5);
    let (h, w) = (6, 6);
    let x = to64(&rng.normal_vec(h * w));
    let g = model("tiny-bilinear");
    let plan = g.training_plan();
    let Link::Bilinear { rows, cols } = &plan.levels[1].link else {
        panic!()
    };
    let y = r::gather_bilinear(&x, 1, h, w, rows, cols);
    let (ho, wo) = (rows.len(), cols.len());
    for fi in 2..ho - 2 {
        for fj in 2..wo - 2 {
            // Fine halo-grid (fi, fj) is fine cell (fi - 1, fj - 1); its nearer coarse cell
            // (halo grid) is fi / 2 + ... computed from the taps: check the 2-D weights.
            let (ir, ic) = (rows.idx[fi] as usize, cols.idx[fj] as usize);
            let (tr, tc) = (rows.t[fi] as f64, cols.t[fj] as f64);
            let mut want = 0.0;
            for (a, wa) in [(ir, 1.0 - tr), (ir + 1, tr)] {
                for (b, wb) in [(ic, 1.0 - tc), (ic + 1, tc)] {
                    want += wa * wb * x[a * w + b];
                }
            }
            let got = y[fi * wo + fj];
            assert!((got - want).abs() < 1e-12);
            let weights = [
                (1.0 - tr) * (1.0 - tc),
                (1.0 - tr) * tc,
                tr * (1.0 - tc),
                tr * tc,
            ];
            let mut sorted = weights;
            sorted.sort_by(f64::total_cmp);
            assert_eq!(sorted, [1.0 / 16.0, 3.0 / 16.0, 3.0 / 16.0, 9.0 / 16.0]);
        }
    }
}

// Tiles of a bilinear render agree bitwise with the whole: tests/generator.rs,
// `tiles_join_without_seams`.

/// At an odd factor the bilinear superresolution samples the training pixels' centres: the 3x
/// render contains the training image.
#[test]
fn bilinear_superresolution_contains_the_training_pixels() {
    let g = model("tiny-bilinear");
    let mut be = CpuBackend::new().unwrap();
    let p = ParamSet::init(&mut be, g.specs(), 8).unwrap();
    let w = w_of(&g, &mut be, &p, 2);
    let r = g.cfg.resolution;
    let f = 3;
    let base = g.render(&mut be, &p, &w, Window::TRAINING, r, r).unwrap();
    let sr = g
        .render(&mut be, &p, &w, Window::TRAINING, f * r, f * r)
        .unwrap();
    let (n, nf) = (r * r, f * f * r * r);
    for c in 0..3 {
        for y in 0..r {
            for x in 0..r {
                let a = base[c * n + y * r + x];
                let b = sr[c * nf + (f * y + 1) * f * r + f * x + 1];
                assert!((a - b).abs() <= 1e-5, "channel {c} ({x},{y}): {a} vs {b}");
            }
        }
    }
}

/// The 8x render of random emoji32 and emoji32-smooth weights over the training square: the
/// step across the 8² and 16² grids' cell boundaries against the step elsewhere. Bilinear links:
/// within 1.5x; the same weights with nearest links: far past it (the test can fail).
#[test]
fn bilinear_links_have_no_seams_and_nearest_links_do() {
    for preset in ["emoji32", "emoji32-smooth"] {
        let cfg = ModelConfig::preset(preset).unwrap();
        let mut be = CpuBackend::new().unwrap();
        let size = 8 * cfg.resolution;
        let mut ratios = Vec::new();
        for link in [LinkMode::Bilinear, LinkMode::Nearest] {
            let g = Generator::new(&ModelConfig {
                link,
                ..cfg.clone()
            });
            let p = ParamSet::init(&mut be, g.specs(), 1).unwrap();
            let mut worst: f64 = 0.0;
            for seed in [1, 2] {
                let w = w_of(&g, &mut be, &p, seed);
                let img = g
                    .render(&mut be, &p, &w, Window::TRAINING, size, size)
                    .unwrap();
                let s8 = seams_planar(&img, size, size, 8, &[]);
                let s16 = seams_planar(&img, size, size, 16, &[8]);
                eprintln!(
                    "{preset} {link:?} seed {seed}: 8² {:.2}, 16² {:.2}",
                    s8.ratio, s16.ratio
                );
                worst = worst.max(s8.ratio).max(s16.ratio);
            }
            ratios.push(worst);
        }
        assert!(
            ratios[0] <= 1.5,
            "{preset} bilinear seams: {:.2}",
            ratios[0]
        );
        assert!(
            ratios[1] > 1.5,
            "{preset}: nearest links should show seams: {:.2}",
            ratios[1]
        );
    }
}

/// Anti-aliased zoom-out: at an integer ratio a supersampled tile is exactly the box average of
/// the same window rendered at full density, and the ratio picks n.
#[test]
fn supersampling_equals_the_box_average_of_the_full_density_render() {
    for preset in ["tiny", "tiny-bilinear", "tiny-smooth"] {
        let g = model(preset);
        let mut be = CpuBackend::new().unwrap();
        let p = ParamSet::init(&mut be, g.specs(), 6).unwrap();
        let w = w_of(&g, &mut be, &p, 9);
        let r = g.cfg.resolution;
        // A window 6 training widths wide at 2r pixels: each pixel spans 3 training pixels.
        let win = Window::new(-5.0, -6.5, 7.0, 5.5);
        let (width, height) = (2 * r, 2 * r);
        let n = g.supersampling(win, width, height, 8);
        assert_eq!(n, 3, "{preset}");
        assert_eq!(g.supersampling(win, width, height, 2), 2);
        assert_eq!(g.supersampling(Window::TRAINING, r, r, 8), 1);
        assert_eq!(g.supersampling(Window::TRAINING, r / 2, r / 2, 8), 2);
        let full = g
            .render(&mut be, &p, &w, win, n * width, n * height)
            .unwrap();
        let want = box_average(&full, 3, width, height, n);
        let ws = vec![w.clone()];
        let levels = g.cfg.levels.len();
        // The whole image, then a tile of it.
        let got = g
            .render_tile_levels(
                &mut be,
                &p,
                &ws,
                win,
                width,
                height,
                0..width,
                0..height,
                levels,
                n,
            )
            .unwrap();
        assert_eq!(got, want, "{preset}: supersampled render vs box average");
        let tile = g
            .render_tile_levels(
                &mut be,
                &p,
                &ws,
                win,
                width,
                height,
                5..19,
                7..20,
                levels,
                n,
            )
            .unwrap();
        let np = width * height;
        for c in 0..3 {
            for y in 0..13 {
                for x in 0..14 {
                    assert_eq!(
                        tile[c * 14 * 13 + y * 14 + x],
                        want[c * np + (7 + y) * width + 5 + x]
                    );
                }
            }
        }
    }
}
