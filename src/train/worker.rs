//! A training run on its own thread: the worker owns the backend, the networks and the optimiser
//! state; a caller (the CLI now, the GUI next) sends [`Command`]s and receives [`Event`]s.
//!
//! The run folder holds `ckpt-STEP/` checkpoints (the last `keep` kept, and the best by the
//! metric copied to `best/`), `metrics.jsonl` (one
//! JSON object per line: step, images, losses, img/s, and metric values when measured) and
//! `samples-STEP.png` grids of the EMA generator on fixed seeds. A step whose losses or
//! gradients are not finite rolls the run back to its last checkpoint, halves both learning
//! rates and says so; nothing non-finite is ever written to a checkpoint.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::thread::JoinHandle;
use std::time::Instant;

use super::{StepStats, TrainConfig, TrainError, Trainer, checkpoint};
use crate::backend::gpu::GpuBackend;
use crate::backend::{Backend, BackendKind};
use crate::gpu::GpuContext;
use crate::model::config::ModelConfig;

/// What the caller can ask of a running worker.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    Pause,
    Resume,
    /// One step while paused.
    Step,
    /// Save a checkpoint and end.
    Stop,
    SaveNow,
    SetLr {
        g: f64,
        d: f64,
    },
}

/// What the worker reports.
#[derive(Clone, Debug)]
pub enum Event {
    Started {
        backend: String,
        step: u64,
        images: u64,
    },
    Step {
        stats: StepStats,
        img_per_s: f64,
        eta_s: f64,
        progress: f64,
    },
    Samples {
        step: u64,
        width: usize,
        height: usize,
        rgba: Vec<u8>,
        path: PathBuf,
    },
    /// The EMA generator's weights (sent with each sample grid), for a live view of training.
    Weights {
        step: u64,
        images: u64,
        values: Vec<Vec<f32>>,
    },
    Checkpoint {
        path: PathBuf,
    },
    Metric {
        step: u64,
        images: u64,
        name: String,
        value: f64,
    },
    Warning(String),
    /// The model a watched run trains (`train::watch`; a worker's panel knows its own).
    Model(Box<crate::model::config::ModelConfig>),
    Paused(bool),
    Finished {
        step: u64,
        images: u64,
    },
    Failed(String),
}

/// A source of real minibatches `[batch, 3, R, R]` in [-1, 1].
pub type BatchSource = Box<dyn FnMut() -> Result<Vec<f32>, String> + Send>;

/// A quality metric of the EMA generator's samples `[n, 3, R, R]` (name, value; lower is better).
pub type Metric = Box<dyn FnMut(&[f32], usize) -> Result<(String, f64), String> + Send>;

/// How a run is set up.
pub struct RunConfig {
    pub out: PathBuf,
    pub model: ModelConfig,
    pub train: TrainConfig,
    pub backend: BackendKind,
    /// Length of the run in thousands of images shown to D.
    pub kimg: f64,
    /// Checkpoint (and metric) interval in thousands of images.
    pub checkpoint_kimg: f64,
    /// Sample-grid interval in steps.
    pub sample_every: u64,
    /// Checkpoints kept.
    pub keep: usize,
    /// Continue from the newest checkpoint in `out` if there is one.
    pub resume: bool,
    /// Seeds of the sample grid; the metric uses `metric_samples` images from seeds 1_000_000..
    pub sample_seeds: Vec<u64>,
    pub metric_samples: usize,
    /// An augmentation asked for explicitly: it replaces a resumed checkpoint's (a run can
    /// switch augmentation on or off where it stands).
    pub augment: Option<crate::train::augment::AugmentConfig>,
}

/// A running worker.
pub struct Worker {
    pub commands: Sender<Command>,
    pub events: Receiver<Event>,
    pub handle: JoinHandle<()>,
}

