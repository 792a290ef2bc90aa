//! Watching a run folder that another process writes (`inrgan train` in a terminal, or
//! `tools/torch/train.py` on a cluster's shared disk): the same [`Event`]s as a worker, read
//! from the folder's files as they grow, so the training panel shows any run the same way.
//!
//! - `metrics.jsonl` (appended; only complete lines are read): a line with `g_loss` is a step,
//!   a line with `swd_x1e3` a metric.
//! - `samples-STEP.png` (written whole, then renamed): the newest is the sample grid.
//! - `latest.safetensors` (what `inrgan ship` writes), else the newest `ckpt-*/g_ema.safetensors`:
//!   the weights the viewport follows, read when the file changes (both writers rename files
//!   into place, so a reader never sees half a file).
//! - `run.json` (the torch trainer's) or nothing: the run's length, for the progress bar.
//!
//! A file that does not parse is skipped with a warning and read again when it changes.

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender, TryRecvError, channel};
use std::time::{Duration, SystemTime};

use super::StepStats;
use super::worker::{Command, Event, Worker};
use crate::model::generator::Generator;
use crate::model::weights;

/// What the watcher has read so far.
#[derive(Default)]
struct Seen {
    metrics_offset: u64,
    partial: String,
    samples: Option<PathBuf>,
    weights: Option<(PathBuf, SystemTime)>,
    step: u64,
    images: u64,
    total_images: Option<u64>,
}

/// Starts a thread that polls `dir` every `every` until it is told to stop; the first event is
/// `Started`. [`Command::Stop`] ends it with `Finished` (the other commands are ignored: the
/// run belongs to another process).
pub fn spawn(dir: PathBuf, every: Duration) -> Worker {
    let (cmd_tx, commands) = channel();
    let (events, ev_rx) = channel();
    let handle = std::thread::spawn(move || run(&dir, every, &commands, &events));
    Worker {
        commands: cmd_tx,
        events: ev_rx,
        handle,
    }
}

fn run(dir: &Path, every: Duration, commands: &Receiver<Command>, tx: &Sender<Event>) {
    let mut seen = Seen::default();
    let _ = tx.send(Event::Started {
        backend: format!("watching {}", dir.display()),
        step: 0,
        images: 0,
    });
    let mut warned_missing = false;
    loop {
        loop {
            match commands.try_recv() {
                Ok(Command::Stop) | Err(TryRecvError::Disconnected) => {
                    let _ = tx.send(Event::Finished {
                        step: seen.step,
                        images: seen.images,
                    });
                    return;
                }
                Ok(_) => {}
                Err(TryRecvError::Empty) => break,
            }
        }
        if dir.is_dir() {
            warned_missing = false;
            poll(dir, &mut seen, tx);
        } else if !warned_missing {
            warned_missing = true;
            let _ = tx.send(Event::Warning(format!(
                "{} does not exist (yet): waiting for it",
                dir.display()
            )));
        }
        std::thread::sleep(every);
    }
}

/// One look at the folder.
fn poll(dir: &Path, seen: &mut Seen, tx: &Sender<Event>) {
    if seen.total_images.is_none() {
        seen.total_images = run_length(dir);
    }
    read_metrics(dir, seen, tx);
    if let Some(p) = newest(dir, "samples-", ".png")
        && seen.samples.as_ref() != Some(&p)
    {
        match read_rgba(&p) {
            Ok((width, height, rgba)) => {
                seen.samples = Some(p.clone());
                let _ = tx.send(Event::Samples {
                    step: seen.step,
                    width,
                    height,
                    rgba,
                    path: p,
                });
            }
            Err(e) => {
                let _ = tx.send(Event::Warning(format!("{}: {e}", p.display())));
            }
        }
    }
    let latest = dir.join("latest.safetensors");
    let wpath = if latest.is_file() {
        Some(latest)
    } else {
        newest(dir, "ckpt-", "")
            .map(|c| c.join("g_ema.safetensors"))
            .filter(|p| p.is_file())
    };
    if let Some(p) = wpath {
        let mtime = std::fs::metadata(&p)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        if seen.weights.as_ref() != Some(&(p.clone(), mtime)) {
            seen.weights = Some((p.clone(), mtime));
            match weights::load(&p, |c| Generator::new(c).specs().to_vec()) {
                Ok((cfg, _, values)) => {
                    let _ = tx.send(Event::Model(Box::new(cfg)));
                    let _ = tx.send(Event::Weights {
                        step: seen.step,
                        images: seen.images,
                        values,
                    });
                }
                Err(e) => {
                    let _ = tx.send(Event::Warning(format!("{}: {e}", p.display())));
                }
            }
        }
    }
}

