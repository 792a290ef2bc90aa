//! The INR-GAN generator, written once against [`Backend`]:
//!
//! ```text
//! z ──normalise──► mapping (FC + lrelu, lr x0.01) ──► w
//! for each level k (grid R_k, coarsest first):
//!     x = [ up2(features_{k-1}) | emb_k(cells) ]        (level 0: emb_0 only)
//!     for each FMM layer j:  W_b = demod(Ws ⊙ (1 + A_b B_b / √r)),  (A_b, B_b) = affine_j(w)
//!                            x = lrelu(W_b x + bias) · √2
//!                            (after the layers in rgb_after) img += toRGB_j(x, w)
//!     img_{k+1} starts as up2(img_k)
//! ```
//!
//! A [`Plan`] says where each level is evaluated. The training plan puts every level on its own
//! full grid of [-1, 1)² and moves between levels with nearest 2x upsampling. A window plan
//! (any rectangle of the plane, any output size) evaluates each coarse level on the cells the
//! window needs and the finest level at the output pixels, moving between them by the one rule
//! `q_k(p) = -1 + (2/R_k) floor((p + 1) R_k / 2)`: on the training window at the training size it
//! is the training forward exactly; larger outputs are superresolution, windows outside the
//! square are extrapolation. Every level keeps its trained frequencies.

use crate::backend::{BResult, Backend, BackendError};
use crate::reference::act::ActShape;
use crate::reference::coords::{self, CoordsShape};
use crate::reference::fmm::FmmShape;
use crate::reference::fused::{Assembly, FusedInput, FusedShape};
use crate::reference::linear::{Gemm, LinearShape, ModLinearShape, Strides};
use crate::reference::modulate::ModulateShape;
use crate::reference::resample::{ConcatShape, Taps};
use crate::rng::Rng;

use super::config::{LevelConfig, LinkMode, ModelConfig};
use super::params::{Init, ParamSet, ParamSpec};
pub use super::window::Window;

mod backward;
mod forward;
mod fused;
mod mapping;
mod plan;
mod render;

pub use plan::{LevelGrid, Link, Plan, PlanRequest};
pub use render::{MAX_SUPERSAMPLE, VIEWPORT_SUPERSAMPLE, box_average};

/// Leaky ReLU slope and gain of every hidden layer.
const ALPHA: f32 = 0.2;
const GAIN: f32 = std::f32::consts::SQRT_2;

/// Indices into the generator's [`ParamSet`] for one FMM layer.
#[derive(Clone, Debug)]
struct FmmLayer {
    c_in: usize,
    c_out: usize,
    weight: usize,
    bias: usize,
    aff_w: usize,
    aff_b: usize,
    /// Index into `rgbs` of the toRGB that reads this layer's output.
    rgb: Option<usize>,
}

#[derive(Clone, Debug)]
struct RgbLayer {
    c_in: usize,
    weight: usize,
    bias: usize,
    aff_w: usize,
    aff_b: usize,
}

#[derive(Clone, Debug)]
struct Level {
    res: usize,
    /// Embedding frequencies, `[n_freq][2]`.
    freqs: Vec<[f32; 2]>,
    layers: Vec<FmmLayer>,
}

/// The generator's structure; parameters live in a [`ParamSet`] built from [`Generator::specs`].
#[derive(Clone, Debug)]
pub struct Generator {
    pub cfg: ModelConfig,
    specs: Vec<ParamSpec>,
    /// (weight, bias) of the mapping layers.
    mapping: Vec<(usize, usize)>,
    w_avg: usize,
    levels: Vec<Level>,
    rgbs: Vec<RgbLayer>,
}