/// Starts a run on a new thread.
pub fn spawn(run: RunConfig, data: BatchSource, metric: Option<Metric>) -> Worker {
    let (ctx_tx, commands) = channel();
    let (events, ev_rx) = channel();
    let handle = std::thread::spawn(move || {
        let tx = events.clone();
        let result = match run.backend {
            BackendKind::Gpu => GpuContext::new()
                .map_err(|e| e.to_string())
                .and_then(|ctx| {
                    let mut be = GpuBackend::new(&ctx);
                    run_loop(&mut be, &run, data, metric, &commands, &tx)
                }),
            BackendKind::Cpu => crate::backend::cpu::CpuBackend::new()
                .map_err(|e| e.to_string())
                .and_then(|mut be| run_loop(&mut be, &run, data, metric, &commands, &tx)),
        };
        if let Err(e) = result {
            let _ = events.send(Event::Failed(e));
        }
    });
    Worker {
        commands: ctx_tx,
        events: ev_rx,
        handle,
    }
}

/// The newest `ckpt-*` folder in `dir`.
pub fn latest_checkpoint(dir: &Path) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("ckpt-"))
                && p.join("state.ron").exists()
        })
        .collect();
    v.sort();
    v.pop()
}

fn prune(dir: &Path, keep: usize) {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ckpt-"))
        })
        .collect();
    v.sort();
    while v.len() > keep.max(1) {
        let old = v.remove(0);
        let _ = std::fs::remove_dir_all(old);
    }
}

fn append_jsonl(path: &Path, value: &serde_json::Value) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(f, "{value}").map_err(|e| format!("{}: {e}", path.display()))
}

