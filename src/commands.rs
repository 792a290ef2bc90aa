//! The headless commands (`inrgan render`, `inrgan info`), shared by the CLI and tests.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use crate::backend::gpu::GpuBackend;
use crate::backend::{Backend, BackendKind};
use crate::gpu::GpuContext;
use crate::model::config::ModelConfig;
use crate::model::generator::Generator;
use crate::model::params::ParamSet;
use crate::model::weights;
use crate::reference::image::quantize;

/// Where the built-in model's weights live, relative to the crate root.
pub const BUILTIN_WEIGHTS: &str = "assets/model/emoji.safetensors";

/// The built-in weights, if this build ships them.
pub fn builtin_weights() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join(BUILTIN_WEIGHTS);
    p.exists().then_some(p)
}

/// A generator and its weights on the host, from a file, the built-in model or a preset.
pub struct LoadedModel {
    pub generator: Generator,
    pub values: Vec<Vec<f32>>,
    /// What was loaded, for messages ("weights FILE", "preset NAME, random weights").
    pub source: String,
    pub hash: String,
}

/// Loads `weights`, else the built-in model, else a randomly initialised `preset` (seed 0).
pub fn load_model(weights: Option<&Path>, preset: &str) -> Result<LoadedModel> {
    let path = weights.map(Path::to_path_buf).or_else(builtin_weights);
    if let Some(path) = path {
        let (cfg, _, values) = weights::load(&path, |c| Generator::new(c).specs().to_vec())?;
        return Ok(LoadedModel {
            generator: Generator::new(&cfg),
            values,
            source: format!("weights {}", path.display()),
            hash: weights::file_hash(&path)?,
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
    })
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
    /// x0, y0, x1, y1.
    pub window: [f64; 4],
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
    /// x0, y0, x1, y1.
    pub window: [f64; 4],
    pub out: PathBuf,
    pub backend: BackendKind,
    pub tile: usize,
}

/// Renders to a PNG, streaming strips of tiles so that memory stays bounded at any size.
pub fn render(a: &RenderArgs, mut progress: impl FnMut(f64)) -> Result<String> {
    let m = load_model(a.weights.as_deref(), &a.preset)?;
    let [x0, y0, x1, y1] = a.window;
    let win = [x0, x1, y0, y1];
    match a.backend {
        BackendKind::Gpu => {
            let ctx = GpuContext::new()?;
            let mut be = GpuBackend::new(&ctx);
            render_with(&mut be, &m, a, win, &mut progress)?;
        }
        BackendKind::Cpu => {
            let mut be = crate::backend::cpu::CpuBackend::new()?;
            render_with(&mut be, &m, a, win, &mut progress)?;
        }
    }
    Ok(m.source)
}

fn render_with<B: Backend>(
    be: &mut B,
    m: &LoadedModel,
    a: &RenderArgs,
    win: [f64; 4],
    progress: &mut impl FnMut(f64),
) -> Result<()> {
    let g = &m.generator;
    let p = ParamSet::from_host(be, g.specs(), &m.values)?;
    let z = g.latent(a.seed);
    let w = g.map_truncated(be, &p, &z, 1, a.psi)?;
    let (width, height) = (a.width, a.height);
    if width == 0 || height == 0 {
        bail!("the output size must be positive");
    }
    let tmp = a.out.with_extension("png.tmp");
    let file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut enc = png::Encoder::new(std::io::BufWriter::new(file), width as u32, height as u32);
    enc.set_color(png::ColorType::Rgba);
    enc.set_depth(png::BitDepth::Eight);
    let recipe = Recipe {
        model: m.hash.clone(),
        seed: a.seed,
        psi: a.psi,
        width,
        height,
        window: a.window,
    };
    let text = ron::to_string(&recipe).context("serialising the recipe")?;
    enc.add_text_chunk(RECIPE_KEY.into(), text)?;
    enc.add_text_chunk("inrgan.model".into(), m.hash.clone())?;
    let mut writer = enc.write_header()?;
    let mut stream = writer.stream_writer()?;
    let tile = a.tile.max(16);
    let mut strip = vec![0u8; width * tile * 4];
    let total = width.div_ceil(tile) * height.div_ceil(tile);
    let mut done = 0;
    for r0 in (0..height).step_by(tile) {
        let rows = tile.min(height - r0);
        for c0 in (0..width).step_by(tile) {
            let cols = tile.min(width - c0);
            let plan = g.tile_plan(win, width, height, c0..c0 + cols, r0..r0 + rows)?;
            let rgb = g.render_plan(be, &p, &w, 1, &plan)?;
            let n = cols * rows;
            for y in 0..rows {
                for x in 0..cols {
                    let o = (y * width + c0 + x) * 4;
                    for c in 0..3 {
                        strip[o + c] = quantize(rgb[c * n + y * cols + x]);
                    }
                    strip[o + 3] = 255;
                }
            }
            done += 1;
            progress(done as f64 / total as f64);
        }
        stream.write_all(&strip[..rows * width * 4])?;
    }
    stream.finish()?;
    std::fs::rename(&tmp, &a.out).with_context(|| format!("writing {}", a.out.display()))?;
    Ok(())
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
