//! `inrgan`: with no command, opens the explorer window; commands run the same engine headless.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use inrgan::backend::BackendKind;

#[derive(Parser)]
#[command(
    name = "inrgan",
    version,
    about = "INR-GAN Explorer: continuous images from a GAN"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Render layer by layer instead of through the fused block forward (slower; for checks).
    #[arg(long, global = true)]
    no_fused: bool,
    /// GPU backend: submit and wait for each operation alone and print the time per kernel at
    /// the end (slow; shows where a frame's time goes).
    #[arg(long, global = true)]
    profile: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Open the explorer window (the default).
    Gui {
        /// Weights to open (default: the last model, else the built-in one).
        #[arg(long)]
        weights: Option<PathBuf>,
        /// The viewport's backend: cpu, gpu, or auto (the GPU unless it is a software adapter).
        #[arg(long, default_value = "auto")]
        backend: BackendKind,
    },
    /// List the GPU adapters wgpu sees and say which one would be used.
    Gpu,
    /// Render one latent to a PNG, at any size and for any window of the plane.
    Render {
        /// Weights file (*.safetensors); default: the built-in model.
        #[arg(long)]
        weights: Option<PathBuf>,
        /// `builtin` (the shipped model), or a preset (tiny, emoji32, ...) with random weights
        /// when there is no weights file.
        #[arg(long, default_value = "builtin")]
        preset: String,
        /// Make again the PNG written by `render` or the explorer's export: its recipe (latent,
        /// window, size) replaces the options below; the weights come from --weights or the
        /// built-in model and must match the recipe's hash.
        #[arg(long)]
        recipe: Option<PathBuf>,
        /// Scale levels evaluated (the early exit; default all).
        #[arg(long)]
        levels: Option<usize>,
        /// A grid of GRID x GRID seeds from --seed on (the training square, --size each).
        #[arg(long)]
        grid: Option<usize>,
        /// Also write the unquantised image: little-endian f32, planar RGB [3, H, W], no header.
        #[arg(long)]
        raw: Option<PathBuf>,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Truncation psi (1 = none).
        #[arg(long, default_value_t = 1.0)]
        psi: f32,
        /// Output size: N or WxH pixels.
        #[arg(long, default_value = "512")]
        size: String,
        /// Window of the plane x0,y0,x1,y1 (the training square is -1,-1,1,1).
        #[arg(long, default_value = "-1,-1,1,1", allow_hyphen_values = true)]
        window: inrgan::model::Window,
        #[arg(long)]
        out: PathBuf,
        /// cpu, gpu, or auto (a real GPU if there is one, else the CPU backend).
        #[arg(long, default_value = "auto")]
        backend: BackendKind,
        /// Tile side in pixels (bounds memory).
        #[arg(long, default_value_t = 256)]
        tile: usize,
        /// Samples per pixel side, averaged (1: off). Default: as many as a zoomed-out view
        /// needs to sample at least the training density (at most 8, i.e. 64 a pixel).
        #[arg(long)]
        supersample: Option<usize>,
    },
    /// Train a model on the built-in emoji set (`emoji`, `emoji:animals`, ...) or a folder or zip
    /// of images. Ctrl-C saves a checkpoint and exits; --resume continues the newest one.
    Train(inrgan::engine::TrainArgs),
    /// The sliced Wasserstein distance (ProGAN) between a model's samples and a data set.
    Eval {
        #[arg(long)]
        weights: Option<PathBuf>,
        /// `builtin` (the shipped model) or a preset with random weights.
        #[arg(long, default_value = "builtin")]
        preset: String,
        #[arg(long, default_value = "emoji")]
        data: String,
        /// Images on each side.
        #[arg(long, default_value_t = 1024)]
        n: usize,
        #[arg(long, default_value_t = 1.0)]
        psi: f32,
        #[arg(long, default_value = "auto")]
        backend: BackendKind,
    },
    /// The metric's floor: SWD between two disjoint halves of a data set, measured as `eval`
    /// measures a model.
    EvalHalves {
        #[arg(long, default_value = "emoji")]
        data: String,
        #[arg(long, default_value_t = 32)]
        resolution: usize,
        /// Images on each side (at most half the set).
        #[arg(long, default_value_t = 1024)]
        n: usize,
    },
    /// Write a checkpoint's EMA generator as a standalone weights file (what the app ships).
    Ship {
        /// A checkpoint folder (ckpt-STEP or best).
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long)]
        out: PathBuf,
        /// The data set it was trained on (recorded in the file).
        #[arg(long)]
        data: String,
        /// Store f32 instead of half floats.
        #[arg(long)]
        f32: bool,
        /// The seeds the explorer's anchors A, B, C, D open on for this model (`A,B,C,D`;
        /// default 0,1,2,3): pick ones that show good samples.
        #[arg(long, value_parser = inrgan::engine::parse_anchors)]
        anchors: Option<[u64; 4]>,
    },
    /// A compact copy of a training checkpoint (G-EMA and D in half floats, the run's state;
    /// no G or Adam moments) that `train --resume` continues from on another machine.
    Carry {
        /// A checkpoint folder (ckpt-STEP).
        #[arg(long)]
        checkpoint: PathBuf,
        /// The folder to write `ckpt-STEP` into (e.g. a new run folder).
        #[arg(long)]
        out: PathBuf,
    },
    /// The walk through four anchor seeds as frames and one looping animated PNG (what the
    /// explorer's Animate shows).
    Walk {
        #[arg(long)]
        weights: Option<PathBuf>,
        #[arg(long, default_value = "builtin")]
        preset: String,
        /// The four anchors A, B, C, D.
        #[arg(long, default_value = "0,1,2,3", value_delimiter = ',')]
        seeds: Vec<u64>,
        #[arg(long, default_value_t = 48)]
        frames: usize,
        /// Frame side in pixels.
        #[arg(long, default_value_t = 256)]
        size: usize,
        #[arg(long, default_value = "-1,-1,1,1", allow_hyphen_values = true)]
        window: inrgan::model::Window,
        #[arg(long, default_value_t = 1.0)]
        psi: f32,
        /// Milliseconds a frame.
        #[arg(long, default_value_t = 40)]
        delay_ms: u16,
        /// Folder of the frames.
        #[arg(long, default_value = "walk")]
        dir: PathBuf,
        /// The animated PNG.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "auto")]
        backend: BackendKind,
    },
    /// Seams of renders of the training square: the mean colour step across each grid's cell
    /// boundaries over the mean step elsewhere (about 1: no seams).
    Seams {
        files: Vec<PathBuf>,
        /// Grids, coarse to fine; each is measured without the boundaries of those before it.
        #[arg(long, default_value = "8,16", value_delimiter = ',')]
        grids: Vec<usize>,
    },
    /// Mean absolute difference between a PNG and the box average of another (e.g. a render
    /// and the same window rendered at --box times the size).
    Compare {
        a: PathBuf,
        b: PathBuf,
        #[arg(long = "box", default_value_t = 1)]
        factor: usize,
    },
    /// Print a model's preset, parameter counts and multiply-adds per image.
    Info {
        #[arg(long)]
        weights: Option<PathBuf>,
        /// `builtin` (the shipped model) or a preset with random weights.
        #[arg(long, default_value = "builtin")]
        preset: String,
    },
}

