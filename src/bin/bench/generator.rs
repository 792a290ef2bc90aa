//! Generator forward at 128², 256², 512², 1024² and 4096² for each preset on a backend: the time to render
//! one latent over the training square (tiled, 256² tiles: a 512² tile of emoji32 exceeds lavapipe's 128 MiB binding limit), as the viewport and export do.
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
    /// Most storage-buffer memory held during the frame (GPU backend).
    pub gpu_peak_mb: Option<f64>,
    /// GFLOP/s as a share of the adapter's FP32 peak, where the adapter is known.
    pub peak_share: Option<f64>,
}

/// Published FP32 (non-tensor-core) peaks, GFLOP/s, of adapters we may meet.
pub fn fp32_peak_gflops(adapter: &str) -> Option<f64> {
    let a = adapter.to_ascii_lowercase();
    [
        ("h200", 67_000.0),
        ("h100 pcie", 51_200.0),
        ("h100", 67_000.0),
        ("a100", 19_500.0),
        ("l40s", 91_600.0),
        ("rtx 4090", 82_600.0),
        ("rtx 3090", 35_600.0),
        ("v100", 15_700.0),
    ]
    .iter()
    .find(|(k, _)| a.contains(k))
    .map(|&(_, v)| v)
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
                    inrgan::gpu::reset_peak_bytes();
                    let t = Instant::now();
                    g.render_tiles(
                        be,
                        &p,
                        &w,
                        TRAINING_WINDOW,
                        size,
                        size,
                        256,
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
                peak_share: fp32_peak_gflops(&be.name()).map(|p| flops / (ms * 1e-3) / 1e9 / p),
                gpu_peak_mb: if estimated || !be.name().starts_with("gpu") {
                    None
                } else {
                    Some(inrgan::gpu::buffer_bytes().1 as f64 / 1e6)
                },
            });
            let r = rows.last().expect("just pushed");
            println!(
                "{:<10} {:>6}² {:>12.1} ms{} {:>8.2} GFLOP/s{} {:>10}   {}",
                r.preset,
                r.size,
                r.ms,
                if r.estimated { " (est.)" } else { "       " },
                r.gflops,
                r.peak_share
                    .map_or(String::new(), |s| format!(" ({:.1}% of peak)", s * 100.0)),
                r.gpu_peak_mb
                    .map_or(String::new(), |m| format!("{m:.0} MB GPU")),
                r.backend
            );
        }
    }
    Ok(rows)
}
