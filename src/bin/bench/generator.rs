//! Generator forward at 128², 256², 512², 1024² and 4096² for each preset on a backend: the time to render
//! one latent over the training square (tiled, 512² tiles), as the viewport and export do.
//! Sizes whose estimate (from the previous size, scaled by the pixel count) exceeds the budget
//! are reported as estimates instead of run.

use std::time::{Duration, Instant};

use anyhow::Result;
use inrgan::backend::Backend;
use inrgan::model::config::ModelConfig;
use inrgan::model::generator::{Generator, TRAINING_WINDOW};
use inrgan::model::params::ParamSet;

pub struct GenRow {
    pub preset: String,
    pub backend: String,
    pub size: usize,
    pub ms: f64,
    pub estimated: bool,
    pub gflops: f64,
}

/// Multiply-adds of one frame at `size`²: every level's cells times its per-cell work (coarse
/// levels stay on their grids; the finest level runs at every pixel).
fn frame_macs(g: &Generator, size: usize) -> f64 {
    let cfg = &g.cfg;
    let (px, _) = g.macs_per_image();
    // Per-pixel work of the finest level vs the rest, from the training-resolution total.
    let last = cfg.levels.len() - 1;
    let mut fine = 0.0;
    let mut c_in = cfg
        .levels
        .get(last.wrapping_sub(1))
        .and_then(|l| l.widths.last())
        .copied()
        .unwrap_or(0)
        + 2 * inrgan::model::generator::level_frequencies(&cfg.levels[last]).len();
    for (j, &c) in cfg.levels[last].widths.iter().enumerate() {
        fine += (c_in * c) as f64;
        if cfg.levels[last].rgb_after.contains(&j) {
            fine += (3 * c) as f64;
        }
        c_in = c;
    }
    let r = cfg.resolution as f64;
    let coarse = px as f64 - fine * r * r;
    coarse + fine * (size * size) as f64
}

pub fn run<B: Backend>(
    be: &mut B,
    presets: &[&str],
    sizes: &[usize],
    budget: Duration,
) -> Result<Vec<GenRow>> {
    let mut rows = Vec::new();
    for &name in presets {
        let cfg = ModelConfig::preset(name)?;
        let g = Generator::new(&cfg);
        let p = ParamSet::init(be, g.specs(), 1)?;
        let z = g.latent(1);
        let w = g.map_truncated(be, &p, &z, 1, 1.0)?;
        // Warm-up (pipelines, shader JIT on lavapipe).
        g.render(be, &p, &w, TRAINING_WINDOW, 32, 32)?;
        let mut last: Option<(usize, f64)> = None;
        for &size in sizes {
            let flops = 2.0 * frame_macs(&g, size);
            let estimate = last.map(|(s, ms)| ms * (size * size) as f64 / (s * s) as f64);
            let (ms, estimated) = match estimate {
                Some(e) if e > budget.as_secs_f64() * 1e3 => (e, true),
                _ => {
                    let t = Instant::now();
                    g.render_tiles(
                        be,
                        &p,
                        &w,
                        TRAINING_WINDOW,
                        size,
                        size,
                        512,
                        |_, _, _, _, _| Ok(()),
                    )?;
                    be.flush()?;
                    (t.elapsed().as_secs_f64() * 1e3, false)
                }
            };
            if !estimated {
                last = Some((size, ms));
            }
            rows.push(GenRow {
                preset: name.into(),
                backend: be.name(),
                size,
                ms,
                estimated,
                gflops: flops / (ms * 1e-3) / 1e9,
            });
            let r = rows.last().expect("just pushed");
            println!(
                "{:<10} {:>6}² {:>12.1} ms{} {:>8.2} GFLOP/s   {}",
                r.preset,
                r.size,
                r.ms,
                if r.estimated { " (est.)" } else { "       " },
                r.gflops,
                r.backend
            );
        }
    }
    Ok(rows)
}
