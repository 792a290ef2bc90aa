//! The engine: what the CLI's commands and the window both call. Loading a model (a file, the
//! built-in one or a preset), rendering at any size in tiles with its recipe, training with
//! resume, evaluation, shipping, and the seam and comparison reports; with their input checks, so
//! a bad value is an error that says what was wrong, wherever it came from.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::backend::{Backend, BackendKind};
use crate::latent::LatentSpec;
use crate::model::Window;
use crate::model::config::ModelConfig;
use crate::model::generator::{Generator, MAX_SUPERSAMPLE};
use crate::model::params::ParamSet;
use crate::model::weights;
use crate::reference::image::quantize;
use crate::train::augment::{AugmentConfig, AugmentMode};

/// Where the built-in model's weights live, relative to the crate root.
pub const BUILTIN_WEIGHTS: &str = "assets/model/emoji.safetensors";

/// Where the built-in weights are found ([`crate::assets`]), if anywhere.
pub fn builtin_weights() -> Option<crate::assets::Origin> {
    crate::assets::locate(crate::assets::Asset::Model)
}

/// A generator and its weights on the host, from a file, the built-in model or a preset.
pub struct LoadedModel {
    pub generator: Generator,
    pub values: Vec<Vec<f32>>,
    /// What was loaded, for messages ("weights FILE", "preset NAME, random weights").
    pub source: String,
    pub hash: String,
    /// Facts stored with the weights (images trained on, data set, SWD), if any.
    pub facts: Vec<(String, String)>,
}

/// The fact naming the seeds the explorer's anchors A–D start on for a model (`ship --anchors`):
/// a good first sample belongs to the model, not to the app.
pub const ANCHORS_FACT: &str = "anchors";
/// The anchors of a model without an [`ANCHORS_FACT`].
pub const DEFAULT_ANCHORS: [u64; 4] = [0, 1, 2, 3];

impl LoadedModel {
    /// The seeds the explorer opens on for this model: its [`ANCHORS_FACT`] when it holds four
    /// valid seeds, else [`DEFAULT_ANCHORS`].
    pub fn anchors(&self) -> [u64; 4] {
        self.facts
            .iter()
            .find(|(k, _)| k == ANCHORS_FACT)
            .and_then(|(_, v)| parse_anchors(v).ok())
            .unwrap_or(DEFAULT_ANCHORS)
    }
}

/// Four seeds `A,B,C,D` (each at most 2³² − 1, the explorer's seed range).
pub fn parse_anchors(s: &str) -> Result<[u64; 4]> {
    let seeds = s
        .split(',')
        .map(|t| t.trim().parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("anchors {s:?}: {e}; expected four seeds A,B,C,D"))?;
    let a: [u64; 4] = seeds.try_into().map_err(|v: Vec<u64>| {
        anyhow::anyhow!("anchors {s:?}: {} seeds; expected four, A,B,C,D", v.len())
    })?;
    if let Some(x) = a.iter().find(|&&x| x > u32::MAX as u64) {
        anyhow::bail!("anchors {s:?}: seed {x} is past {}", u32::MAX);
    }
    Ok(a)
}

/// The preset name that means "the built-in trained model" (random emoji32 weights where a
/// build does not ship it).
pub const BUILTIN: &str = "builtin";

/// Loads `weights`; else, for the preset [`BUILTIN`], the built-in model; else a randomly
/// initialised `preset` (seed 0).
pub fn load_model(weights: Option<&Path>, preset: &str) -> Result<LoadedModel> {
    if weights.is_none() && preset == BUILTIN && builtin_weights().is_some() {
        let (bytes, origin) =
            crate::assets::read(crate::assets::Asset::Model).map_err(anyhow::Error::msg)?;
        let label = PathBuf::from(BUILTIN_WEIGHTS);
        let (cfg, _, values) =
            weights::load_bytes(&label, &bytes, |c| Generator::new(c).specs().to_vec())?;
        return Ok(LoadedModel {
            generator: Generator::new(&cfg),
            values,
            source: match &origin {
                crate::assets::Origin::File(p) => format!("weights {}", p.display()),
                crate::assets::Origin::Embedded => "the built-in model (embedded)".to_string(),
            },
            hash: weights::bytes_hash(&bytes),
            facts: weights::read_facts_bytes(&label, &bytes)?,
        });
    }
    let path = weights.map(Path::to_path_buf);
    let preset = if preset == BUILTIN { "emoji32" } else { preset };
    if let Some(path) = path {
        let (cfg, _, values) = weights::load(&path, |c| Generator::new(c).specs().to_vec())?;
        return Ok(LoadedModel {
            generator: Generator::new(&cfg),
            values,
            source: format!("weights {}", path.display()),
            hash: weights::file_hash(&path)?,
            facts: weights::read_facts(&path)?,
        });
    }
    let cfg = ModelConfig::preset(preset)?;
    let generator = Generator::new(&cfg);
    let mut rng = crate::rng::Rng::new(0);
    let values = generator
        .specs()
        .iter()
        .map(|s| s.initial(&mut rng))
        .collect();
    Ok(LoadedModel {
        generator,
        values,
        source: format!("preset {preset} with random (untrained) weights"),
        hash: format!("random-{preset}"),
        facts: Vec::new(),
    })
}