/// The run's length in images, from the torch trainer's `run.json` (`kimg`).
fn run_length(dir: &Path) -> Option<u64> {
    let text = std::fs::read_to_string(dir.join("run.json")).ok()?;
    let v: serde_json::Value = serde_json::from_str(&text).ok()?;
    let kimg = v
        .get("kimg")
        .or_else(|| v.get("args").and_then(|a| a.get("kimg")))?
        .as_f64()?;
    (kimg.is_finite() && kimg > 0.0).then_some((kimg * 1000.0) as u64)
}

fn read_metrics(dir: &Path, seen: &mut Seen, tx: &Sender<Event>) {
    let path = dir.join("metrics.jsonl");
    let Ok(mut f) = std::fs::File::open(&path) else {
        return;
    };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len < seen.metrics_offset {
        // Rewritten from the start (a new run in the same folder).
        seen.metrics_offset = 0;
        seen.partial.clear();
    }
    if f.seek(SeekFrom::Start(seen.metrics_offset)).is_err() {
        return;
    }
    let mut buf = Vec::new();
    if f.read_to_end(&mut buf).is_err() {
        return;
    }
    seen.metrics_offset += buf.len() as u64;
    seen.partial.push_str(&String::from_utf8_lossy(&buf));
    let text = std::mem::take(&mut seen.partial);
    let (complete, rest) = match text.rfind('\n') {
        Some(i) => text.split_at(i + 1),
        None => ("", text.as_str()),
    };
    seen.partial = rest.to_string();
    for line in complete.lines().filter(|l| !l.trim().is_empty()) {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            let _ = tx.send(Event::Warning(format!(
                "{}: a line that is not JSON",
                path.display()
            )));
            continue;
        };
        let num = |k: &str| v.get(k).and_then(|x| x.as_f64());
        let step = num("step").unwrap_or(seen.step as f64).max(0.0) as u64;
        let images = num("images").unwrap_or(seen.images as f64).max(0.0) as u64;
        seen.step = seen.step.max(step);
        seen.images = seen.images.max(images);
        if let Some(value) = num("swd_x1e3") {
            let _ = tx.send(Event::Metric {
                step,
                images,
                name: "swd_x1e3".into(),
                value,
            });
        }
        if let (Some(g), Some(d)) = (num("g_loss"), num("d_loss")) {
            let img_per_s = num("img_per_s").unwrap_or(0.0);
            let total = seen.total_images;
            let progress = total.map_or(0.0, |t| images as f64 / t.max(1) as f64);
            let eta_s = match total {
                Some(t) if img_per_s > 0.0 => t.saturating_sub(images) as f64 / img_per_s,
                _ => 0.0,
            };
            let stats = StepStats {
                step,
                images,
                g_loss: g as f32,
                d_loss: d as f32,
                d_real: num("d_real").unwrap_or(0.0) as f32,
                d_fake: num("d_fake").unwrap_or(0.0) as f32,
                r1: num("r1").map(|x| x as f32),
                aug_p: num("aug_p").unwrap_or(0.0) as f32,
            };
            let _ = tx.send(Event::Step {
                stats,
                img_per_s,
                eta_s,
                progress,
            });
        }
    }
}

/// The last file in `dir` (by name) that starts with `prefix` and ends with `suffix`.
fn newest(dir: &Path, prefix: &str, suffix: &str) -> Option<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| {
                n.starts_with(prefix) && n.ends_with(suffix) && !n.contains(".tmp")
            })
        })
        .collect();
    v.sort();
    v.pop()
}

fn read_rgba(path: &Path) -> Result<(usize, usize, Vec<u8>), String> {
    let img = image::open(path).map_err(|e| e.to_string())?.to_rgba8();
    Ok((img.width() as usize, img.height() as usize, img.into_raw()))
}