fn run_loop<B: Backend>(
    be: &mut B,
    run: &RunConfig,
    mut data: BatchSource,
    mut metric: Option<Metric>,
    commands: &Receiver<Command>,
    tx: &Sender<Event>,
) -> Result<(), String> {
    std::fs::create_dir_all(&run.out).map_err(|e| format!("{}: {e}", run.out.display()))?;
    let s = |e: TrainError| e.to_string();
    let mut t = match latest_checkpoint(&run.out).filter(|_| run.resume) {
        Some(ck) => {
            let mut t = checkpoint::load(be, &ck).map_err(s)?;
            // The same model under another name is not worth a warning.
            let renamed = crate::model::config::ModelConfig {
                name: run.model.name.clone(),
                ..t.g.cfg.clone()
            };
            if renamed != run.model {
                let _ = tx.send(Event::Warning(format!(
                    "resuming {}: it trains the model {}, not the preset asked for ({}); \
                     the checkpoint's model goes on",
                    ck.display(),
                    t.g.cfg.name,
                    run.model.name
                )));
            }
            if let Some(a) = &run.augment
                && *a != t.cfg.augment
            {
                a.validate()?;
                // An adaptive probability continues from where the checkpoint left it.
                if a.mode != crate::train::augment::AugmentMode::Adaptive
                    || t.cfg.augment.mode != crate::train::augment::AugmentMode::Adaptive
                {
                    t.aug = crate::train::augment::AugmentState::new(a);
                }
                t.cfg.augment = a.clone();
            }
            t
        }
        None => Trainer::new(be, &run.model, run.train.clone()).map_err(|e| e.to_string())?,
    };
    let _ = tx.send(Event::Started {
        backend: be.name(),
        step: t.step,
        images: t.images,
    });
    let metrics = run.out.join("metrics.jsonl");
    let total = (run.kimg * 1000.0) as u64;
    let ckpt_every = ((run.checkpoint_kimg * 1000.0) as u64).max(1);
    let mut next_ckpt = (t.images / ckpt_every + 1) * ckpt_every;
    let mut paused = false;
    let mut single = false;
    let mut speed: Option<f64> = None;
    let save = |t: &Trainer<B>, be: &mut B| -> Result<PathBuf, String> {
        let p = checkpoint::save(t, be, &run.out).map_err(|e| e.to_string())?;
        prune(&run.out, run.keep);
        Ok(p)
    };
    loop {
        // Commands: drain without blocking; block while paused.
        loop {
            let cmd = if paused && !single {
                match commands.recv() {
                    Ok(c) => Some(c),
                    Err(_) => return Ok(()),
                }
            } else {
                match commands.try_recv() {
                    Ok(c) => Some(c),
                    Err(TryRecvError::Empty) => None,
                    Err(TryRecvError::Disconnected) => None,
                }
            };
            let Some(cmd) = cmd else { break };
            match cmd {
                Command::Pause => {
                    paused = true;
                    let _ = tx.send(Event::Paused(true));
                }
                Command::Resume => {
                    paused = false;
                    let _ = tx.send(Event::Paused(false));
                }
                Command::Step => {
                    // Run the step before looking at later commands.
                    single = true;
                    break;
                }
                Command::SaveNow => match save(&t, be) {
                    Ok(p) => {
                        let _ = tx.send(Event::Checkpoint { path: p });
                    }
                    Err(e) => {
                        let _ = tx.send(Event::Warning(format!("checkpoint not saved: {e}")));
                    }
                },
                Command::SetLr { g, d } => t.set_lr(g, d),
                Command::Stop => {
                    let p = save(&t, be)?;
                    let _ = tx.send(Event::Checkpoint { path: p });
                    let _ = tx.send(Event::Finished {
                        step: t.step,
                        images: t.images,
                    });
                    return Ok(());
                }
            }
        }
        if t.images >= total {
            if latest_checkpoint(&run.out).and_then(|p| p.file_name().map(|n| n.to_owned()))
                != Some(format!("ckpt-{:08}", t.step).into())
            {
                let p = save(&t, be)?;
                let _ = tx.send(Event::Checkpoint { path: p });
            }
            let _ = tx.send(Event::Finished {
                step: t.step,
                images: t.images,
            });
            return Ok(());
        }
        let reals = data()?;
        let t0 = Instant::now();
        match t.step(be, &reals) {
            Ok(stats) => {
                single = false;
                let ips = t.cfg.batch as f64 / t0.elapsed().as_secs_f64().max(1e-9);
                let sp = speed.map_or(ips, |v| 0.9 * v + 0.1 * ips);
                speed = Some(sp);
                let left = total.saturating_sub(t.images) as f64;
                let _ = append_jsonl(
                    &metrics,
                    &serde_json::json!({
                        "step": stats.step, "images": stats.images, "g_loss": stats.g_loss,
                        "d_loss": stats.d_loss, "d_real": stats.d_real, "d_fake": stats.d_fake,
                        "r1": stats.r1, "img_per_s": sp, "aug_p": stats.aug_p,
                    }),
                );
                let _ = tx.send(Event::Step {
                    progress: t.images as f64 / total.max(1) as f64,
                    stats,
                    img_per_s: sp,
                    eta_s: left / sp.max(1e-9),
                });
            }
            Err(TrainError::NonFinite { step, what }) => {
                let Some(ck) = latest_checkpoint(&run.out) else {
                    return Err(format!(
                        "non-finite values at step {step} in {what}, and no checkpoint to roll back to"
                    ));
                };
                let (lg, ld) = (t.cfg.lr_g * 0.5, t.cfg.lr_d * 0.5);
                t = checkpoint::load(be, &ck).map_err(s)?;
                t.set_lr(lg, ld);
                next_ckpt = (t.images / ckpt_every + 1) * ckpt_every;
                let _ = tx.send(Event::Warning(format!(
                    "non-finite values at step {step} in {what}: rolled back to {} and halved the \
                     learning rates (G {lg:.2e}, D {ld:.2e})",
                    ck.display()
                )));
                continue;
            }
            Err(e) => return Err(e.to_string()),
        }
        if run.sample_every > 0
            && t.step.is_multiple_of(run.sample_every)
            && !run.sample_seeds.is_empty()
        {
            let r = run.model.resolution;
            let img = t
                .samples(be, &run.sample_seeds, 1.0)
                .map_err(|e| e.to_string())?;
            let n = run.sample_seeds.len();
            let cols = (n as f64).sqrt().ceil() as usize;
            let (w, h, rgba) = crate::png_io::grid(&img, n, r, r, cols);
            let path = run.out.join(format!("samples-{:08}.png", t.step));
            // A sample grid that cannot be written (a full disk) is a warning: training goes on.
            let written = crate::png_io::write_rgba(&path, w, h, &rgba, &[]);
            if let Err(e) = &written {
                let _ = tx.send(Event::Warning(format!(
                    "sample grid at step {} not written: {e}",
                    t.step
                )));
            }
            let _ = tx.send(Event::Samples {
                step: t.step,
                width: w,
                height: h,
                rgba,
                path,
            });
            let values = t.g_ema.to_host(be).map_err(|e| e.to_string())?;
            let _ = tx.send(Event::Weights {
                step: t.step,
                images: t.images,
                values,
            });
        }
        if t.images >= next_ckpt {
            next_ckpt += ckpt_every;
            if let Some(m) = metric.as_mut() {
                let seeds: Vec<u64> = (0..run.metric_samples as u64)
                    .map(|i| 1_000_000 + i)
                    .collect();
                let mut fakes = Vec::new();
                for chunk in seeds.chunks(t.cfg.batch.max(1)) {
                    fakes.extend(t.samples(be, chunk, 1.0).map_err(|e| e.to_string())?);
                }
                let (name, value) = m(&fakes, seeds.len())?;
                t.history.push((t.images, name.clone(), value));
                let _ = append_jsonl(
                    &metrics,
                    &serde_json::json!({"step": t.step, "images": t.images, name.clone(): value}),
                );
                let _ = tx.send(Event::Metric {
                    step: t.step,
                    images: t.images,
                    name,
                    value,
                });
            }
            // A periodic checkpoint that cannot be written (a full disk, say) loses nothing: its
            // partial folder is removed, the earlier checkpoints stay as they were, training goes
            // on in memory and the next checkpoint tries again. Only the final save must succeed.
            let p = match save(&t, be) {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Event::Warning(format!(
                        "checkpoint at step {} not saved ({e}); training goes on, the earlier \
                         checkpoints are intact, and the next one tries again",
                        t.step
                    )));
                    continue;
                }
            };
            // Keep the best checkpoint by the metric as `best/` (lower is better).
            if let Some(&(_, _, v)) = t.history.last()
                && t.history.iter().all(|&(_, _, o)| v <= o)
            {
                let best = run.out.join("best");
                let tmp = run.out.join(".best.tmp");
                let _ = std::fs::remove_dir_all(&tmp);
                match link_dir(&p, &tmp) {
                    Ok(()) => {
                        let _ = std::fs::remove_dir_all(&best);
                        if let Err(e) = std::fs::rename(&tmp, &best) {
                            let _ = tx.send(Event::Warning(format!("{}: {e}", best.display())));
                        }
                    }
                    Err(e) => {
                        let _ = std::fs::remove_dir_all(&tmp);
                        let _ = tx.send(Event::Warning(format!(
                            "best checkpoint not updated ({}: {e}); {} holds it",
                            tmp.display(),
                            p.display()
                        )));
                    }
                }
            }
            let _ = tx.send(Event::Checkpoint { path: p });
        }
    }
}

/// `to` holds the files of `from`: hard links where the file system has them (no space, no
/// time; checkpoint files are never rewritten in place, so the two stay equal), else copies.
fn link_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        let dst = to.join(e.file_name());
        if std::fs::hard_link(e.path(), &dst).is_err() {
            std::fs::copy(e.path(), &dst)?;
        }
    }
    Ok(())
}