/// The largest side of a render (`render`, exports): PNG allows 2³¹, but a strip of 256 rows of
/// a wider image would not fit in memory.
pub const MAX_SIDE: usize = 65_536;
/// The largest tile side.
pub const MAX_TILE: usize = 4096;
/// The most seeds a grid has a side, and its largest side in pixels (a grid is made in memory).
pub const MAX_GRID: usize = 64;
pub const MAX_GRID_SIDE: usize = 8192;

/// Truncation ψ must be finite and reasonable (ψ = 1: none; beyond ±100 the latent leaves
/// anything the mapping network has seen).
pub fn check_psi(psi: f32) -> Result<()> {
    if !psi.is_finite() || psi.abs() > 100.0 {
        bail!("ψ (--psi) must be a finite number between -100 and 100, not {psi}");
    }
    Ok(())
}

/// PNG text keyword of the render recipe (RON).
pub const RECIPE_KEY: &str = "inrgan.recipe";

/// How an exported image was made: enough to render it again.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Recipe {
    /// Hash of the weights file (or `random-PRESET`).
    pub model: String,
    pub seed: u64,
    pub psi: f32,
    pub width: usize,
    pub height: usize,
    /// Written as x0, y0, x1, y1.
    pub window: Window,
    /// The explorer's latent (anchors, interpolation, mixing); when present it replaces `seed`
    /// and `psi`.
    #[serde(default)]
    pub latent: Option<LatentSpec>,
    /// Scale levels evaluated (the early exit); `None`: all.
    #[serde(default)]
    pub levels: Option<usize>,
    /// Samples per pixel side averaged (anti-aliased zoom-out); `None` in recipes written
    /// before it existed, which were single-sampled.
    #[serde(default)]
    pub supersample: Option<usize>,
}

/// The recipe stored in a PNG written by [`render`].
pub fn read_recipe(path: &Path) -> Result<Recipe> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let dec = png::Decoder::new(std::io::BufReader::new(file));
    let reader = dec
        .read_info()
        .with_context(|| format!("reading {}", path.display()))?;
    let text = reader
        .info()
        .uncompressed_latin1_text
        .iter()
        .find(|t| t.keyword == RECIPE_KEY)
        .map(|t| t.text.clone())
        .with_context(|| format!("{} has no {RECIPE_KEY} text chunk", path.display()))?;
    ron::from_str(&text).with_context(|| format!("{}: bad recipe {text:?}", path.display()))
}

/// What `inrgan render` draws.
#[derive(Clone, Debug)]
pub struct RenderArgs {
    pub weights: Option<PathBuf>,
    pub preset: String,
    pub seed: u64,
    pub psi: f32,
    pub width: usize,
    pub height: usize,
    pub window: Window,
    pub out: PathBuf,
    pub backend: BackendKind,
    pub tile: usize,
    /// The explorer's latent; replaces `seed` and `psi` when given.
    pub latent: Option<LatentSpec>,
    /// Scale levels evaluated (`None`: all).
    pub levels: Option<usize>,
    /// Also write the image before quantisation: little-endian f32, planar RGB `[3, H, W]`,
    /// rows top-down, no header (for float-level comparisons such as `tools/peer`).
    pub raw: Option<PathBuf>,
    /// Samples per pixel side averaged; `None`: as many as the zoom needs
    /// ([`Generator::supersampling`], at most [`MAX_SUPERSAMPLE`]).
    pub supersample: Option<usize>,
}

impl RenderArgs {
    /// The arguments that make `recipe` again into `out`.
    pub fn from_recipe(r: &Recipe, weights: Option<PathBuf>, out: PathBuf) -> Self {
        Self {
            weights,
            preset: BUILTIN.into(),
            seed: r.seed,
            psi: r.psi,
            width: r.width,
            height: r.height,
            window: r.window,
            out,
            backend: BackendKind::auto(),
            tile: 256,
            latent: r.latent.clone(),
            levels: r.levels,
            raw: None,
            supersample: Some(r.supersample.unwrap_or(1)),
        }
    }
}

/// The render was cancelled by its progress callback.
#[derive(Debug, thiserror::Error)]
#[error("cancelled")]
pub struct Cancelled;

