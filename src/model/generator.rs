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

use crate::backend::{BResult, Backend};
use crate::gpu::GpuError;
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

    /// Normalises a latent by its second moment (as the official mapping network does first).
    pub fn normalize_z(z: &[f32]) -> Vec<f32> {
        let ms = z.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / z.len().max(1) as f64;
        let k = 1.0 / (ms + 1e-8).sqrt();
        z.iter().map(|&v| (v as f64 * k) as f32).collect()
    }

    /// The latent of `seed`: z_dim standard normal values.
    pub fn latent(&self, seed: u64) -> Vec<f32> {
        Rng::new(seed).normal_vec(self.cfg.z_dim)
    }

    fn mapping_shape(&self, i: usize, rows: usize) -> LinearShape {
        let d_in = if i == 0 {
            self.cfg.z_dim
        } else {
            self.cfg.w_dim
        };
        LinearShape {
            rows,
            d_in,
            d_out: self.cfg.w_dim,
            w_gain: self.cfg.mapping_lr_mul / (d_in as f32).sqrt(),
            b_gain: self.cfg.mapping_lr_mul,
        }
    }

    fn affine_shape(&self, rows: usize, d_out: usize) -> LinearShape {
        LinearShape {
            rows,
            d_in: self.cfg.w_dim,
            d_out,
            w_gain: 1.0 / (self.cfg.w_dim as f32).sqrt(),
            b_gain: 1.0,
        }
    }

    /// z `[batch, z_dim]` (host) → w `[batch, w_dim]`, keeping what the backward needs.
    pub fn map<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        z: &[f32],
        batch: usize,
    ) -> BResult<MapTape<B>> {
        if z.len() != batch * self.cfg.z_dim {
            return Err(GpuError::Shape(format!(
                "map: {} latent values for a batch of {batch} with z_dim {}",
                z.len(),
                self.cfg.z_dim
            )));
        }
        let zn: Vec<f32> = z
            .chunks(self.cfg.z_dim)
            .flat_map(Self::normalize_z)
            .collect();
        let mut acts = vec![be.upload(&zn, "z")?];
        for (i, &(wi, bi)) in self.mapping.iter().enumerate() {
            let s = self.mapping_shape(i, batch);
            let pre = be.zeros(batch * s.d_out, "mapping pre")?;
            let x = &acts[acts.len() - 1];
            be.gemm(&Gemm::linear_forward(&s, false), &p.bufs[wi], x, None, &pre)?;
            let out = be.zeros(batch * s.d_out, "mapping act")?;
            let a = ActShape {
                outer: batch,
                channels: s.d_out,
                inner: 1,
                alpha: ALPHA,
                gain: GAIN,
                b_gain: s.b_gain,
            };
            be.act_forward(&a, &pre, Some(&p.bufs[bi]), &out)?;
            acts.push(out);
        }
        Ok(MapTape { batch, acts })
    }

    /// Gradients of [`Generator::map`] given `dw` (the parameters' gradients are added to
    /// `grads`).
    pub fn map_backward<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        tape: &MapTape<B>,
        dw: &B::Buf,
        grads: &ParamSet<B>,
    ) -> BResult<()> {
        let batch = tape.batch;
        let mut d_out = be.zeros(batch * self.cfg.w_dim, "dmap")?;
        be.copy(dw, &d_out, batch * self.cfg.w_dim)?;
        for (i, &(wi, bi)) in self.mapping.iter().enumerate().rev() {
            let s = self.mapping_shape(i, batch);
            let a = ActShape {
                outer: batch,
                channels: s.d_out,
                inner: 1,
                alpha: ALPHA,
                gain: GAIN,
                b_gain: s.b_gain,
            };
            let dpre = be.zeros(batch * s.d_out, "dmap pre")?;
            be.act_backward(&a, &tape.acts[i + 1], &d_out, &dpre, false)?;
            be.sum_axes(&dpre, &grads.bufs[bi], batch, s.d_out, 1, s.b_gain, true)?;
            be.gemm(
                &Gemm::linear_backward_weight(&s, true),
                &dpre,
                &tape.acts[i],
                None,
                &grads.bufs[wi],
            )?;
            if i > 0 {
                let dx = be.zeros(batch * s.d_in, "dmap x")?;
                be.gemm(
                    &Gemm::linear_backward_input(&s, false),
                    &p.bufs[wi],
                    &dpre,
                    None,
                    &dx,
                )?;
                d_out = dx;
            }
        }
        Ok(())
    }

    /// The training plan: with nearest links every level on its full grid, nearest 2x
    /// upsampling between levels; with bilinear links the window plan of the training square
    /// at the training size (the coarse levels on their grids plus a ring of halo cells).
    pub fn training_plan(&self) -> Plan {
        if self.cfg.link == LinkMode::Bilinear {
            let r = self.cfg.resolution;
            if let Ok(plan) = self.window_plan([-1.0, 1.0, -1.0, 1.0], r, r) {
                return plan;
            }
        }
        let levels = self
            .levels
            .iter()
            .map(|l| {
                let (xs, ys) = coords::training_grid(l.res);
                LevelGrid {
                    cols: l.res,
                    rows: l.res,
                    xs,
                    ys,
                    link: Link::Upsample2x,
                }
            })
            .collect();
        Plan { levels }
    }

    /// The plan for a window `[x0, x1) x [y0, y1)` of the plane rendered at `width x height`
    /// pixels: the finest level at the pixels, each coarser level on the cells it must supply.
    pub fn window_plan(&self, win: [f64; 4], width: usize, height: usize) -> BResult<Plan> {
        self.tile_plan(win, width, height, 0..width, 0..height)
    }

    /// The plan for the pixels `cols x rows` of the `width x height` rendering of `win`: tiles
    /// of one image agree exactly with the whole image, so they join without seams.
    pub fn tile_plan(
        &self,
        win: [f64; 4],
        width: usize,
        height: usize,
        cols: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
    ) -> BResult<Plan> {
        self.partial_plan(win, width, height, cols, rows, self.levels.len())
    }

    /// The accelerated low-resolution inference: a plan that stops after the first `levels`
    /// levels, the last of them evaluated at the output pixels. Its image is the RGB
    /// accumulated up to that level (the official skip architecture's early exit), for a
    /// fraction of the cost.
    pub fn preview_plan(
        &self,
        win: [f64; 4],
        width: usize,
        height: usize,
        levels: usize,
    ) -> BResult<Plan> {
        self.partial_plan(win, width, height, 0..width, 0..height, levels)
    }

    /// Floats per output pixel of the widest buffer a frame evaluated to `levels` levels holds
    /// (the finest level's input `[features | embeddings]` or its widest layer): what bounds
    /// the rows of a strip under a GPU's storage-binding limit.
    pub fn frame_channels(&self, levels: usize) -> usize {
        let levels = levels.clamp(1, self.cfg.levels.len());
        self.unfused_channels(levels - 1).max(3)
    }

    /// Level `k`'s widest per-cell buffer layer by layer: its input `[features | embeddings]`
    /// or its widest layer.
    fn unfused_channels(&self, k: usize) -> usize {
        let lv = &self.cfg.levels[k];
        let c_prev = match k {
            0 => 0,
            k => self.cfg.levels[k - 1].widths.last().copied().unwrap_or(0),
        };
        let emb = 2 * level_frequencies(lv).len();
        (c_prev + emb).max(lv.widths.iter().copied().max().unwrap_or(0))
    }

    /// Level `k` as one fused block of `pixels` pixels for `batch` images.
    fn fused_shape(&self, k: usize, batch: usize, pixels: usize) -> FusedShape {
        let lv = &self.levels[k];
        FusedShape {
            batch,
            pixels,
            c_in: lv.layers.first().map_or(0, |l| l.c_in),
            broadcast_input: k == 0,
            layers: lv
                .layers
                .iter()
                .map(|l| (l.c_out, l.rgb.is_some()))
                .collect(),
            alpha: ALPHA,
            gain: GAIN,
        }
    }

    /// [`Generator::frame_channels`] for the path `be` takes: a level it runs fused stores only
    /// its RGB and, below the finest evaluated level, its last features (its input is assembled
    /// in the kernel), and a coarser level's buffers count by its cells per output pixel. With
    /// the fused blocks a strip may be several times taller (emoji32 at 1024² on lavapipe: 2
    /// strips instead of 7).
    pub fn frame_channels_on<B: Backend>(&self, be: &B, levels: usize) -> usize {
        let levels = levels.clamp(1, self.cfg.levels.len());
        let finest = self.cfg.levels[levels - 1].res as f64;
        let mut worst = 3;
        for k in 0..levels {
            let lv = &self.cfg.levels[k];
            let c = if be.fused_fits(&self.fused_shape(k, 1, 1)) {
                if k + 1 == levels {
                    3
                } else {
                    lv.widths.last().copied().unwrap_or(0)
                }
            } else {
                self.unfused_channels(k)
            };
            // Cells of level k per output pixel (a strip's coarse cells overhang it by one
            // row and column at most, inside the strip limit's spare tenth).
            let ratio = (lv.res as f64 / finest).powi(2);
            worst = worst.max((c as f64 * ratio).ceil() as usize);
        }
        worst
    }

    /// [`Generator::tile_plan`] stopping after `levels` levels (the early exit of
    /// [`Generator::preview_plan`], tiled).
    #[allow(clippy::too_many_arguments)]
    pub fn partial_tile_plan(
        &self,
        win: [f64; 4],
        width: usize,
        height: usize,
        cols: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
        levels: usize,
    ) -> BResult<Plan> {
        self.partial_plan(win, width, height, cols, rows, levels)
    }

    fn partial_plan(
        &self,
        win: [f64; 4],
        width: usize,
        height: usize,
        cols: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
        n_levels: usize,
    ) -> BResult<Plan> {
        if n_levels == 0 || n_levels > self.levels.len() {
            return Err(GpuError::Shape(format!(
                "{n_levels} levels asked of a model with {}",
                self.levels.len()
            )));
        }
        let [x0, x1, y0, y1] = win;
        if width == 0
            || height == 0
            || x1 <= x0
            || y1 <= y0
            || !x0.is_finite()
            || !x1.is_finite()
            || !y0.is_finite()
            || !y1.is_finite()
        {
            return Err(GpuError::Shape(format!(
                "empty or non-finite window {win:?} at {width}x{height}"
            )));
        }
        if cols.is_empty() || rows.is_empty() || cols.end > width || rows.end > height {
            return Err(GpuError::Shape(format!(
                "tile {cols:?} x {rows:?} outside {width}x{height}"
            )));
        }
        if self.cfg.link == LinkMode::Bilinear {
            return Ok(self.bilinear_plan(win, width, height, cols, rows, n_levels));
        }
        let n = n_levels;
        // Pixel coordinates (the window_grid convention: left edges; rows top-down, bottom edges).
        let px: Vec<f64> = cols
            .clone()
            .map(|c| x0 + (x1 - x0) * c as f64 / width as f64)
            .collect();
        let py: Vec<f64> = rows
            .clone()
            .map(|r| y1 - (y1 - y0) * (r + 1) as f64 / height as f64)
            .collect();
        let (width, height) = (cols.len(), rows.len());
        let cell = |p: f64, res: usize| ((p + 1.0) * res as f64 / 2.0 + 1e-9).floor() as i64;
        // Cell ranges top-down: [j0, j1] columns and [v0, v1] rows (v counts upwards in y).
        let mut ranges = vec![(0i64, 0i64, 0i64, 0i64); n];
        if n >= 2 {
            let r = self.levels[n - 2].res;
            let js: Vec<i64> = px.iter().map(|&p| cell(p, r)).collect();
            let vs: Vec<i64> = py.iter().map(|&p| cell(p, r)).collect();
            ranges[n - 2] = (
                *js.first().unwrap_or(&0),
                *js.last().unwrap_or(&0),
                *vs.last().unwrap_or(&0),
                *vs.first().unwrap_or(&0),
            );
            for k in (0..n - 2).rev() {
                let (j0, j1, v0, v1) = ranges[k + 1];
                ranges[k] = (
                    j0.div_euclid(2),
                    j1.div_euclid(2),
                    v0.div_euclid(2),
                    v1.div_euclid(2),
                );
            }
        }
        let mut levels = Vec::with_capacity(n);
        for k in 0..n {
            let res = self.levels[k].res as f64;
            if k == n - 1 {
                let link = if k == 0 {
                    Link::None
                } else {
                    let rp = self.levels[k - 1].res;
                    let (j0, _, _, v1) = ranges[k - 1];
                    Link::Gather {
                        rows: py.iter().map(|&p| (v1 - cell(p, rp)) as u32).collect(),
                        cols: px.iter().map(|&p| (cell(p, rp) - j0) as u32).collect(),
                    }
                };
                levels.push(LevelGrid {
                    cols: width,
                    rows: height,
                    xs: px.iter().map(|&v| v as f32).collect(),
                    ys: py.iter().map(|&v| v as f32).collect(),
                    link,
                });
            } else {
                let (j0, j1, v0, v1) = ranges[k];
                let cols = (j1 - j0 + 1) as usize;
                let rows = (v1 - v0 + 1) as usize;
                let xs = (j0..=j1)
                    .map(|j| (-1.0 + 2.0 * j as f64 / res) as f32)
                    .collect();
                let ys = (0..rows as i64)
                    .map(|t| (-1.0 + 2.0 * (v1 - t) as f64 / res) as f32)
                    .collect();
                let link = if k == 0 {
                    Link::None
                } else {
                    let (pj0, _, _, pv1) = ranges[k - 1];
                    Link::Gather {
                        rows: (0..rows as i64)
                            .map(|t| (pv1 - (v1 - t).div_euclid(2)) as u32)
                            .collect(),
                        cols: (j0..=j1).map(|j| (j.div_euclid(2) - pj0) as u32).collect(),
                    }
                };
                levels.push(LevelGrid {
                    cols,
                    rows,
                    xs,
                    ys,
                    link,
                });
            }
        }
        Ok(Plan { levels })
    }

    /// [`Generator::partial_plan`] for bilinear links (the window is checked). Samples sit at
    /// centres: pixel `(c, r)` at `(x0 + (x1 - x0)(c + 1/2) / width, y1 - (y1 - y0)(r + 1/2) /
    /// height)`, cell `j` of level `k` at `-1 + (2 / R_k)(j + 1/2)`. A sample at `p` reads the
    /// previous level at `u = (p + 1) R / 2 - 1/2`: cells `floor(u)` and `floor(u) + 1` with
    /// weights `1 - t` and `t`, `t = u - floor(u)` (per axis; computed in f64). Each coarser
    /// level is evaluated on exactly the cells the next one reads, outside the square too, so a
    /// tile's cells are those of the whole image and tiles join bitwise.
    fn bilinear_plan(
        &self,
        win: [f64; 4],
        width: usize,
        height: usize,
        cols: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
        n: usize,
    ) -> Plan {
        let [x0, x1, y0, y1] = win;
        let mut pos_x = vec![Vec::new(); n];
        let mut pos_y = vec![Vec::new(); n];
        pos_x[n - 1] = cols
            .map(|c| x0 + (x1 - x0) * (c as f64 + 0.5) / width as f64)
            .collect();
        // Rows top-down (y decreasing).
        pos_y[n - 1] = rows
            .map(|r| y1 - (y1 - y0) * (r as f64 + 0.5) / height as f64)
            .collect();
        let mut links: Vec<Link> = vec![Link::None; n];
        // Per sample: the lower cell `floor(u)` and the weight `t` of the cell above it.
        let taps = |pos: &[f64], res: usize| -> Vec<(i64, f64)> {
            pos.iter()
                .map(|&p| {
                    let u = (p + 1.0) * res as f64 / 2.0 - 0.5;
                    let j = u.floor();
                    (j as i64, u - j)
                })
                .collect()
        };
        let centre = |j: i64, res: usize| -1.0 + 2.0 * (j as f64 + 0.5) / res as f64;
        for k in (1..n).rev() {
            let res = self.levels[k - 1].res;
            let tx = taps(&pos_x[k], res);
            let ty = taps(&pos_y[k], res);
            let range = |t: &[(i64, f64)]| {
                let lo = t.iter().map(|v| v.0).min().unwrap_or(0);
                let hi = t.iter().map(|v| v.0).max().unwrap_or(0) + 1;
                (lo, hi)
            };
            let (xlo, xhi) = range(&tx);
            let (ylo, yhi) = range(&ty);
            // Columns ascend: taps (j, j + 1) at (j - xlo, +1), weight t on the second.
            let col_taps = Taps {
                idx: tx.iter().map(|&(j, _)| (j - xlo) as u32).collect(),
                t: tx.iter().map(|&(_, t)| t as f32).collect(),
            };
            // Rows descend: cell v sits at yhi - v, so the first tap is v + 1 and the second
            // (weight 1 - t) is v.
            let row_taps = Taps {
                idx: ty.iter().map(|&(v, _)| (yhi - v - 1) as u32).collect(),
                t: ty.iter().map(|&(_, t)| (1.0 - t) as f32).collect(),
            };
            links[k] = Link::Bilinear {
                rows: row_taps,
                cols: col_taps,
            };
            pos_x[k - 1] = (xlo..=xhi).map(|j| centre(j, res)).collect();
            pos_y[k - 1] = (ylo..=yhi).rev().map(|v| centre(v, res)).collect();
        }
        let levels = links
            .into_iter()
            .enumerate()
            .map(|(k, link)| LevelGrid {
                cols: pos_x[k].len(),
                rows: pos_y[k].len(),
                xs: pos_x[k].iter().map(|&v| v as f32).collect(),
                ys: pos_y[k].iter().map(|&v| v as f32).collect(),
                link,
            })
            .collect();
        Plan { levels }
    }

    /// The synthesis network for w `[batch, w_dim]` on `plan`; the image is
    /// `tape.img [batch, 3, rows * cols]` of the last level.
    pub fn synthesize<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        w: &B::Buf,
        batch: usize,
        plan: &Plan,
    ) -> BResult<SynthTape<B>> {
        self.synthesize_levels(be, p, &[w], batch, plan)
    }

    /// [`Generator::synthesize`] with a w per level (style mixing): level `k` takes its styles
    /// from `ws[min(k, ws.len() - 1)]`, each `[batch, w_dim]`.
    pub fn synthesize_levels<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        ws: &[&B::Buf],
        batch: usize,
        plan: &Plan,
    ) -> BResult<SynthTape<B>> {
        self.synthesize_inner(be, p, ws, batch, plan, false)
    }

    /// [`Generator::synthesize_levels`] for forwards no backward runs through (renders, the
    /// fakes of training's D phase): where the backend has fused blocks, each scale block runs
    /// in one pass and keeps only its last features, so the tape serves [`SynthTape::img`] but
    /// not the backward.
    pub fn synthesize_fast<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        ws: &[&B::Buf],
        batch: usize,
        plan: &Plan,
    ) -> BResult<SynthTape<B>> {
        self.synthesize_inner(be, p, ws, batch, plan, true)
    }

    fn synthesize_inner<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        ws: &[&B::Buf],
        batch: usize,
        plan: &Plan,
        fast: bool,
    ) -> BResult<SynthTape<B>> {
        if ws.is_empty() {
            return Err(GpuError::Shape("synthesize: no w".into()));
        }
        if plan.levels.is_empty() || plan.levels.len() > self.levels.len() {
            return Err(GpuError::Shape(
                "plan does not match the model's levels".into(),
            ));
        }
        let mut levels: Vec<LevelTape<B>> = Vec::new();
        for (k, (lv, grid)) in self.levels.iter().zip(&plan.levels).enumerate() {
            let w = ws[k.min(ws.len() - 1)];
            let np = grid.rows * grid.cols;
            let fl: Vec<f32> = lv.freqs.iter().flatten().copied().collect();
            let fused = self.fused_shape(k, batch, np);
            if fast && be.fused_fits(&fused) {
                let last = k + 1 == plan.levels.len();
                let tape = self.fused_level(be, p, w, lv, &fused, plan, k, &levels, &fl, last)?;
                levels.push(tape);
                continue;
            }
            // Embeddings of this level's cells, shared by the batch.
            let cs = CoordsShape {
                width: grid.cols,
                height: grid.rows,
                n_freq: lv.freqs.len(),
                with_cos: true,
            };
            let xs = be.upload(&grid.xs, "xs")?;
            let ys = be.upload(&grid.ys, "ys")?;
            let freqs = be.upload(&fl, "freqs")?;
            let emb = be.zeros(cs.channels() * np, "emb")?;
            be.coords_forward(&cs, &xs, &ys, &freqs, &emb)?;
            // Input: [up(prev features) | emb], and the RGB carried from the previous level.
            let img = be.zeros(batch * 3 * np, "img")?;
            let (input, broadcast_input) = if k == 0 {
                (emb, true)
            } else {
                let prev = &levels[k - 1];
                let prev_grid = &plan.levels[k - 1];
                let (c_prev, feat) = self.prev_features(k, levels.as_slice())?;
                let up = be.zeros(batch * c_prev * np, "up feat")?;
                self.link(be, &grid.link, feat, batch * c_prev, prev_grid, &up)?;
                self.link(be, &grid.link, &prev.img, batch * 3, prev_grid, &img)?;
                let cat = ConcatShape {
                    batch,
                    c1: c_prev,
                    c2: cs.channels(),
                    pixels: np,
                    broadcast: true,
                };
                let x = be.zeros(batch * cat.channels() * np, "level input")?;
                be.concat_channels(&cat, &up, &emb, &x)?;
                (x, false)
            };
            let mut tape = LevelTape {
                input,
                broadcast_input,
                layers: Vec::new(),
                acts: Vec::new(),
                img,
                np,
            };
            for (j, l) in lv.layers.iter().enumerate() {
                let (styles, wb, norms) = self.modulated_weight(be, p, w, l, batch)?;
                let x = if j == 0 {
                    &tape.input
                } else {
                    &tape.acts[j - 1]
                };
                let ms = ModLinearShape {
                    batch,
                    c_in: l.c_in,
                    c_out: l.c_out,
                    pixels: np,
                };
                // The activation is the product's epilogue: the pre-activation is never stored
                // (the backward reads the slope from the output).
                let mut g = Gemm::modlinear_forward(&ms, true, false);
                g.act = Some((ALPHA, GAIN));
                if j == 0 && tape.broadcast_input {
                    g.b = Strides { sb: 0, ..g.b };
                }
                let act = be.zeros(batch * l.c_out * np, "act")?;
                be.gemm(&g, &wb, x, Some(&p.bufs[l.bias]), &act)?;
                let mut lt = LayerTape {
                    styles,
                    wb,
                    norms,
                    rgb: None,
                };
                if let Some(ri) = l.rgb {
                    let rl = &self.rgbs[ri];
                    let (s, wr) = self.rgb_weight(be, p, w, rl, batch)?;
                    let ms = ModLinearShape {
                        batch,
                        c_in: rl.c_in,
                        c_out: 3,
                        pixels: np,
                    };
                    let mut g = Gemm::modlinear_forward(&ms, true, false);
                    g.accumulate = true;
                    be.gemm(&g, &wr, &act, Some(&p.bufs[rl.bias]), &tape.img)?;
                    lt.rgb = Some((s, wr));
                }
                tape.layers.push(lt);
                tape.acts.push(act);
            }
            levels.push(tape);
        }
        Ok(SynthTape { batch, levels })
    }

    /// One FMM layer's per-image weight for w `[batch, w_dim]`: (styles, weight, row norms),
    /// what the layer's forward uses and its backward needs.
    fn modulated_weight<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        w: &B::Buf,
        l: &FmmLayer,
        batch: usize,
    ) -> BResult<(B::Buf, B::Buf, B::Buf)> {
        let fs = FmmShape {
            batch,
            c_out: l.c_out,
            c_in: l.c_in,
            rank: self.cfg.rank,
            demod: true,
        };
        let styles = be.zeros(batch * fs.style_dim(), "styles")?;
        let aff = self.affine_shape(batch, fs.style_dim());
        be.gemm(
            &Gemm::linear_forward(&aff, true),
            &p.bufs[l.aff_w],
            w,
            Some(&p.bufs[l.aff_b]),
            &styles,
        )?;
        let wb = be.zeros(fs.weight_len(), "fmm weight")?;
        let norms = be.zeros(batch * l.c_out, "fmm norms")?;
        be.fmm_forward(&fs, &p.bufs[l.weight], &styles, &wb, &norms)?;
        Ok((styles, wb, norms))
    }

    /// A toRGB's per-image modulated weight `[batch, 3, c_in]`: (styles, weight).
    fn rgb_weight<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        w: &B::Buf,
        rl: &RgbLayer,
        batch: usize,
    ) -> BResult<(B::Buf, B::Buf)> {
        let s = be.zeros(batch * rl.c_in, "rgb styles")?;
        let aff = self.affine_shape(batch, rl.c_in);
        be.gemm(
            &Gemm::linear_forward(&aff, true),
            &p.bufs[rl.aff_w],
            w,
            Some(&p.bufs[rl.aff_b]),
            &s,
        )?;
        let m = ModulateShape {
            batch,
            c_out: 3,
            c_in: rl.c_in,
            gain: 1.0 / (rl.c_in as f32).sqrt(),
        };
        let wr = be.zeros(batch * 3 * rl.c_in, "rgb weight")?;
        be.style_modulate_forward(&m, &p.bufs[rl.weight], &s, &wr)?;
        Ok((s, wr))
    }

    /// The channels and buffer of level `k - 1`'s last features (level `k`'s input).
    fn prev_features<'t, B: Backend>(
        &self,
        k: usize,
        levels: &'t [LevelTape<B>],
    ) -> BResult<(usize, &'t B::Buf)> {
        let c_prev = self.levels[k - 1].layers.last().map_or(0, |l| l.c_out);
        let feat = levels[k - 1]
            .acts
            .last()
            .ok_or_else(|| GpuError::Shape("empty level".into()))?;
        Ok((c_prev, feat))
    }

    /// Level `k` of `plan` through the fused kernel: the block's input is assembled inside the
    /// kernel from the previous level's features and this level's coordinates (nothing of
    /// width `c_in` is stored); only the RGB is carried over by the link. The tape serves the
    /// image and, unless `last`, the next level's input; it cannot serve the backward.
    #[allow(clippy::too_many_arguments)]
    fn fused_level<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        w: &B::Buf,
        lv: &Level,
        s: &FusedShape,
        plan: &Plan,
        k: usize,
        levels: &[LevelTape<B>],
        freqs: &[f32],
        last: bool,
    ) -> BResult<LevelTape<B>> {
        let grid = &plan.levels[k];
        let batch = s.batch;
        let np = grid.rows * grid.cols;
        let img = be.zeros(batch * 3 * np, "img")?;
        let mut taps: Option<(Taps, Taps)> = None;
        let (c_prev, prev_rows, prev_cols, rows, cols, feat) = if k == 0 {
            (0, 0, 0, vec![0; grid.rows], vec![0; grid.cols], None)
        } else {
            let prev = &levels[k - 1];
            let prev_grid = &plan.levels[k - 1];
            self.link(be, &grid.link, &prev.img, batch * 3, prev_grid, &img)?;
            let (rows, cols) = match &grid.link {
                Link::Gather { rows, cols } => (rows.clone(), cols.clone()),
                Link::Upsample2x => (
                    (0..grid.rows as u32).map(|r| r / 2).collect(),
                    (0..grid.cols as u32).map(|c| c / 2).collect(),
                ),
                Link::Bilinear { rows, cols } => {
                    taps = Some((rows.clone(), cols.clone()));
                    (rows.idx.clone(), cols.idx.clone())
                }
                Link::None => {
                    return Err(GpuError::Shape(
                        "a level after the first needs a link".into(),
                    ));
                }
            };
            let (c_prev, feat) = self.prev_features(k, levels)?;
            (
                c_prev,
                prev_grid.rows,
                prev_grid.cols,
                rows,
                cols,
                Some(feat),
            )
        };
        let a = Assembly {
            c_prev,
            prev_rows,
            prev_cols,
            rows: grid.rows,
            cols: grid.cols,
            n_freq: lv.freqs.len(),
            bilinear: taps.is_some(),
        };
        let geom = match &taps {
            Some((rt, ct)) => a.geometry_bilinear(&grid.xs, &grid.ys, freqs, rt, ct),
            None => a.geometry(&grid.xs, &grid.ys, freqs, &rows, &cols),
        }
        .map_err(GpuError::Shape)?;
        let geom = be.upload(&geom, "fused geometry")?;
        let input = FusedInput::Assembled {
            a: &a,
            feat,
            geom: &geom,
        };
        let out = self.fused_block(be, p, w, lv, s, input, &img, !last)?;
        Ok(LevelTape {
            // Not the block's input (it was never stored): the geometry it was built from.
            input: geom,
            broadcast_input: false,
            layers: Vec::new(),
            acts: out.into_iter().collect(),
            img,
            np,
        })
    }

    /// One block through the fused kernel: the modulated weights of every layer (the same
    /// kernels as the unfused path), packed per image, then one pass; returns the last features
    /// when `keep_out`.
    #[allow(clippy::too_many_arguments)]
    fn fused_block<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        w: &B::Buf,
        lv: &Level,
        s: &FusedShape,
        input: FusedInput<'_, B::Buf>,
        img: &B::Buf,
        keep_out: bool,
    ) -> BResult<Option<B::Buf>> {
        let batch = s.batch;
        // Per layer: (buffer, values per image) of each pack's parts.
        let (mut ws, mut bs, mut rws, mut rbs) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for l in &lv.layers {
            let (_, wb, _) = self.modulated_weight(be, p, w, l, batch)?;
            ws.push((wb, l.c_out * l.c_in));
            bs.push((l.bias, l.c_out));
            if let Some(ri) = l.rgb {
                let rl = &self.rgbs[ri];
                let (_, wr) = self.rgb_weight(be, p, w, rl, batch)?;
                rws.push((wr, 3 * rl.c_in));
                rbs.push((rl.bias, 3));
            }
        }
        if ws.is_empty() {
            return Err(GpuError::Shape("a fused block without layers".into()));
        }
        fn parts<T>(v: &[(T, usize)]) -> Vec<(&T, usize)> {
            v.iter().map(|(b, n)| (b, *n)).collect()
        }
        let params = |v: &[(usize, usize)]| -> Vec<(&B::Buf, usize)> {
            v.iter().map(|&(i, n)| (&p.bufs[i], n)).collect()
        };
        let wpack = be.pack(batch, &parts(&ws), "fused weights")?;
        let bpack = be.pack(1, &params(&bs), "fused bias")?;
        let (rwpack, rbpack) = if rws.is_empty() {
            (None, None)
        } else {
            (
                Some(be.pack(batch, &parts(&rws), "fused rgb weights")?),
                Some(be.pack(1, &params(&rbs), "fused rgb bias")?),
            )
        };
        let out = if keep_out {
            Some(be.zeros(batch * s.c_last() * s.pixels, "fused features")?)
        } else {
            None
        };
        be.fused_level_forward(
            s,
            input,
            &wpack,
            &bpack,
            rwpack.as_ref().unwrap_or(&bpack),
            rbpack.as_ref().unwrap_or(&bpack),
            img,
            out.as_ref(),
        )?;
        Ok(out)
    }

    /// Moves `planes` planes from the previous level's grid to this level's by `link`.
    fn link<B: Backend>(
        &self,
        be: &mut B,
        link: &Link,
        x: &B::Buf,
        planes: usize,
        prev: &LevelGrid,
        y: &B::Buf,
    ) -> BResult<()> {
        match link {
            Link::Upsample2x => be.upsample2x_forward(x, y, planes, prev.rows, prev.cols),
            Link::Gather { rows, cols } => {
                be.gather(x, planes, prev.rows, prev.cols, rows, cols, y)
            }
            Link::Bilinear { rows, cols } => {
                be.gather_bilinear(x, planes, prev.rows, prev.cols, rows, cols, y)
            }
            Link::None => Err(GpuError::Shape(
                "a level after the first needs a link".into(),
            )),
        }
    }

    /// The transpose of [`Generator::link`]: `dy` on this level's grid into `dx` on the
    /// previous level's (overwritten). Nearest gathers at arbitrary cells have no backward
    /// (the training plan uses `Upsample2x` for nearest links).
    fn link_backward<B: Backend>(
        &self,
        be: &mut B,
        link: &Link,
        dy: &B::Buf,
        planes: usize,
        prev: &LevelGrid,
        dx: &B::Buf,
    ) -> BResult<()> {
        match link {
            Link::Upsample2x => be.upsample2x_backward(dy, dx, planes, prev.rows, prev.cols, false),
            Link::Bilinear { rows, cols } => {
                be.gather_bilinear_backward(dy, planes, prev.rows, prev.cols, rows, cols, dx, false)
            }
            Link::Gather { .. } | Link::None => Err(GpuError::Shape(
                "the backward pass needs a training plan (nearest 2x upsampling or bilinear links)"
                    .into(),
            )),
        }
    }

    /// Gradients of [`Generator::synthesize`] on a training plan, given `dimg`
    /// `[batch, 3, R * R]`: parameter gradients are added to `grads`, and the gradient with
    /// respect to w is returned.
    #[allow(clippy::too_many_arguments)]
    pub fn synthesize_backward<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        w: &B::Buf,
        plan: &Plan,
        tape: &SynthTape<B>,
        dimg: &B::Buf,
        grads: &ParamSet<B>,
    ) -> BResult<B::Buf> {
        let batch = tape.batch;
        let r = self.cfg.rank;
        let dw = be.zeros(batch * self.cfg.w_dim, "dw")?;
        let n = self.levels.len();
        let mut dimg_k = be.zeros(batch * 3 * tape.levels[n - 1].np, "dimg")?;
        be.copy(dimg, &dimg_k, batch * 3 * tape.levels[n - 1].np)?;
        // Gradient flowing into the last activation of the level being processed.
        let mut dfeat_next: Option<B::Buf> = None;
        for k in (0..n).rev() {
            let lv = &self.levels[k];
            let lt = &tape.levels[k];
            let grid = &plan.levels[k];
            if k > 0 && !matches!(grid.link, Link::Upsample2x | Link::Bilinear { .. }) {
                return Err(GpuError::Shape(
                    "the backward pass needs a training plan (nearest 2x upsampling or bilinear links)"
                        .into(),
                ));
            }
            let np = lt.np;
            let nl = lv.layers.len();
            let mut dact = match dfeat_next.take() {
                Some(d) => d,
                None => be.zeros(batch * lv.layers[nl - 1].c_out * np, "dact")?,
            };
            for j in (0..nl).rev() {
                let l = &lv.layers[j];
                let ltape = &lt.layers[j];
                let act = &lt.acts[j];
                if let (Some(ri), Some((s, wr))) = (l.rgb, &ltape.rgb) {
                    let rl = &self.rgbs[ri];
                    let ms = ModLinearShape {
                        batch,
                        c_in: rl.c_in,
                        c_out: 3,
                        pixels: np,
                    };
                    // img += Wr act + bias
                    be.gemm(
                        &Gemm::modlinear_backward_input(&ms, false, true),
                        wr,
                        &dimg_k,
                        None,
                        &dact,
                    )?;
                    let dwr = be.zeros(batch * 3 * rl.c_in, "dwr")?;
                    be.gemm(
                        &Gemm::modlinear_backward_weight(&ms, false),
                        &dimg_k,
                        act,
                        None,
                        &dwr,
                    )?;
                    be.sum_axes(&dimg_k, &grads.bufs[rl.bias], batch, 3, np, 1.0, true)?;
                    let m = ModulateShape {
                        batch,
                        c_out: 3,
                        c_in: rl.c_in,
                        gain: 1.0 / (rl.c_in as f32).sqrt(),
                    };
                    let ds = be.zeros(batch * rl.c_in, "ds")?;
                    be.style_modulate_backward(
                        &m,
                        &p.bufs[rl.weight],
                        s,
                        &dwr,
                        &grads.bufs[rl.weight],
                        &ds,
                        true,
                    )?;
                    self.affine_backward(
                        be, p, grads, rl.aff_w, rl.aff_b, w, &ds, batch, rl.c_in, &dw,
                    )?;
                }
                // act = lrelu(pre) * gain
                let dpre = be.zeros(batch * l.c_out * np, "dpre")?;
                let a = ActShape {
                    outer: 1,
                    channels: 1,
                    inner: batch * l.c_out * np,
                    alpha: ALPHA,
                    gain: GAIN,
                    b_gain: 0.0,
                };
                be.act_backward(&a, act, &dact, &dpre, false)?;
                be.sum_axes(&dpre, &grads.bufs[l.bias], batch, l.c_out, np, 1.0, true)?;
                let ms = ModLinearShape {
                    batch,
                    c_in: l.c_in,
                    c_out: l.c_out,
                    pixels: np,
                };
                let x = if j == 0 { &lt.input } else { &lt.acts[j - 1] };
                let fs = FmmShape {
                    batch,
                    c_out: l.c_out,
                    c_in: l.c_in,
                    rank: r,
                    demod: true,
                };
                let dwb = be.zeros(fs.weight_len(), "dwb")?;
                let mut gw = Gemm::modlinear_backward_weight(&ms, false);
                if j == 0 && lt.broadcast_input {
                    gw.b = Strides { sb: 0, ..gw.b };
                }
                be.gemm(&gw, &dpre, x, None, &dwb)?;
                let scratch = be.zeros(fs.weight_len(), "fmm scratch")?;
                let dstyles = be.zeros(batch * fs.style_dim(), "dstyles")?;
                be.fmm_backward(
                    &fs,
                    &p.bufs[l.weight],
                    &ltape.styles,
                    &ltape.norms,
                    &dwb,
                    &scratch,
                    &grads.bufs[l.weight],
                    &dstyles,
                    true,
                )?;
                self.affine_backward(
                    be,
                    p,
                    grads,
                    l.aff_w,
                    l.aff_b,
                    w,
                    &dstyles,
                    batch,
                    fs.style_dim(),
                    &dw,
                )?;
                // Input gradient: to the previous layer, or to the previous level's features.
                let need_dx = j > 0 || k > 0;
                if need_dx {
                    let dx = be.zeros(batch * l.c_in * np, "dx")?;
                    be.gemm(
                        &Gemm::modlinear_backward_input(&ms, false, false),
                        &ltape.wb,
                        &dpre,
                        None,
                        &dx,
                    )?;
                    if j > 0 {
                        dact = dx;
                    } else {
                        // dx = [d up(prev feat) | d emb]; the embeddings are fixed.
                        let c_prev = self.levels[k - 1].layers.last().map_or(0, |l| l.c_out);
                        let cat = ConcatShape {
                            batch,
                            c1: c_prev,
                            c2: l.c_in - c_prev,
                            pixels: np,
                            broadcast: true,
                        };
                        let dup = be.zeros(batch * c_prev * np, "dup")?;
                        be.slice_channels(&cat.first(), &dx, &dup, false)?;
                        let pg = &plan.levels[k - 1];
                        let dprev = be.zeros(batch * c_prev * pg.rows * pg.cols, "dprev feat")?;
                        self.link_backward(be, &grid.link, &dup, batch * c_prev, pg, &dprev)?;
                        dfeat_next = Some(dprev);
                    }
                }
            }
            if k > 0 {
                let pg = &plan.levels[k - 1];
                let d = be.zeros(batch * 3 * pg.rows * pg.cols, "dimg prev")?;
                self.link_backward(be, &grid.link, &dimg_k, batch * 3, pg, &d)?;
                dimg_k = d;
            }
        }
        Ok(dw)
    }

    /// Backward of `styles = affine(w)`: parameter gradients into `grads`, input gradient added
    /// to `dw`.
    #[allow(clippy::too_many_arguments)]
    fn affine_backward<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        grads: &ParamSet<B>,
        aff_w: usize,
        aff_b: usize,
        w: &B::Buf,
        dstyles: &B::Buf,
        batch: usize,
        d_out: usize,
        dw: &B::Buf,
    ) -> BResult<()> {
        let s = self.affine_shape(batch, d_out);
        be.gemm(
            &Gemm::linear_backward_weight(&s, true),
            dstyles,
            w,
            None,
            &grads.bufs[aff_w],
        )?;
        be.sum_axes(dstyles, &grads.bufs[aff_b], batch, d_out, 1, 1.0, true)?;
        be.gemm(
            &Gemm::linear_backward_input(&s, true),
            &p.bufs[aff_w],
            dstyles,
            None,
            dw,
        )
    }
}

