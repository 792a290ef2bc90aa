//! Training speed (`bench --suite train`): images per second of the full step (G phase, D phase,
//! lazy R1 every 16 steps) per preset and backend, on random reals.

use std::time::Instant;

use anyhow::Result;
use inrgan::backend::prelude::*;
use inrgan::rng::Rng;
use inrgan::train::{TrainConfig, Trainer};

pub struct TrainRow {
    pub preset: String,
    pub backend: String,
    pub batch: usize,
    pub img_per_s: f64,
    pub steps: usize,
    /// GPU backend, per step: dispatches, buffers created, host ms spent recording them.
    pub recording: Option<(f64, f64, f64)>,
}

/// Times `steps` steps after one warm-up step (so one R1 step in 16 is included on average:
/// the timed window starts at step 2 and R1 runs at 16).
pub fn run<B: Backend>(
    be: &mut B,
    presets: &[(&str, usize)],
    steps: usize,
) -> Result<Vec<TrainRow>> {
    let mut rows = Vec::new();
    for &(name, batch) in presets {
        let model = crate::bench_preset(name)?;
        let cfg = TrainConfig {
            batch,
            ..TrainConfig::default()
        };
        let mut t = Trainer::new(be, &model, cfg)?;
        let r = model.resolution;
        let mut rng = Rng::new(1);
        let reals = rng.uniform_vec(batch * 3 * r * r, -1.0, 1.0);
        t.step(be, &reals)?;
        let r0 = be.recording();
        let t0 = Instant::now();
        for _ in 0..steps {
            t.step(be, &reals)?;
        }
        let s = t0.elapsed().as_secs_f64();
        let rec = be.recording().zip(r0).map(|(a, b)| a - b);
        let row = TrainRow {
            preset: name.into(),
            backend: be.name(),
            batch,
            img_per_s: (steps * batch) as f64 / s,
            steps,
            // Per step: (dispatches, buffers created, host ms recording them).
            recording: rec.map(|r| {
                (
                    r.dispatches as f64 / steps as f64,
                    r.buffers as f64 / steps as f64,
                    r.host.as_secs_f64() * 1e3 / steps as f64,
                )
            }),
        };
        println!(
            "{:<10} batch {:>3}: {:>8.2} img/s over {} steps{}   {}",
            row.preset,
            row.batch,
            row.img_per_s,
            row.steps,
            row.recording.map_or(String::new(), |(d, b, h)| format!(
                ", a step records {d:.0} dispatches and {b:.0} buffers in {h:.1} ms of host time"
            )),
            row.backend
        );
        rows.push(row);
    }
    Ok(rows)
}