/// Renders to a PNG, streaming strips of tiles so that memory stays bounded at any size.
/// `progress(fraction)` returns false to cancel (the partial file is removed).
pub fn render(a: &RenderArgs, progress: impl FnMut(f64) -> bool) -> Result<String> {
    let m = load_model(a.weights.as_deref(), &a.preset)?;
    render_model(&m, a, progress)?;
    Ok(m.source)
}

/// [`render`] with a model already in memory (`a.weights` and `a.preset` are not read).
pub fn render_model(
    m: &LoadedModel,
    a: &RenderArgs,
    mut progress: impl FnMut(f64) -> bool,
) -> Result<()> {
    crate::with_backend!(a.backend, |be| render_with(
        be,
        m,
        a,
        a.window,
        &mut progress
    ))
}

fn render_with<B: Backend>(
    be: &mut B,
    m: &LoadedModel,
    a: &RenderArgs,
    win: Window,
    progress: &mut impl FnMut(f64) -> bool,
) -> Result<()> {
    let g = &m.generator;
    let (width, height) = (a.width, a.height);
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        bail!("the output size must be 1 to {MAX_SIDE} pixels a side, not {width}x{height}");
    }
    if a.tile == 0 || a.tile > MAX_TILE {
        bail!("--tile must be 1 to {MAX_TILE} pixels, not {}", a.tile);
    }
    check_psi(a.latent.as_ref().map_or(a.psi, |l| l.psi))?;
    let levels = a.levels.unwrap_or(g.cfg.levels.len());
    if levels == 0 || levels > g.cfg.levels.len() {
        bail!(
            "{levels} scale levels asked of a model with {}",
            g.cfg.levels.len()
        );
    }
    let ss = match a.supersample {
        Some(n) if (1..=64).contains(&n) => n,
        Some(n) => bail!("--supersample {n}: give 1 (off) to 64 samples per pixel side"),
        None => g.supersampling(win, width, height, MAX_SUPERSAMPLE),
    };
    let p = ParamSet::from_host(be, g.specs(), &m.values)?;
    let spec = a
        .latent
        .clone()
        .unwrap_or_else(|| LatentSpec::seed(a.seed, a.psi));
    let ws = spec.level_ws(g, be, &p)?;
    let tmp = a.out.with_extension("png.tmp");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let result = (|| -> Result<()> {
        let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let recipe = Recipe {
            model: m.hash.clone(),
            seed: a.seed,
            psi: spec.psi,
            width,
            height,
            window: a.window,
            latent: a.latent.clone(),
            levels: a.levels,
            supersample: Some(ss),
        };
        let text = ron::to_string(&recipe).context("serialising the recipe")?;
        enc.add_text_chunk(RECIPE_KEY.into(), text)?;
        enc.add_text_chunk("inrgan.model".into(), m.hash.clone())?;
        let mut writer = enc.write_header()?;
        let mut stream = writer.stream_writer()?;
        // A tile's samples stay about tile² however many a pixel takes.
        let tile = (a.tile.max(16) / ss).max(8);
        let mut strip = vec![0u8; width * tile * 4];
        let mut raw = match &a.raw {
            Some(_) if 3 * width * height > 1 << 28 => {
                bail!("--raw is for images of at most 2^28 values ({width}x{height} is larger)")
            }
            Some(_) => vec![0f32; 3 * width * height],
            None => Vec::new(),
        };
        let total = width.div_ceil(tile) * height.div_ceil(tile);
        let mut done = 0;
        for r0 in (0..height).step_by(tile) {
            let rows = tile.min(height - r0);
            for c0 in (0..width).step_by(tile) {
                let cols = tile.min(width - c0);
                let rgb = g.render_tile_levels(
                    be,
                    &p,
                    &ws,
                    win,
                    width,
                    height,
                    c0..c0 + cols,
                    r0..r0 + rows,
                    levels,
                    ss,
                )?;
                let n = cols * rows;
                if let Some(bad) = rgb.iter().position(|v| !v.is_finite()) {
                    bail!(
                        "the render is not finite (pixel {} of tile ({c0}, {r0})): the weights or \
                         the latent (ψ {}) give NaN or infinity; nothing was written",
                        bad % n,
                        spec.psi
                    );
                }
                for y in 0..rows {
                    for x in 0..cols {
                        let o = (y * width + c0 + x) * 4;
                        for c in 0..3 {
                            let v = rgb[c * n + y * cols + x];
                            strip[o + c] = quantize(v);
                            if !raw.is_empty() {
                                raw[c * width * height + (r0 + y) * width + c0 + x] = v;
                            }
                        }
                        strip[o + 3] = 255;
                    }
                }
                done += 1;
                if !progress(done as f64 / total as f64) {
                    return Err(Cancelled.into());
                }
            }
            stream.write_all(&strip[..rows * width * 4])?;
        }
        stream.finish()?;
        if let Some(path) = &a.raw {
            let bytes: Vec<u8> = raw.iter().flat_map(|v| v.to_le_bytes()).collect();
            weights::write_atomic(path, &bytes)?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => {
            std::fs::rename(&tmp, &a.out).with_context(|| format!("writing {}", a.out.display()))
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e).with_context(|| format!("rendering {}", a.out.display()))
        }
    }
}