fn parse_size(s: &str) -> Result<(usize, usize)> {
    let parts: Vec<&str> = s.split(['x', 'X']).collect();
    let n = |t: &str| -> Result<usize> {
        t.trim()
            .parse()
            .with_context(|| format!("bad size {s:?}: expected N or WxH"))
    };
    match parts.as_slice() {
        [a] => Ok((n(a)?, n(a)?)),
        [a, b] => Ok((n(a)?, n(b)?)),
        _ => bail!("bad size {s:?}: expected N or WxH"),
    }
}

fn train_cli(a: &inrgan::engine::TrainArgs) -> Result<()> {
    use inrgan::train::worker::Event;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || {
        eprintln!("\nCtrl-C: saving a checkpoint and stopping...");
        flag.store(true, std::sync::atomic::Ordering::Relaxed);
    })
    .context("installing the Ctrl-C handler")?;
    let (data, metric, warning, images) = inrgan::engine::training_data(a)?;
    if let Some(w) = warning {
        eprintln!("warning: {w}");
    }
    let start = std::time::Instant::now();
    let mut last_swd: Option<f64> = None;
    // Progress in ten-thousandths of the run; the message carries the figures.
    let bar = indicatif::ProgressBar::new(10_000).with_style(
        indicatif::ProgressStyle::with_template("[{bar:24}] {percent:>3}% {msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("#>."),
    );
    // Lines above the bar, printed also when stderr is not a terminal (the bar is hidden then).
    let say = |m: String| bar.suspend(|| eprintln!("{m}"));
    let result = inrgan::engine::train(a, images, data, metric, stop, |ev| match ev {
        Event::Started {
            backend,
            step,
            images,
        } => {
            say(format!(
                "training on {backend}, from step {step} ({images} images)"
            ));
        }
        Event::Step {
            stats,
            img_per_s,
            eta_s,
            progress,
        } => {
            bar.set_position((progress.clamp(0.0, 1.0) * 10_000.0) as u64);
            bar.set_message(format!(
                "{} img  {:.1} img/s  D {:.3} G {:.3}{}{}  ETA {}",
                stats.images,
                img_per_s,
                stats.d_loss,
                stats.g_loss,
                last_swd.map_or(String::new(), |v| format!("  SWD {v:.1}")),
                if stats.aug_p > 0.0 {
                    format!("  aug p {:.2}", stats.aug_p)
                } else {
                    String::new()
                },
                indicatif::HumanDuration(std::time::Duration::from_secs_f64(eta_s.clamp(0.0, 1e9)))
            ));
        }
        Event::Metric { name, value, .. } => {
            last_swd = Some(*value);
            say(format!("{name} = {value:.2}"));
        }
        Event::Checkpoint { path } => say(format!("checkpoint {}", path.display())),
        Event::Samples { path, .. } => log::info!("samples {}", path.display()),
        Event::Warning(w) => say(format!("warning: {w}")),
        Event::Paused(_) | Event::Weights { .. } | Event::Model(_) => {}
        Event::Finished { step, images } => say(format!(
            "finished at step {step}, {images} images, in {:.0}s",
            start.elapsed().as_secs_f64()
        )),
        Event::Failed(e) => say(format!("error: {e}")),
    });
    bar.finish_and_clear();
    result
}

