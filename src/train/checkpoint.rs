//! Checkpoints: G, G-EMA, D and both Adam states as safetensors files, and the step, image count,
//! RNG state and configs in `state.ron`, in one folder written atomically (a temporary folder,
//! then a rename). Resuming from a checkpoint continues the same run: on the same backend the
//! numbers equal those of a run that never stopped.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Opt, TrainConfig, TrainError, Trainer};
use crate::backend::Backend;
use crate::model::config::ModelConfig;
use crate::model::params::{ParamSet, ParamSpec};
use crate::model::weights::{self, WeightsError};
use crate::rng::Rng;

/// The non-tensor state of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainState {
    pub step: u64,
    pub images: u64,
    pub rng: [u64; 4],
    /// Adam step counts of G and D.
    pub adam_t: [u64; 2],
    /// Metric values so far: (images, name, value).
    #[serde(default)]
    pub history: Vec<(u64, String, f64)>,
    pub train: TrainConfig,
    pub model: ModelConfig,
    /// The adaptive augmentation's state (absent before augmentation existed).
    #[serde(default)]
    pub augment: super::augment::AugmentState,
}

impl From<WeightsError> for TrainError {
    fn from(e: WeightsError) -> Self {
        TrainError::Checkpoint(e.to_string())
    }
}

fn renamed(specs: &[ParamSpec], prefix: &str) -> Vec<ParamSpec> {
    specs
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.name = format!("{prefix}{}", s.name);
            s
        })
        .collect()
}

fn opt_specs(g: &[ParamSpec], d: &[ParamSpec]) -> Vec<ParamSpec> {
    [
        renamed(g, "adam.m."),
        renamed(g, "adam.v."),
        renamed(d, "adam.m."),
        renamed(d, "adam.v."),
    ]
    .concat()
}

/// Writes the checkpoint of `t` as `dir/ckpt-STEP` and returns its path.
pub fn save<B: Backend>(t: &Trainer<B>, be: &mut B, dir: &Path) -> Result<PathBuf, TrainError> {
    let model = &t.g.cfg;
    write_folder(dir, t.step, |tmp| {
        weights::save(
            &tmp.join("g.safetensors"),
            model,
            &t.gp.specs,
            &t.gp.to_host(be)?,
        )?;
        weights::save(
            &tmp.join("g_ema.safetensors"),
            model,
            &t.g_ema.specs,
            &t.g_ema.to_host(be)?,
        )?;
        weights::save(
            &tmp.join("d.safetensors"),
            model,
            &t.dp.specs,
            &t.dp.to_host(be)?,
        )?;
        let opt: Vec<Vec<f32>> = [
            t.g_opt.m.to_host(be)?,
            t.g_opt.v.to_host(be)?,
            t.d_opt.m.to_host(be)?,
            t.d_opt.v.to_host(be)?,
        ]
        .concat();
        weights::save(
            &tmp.join("adam.safetensors"),
            model,
            &opt_specs(&t.gp.specs, &t.dp.specs),
            &opt,
        )?;
        let state = TrainState {
            step: t.step,
            images: t.images,
            rng: t.rng.state(),
            adam_t: [t.g_opt.t, t.d_opt.t],
            history: t.history.clone(),
            train: t.cfg.clone(),
            model: model.clone(),
            augment: t.aug.clone(),
        };
        let text = ron::ser::to_string_pretty(&state, ron::ser::PrettyConfig::default())
            .map_err(|e| TrainError::Checkpoint(e.to_string()))?;
        weights::write_atomic(&tmp.join("state.ron"), text.as_bytes())?;
        Ok(())
    })
}

fn io_error(e: std::io::Error, p: &Path) -> TrainError {
    TrainError::Checkpoint(format!("{}: {e}", p.display()))
}