/// The embedding frequencies of a level: the official log-spaced basis for `emb.log_res` (with
/// diagonals if asked), then `emb.random` frequencies N(0, random_scale²) drawn from `emb.seed`.
pub fn level_frequencies(l: &LevelConfig) -> Vec<[f32; 2]> {
    let mut f = if l.emb.log_res > 0 {
        coords::log_basis(l.emb.log_res, l.emb.diagonal)
    } else {
        Vec::new()
    };
    let mut rng = Rng::new(l.emb.seed);
    for _ in 0..l.emb.random {
        let a = rng.normal() as f32 * l.emb.random_scale;
        let b = rng.normal() as f32 * l.emb.random_scale;
        f.push([a, b]);
    }
    f
}

impl Generator {
    pub fn new(cfg: &ModelConfig) -> Self {
        let mut specs = Vec::new();
        let mut add = |s: ParamSpec| {
            specs.push(s);
            specs.len() - 1
        };
        let mut mapping = Vec::new();
        let mut d_in = cfg.z_dim;
        for i in 0..cfg.mapping_layers {
            let w = add(ParamSpec::new(
                format!("g.mapping.fc{i}.weight"),
                &[cfg.w_dim, d_in],
                Init::Normal(1.0 / cfg.mapping_lr_mul),
            ));
            let b = add(ParamSpec::new(
                format!("g.mapping.fc{i}.bias"),
                &[cfg.w_dim],
                Init::Const(0.0),
            ));
            mapping.push((w, b));
            d_in = cfg.w_dim;
        }
        let w_avg = add(ParamSpec::new("g.mapping.w_avg", &[cfg.w_dim], Init::Const(0.0)).frozen());
        let mut levels = Vec::new();
        let mut rgbs = Vec::new();
        let mut prev_width = 0;
        for l in &cfg.levels {
            let freqs = level_frequencies(l);
            let mut c_in = prev_width + 2 * freqs.len();
            let mut layers = Vec::new();
            for (j, &c_out) in l.widths.iter().enumerate() {
                let base = format!("g.b{}.fmm{j}", l.res);
                let sd = (c_in + c_out) * cfg.rank;
                let weight = add(ParamSpec::new(
                    format!("{base}.weight"),
                    &[c_out, c_in],
                    Init::Normal(1.0),
                ));
                let bias = add(ParamSpec::new(
                    format!("{base}.bias"),
                    &[c_out],
                    Init::Const(0.0),
                ));
                let aff_w = add(ParamSpec::new(
                    format!("{base}.affine.weight"),
                    &[sd, cfg.w_dim],
                    Init::Normal(1.0),
                ));
                let aff_b = add(ParamSpec::new(
                    format!("{base}.affine.bias"),
                    &[sd],
                    Init::Const(0.0),
                ));
                let rgb = if l.rgb_after.contains(&j) {
                    let rb = format!("g.b{}.rgb{j}", l.res);
                    rgbs.push(RgbLayer {
                        c_in: c_out,
                        weight: add(ParamSpec::new(
                            format!("{rb}.weight"),
                            &[3, c_out],
                            Init::Normal(1.0),
                        )),
                        bias: add(ParamSpec::new(format!("{rb}.bias"), &[3], Init::Const(0.0))),
                        aff_w: add(ParamSpec::new(
                            format!("{rb}.affine.weight"),
                            &[c_out, cfg.w_dim],
                            Init::Normal(1.0),
                        )),
                        aff_b: add(ParamSpec::new(
                            format!("{rb}.affine.bias"),
                            &[c_out],
                            Init::Const(1.0),
                        )),
                    });
                    Some(rgbs.len() - 1)
                } else {
                    None
                };
                layers.push(FmmLayer {
                    c_in,
                    c_out,
                    weight,
                    bias,
                    aff_w,
                    aff_b,
                    rgb,
                });
                c_in = c_out;
            }
            prev_width = *l.widths.last().unwrap_or(&0);
            levels.push(Level {
                res: l.res,
                freqs,
                layers,
            });
        }
        Self {
            cfg: cfg.clone(),
            specs,
            mapping,
            w_avg,
            levels,
            rgbs,
        }
    }

    /// Every parameter tensor, in a fixed order, with stable names.
    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// Index of the tracked average w (for truncation) in the parameter set.
    pub fn w_avg_index(&self) -> usize {
        self.w_avg
    }

