//! A random, untrained coordinate MLP evaluated by the kernels (the window's first picture).

use crate::gpu::{GpuBuffer, GpuContext, GpuResult, Recorder};
use crate::kernels::act::{self, ActShape};
use crate::kernels::coords::{self as kc, CoordsShape};
use crate::kernels::fmm::{self, FmmShape};
use crate::kernels::image;
use crate::kernels::linear::{self, ModLinearShape};
use crate::reference::coords;
use crate::rng::Rng;

/// A square window of the plane: centre and half-width. y points up.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct View {
    pub cx: f64,
    pub cy: f64,
    pub half: f64,
}

impl Default for View {
    fn default() -> Self {
        Self {
            cx: 0.0,
            cy: 0.0,
            half: 1.25,
        }
    }
}

impl View {
    pub fn x0(&self) -> f64 {
        self.cx - self.half
    }
    pub fn x1(&self) -> f64 {
        self.cx + self.half
    }
    pub fn y0(&self) -> f64 {
        self.cy - self.half
    }
    pub fn y1(&self) -> f64 {
        self.cy + self.half
    }
    /// Moves the window by a fraction of its width (screen right = +x, screen down = -y) so the
    /// picture follows the pointer.
    pub fn pan(&mut self, du: f64, dv: f64) {
        self.cx -= du * 2.0 * self.half;
        self.cy += dv * 2.0 * self.half;
    }
    /// Zooms by `factor` (> 1 magnifies) keeping the point under unit screen position (u, v) fixed.
    pub fn zoom_about(&mut self, u: f64, v: f64, factor: f64) {
        let (px, py) = (
            self.x0() + u * 2.0 * self.half,
            self.y1() - v * 2.0 * self.half,
        );
        let half = (self.half / factor).clamp(1e-4, 1e3);
        let f = half / self.half;
        self.cx = px + (self.cx - px) * f;
        self.cy = py + (self.cy - py) * f;
        self.half = half;
    }
    /// Unit screen position (0..1, top-left origin) of a plane point.
    pub fn to_unit(&self, x: f64, y: f64) -> (f64, f64) {
        (
            (x - self.x0()) / (2.0 * self.half),
            (self.y1() - y) / (2.0 * self.half),
        )
    }
}

/// Hidden width of the demo MLP.
const HIDDEN: usize = 48;
/// Rank of the FMM modulation.
const RANK: usize = 4;
/// The frequencies are those of a 32-pixel level (5 octaves, with diagonals).
const BASIS_RES: usize = 32;

struct Layer {
    c_in: usize,
    c_out: usize,
    weight: GpuBuffer<f32>,
    bias: GpuBuffer<f32>,
}

/// A random, untrained INR in the shape of one INR-GAN level: Fourier coordinate embeddings, two
/// FMM-modulated hidden layers with leaky ReLU, a linear RGB layer. The shared weights are fixed;
/// the seed draws the modulation styles (the "latent"), so seeds give related pictures.
pub struct DemoInr {
    size: usize,
    n_freq: usize,
    freqs: GpuBuffer<f32>,
    xs: GpuBuffer<f32>,
    ys: GpuBuffer<f32>,
    layers: Vec<Layer>,
    emb: GpuBuffer<f32>,
    pre: GpuBuffer<f32>,
    a: GpuBuffer<f32>,
    b: GpuBuffer<f32>,
    rgb: GpuBuffer<f32>,
}