/// Writes `dir/ckpt-STEP` atomically: `fill` writes the files into a temporary folder, which
/// is removed if it fails and otherwise renamed over any earlier folder of that name.
fn write_folder(
    dir: &Path,
    step: u64,
    fill: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<PathBuf, TrainError> {
    let name = format!("ckpt-{step:08}");
    let out = dir.join(&name);
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = (|| {
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io_error(e, &tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| io_error(e, &tmp))?;
        fill(&tmp)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if out.exists() {
        std::fs::remove_dir_all(&out).map_err(|e| io_error(e, &out))?;
    }
    std::fs::rename(&tmp, &out).map_err(|e| io_error(e, &out))?;
    Ok(out)
}

/// The text of `ckpt/state.ron` and the state it holds.
fn read_state(ckpt: &Path) -> Result<(String, TrainState), TrainError> {
    let path = ckpt.join("state.ron");
    let text = std::fs::read_to_string(&path).map_err(|e| io_error(e, &path))?;
    let state = ron::from_str(&text)
        .map_err(|e| TrainError::Checkpoint(format!("{}: {e}", ckpt.display())))?;
    Ok((text, state))
}

/// Reads a checkpoint folder back into a trainer on `be`.
pub fn load<B: Backend>(be: &mut B, ckpt: &Path) -> Result<Trainer<B>, TrainError> {
    let (_, state) = read_state(ckpt)?;
    let mut t = Trainer::new(be, &state.model, state.train.clone())?;
    let g_specs = t.gp.specs.clone();
    let d_specs = t.dp.specs.clone();
    let load_set =
        |be: &mut B, file: &str, specs: &[ParamSpec]| -> Result<ParamSet<B>, TrainError> {
            let owned = specs.to_vec();
            let (_, _, host) = weights::load(&ckpt.join(file), move |_| owned)?;
            Ok(ParamSet::from_host(be, specs, &host)?)
        };
    t.g_ema = load_set(be, "g_ema.safetensors", &g_specs)?;
    t.dp = load_set(be, "d.safetensors", &d_specs)?;
    t.history = state.history;
    t.step = state.step;
    t.images = state.images;
    t.rng = Rng::from_state(state.rng);
    t.aug = state.augment;
    if !ckpt.join("adam.safetensors").exists() {
        // A carried checkpoint (see [`carry`]): G starts from G-EMA, Adam from scratch (its
        // first moment is unused with beta1 = 0; the second re-warms within ~100 steps, and
        // the step count restarts so that the bias correction matches).
        if ckpt.join("g.safetensors").exists() {
            t.gp = load_set(be, "g.safetensors", &g_specs)?;
        } else {
            t.gp = load_set(be, "g_ema.safetensors", &g_specs)?;
        }
        return Ok(t);
    }
    t.gp = load_set(be, "g.safetensors", &g_specs)?;
    let all = opt_specs(&g_specs, &d_specs);
    let owned = all.clone();
    let (_, _, host) = weights::load(&ckpt.join("adam.safetensors"), move |_| owned)?;
    let (ng, nd) = (g_specs.len(), d_specs.len());
    let part = |be: &mut B, range: std::ops::Range<usize>, specs: &[ParamSpec]| {
        ParamSet::from_host(be, specs, &host[range])
    };
    let g_m = part(be, 0..ng, &g_specs)?;
    let g_v = part(be, ng..2 * ng, &g_specs)?;
    let d_m = part(be, 2 * ng..2 * ng + nd, &d_specs)?;
    let d_v = part(be, 2 * ng + nd..2 * ng + 2 * nd, &d_specs)?;
    t.g_opt = Opt {
        m: g_m,
        v: g_v,
        ..t.g_opt
    };
    t.d_opt = Opt {
        m: d_m,
        v: d_v,
        ..t.d_opt
    };
    t.g_opt.t = state.adam_t[0];
    t.d_opt.t = state.adam_t[1];
    Ok(t)
}

/// Writes a compact copy of checkpoint `ckpt` as `out/ckpt-STEP` that a run resumes from:
/// G-EMA and D in half floats and the state, without G and the Adam moments (a quarter of
/// the size; see [`load`]). It is how a long run crosses to another machine: the run's
/// position (images, data order, random stream, metric history) is kept exactly, the
/// optimiser re-warms.
pub fn carry(ckpt: &Path, out: &Path) -> Result<PathBuf, TrainError> {
    let (text, state) = read_state(ckpt)?;
    write_folder(out, state.step, |tmp| {
        let g_specs = crate::model::generator::Generator::new(&state.model)
            .specs()
            .to_vec();
        let d_specs = crate::model::discriminator::Discriminator::new(&state.model)
            .specs()
            .to_vec();
        for (file, specs) in [("g_ema.safetensors", g_specs), ("d.safetensors", d_specs)] {
            let owned = specs.clone();
            let (cfg, _, values) = weights::load(&ckpt.join(file), move |_| owned)?;
            if cfg != state.model {
                return Err(TrainError::Checkpoint(format!(
                    "{}: its model differs from state.ron's",
                    ckpt.join(file).display()
                )));
            }
            weights::save_as(&tmp.join(file), &cfg, &specs, &values, &[], true)?;
        }
        weights::write_atomic(&tmp.join("state.ron"), text.as_bytes())?;
        Ok(())
    })
}
