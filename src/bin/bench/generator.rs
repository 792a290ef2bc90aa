//! Generator forward at 128², 256², 512², 1024² and 4096² for each preset on a backend: one
//! viewport frame of one latent over the training square, as the explorer renders it: the latent
//! already mapped (the viewport caches it), the frame in full-width strips as tall as the
//! backend's buffer limit allows (one strip where it fits; lavapipe's 128 MiB binding limit
//! splits emoji32 at 512²), each strip through the fused path where the backend has it and then
//! to RGBA8, read back to the host. Sizes whose estimate (from the previous size, scaled by the
//! pixel count) exceeds the budget are reported as estimates instead of run.

use std::time::{Duration, Instant};

use anyhow::Result;
use inrgan::backend::prelude::*;
use inrgan::model::generator::{Generator, PlanRequest, Window};
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
    /// Strips the frame took.
    pub strips: usize,
    /// GPU backend: host time spent recording the frame's work (buffers, bind groups,
    /// dispatches), and the number of dispatches: the floor of a frame on a fast GPU.
    pub host_ms: Option<f64>,
    pub dispatches: Option<u64>,
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

/// One frame as the viewport renders it (see the module's comment): (wall ms, strips, host ms
/// recording, dispatches).
fn frame<B: Backend>(
    be: &mut B,
    g: &Generator,
    p: &ParamSet<B>,
    w: &B::Buf,
    size: usize,
    max_strip_bytes: u64,
) -> Result<(f64, usize, f64, Option<u64>)> {
    let levels = g.cfg.levels.len();
    let rows = inrgan::gpu::strip_rows(max_strip_bytes, size, g.frame_channels_on(be, levels));
    let r0 = be.recording();
    let t = Instant::now();
    let mut strips = 0;
    for r0 in (0..size).step_by(rows) {
        let r1 = (r0 + rows).min(size);
        let plan = g.plan(
            &PlanRequest::new(Window::TRAINING, size, size)
                .tile(0..size, r0..r1)
                .levels(levels),
        )?;
        let tape = g.synthesize_fast(be, p, &[w], 1, &plan)?;
        be.to_rgba8(tape.img(), 1, size * (r1 - r0))?;
        strips += 1;
    }
    let rec = be.recording().zip(r0).map(|(a, b)| a - b);
    Ok((
        t.elapsed().as_secs_f64() * 1e3,
        strips,
        rec.map_or(0.0, |r| r.host.as_secs_f64() * 1e3),
        rec.map(|r| r.dispatches),
    ))
}

pub fn run<B: Backend>(
    be: &mut B,
    presets: &[&str],
    sizes: &[usize],
    budget: Duration,
    max_strip_bytes: u64,
) -> Result<Vec<GenRow>> {
    let mut rows = Vec::new();
    for &name in presets {
        let cfg = crate::bench_preset(name)?;
        let g = Generator::new(&cfg);
        let p = ParamSet::init(be, g.specs(), 1)?;
        let z = g.latent(1);
        let w = g.map_truncated(be, &p, &z, 1, 1.0)?;
        let wb = be.upload(&w, "w")?;
        // Warm-up (pipelines, shader JIT on lavapipe).
        frame(be, &g, &p, &wb, 32, max_strip_bytes)?;
        let mut last: Option<(usize, f64)> = None;
        for &size in sizes {
            let flops = 2.0 * frame_macs(&g, size);
            let estimate = last.map(|(s, ms)| ms * (size * size) as f64 / (s * s) as f64);
            let (ms, estimated, strips, host, dispatches) = match estimate {
                Some(e) if e > budget.as_secs_f64() * 1e3 => (e, true, 0, None, None),
                _ => {
                    inrgan::gpu::reset_peak_bytes();
                    let (ms, strips, host, d) = frame(be, &g, &p, &wb, size, max_strip_bytes)?;
                    (ms, false, strips, d.map(|_| host), d)
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
                strips,
                host_ms: host,
                dispatches,
                gpu_peak_mb: if estimated || !be.name().starts_with("gpu") {
                    None
                } else {
                    Some(inrgan::gpu::buffer_bytes().1 as f64 / 1e6)
                },
            });
            let r = rows.last().expect("just pushed");
            println!(
                "{:<10} {:>6}² {:>12.1} ms{} {:>8.2} GFLOP/s{} {:>10} {:>28}   {}",
                r.preset,
                r.size,
                r.ms,
                if r.estimated { " (est.)" } else { "       " },
                r.gflops,
                r.peak_share
                    .map_or(String::new(), |s| format!(" ({:.1}% of peak)", s * 100.0)),
                r.gpu_peak_mb
                    .map_or(String::new(), |m| format!("{m:.0} MB GPU")),
                match (r.host_ms, r.dispatches) {
                    (Some(h), Some(d)) => format!(
                        "{} strip{}, host {h:.2} ms/{d} disp.",
                        r.strips,
                        if r.strips == 1 { "" } else { "s" }
                    ),
                    _ => String::new(),
                },
                r.backend
            );
        }
    }
    Ok(rows)
}