/// A grid PNG of the training square for seeds `first..first + side²`, each `size` pixels.
#[allow(clippy::too_many_arguments)]
pub fn render_grid(
    weights: Option<&Path>,
    preset: &str,
    first: u64,
    side: usize,
    size: usize,
    psi: f32,
    backend: BackendKind,
    out: &Path,
) -> Result<String> {
    if side == 0 || side > MAX_GRID || size == 0 || side * size > MAX_GRID_SIDE {
        bail!(
            "a grid is 1 to {MAX_GRID} seeds a side of 1 pixel or more, at most {MAX_GRID_SIDE} \
             pixels a side in all (asked: {side} x {size})"
        );
    }
    check_psi(psi)?;
    let m = load_model(weights, preset)?;
    let latents: Vec<LatentSpec> = (0..(side * side) as u64)
        .map(|i| LatentSpec::seed(first + i, psi))
        .collect();
    let planar = crate::with_backend!(backend, |be| render_latents(be, &m, &latents, size)?);
    if planar.iter().any(|v| !v.is_finite()) {
        bail!(
            "the grid is not finite: the weights or ψ {psi} give NaN or infinity; nothing was written"
        );
    }
    let (w, h, rgba) = crate::png_io::grid(&planar, latents.len(), size, size, side);
    let text = vec![(
        "inrgan.grid",
        format!(
            "model {} seeds {first}..{} psi {psi} size {size}",
            m.hash,
            first + (side * side) as u64 - 1
        ),
    )];
    crate::png_io::write_rgba(out, w, h, &rgba, &text)?;
    Ok(m.source)
}

/// Planar RGB `[n, 3, size, size]` of the training square for `n` latents (a seed grid or the
/// frames of a walk), on the host.
pub fn render_latents<B: Backend>(
    be: &mut B,
    m: &LoadedModel,
    latents: &[LatentSpec],
    size: usize,
) -> Result<Vec<f32>> {
    let g = &m.generator;
    let p = ParamSet::from_host(be, g.specs(), &m.values)?;
    let plan = g.window_plan(crate::model::generator::Window::TRAINING, size, size)?;
    let mut out = Vec::with_capacity(latents.len() * 3 * size * size);
    for l in latents {
        let ws = l.level_ws(g, be, &p)?;
        out.extend(g.render_plan_levels(be, &p, &ws, &plan)?);
    }
    Ok(out)
}

/// `inrgan info`: preset, parameter counts per part, multiply-adds per image.
pub fn info(weights: Option<&Path>, preset: &str) -> Result<String> {
    let m = load_model(weights, preset)?;
    let g = &m.generator;
    let (map, fmm, rgb) = g.param_counts();
    let (px, hyper) = g.macs_per_image();
    let c = &g.cfg;
    let mut s = String::new();
    use std::fmt::Write as _;
    writeln!(s, "model:      {} ({})", c.name, m.source)?;
    writeln!(s, "hash:       {}", m.hash)?;
    writeln!(
        s,
        "resolution: {}² (levels {})",
        c.resolution,
        c.levels
            .iter()
            .map(|l| format!("{}²×{}", l.res, l.widths.len()))
            .collect::<Vec<_>>()
            .join(", ")
    )?;
    writeln!(
        s,
        "latent:     z {} → w {} ({} mapping layers), FMM rank {}",
        c.z_dim, c.w_dim, c.mapping_layers, c.rank
    )?;
    writeln!(
        s,
        "parameters: {} total: mapping {map}, FMM layers + affines {fmm}, toRGB {rgb}",
        map + fmm + rgb
    )?;
    writeln!(
        s,
        "per image at {}²: {:.1} M multiply-adds per pixel MLP, {:.1} M in the hypernetwork",
        c.resolution,
        px as f64 / 1e6,
        hyper as f64 / 1e6
    )?;
    writeln!(s, "model hash: {}", m.hash)?;
    Ok(s)
}