/// Most samples per pixel side of an export's anti-aliasing (64 samples a pixel).
pub const MAX_SUPERSAMPLE: usize = 8;
/// Most samples per pixel side in the viewport's full frame (it must stay interactive).
pub const VIEWPORT_SUPERSAMPLE: usize = 4;

/// The `n x n` box average of planar `[channels, rows·n, cols·n]` into `[channels, rows,
/// cols]`: each output the mean of its block, summed in f64 row by row.
pub fn box_average(x: &[f32], channels: usize, cols: usize, rows: usize, n: usize) -> Vec<f32> {
    let (wb, hb) = (cols * n, rows * n);
    let mut y = Vec::with_capacity(channels * rows * cols);
    let inv = 1.0 / (n * n) as f64;
    for c in 0..channels {
        let plane = &x[c * wb * hb..(c + 1) * wb * hb];
        for r in 0..rows {
            for q in 0..cols {
                let mut s = 0.0f64;
                for dy in 0..n {
                    let row = &plane[(r * n + dy) * wb + q * n..(r * n + dy) * wb + q * n + n];
                    s += row.iter().map(|&v| v as f64).sum::<f64>();
                }
                y.push((s * inv) as f32);
            }
        }
    }
    y
}

/// How a level reads the previous level.
#[derive(Clone, Debug, PartialEq)]
pub enum Link {
    /// The first level.
    None,
    /// Nearest 2x upsampling of the whole previous grid (training).
    Upsample2x,
    /// Nearest sampling by index tables into the previous level's grid (rows, columns).
    Gather { rows: Vec<u32>, cols: Vec<u32> },
    /// Bilinear sampling by separable taps into the previous level's grid (rows top-down).
    Bilinear { rows: Taps, cols: Taps },
}