    /// Parameters per part: (mapping, FMM layers with their affines, toRGBs).
    pub fn param_counts(&self) -> (usize, usize, usize) {
        let n = |i: usize| self.specs[i].len();
        let mapping = self.mapping.iter().map(|&(w, b)| n(w) + n(b)).sum();
        let fmm = self
            .levels
            .iter()
            .flat_map(|l| &l.layers)
            .map(|l| n(l.weight) + n(l.bias) + n(l.aff_w) + n(l.aff_b))
            .sum();
        let rgb = self
            .rgbs
            .iter()
            .map(|r| n(r.weight) + n(r.bias) + n(r.aff_w) + n(r.aff_b))
            .sum();
        (mapping, fmm, rgb)
    }

    /// Multiply-adds per image at the training resolution: (per-pixel INR, hypernetwork:
    /// mapping, affines and the A·B products).
    pub fn macs_per_image(&self) -> (u64, u64) {
        let mut pixel = 0u64;
        let mut hyper = 0u64;
        let w = self.cfg.w_dim as u64;
        for (i, &(wi, _)) in self.mapping.iter().enumerate() {
            let _ = i;
            hyper += self.specs[wi].len() as u64;
        }
        for l in &self.levels {
            let px = (l.res * l.res) as u64;
            for f in &l.layers {
                let (ci, co) = (f.c_in as u64, f.c_out as u64);
                pixel += px * ci * co;
                hyper += (ci + co) * self.cfg.rank as u64 * w + ci * co * self.cfg.rank as u64;
                if let Some(r) = f.rgb {
                    pixel += px * 3 * self.rgbs[r].c_in as u64;
                    hyper += self.rgbs[r].c_in as u64 * w;
                }
            }
        }
        (pixel, hyper)
    }
}

/// What the mapping network's backward needs.
pub struct MapTape<B: Backend> {
    pub batch: usize,
    /// Normalised z, then each layer's output; the last is w.
    pub acts: Vec<B::Buf>,
}

impl<B: Backend> MapTape<B> {
    pub fn w(&self) -> &B::Buf {
        &self.acts[self.acts.len() - 1]
    }
}

struct LayerTape<B: Backend> {
    styles: B::Buf,
    wb: B::Buf,
    norms: B::Buf,
    /// toRGB styles and modulated weight.
    rgb: Option<(B::Buf, B::Buf)>,
}

struct LevelTape<B: Backend> {
    input: B::Buf,
    /// The input is shared by the batch (level 0: embeddings only).
    broadcast_input: bool,
    layers: Vec<LayerTape<B>>,
    acts: Vec<B::Buf>,
    img: B::Buf,
    np: usize,
}

/// What the synthesis backward needs, and the image.
pub struct SynthTape<B: Backend> {
    pub batch: usize,
    levels: Vec<LevelTape<B>>,
}

impl<B: Backend> SynthTape<B> {
    /// The output image `[batch, 3, rows * cols]`.
    pub fn img(&self) -> &B::Buf {
        &self.levels[self.levels.len() - 1].img
    }

    /// The accumulated RGB after level `k` (the accelerated low-resolution preview), on that
    /// level's grid.
    pub fn level_img(&self, k: usize) -> Option<&B::Buf> {
        self.levels.get(k).map(|l| &l.img)
    }
}

/// The images of a forward no backward runs through ([`Generator::synthesize_fast`]): where
/// fused blocks ran, the layers' activations were never stored, so this is not a tape and
/// cannot be passed to [`Generator::synthesize_backward`] (a type error, not a panic).
pub struct Synthesis<B: Backend>(SynthTape<B>);

impl<B: Backend> Synthesis<B> {
    /// The output image `[batch, 3, rows * cols]`.
    pub fn img(&self) -> &B::Buf {
        self.0.img()
    }

    /// The accumulated RGB after level `k`, on that level's grid.
    pub fn level_img(&self, k: usize) -> Option<&B::Buf> {
        self.0.level_img(k)
    }
}