/// What `inrgan train` runs (also its command line).
#[derive(Clone, Debug, clap::Args)]
pub struct TrainArgs {
    /// emoji, emoji:CATEGORY, or a path to a folder or .zip of images.
    #[arg(long, default_value = "emoji")]
    pub data: String,
    /// A built-in preset (tiny, emoji32, emoji32-smooth, emoji64, paper256) or a model config
    /// file (`.ron`; the presets' texts are in assets/presets/). With --resume, the checkpoint's
    /// model goes on (a different preset is a warning).
    #[arg(long, default_value = "emoji32-smooth")]
    pub preset: String,
    /// Run folder (checkpoints, metrics.jsonl, sample grids).
    #[arg(long)]
    pub out: PathBuf,
    /// Length in thousands of images shown to D.
    #[arg(long, default_value_t = 100.0)]
    pub kimg: f64,
    #[arg(long)]
    pub resume: bool,
    #[arg(long, default_value_t = 32)]
    pub batch: usize,
    #[arg(long, default_value_t = 0.0025)]
    pub lr_g: f64,
    #[arg(long, default_value_t = 0.0025)]
    pub lr_d: f64,
    /// R1 weight gamma.
    #[arg(long, default_value_t = 1.0)]
    pub gamma: f32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// cpu, gpu, or auto.
    #[arg(long, default_value = "auto")]
    pub backend: BackendKind,
    /// Checkpoint and SWD interval in kimg.
    #[arg(long, default_value_t = 10.0)]
    pub checkpoint_kimg: f64,
    /// Sample grid interval in steps.
    #[arg(long, default_value_t = 200)]
    pub sample_every: u64,
    /// Turn off x-flip augmentation.
    #[arg(long)]
    pub no_mirror: bool,
    /// Differentiable augmentation of what D sees: none, fixed (DiffAugment: colour,
    /// translation, cutout on every image) or adaptive (ADA's probability). Default: fixed
    /// for data sets under 10,000 images, none above; on --resume, the checkpoint's unless
    /// given.
    #[arg(long)]
    pub augment: Option<AugmentMode>,
    /// Side of the augmentation's cut square as a fraction of the image side, 0 to leave
    /// cutout out (DiffAugment's `color,translation`, the policy for a few thousand images).
    /// Default 0.5. With --resume, it and --augment replace the checkpoint's augmentation.
    #[arg(long)]
    pub cutout: Option<f64>,
}