/// Where one level is evaluated: a `rows x cols` grid with per-axis coordinates.
#[derive(Clone, Debug, PartialEq)]
pub struct LevelGrid {
    pub cols: usize,
    pub rows: usize,
    pub xs: Vec<f32>,
    pub ys: Vec<f32>,
    pub link: Link,
}

/// Where every level is evaluated.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    pub levels: Vec<LevelGrid>,
}

impl Plan {
    /// Output size (cols, rows) of the last level.
    pub fn output_size(&self) -> (usize, usize) {
        self.levels.last().map_or((0, 0), |l| (l.cols, l.rows))
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

impl Generator {
    /// Tracks the average w for truncation, as the official mapping network does during
    /// training: `w_avg = lerp(mean_batch(w), w_avg, beta)` (beta 0.995 officially).
    pub fn update_w_avg<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        w: &B::Buf,
        batch: usize,
        beta: f64,
    ) -> BResult<()> {
        let d = self.cfg.w_dim;
        let mean = be.zeros(d, "w mean")?;
        be.sum_axes(w, &mean, batch, d, 1, 1.0 / batch.max(1) as f32, false)?;
        be.ema_update(&mean, &p.bufs[self.w_avg], beta, d)
    }

    /// w `[batch, w_dim]` on the host for latents z `[batch, z_dim]`, truncated towards the
    /// tracked average: `w = w_avg + psi (w - w_avg)`.
    pub fn map_truncated<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        z: &[f32],
        batch: usize,
        psi: f32,
    ) -> BResult<Vec<f32>> {
        let tape = self.map(be, p, z, batch)?;
        let mut w = be.read(tape.w())?;
        if psi != 1.0 {
            let avg = be.read(&p.bufs[self.w_avg])?;
            for row in w.chunks_mut(self.cfg.w_dim) {
                for (v, a) in row.iter_mut().zip(&avg) {
                    *v = a + psi * (*v - a);
                }
            }
        }
        Ok(w)
    }