impl DemoInr {
    /// Builds the MLP for `seed`, rendering `size` x `size` pixels.
    pub fn new(ctx: &GpuContext, seed: u64, size: usize) -> GpuResult<Self> {
        let basis = coords::log_basis(BASIS_RES, true);
        let n_freq = basis.len();
        let freqs: Vec<f32> = basis.iter().flatten().copied().collect();
        let d_emb = 2 * n_freq;
        let mut shared = Rng::new(0x1a7e_2024);
        let mut style_rng = Rng::new(seed);
        let pixels = size * size;
        let mut rec = Recorder::new(ctx, "demo weights");
        let mut layers = Vec::new();
        let mut keep = Vec::new();
        for (c_in, c_out) in [(d_emb, HIDDEN), (HIDDEN, HIDDEN)] {
            let fs = FmmShape {
                batch: 1,
                c_out,
                c_in,
                rank: RANK,
                demod: true,
            };
            let ws = GpuBuffer::from_slice(ctx, &shared.normal_vec(c_out * c_in), "demo ws")?;
            let styles = GpuBuffer::from_slice(
                ctx,
                &style_rng.normal_vec((c_out + c_in) * RANK),
                "demo styles",
            )?;
            let weight = GpuBuffer::zeros(ctx, c_out * c_in, "demo weight")?;
            let norms = GpuBuffer::zeros(ctx, c_out, "demo norms")?;
            fmm::fmm_forward(&mut rec, &fs, &ws, &styles, &weight, &norms)?;
            let bias =
                GpuBuffer::from_slice(ctx, &shared.uniform_vec(c_out, -0.2, 0.2), "demo bias")?;
            layers.push(Layer {
                c_in,
                c_out,
                weight,
                bias,
            });
            keep.push((ws, styles, norms));
        }
        // RGB: a plain linear layer with gain 1/sqrt(fan-in), scaled so colours span [-1, 1].
        let gain = 0.6 / (HIDDEN as f32).sqrt();
        let w_rgb: Vec<f32> = shared
            .normal_vec(3 * HIDDEN)
            .iter()
            .map(|v| v * gain)
            .collect();
        layers.push(Layer {
            c_in: HIDDEN,
            c_out: 3,
            weight: GpuBuffer::from_slice(ctx, &w_rgb, "demo rgb weight")?,
            bias: GpuBuffer::zeros(ctx, 3, "demo rgb bias")?,
        });
        rec.submit()?;
        drop(keep);
        Ok(Self {
            size,
            n_freq,
            freqs: GpuBuffer::from_slice(ctx, &freqs, "demo freqs")?,
            xs: GpuBuffer::zeros(ctx, size, "demo xs")?,
            ys: GpuBuffer::zeros(ctx, size, "demo ys")?,
            layers,
            emb: GpuBuffer::zeros(ctx, d_emb * pixels, "demo emb")?,
            pre: GpuBuffer::zeros(ctx, HIDDEN * pixels, "demo pre")?,
            a: GpuBuffer::zeros(ctx, HIDDEN * pixels, "demo a")?,
            b: GpuBuffer::zeros(ctx, HIDDEN * pixels, "demo b")?,
            rgb: GpuBuffer::zeros(ctx, 3 * pixels, "demo rgb")?,
        })
    }

    /// Records the evaluation of the MLP over `view` into the top-left `size` x `size` texels of
    /// `target` (Rgba8Unorm, storage binding).
    pub fn record(&self, rec: &mut Recorder, view: &View, target: &wgpu::Texture) -> GpuResult<()> {
        let ctx = rec.ctx();
        let n = self.size;
        let pixels = n * n;
        let (xs, ys) = coords::window_grid(view.x0(), view.x1(), view.y0(), view.y1(), n, n);
        self.xs.write(ctx, &xs)?;
        self.ys.write(ctx, &ys)?;
        let cs = CoordsShape {
            width: n,
            height: n,
            n_freq: self.n_freq,
            with_cos: true,
        };
        kc::coords_forward(rec, &cs, &self.xs, &self.ys, &self.freqs, &self.emb)?;
        let mut input = &self.emb;
        let outs = [&self.a, &self.b];
        for (i, l) in self.layers.iter().enumerate() {
            let ms = ModLinearShape {
                batch: 1,
                c_in: l.c_in,
                c_out: l.c_out,
                pixels,
            };
            let last = i + 1 == self.layers.len();
            let pre = if last { &self.rgb } else { &self.pre };
            linear::modlinear_forward(rec, &ms, input, &l.weight, Some(&l.bias), pre, true)?;
            if !last {
                let out = outs[i % 2];
                act::act_forward(rec, &ActShape::lrelu(1, l.c_out, pixels), pre, None, out)?;
                input = out;
            }
        }
        image::to_texture(rec, &self.rgb, 1, 0, n, n, target)
    }
}