/// Runs a training to its end (or until `stop` is set, e.g. by Ctrl-C), printing progress
/// through `on_event`.
pub fn train(
    a: &TrainArgs,
    images: usize,
    data: crate::train::worker::BatchSource,
    metric: Option<crate::train::worker::Metric>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    mut on_event: impl FnMut(&crate::train::worker::Event),
) -> Result<()> {
    use crate::train::worker::{Command, Event, spawn};
    let run = run_config(a, images)?;
    let w = spawn(run, data, metric);
    let mut stopping = false;
    loop {
        if stop.load(std::sync::atomic::Ordering::Relaxed) && !stopping {
            stopping = true;
            let _ = w.commands.send(Command::Stop);
        }
        match w.events.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(ev) => {
                on_event(&ev);
                match ev {
                    Event::Finished { .. } => break,
                    Event::Failed(e) => {
                        let _ = w.handle.join();
                        bail!("training failed: {e}");
                    }
                    _ => {}
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let _ = w.handle.join();
    Ok(())
}

/// The worker's configuration for `a` on a data set of `images` images (shared by `inrgan
/// train` and the window).
pub fn run_config(a: &TrainArgs, images: usize) -> Result<crate::train::worker::RunConfig> {
    let model = ModelConfig::preset(&a.preset)?;
    let mut augment = match a.augment {
        Some(mode) => AugmentConfig::with_mode(mode),
        None => AugmentConfig::default_for(images),
    };
    if let Some(c) = a.cutout {
        augment.cutout = c;
    }
    augment.validate().map_err(|e| anyhow::anyhow!(e))?;
    let explicit = (a.augment.is_some() || a.cutout.is_some()).then(|| augment.clone());
    Ok(crate::train::worker::RunConfig {
        out: a.out.clone(),
        model,
        train: crate::train::TrainConfig {
            batch: a.batch,
            lr_g: a.lr_g,
            lr_d: a.lr_d,
            r1_gamma: a.gamma,
            seed: a.seed,
            augment,
            ..Default::default()
        },
        augment: explicit,
        backend: a.backend,
        kimg: a.kimg,
        checkpoint_kimg: a.checkpoint_kimg,
        sample_every: a.sample_every,
        keep: 3,
        resume: a.resume,
        sample_seeds: (0..16).collect(),
        metric_samples: 256,
    })
}

/// Real images used by the training metric and `eval`: `n` images of `ds` in a fixed order.
fn real_subset(ds: &crate::data::Dataset, n: usize, seed: u64) -> Vec<f32> {
    let order = crate::data::epoch_order(ds.len(), seed, 0);
    order
        .iter()
        .take(n)
        .flat_map(|&i| ds.image(i).to_vec())
        .collect()
}

/// The data source, the SWD metric and a load warning for a training run. On `--resume` the
/// data sequence continues where the newest checkpoint left it (the batcher's position is a
/// function of the images consumed).
pub fn training_data(
    a: &TrainArgs,
) -> Result<(
    crate::train::worker::BatchSource,
    Option<crate::train::worker::Metric>,
    Option<String>,
    usize,
)> {
    use crate::data::{Batcher, BatcherState};
    let model = ModelConfig::preset(&a.preset)?;
    let r = model.resolution;
    let (ds, report) = crate::data::Dataset::open(&a.data, r)?;
    let warning = report.warning(5);
    let ds = std::sync::Arc::new(ds);
    let n = ds.len();
    let mut state = BatcherState::new(a.seed);
    if a.resume
        && let Some(ck) = crate::train::worker::latest_checkpoint(&a.out)
    {
        let text = std::fs::read_to_string(ck.join("state.ron"))?;
        let st: crate::train::checkpoint::TrainState = ron::from_str(&text)?;
        state.epoch = st.images / n as u64;
        state.position = (st.images % n as u64) as usize;
    }
    let mut batcher = Batcher::resume(ds.clone(), a.batch, !a.no_mirror, state)?;
    let source: crate::train::worker::BatchSource = Box::new(move || {
        batcher
            .next_batch()
            .map(|b| b.images)
            .map_err(|e| e.to_string())
    });
    let reals = crate::metrics::swd::to_u8_range(&real_subset(&ds, 256.min(n), 99));
    let n_real = 256.min(n);
    let metric: crate::train::worker::Metric = Box::new(move |fakes, count| {
        let k = count.min(n_real);
        let per = 3 * r * r;
        let fake = crate::metrics::swd::to_u8_range(&fakes[..k * per]);
        let res = crate::metrics::swd::swd(&reals[..k * per], &fake, k, r, 7)
            .map_err(|e| e.to_string())?;
        Ok(("swd_x1e3".to_string(), res.avg))
    });
    Ok((source, Some(metric), warning, n))
}

/// The floor of the metric: the SWD between two disjoint halves of `data` (`n` images each, at
/// most half the set), measured exactly as [`eval`] measures a model.
pub fn eval_halves(data: &str, resolution: usize, n: usize) -> Result<String> {
    let (ds, _) = crate::data::Dataset::open(data, resolution)?;
    let n = n.min(ds.len() / 2);
    if n == 0 {
        bail!("{data} has too few images for two halves");
    }
    let order = crate::data::epoch_order(ds.len(), 99, 0);
    let half = |part: &[usize]| -> Vec<f32> {
        part.iter()
            .take(n)
            .flat_map(|&i| ds.image(i).to_vec())
            .collect()
    };
    let a = crate::metrics::swd::to_u8_range(&half(&order[..n]));
    let b = crate::metrics::swd::to_u8_range(&half(&order[n..]));
    let res = crate::metrics::swd::swd(&a, &b, n, resolution, 7)?;
    Ok(format!(
        "two disjoint halves of {data} ({n} vs {n} images)\n{res}"
    ))
}

/// `inrgan ship`: the EMA generator of a checkpoint as a standalone weights file (half floats
/// when `half`), with facts: images trained on, the data set, the checkpoint's last metric, and
/// the seeds the explorer opens on (`anchors`, when given).
pub fn ship(
    checkpoint: &Path,
    out: &Path,
    data: &str,
    half: bool,
    anchors: Option<[u64; 4]>,
) -> Result<String> {
    let src = checkpoint.join("g_ema.safetensors");
    let (cfg, specs, values) = weights::load(&src, |c| Generator::new(c).specs().to_vec())?;
    let state_path = checkpoint.join("state.ron");
    let text = std::fs::read_to_string(&state_path)
        .with_context(|| format!("reading {}", state_path.display()))?;
    let st: crate::train::checkpoint::TrainState =
        ron::from_str(&text).with_context(|| format!("parsing {}", state_path.display()))?;
    let mut facts = vec![
        ("images trained".to_string(), st.images.to_string()),
        ("steps".to_string(), st.step.to_string()),
        ("data".to_string(), data.to_string()),
    ];
    if let Some((_, name, v)) = st.history.last() {
        facts.push((name.clone(), format!("{v:.2}")));
    }
    if let Some(a) = anchors {
        let text = a.map(|s| s.to_string()).join(",");
        facts.push((ANCHORS_FACT.to_string(), text));
    }
    weights::save_as(out, &cfg, &specs, &values, &facts, half)?;
    let size = std::fs::metadata(out).map(|m| m.len()).unwrap_or(0);
    Ok(format!(
        "wrote {} ({:.1} MB, {}, {} images trained)",
        out.display(),
        size as f64 / 1e6,
        if half { "f16" } else { "f32" },
        st.images
    ))
}

/// `inrgan eval`: the SWD between `n` samples of the model and `n` images of `data`.
pub fn eval(
    weights: Option<&Path>,
    preset: &str,
    data: &str,
    n: usize,
    psi: f32,
    backend: BackendKind,
) -> Result<String> {
    let m = load_model(weights, preset)?;
    let g = &m.generator;
    let r = g.cfg.resolution;
    let (ds, report) = crate::data::Dataset::open(data, r)?;
    if let Some(w) = report.warning(5) {
        eprintln!("warning: {w}");
    }
    let n = n.min(ds.len());
    let seeds: Vec<u64> = (0..n as u64).map(|i| 1_000_000 + i).collect();
    let fakes = crate::with_backend!(backend, |be| samples_with(be, &m, &seeds, psi)?);
    let reals = crate::metrics::swd::to_u8_range(&real_subset(&ds, n, 99));
    let fakes = crate::metrics::swd::to_u8_range(&fakes);
    let res = crate::metrics::swd::swd(&reals, &fakes, n, r, 7)?;
    Ok(format!(
        "{} ({} vs {n} images of {data})\n{res}",
        m.source, n
    ))
}

fn samples_with<B: Backend>(
    be: &mut B,
    m: &LoadedModel,
    seeds: &[u64],
    psi: f32,
) -> Result<Vec<f32>> {
    let g = &m.generator;
    let p = ParamSet::from_host(be, g.specs(), &m.values)?;
    let plan = g.training_plan();
    let mut out = Vec::new();
    for chunk in seeds.chunks(32) {
        let z: Vec<f32> = chunk.iter().flat_map(|&s| g.latent(s)).collect();
        let w = g.map_truncated(be, &p, &z, chunk.len(), psi)?;
        out.extend(g.render_plan(be, &p, &w, chunk.len(), &plan)?);
    }
    Ok(out)
}

/// An 8-bit PNG as (width, height, RGB bytes), any colour type the `image` crate reads.
fn read_rgb8(path: &Path) -> Result<(usize, usize, Vec<u8>)> {
    let img = image::open(path)
        .with_context(|| format!("reading {}", path.display()))?
        .to_rgb8();
    Ok((img.width() as usize, img.height() as usize, img.into_raw()))
}

/// `inrgan seams`: for a render of the training square, the step across each grid's cell
/// boundaries against the step elsewhere (each grid without the boundaries of the coarser
/// ones), one line per file.
pub fn seams_report(files: &[PathBuf], grids: &[usize]) -> Result<String> {
    let mut out = String::new();
    for f in files {
        let (w, h, px) = read_rgb8(f)?;
        let mut line = format!("{}:", f.display());
        for (i, &g) in grids.iter().enumerate() {
            if g == 0 || g > w.min(h) {
                bail!("grid {g} does not fit a {w}x{h} image");
            }
            let s = crate::metrics::seams::seams_u8(&px, 3, w, h, g, &grids[..i]);
            line += &format!(
                "  {g}x{g}: {:.2} (boundary {:.2}, elsewhere {:.2})",
                s.ratio, s.boundary, s.elsewhere
            );
        }
        out += &line;
        out.push('\n');
    }
    Ok(out)
}

/// `inrgan compare`: the mean absolute difference (of 255) between `a` and `b` after `b` is
/// box-averaged by `factor` (so `b` may be a render of the same window at `factor` times the
/// size), and the largest.
pub fn compare_report(a: &Path, b: &Path, factor: usize) -> Result<String> {
    let (wa, ha, pa) = read_rgb8(a)?;
    let (wb, hb, pb) = read_rgb8(b)?;
    let f = factor.max(1);
    if wb != wa * f || hb != ha * f {
        bail!(
            "{} is {wb}x{hb}, not {f} times {} ({wa}x{ha})",
            b.display(),
            a.display()
        );
    }
    // Planar floats of b, box-averaged.
    let nb = wb * hb;
    let mut planar = vec![0f32; 3 * nb];
    for (i, px) in pb.chunks_exact(3).enumerate() {
        for c in 0..3 {
            planar[c * nb + i] = px[c] as f32;
        }
    }
    let avg = crate::model::generator::box_average(&planar, 3, wa, ha, f);
    let na = wa * ha;
    let (mut sum, mut max) = (0.0f64, 0.0f64);
    for (i, px) in pa.chunks_exact(3).enumerate() {
        for c in 0..3 {
            let d = (px[c] as f64 - avg[c * na + i] as f64).abs();
            sum += d;
            max = max.max(d);
        }
    }
    Ok(format!(
        "mean |difference| {:.3} of 255 (largest {max:.1}) between {} and the {f}x{f} box average of {}",
        sum / (3 * na) as f64,
        a.display(),
        b.display()
    ))
}

/// The walk through the four anchors of `spec` (`latent::loop_uv`): `frames` PNGs
/// `frame-NNNN.png` in `dir` (each with its recipe), rendered with `base`'s model, window, size
/// and backend, then, when `apng` is given, one looping animated PNG of them (`delay_ms` a
/// frame). `progress(fraction)` returns false to cancel.
#[allow(clippy::too_many_arguments)]
pub fn walk(
    m: &LoadedModel,
    base: &RenderArgs,
    spec: &LatentSpec,
    frames: usize,
    dir: &Path,
    apng: Option<&Path>,
    delay_ms: u16,
    mut progress: impl FnMut(f64) -> bool,
) -> Result<String> {
    if frames == 0 || frames > 10_000 {
        bail!("a walk has 1 to 10,000 frames, not {frames}");
    }
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let frame_path = |f: usize| dir.join(format!("frame-{f:04}.png"));
    for f in 0..frames {
        let mut l = spec.clone();
        l.uv = crate::latent::loop_uv(f as f64 / frames as f64);
        let args = RenderArgs {
            seed: l.seeds[0],
            psi: l.psi,
            out: frame_path(f),
            latent: Some(l),
            ..base.clone()
        };
        render_model(m, &args, |_| true)?;
        if !progress((f + 1) as f64 / (frames + apng.is_some() as usize) as f64) {
            return Err(Cancelled.into());
        }
    }
    let mut what = format!("wrote {frames} frames to {}", dir.display());
    if let Some(out) = apng {
        crate::png_io::write_apng(out, base.width, base.height, frames, delay_ms, |f| {
            image::open(frame_path(f))
                .map(|i| i.to_rgba8().into_raw())
                .map_err(|e| format!("{}: {e}", frame_path(f).display()))
        })?;
        what += &format!(" and the animation {}", out.display());
        progress(1.0);
    }
    Ok(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn train_args(extra: &[&str]) -> TrainArgs {
        #[derive(clap::Parser)]
        struct W {
            #[command(flatten)]
            a: TrainArgs,
        }
        use clap::Parser;
        let argv = ["inrgan", "--out", "runs/x"].iter().chain(extra);
        W::try_parse_from(argv).unwrap().a
    }

    #[test]
    fn cutout_and_augment_set_the_runs_augmentation() {
        use crate::train::augment::AugmentMode;
        // Nothing given: the data set's default, which a resume does not override.
        let run = run_config(&train_args(&[]), 100).unwrap();
        assert_eq!(run.train.augment.mode, AugmentMode::Fixed);
        assert_eq!(run.train.augment.cutout, 0.5);
        assert!(run.augment.is_none());
        // --cutout 0: colour and translation only, and it replaces a resumed run's.
        let run = run_config(&train_args(&["--augment", "fixed", "--cutout", "0"]), 100).unwrap();
        assert_eq!(run.train.augment.cutout, 0.0);
        assert_eq!(run.augment.as_ref().map(|a| a.cutout), Some(0.0));
        let run = run_config(&train_args(&["--cutout", "0.25"]), 100_000).unwrap();
        assert_eq!(run.train.augment.mode, AugmentMode::None);
        assert_eq!(run.augment.map(|a| a.cutout), Some(0.25));
        for bad in ["--cutout=1.5", "--cutout=-0.1", "--cutout=NaN"] {
            let e = run_config(&train_args(&[bad]), 100)
                .err()
                .expect("refused")
                .to_string();
            assert!(e.contains("cutout"), "{bad}: {e}");
        }
    }

    #[test]
    fn anchors_parse_four_seeds_in_range() {
        assert_eq!(parse_anchors("3, 1,2 ,5").unwrap(), [3, 1, 2, 5]);
        assert_eq!(
            parse_anchors("4294967295,0,0,0").unwrap(),
            [u32::MAX as u64, 0, 0, 0]
        );
        for bad in [
            "1,2,3",
            "1,2,3,4,5",
            "a,b,c,d",
            "1,2,3,4294967296",
            "",
            "1,,2,3",
        ] {
            let e = parse_anchors(bad).unwrap_err().to_string();
            assert!(e.contains("anchors"), "{bad:?}: {e}");
        }
    }

    #[test]
    fn a_model_without_a_valid_anchors_fact_opens_on_the_default_seeds() {
        let mut m = load_model(None, "tiny").unwrap();
        assert_eq!(m.anchors(), DEFAULT_ANCHORS);
        m.facts.push((ANCHORS_FACT.into(), "9,8".into()));
        assert_eq!(m.anchors(), DEFAULT_ANCHORS);
        m.facts[0].1 = "9,8,7,6".into();
        assert_eq!(m.anchors(), [9, 8, 7, 6]);
    }
}