    /// Planar RGB `[batch, 3, rows * cols]` of `plan` for host w `[batch, w_dim]`.
    pub fn render_plan<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        w: &[f32],
        batch: usize,
        plan: &Plan,
    ) -> BResult<Vec<f32>> {
        if w.len() != batch * self.cfg.w_dim {
            return Err(GpuError::Shape(format!(
                "render: {} w values for a batch of {batch} with w_dim {}",
                w.len(),
                self.cfg.w_dim
            )));
        }
        let wb = be.upload(w, "w")?;
        let tape = self.synthesize_fast(be, p, &[&wb], batch, plan)?;
        be.read(tape.img())
    }

    /// Planar RGB `[3, rows * cols]` of `plan` for one image whose level `k` takes its styles
    /// from the host w `ws[min(k, ws.len() - 1)]` (style mixing; one w is the plain render).
    pub fn render_plan_levels<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        ws: &[Vec<f32>],
        plan: &Plan,
    ) -> BResult<Vec<f32>> {
        if ws.is_empty() || ws.iter().any(|w| w.len() != self.cfg.w_dim) {
            return Err(GpuError::Shape(format!(
                "render: each level's w must have w_dim {} values",
                self.cfg.w_dim
            )));
        }
        let bufs = ws
            .iter()
            .map(|w| be.upload(w, "w"))
            .collect::<BResult<Vec<_>>>()?;
        let refs: Vec<&B::Buf> = bufs.iter().collect();
        let tape = self.synthesize_fast(be, p, &refs, 1, plan)?;
        be.read(tape.img())
    }

    /// Renders `win` at `width x height` for one w, in tiles of at most `tile x tile` pixels,
    /// calling `on_tile(col0, row0, cols, rows, rgb_planar)` for each (rows of tiles top-down).
    #[allow(clippy::too_many_arguments)]
    pub fn render_tiles<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        w: &[f32],
        win: [f64; 4],
        width: usize,
        height: usize,
        tile: usize,
        mut on_tile: impl FnMut(usize, usize, usize, usize, &[f32]) -> BResult<()>,
    ) -> BResult<()> {
        let tile = tile.max(1);
        for r0 in (0..height).step_by(tile) {
            for c0 in (0..width).step_by(tile) {
                let (c1, r1) = ((c0 + tile).min(width), (r0 + tile).min(height));
                let plan = self.tile_plan(win, width, height, c0..c1, r0..r1)?;
                let rgb = self.render_plan(be, p, w, 1, &plan)?;
                on_tile(c0, r0, c1 - c0, r1 - r0, &rgb)?;
            }
        }
        Ok(())
    }

    /// Samples per pixel side that anti-alias a render of `win` at `width x height`: when a
    /// pixel spans more than the finest level's training spacing `2 / R`, the ceiling of the
    /// ratio (so the samples are at least as dense as the training grid), capped at `cap`;
    /// else 1. The ceiling forgives a ratio within 1e-9 of an integer.
    pub fn supersampling(&self, win: [f64; 4], width: usize, height: usize, cap: usize) -> usize {
        let [x0, x1, y0, y1] = win;
        let spacing = ((x1 - x0) / width.max(1) as f64).max((y1 - y0) / height.max(1) as f64);
        let ratio = spacing / (2.0 / self.cfg.resolution as f64);
        if !ratio.is_finite() || ratio <= 1.0 {
            return 1;
        }
        ((ratio - 1e-9).ceil() as usize).clamp(1, cap.max(1))
    }

    /// Planar RGB of the pixels `cols x rows` of the `width x height` rendering of `win`,
    /// evaluated to `levels` levels with `ss x ss` samples per pixel averaged (a box filter):
    /// exactly [`box_average`] of the same tile of the `ss·width x ss·height` rendering, since
    /// tiles of one image agree bitwise with the whole.
    #[allow(clippy::too_many_arguments)]
    pub fn render_tile_levels<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        ws: &[Vec<f32>],
        win: [f64; 4],
        width: usize,
        height: usize,
        cols: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
        levels: usize,
        ss: usize,
    ) -> BResult<Vec<f32>> {
        let ss = ss.max(1);
        let (nc, nr) = (cols.len(), rows.len());
        let big = |v: usize| {
            v.checked_mul(ss)
                .ok_or_else(|| GpuError::Shape(format!("{v} pixels x {ss} samples overflow")))
        };
        let plan = self.partial_tile_plan(
            win,
            big(width)?,
            big(height)?,
            big(cols.start)?..big(cols.end)?,
            big(rows.start)?..big(rows.end)?,
            levels,
        )?;
        let rgb = self.render_plan_levels(be, p, ws, &plan)?;
        Ok(if ss == 1 {
            rgb
        } else {
            box_average(&rgb, 3, nc, nr, ss)
        })
    }

    /// Renders `win` at `width x height` for one w into one planar RGB image.
    pub fn render<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        w: &[f32],
        win: [f64; 4],
        width: usize,
        height: usize,
    ) -> BResult<Vec<f32>> {
        let plan = self.window_plan(win, width, height)?;
        self.render_plan(be, p, w, 1, &plan)
    }
}

/// The training square [-1, 1)².
pub const TRAINING_WINDOW: [f64; 4] = [-1.0, 1.0, -1.0, 1.0];
