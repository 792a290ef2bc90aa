//! Training speed (`bench --suite train`): images per second of the full step (G phase, D phase,
//! lazy R1 every 16 steps) per preset and backend, on random reals.

use std::time::Instant;

use anyhow::Result;
use inrgan::backend::Backend;
use inrgan::model::config::ModelConfig;
use inrgan::rng::Rng;
use inrgan::train::{TrainConfig, Trainer};

pub struct TrainRow {
    pub preset: String,
    pub backend: String,
    pub batch: usize,
    pub img_per_s: f64,
    pub steps: usize,
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
        let model = ModelConfig::preset(name)?;
        let cfg = TrainConfig {
            batch,
            ..TrainConfig::default()
        };
        let mut t = Trainer::new(be, &model, cfg)?;
        let r = model.resolution;
        let mut rng = Rng::new(1);
        let reals = rng.uniform_vec(batch * 3 * r * r, -1.0, 1.0);
        t.step(be, &reals)?;
        let t0 = Instant::now();
        for _ in 0..steps {
            t.step(be, &reals)?;
        }
        let s = t0.elapsed().as_secs_f64();
        let row = TrainRow {
            preset: name.into(),
            backend: be.name(),
            batch,
            img_per_s: (steps * batch) as f64 / s,
            steps,
        };
        println!(
            "{:<10} batch {:>3}: {:>8.2} img/s over {} steps   {}",
            row.preset, row.batch, row.img_per_s, row.steps, row.backend
        );
        rows.push(row);
    }
    Ok(rows)
}