/// A progress bar on stderr (indicatif; hidden when stderr is not a terminal).
fn progress_bar(label: &str) -> impl FnMut(f64) {
    let bar = indicatif::ProgressBar::new(1000).with_style(
        indicatif::ProgressStyle::with_template(
            "{prefix} [{bar:30}] {percent:>3}%  {elapsed} elapsed, ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("#>."),
    );
    bar.set_prefix(label.to_string());
    move |f: f64| {
        bar.set_position((f.clamp(0.0, 1.0) * 1000.0) as u64);
        if f >= 1.0 {
            bar.finish();
        }
    }
}

fn gpu_report() -> Result<()> {
    let opts = inrgan::gpu::GpuOptions::from_env();
    let all = inrgan::gpu::enumerate_adapters(&opts);
    if all.is_empty() {
        println!("no adapters found");
    }
    for (i, a) in all.iter().enumerate() {
        println!("{i}: {a}{}", if a.timestamps { ", timestamps" } else { "" });
    }
    let ctx = inrgan::gpu::GpuContext::with_options(&opts)?;
    let l = ctx.limits();
    println!("\nchosen: {}", ctx.summary());
    println!(
        "limits: storage binding {} MiB, buffer {} MiB, {} storage buffers per stage, \
         workgroup memory {} KiB, {} invocations per workgroup",
        l.max_storage_buffer_binding_size >> 20,
        l.max_buffer_size >> 20,
        l.max_storage_buffers_per_shader_stage,
        l.max_compute_workgroup_storage_size >> 10,
        l.max_compute_invocations_per_workgroup
    );
    if ctx.summary().is_cpu {
        println!("note: this is a software rasteriser; kernels run on the CPU cores");
    }
    Ok(())
}

fn main() -> Result<()> {
    // The built-in model and emoji set travel inside the binary, so a copied, packaged or
    // `cargo install`ed `inrgan` opens them from any folder (inrgan::assets).
    inrgan::assets::register_embedded(inrgan::assets::Embedded {
        model: include_bytes!("../assets/model/emoji.safetensors"),
        emoji_index: include_bytes!("../assets/emoji/index.tsv"),
        emoji_32: include_bytes!("../assets/emoji/noto-emoji-32.png"),
        emoji_64: include_bytes!("../assets/emoji/noto-emoji-64.png"),
    });
    env_logger_init();
    let cli = Cli::parse();
    inrgan::backend::Switches {
        fused: !cli.no_fused,
        profile: cli.profile,
    }
    .set();
    match cli.command.unwrap_or(Command::Gui {
        weights: None,
        backend: BackendKind::auto(),
    }) {
        Command::Gui { weights, backend } => inrgan::app::run_with(inrgan::app::AppOptions {
            weights,
            backend,
            ..Default::default()
        }),
        Command::Gpu => gpu_report(),
        Command::Render {
            weights,
            preset,
            recipe,
            levels,
            grid,
            raw,
            seed,
            psi,
            size,
            window,
            out,
            backend,
            tile,
            supersample,
        } => {
            if let Some(side) = grid {
                if levels.is_some() || raw.is_some() || recipe.is_some() {
                    bail!(
                        "--grid renders every level of the training square for each seed; \
                         --levels, --raw and --recipe are for a single render (drop --grid)"
                    );
                }
                let (size, _) = parse_size(&size)?;
                let source = inrgan::engine::render_grid(
                    weights.as_deref(),
                    &preset,
                    seed,
                    side,
                    size,
                    psi,
                    backend,
                    &out,
                )?;
                println!(
                    "wrote {} ({side}x{side} seeds from {seed}, {source})",
                    out.display()
                );
                return Ok(());
            }
            let args = match recipe {
                Some(from) => {
                    let r = inrgan::engine::read_recipe(&from)?;
                    let m = inrgan::engine::load_model(weights.as_deref(), &preset)?;
                    if m.hash != r.model {
                        bail!(
                            "{} was made with model {}, but {} has hash {}",
                            from.display(),
                            r.model,
                            m.source,
                            m.hash
                        );
                    }
                    let mut a = inrgan::engine::RenderArgs::from_recipe(&r, weights, out.clone());
                    a.preset = preset;
                    a.backend = backend;
                    a.tile = tile;
                    a.raw = raw;
                    if supersample.is_some() {
                        a.supersample = supersample;
                    }
                    a
                }
                None => {
                    let (width, height) = parse_size(&size)?;
                    inrgan::engine::RenderArgs {
                        weights,
                        preset,
                        seed,
                        psi,
                        width,
                        height,
                        window,
                        out: out.clone(),
                        backend,
                        tile,
                        latent: None,
                        levels,
                        raw,
                        supersample,
                    }
                }
            };
            let mut bar = progress_bar("render");
            let source = inrgan::engine::render(&args, |f| {
                bar(f);
                true
            })?;
            if source.contains("random") {
                eprintln!("note: no weights file and no built-in model: rendered {source}");
            }
            println!(
                "wrote {} ({}x{}, {source})",
                out.display(),
                args.width,
                args.height
            );
            Ok(())
        }
        Command::Train(args) => train_cli(&args),
        Command::Eval {
            weights,
            preset,
            data,
            n,
            psi,
            backend,
        } => {
            let r = inrgan::engine::eval(weights.as_deref(), &preset, &data, n, psi, backend)?;
            println!("{r}");
            Ok(())
        }
        Command::EvalHalves {
            data,
            resolution,
            n,
        } => {
            println!("{}", inrgan::engine::eval_halves(&data, resolution, n)?);
            Ok(())
        }
        Command::Ship {
            checkpoint,
            out,
            data,
            f32,
            anchors,
        } => {
            println!(
                "{}",
                inrgan::engine::ship(&checkpoint, &out, &data, !f32, anchors)?
            );
            Ok(())
        }
        Command::Carry { checkpoint, out } => {
            let dest = inrgan::train::checkpoint::carry(&checkpoint, &out)?;
            let size: u64 = std::fs::read_dir(&dest)?
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum();
            println!("wrote {} ({:.1} MB)", dest.display(), size as f64 / 1e6);
            Ok(())
        }
        Command::Walk {
            weights,
            preset,
            seeds,
            frames,
            size,
            window,
            psi,
            delay_ms,
            dir,
            out,
            backend,
        } => {
            let &[a, b, c, d] = seeds.as_slice() else {
                bail!("--seeds takes four seeds (A,B,C,D), got {}", seeds.len());
            };
            let m = inrgan::engine::load_model(weights.as_deref(), &preset)?;
            let spec = inrgan::latent::LatentSpec {
                seeds: [a, b, c, d],
                psi,
                ..Default::default()
            };
            let base = inrgan::engine::RenderArgs {
                weights,
                preset,
                seed: a,
                psi,
                width: size,
                height: size,
                window,
                out: dir.join("frame.png"),
                backend,
                tile: 256,
                latent: None,
                levels: None,
                raw: None,
                supersample: None,
            };
            let mut bar = progress_bar("walk");
            let what =
                inrgan::engine::walk(&m, &base, &spec, frames, &dir, Some(&out), delay_ms, |f| {
                    bar(f);
                    true
                })?;
            println!("{what}");
            Ok(())
        }
        Command::Seams { files, grids } => {
            print!("{}", inrgan::engine::seams_report(&files, &grids)?);
            Ok(())
        }
        Command::Compare { a, b, factor } => {
            println!("{}", inrgan::engine::compare_report(&a, &b, factor)?);
            Ok(())
        }
        Command::Info { weights, preset } => {
            print!("{}", inrgan::engine::info(weights.as_deref(), &preset)?);
            Ok(())
        }
    }
}

/// Logs at warn level and above unless `RUST_LOG` says otherwise (errors from wgpu's uncaptured
/// handler must reach the terminal).
fn env_logger_init() {
    struct Stderr;
    impl log::Log for Stderr {
        fn enabled(&self, m: &log::Metadata) -> bool {
            m.level() <= log::max_level()
        }
        fn log(&self, r: &log::Record) {
            if self.enabled(r.metadata()) && r.target().starts_with("inrgan") {
                eprintln!("[{}] {}", r.level(), r.args());
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: Stderr = Stderr;
    let level = match std::env::var("RUST_LOG").as_deref() {
        Ok("debug") => log::LevelFilter::Debug,
        Ok("info") => log::LevelFilter::Info,
        Ok("trace") => log::LevelFilter::Trace,
        _ => log::LevelFilter::Warn,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}
