//! Reference of `shaders/fused.wgsl`: one scale block's FMM layers and toRGB outputs for each
//! pixel of each image, the composite of the unfused kernels (modulated linear + bias, leaky
//! ReLU with gain, modulated toRGB accumulated into the image).

use super::resample::Taps;
use super::{Float, c};

/// The shape of a fused block.
#[derive(Clone, Debug, PartialEq)]
pub struct FusedShape {
    pub batch: usize,
    pub pixels: usize,
    /// Channels of the block's input.
    pub c_in: usize,
    /// The input is one `[c_in, pixels]` map shared by the batch.
    pub broadcast_input: bool,
    /// Per layer: its output channels and whether a toRGB follows it.
    pub layers: Vec<(usize, bool)>,
    pub alpha: f32,
    pub gain: f32,
}

/// Most layers a fused block may have, and the widest layer output (the kernel's limits; the
/// input may be any width).
pub const MAX_LAYERS: usize = 16;
pub const MAX_WIDTH: usize = 512;

impl FusedShape {
    /// Input channels of layer `j`.
    pub fn c_in_of(&self, j: usize) -> usize {
        if j == 0 {
            self.c_in
        } else {
            self.layers[j - 1].0
        }
    }
    /// Output channels of the block.
    pub fn c_last(&self) -> usize {
        self.layers.last().map_or(self.c_in, |l| l.0)
    }
    /// Offsets of each layer's weights in one image's pack, and the pack's length.
    pub fn weight_offsets(&self) -> (Vec<usize>, usize) {
        let mut off = Vec::new();
        let mut n = 0;
        for (j, &(co, _)) in self.layers.iter().enumerate() {
            off.push(n);
            n += co * self.c_in_of(j);
        }
        (off, n)
    }
    /// Offsets of each layer's bias in the bias pack, and its length.
    pub fn bias_offsets(&self) -> (Vec<usize>, usize) {
        let mut off = Vec::new();
        let mut n = 0;
        for &(co, _) in &self.layers {
            off.push(n);
            n += co;
        }
        (off, n)
    }
    /// Offsets of each toRGB's weights in one image's pack (for layers with one), and the
    /// pack's length.
    pub fn rgb_offsets(&self) -> (Vec<usize>, usize) {
        let mut off = Vec::new();
        let mut n = 0;
        for &(co, rgb) in &self.layers {
            off.push(n);
            if rgb {
                n += 3 * co;
            }
        }
        (off, n)
    }
    /// Offsets of each toRGB's bias (3 values per toRGB), and the pack's length.
    pub fn rgb_bias_offsets(&self) -> (Vec<usize>, usize) {
        let mut off = Vec::new();
        let mut n = 0;
        for &(_, rgb) in &self.layers {
            off.push(n);
            if rgb {
                n += 3;
            }
        }
        (off, n)
    }
    /// An upper bound on the loop iterations (back-edges, all loops together) one invocation of
    /// the kernel takes: what lavapipe caps (`GpuContext::loop_limit`).
    pub fn loop_iterations(&self) -> u64 {
        let c0 = self.layers.first().map_or(0, |l| l.0) as u64;
        let c_in0 = self.c_in as u64;
        // Pixel setup, layer 0's zeroing and its input chunks (at least 64 channels each).
        let mut n = 16 + c0 + c_in0 + c0 * 3 * c_in0.div_ceil(64);
        for (j, &(co, _)) in self.layers.iter().enumerate() {
            let (co, ci) = (co as u64, self.c_in_of(j) as u64);
            // Four outputs' dot products two inputs per iteration (the last up to three
            // outputs four inputs per iteration), the activation, the toRGB.
            n += co.div_ceil(4) * (ci / 2 + 6) + 3 * (ci / 4 + 2) + 2 * co + 3 * (co + 1);
        }
        n + 4 * (3 + self.c_last() as u64)
    }

    /// Whether the fused kernel can run this block.
    pub fn fits(&self) -> bool {
        !self.layers.is_empty()
            && self.layers.len() <= MAX_LAYERS
            && self.layers.iter().all(|l| l.0 <= MAX_WIDTH && l.0 > 0)
            && self.c_in > 0
    }
}

impl FusedShape {
    /// The lengths every buffer of a fused block must have, and that an assembled input fits
    /// the shape: the checks the GPU wrapper and the host backends share (`len` gives a
    /// buffer's length). The error names the buffer.
    #[allow(clippy::too_many_arguments)]
    pub fn check_buffers<T>(
        &self,
        input: &FusedInput<'_, T>,
        len: impl Fn(&T) -> usize,
        w: &T,
        bias: &T,
        rgbw: &T,
        rgbb: &T,
        img: &T,
        out: Option<&T>,
    ) -> Result<(), String> {
        let need = |name: &str, b: &T, n: usize| {
            if len(b) < n {
                return Err(format!(
                    "{name}: buffer holds {} values, the shape needs {n}",
                    len(b)
                ));
            }
            Ok(())
        };
        match *input {
            FusedInput::Dense(x) => {
                let n = if self.broadcast_input { 1 } else { self.batch };
                need("fused x", x, n * self.c_in * self.pixels)?;
            }
            FusedInput::Assembled { a, feat, geom } => {
                if a.c_in() != self.c_in || a.rows * a.cols != self.pixels || a.cols == 0 {
                    return Err(format!(
                        "fused assembly {a:?} does not match {} channels at {} pixels",
                        self.c_in, self.pixels
                    ));
                }
                need("fused geometry", geom, a.geometry_len())?;
                match (a.c_prev, feat) {
                    (0, _) => {}
                    (c, Some(f)) => need(
                        "fused features",
                        f,
                        self.batch * c * a.prev_rows * a.prev_cols,
                    )?,
                    (_, None) => return Err("fused assembly: previous features missing".into()),
                }
            }
        }
        let (b, np) = (self.batch, self.pixels);
        need("fused weights", w, b * self.weight_offsets().1)?;
        need("fused bias", bias, self.bias_offsets().1)?;
        need("fused rgb weights", rgbw, b * self.rgb_offsets().1)?;
        need("fused rgb bias", rgbb, self.rgb_bias_offsets().1)?;
        need("fused img", img, b * 3 * np)?;
        if let Some(out) = out {
            need("fused out", out, b * self.c_last() * np)?;
        }
        Ok(())
    }
}

/// `(img + block rgb, last features [batch, c_last, pixels])` for input `x` (`[batch, c_in,
/// pixels]`, or `[c_in, pixels]` when broadcast), weight pack `w [batch, per-image pack]`,
/// bias pack, toRGB weight pack `[batch, per-image pack]` and toRGB bias pack.
#[allow(clippy::too_many_arguments)]
pub fn level_forward<F: Float>(
    s: &FusedShape,
    x: &[F],
    w: &[F],
    bias: &[F],
    rgbw: &[F],
    rgbb: &[F],
    img: &[F],
) -> (Vec<F>, Vec<F>) {
    let np = s.pixels;
    let (woff, wlen) = s.weight_offsets();
    let (boff, _) = s.bias_offsets();
    let (roff, rlen) = s.rgb_offsets();
    let (rboff, _) = s.rgb_bias_offsets();
    let alpha = c::<F>(s.alpha as f64);
    let gain = c::<F>(s.gain as f64);
    let mut img = img.to_vec();
    let c_last = s.c_last();
    let mut out = vec![F::zero(); s.batch * c_last * np];
    for b in 0..s.batch {
        let xb = if s.broadcast_input {
            0
        } else {
            b * s.c_in * np
        };
        for q in 0..np {
            let mut h: Vec<F> = (0..s.c_in).map(|i| x[xb + i * np + q]).collect();
            let mut rgb = [F::zero(); 3];
            for (j, &(co, has_rgb)) in s.layers.iter().enumerate() {
                let ci = h.len();
                let wb = &w[b * wlen + woff[j]..];
                let hn: Vec<F> = (0..co)
                    .map(|o| {
                        let mut acc = F::zero();
                        for (i, &hv) in h.iter().enumerate() {
                            acc = acc + wb[o * ci + i] * hv;
                        }
                        let z = acc + bias[boff[j] + o];
                        (if z > F::zero() { z } else { alpha * z }) * gain
                    })
                    .collect();
                h = hn;
                if has_rgb {
                    let rw = &rgbw[b * rlen + roff[j]..];
                    for (c, v) in rgb.iter_mut().enumerate() {
                        let mut acc = F::zero();
                        for (i, &hv) in h.iter().enumerate() {
                            acc = acc + rw[c * co + i] * hv;
                        }
                        *v = *v + acc + rgbb[rboff[j] + c];
                    }
                }
            }
            for (c, v) in rgb.iter().enumerate() {
                let k = (b * 3 + c) * np + q;
                img[k] = img[k] + *v;
            }
            for (o, &hv) in h.iter().enumerate() {
                out[(b * c_last + o) * np + q] = hv;
            }
        }
    }
    (img, out)
}

/// Where a fused block's input comes from.
pub enum FusedInput<'a, T: ?Sized> {
    /// A dense input `x` (`[batch, c_in, pixels]`, or `[c_in, pixels]` when the shape says
    /// `broadcast_input`).
    Dense(&'a T),
    /// Assembled per pixel inside the kernel, never stored: the previous block's features
    /// sampled by index tables, then the block's Fourier embeddings of the pixel's coordinates
    /// (`[up(prev features) | sin | cos]`, what the unfused path builds with `gather`,
    /// `coords_forward` and `concat_channels`).
    Assembled {
        a: &'a Assembly,
        /// Previous features `[batch, c_prev, prev_rows * prev_cols]` (None when `c_prev` is 0).
        feat: Option<&'a T>,
        /// [`Assembly::geometry`].
        geom: &'a T,
    },
}

/// The geometry of an assembled input.
#[derive(Clone, Debug, PartialEq)]
pub struct Assembly {
    /// Channels of the previous block's features (0 for the first block).
    pub c_prev: usize,
    pub prev_rows: usize,
    pub prev_cols: usize,
    /// This block's grid: `rows * cols` is the shape's `pixels`.
    pub rows: usize,
    pub cols: usize,
    /// Fourier frequencies: the input has `c_prev + 2 n_freq` channels.
    pub n_freq: usize,
    /// The previous features are blended bilinearly by separable taps (the tables carry
    /// weights), else sampled nearest.
    pub bilinear: bool,
}

impl Assembly {
    pub fn c_in(&self) -> usize {
        self.c_prev + 2 * self.n_freq
    }

    /// Values of the geometry buffer.
    pub fn geometry_len(&self) -> usize {
        let t = if self.bilinear {
            self.rows + self.cols
        } else {
            0
        };
        2 * (self.cols + self.rows + self.n_freq) + t
    }

    /// [`Assembly::geometry`] of a bilinear assembly: the tables are the taps' first indices,
    /// followed by `row t [rows] | column t [cols]`.
    pub fn geometry_bilinear(
        &self,
        xs: &[f32],
        ys: &[f32],
        freqs: &[f32],
        rows: &Taps,
        cols: &Taps,
    ) -> Result<Vec<f32>, String> {
        if !self.bilinear {
            return Err("fused geometry: bilinear taps for a nearest assembly".into());
        }
        if rows.t.len() != rows.idx.len() || cols.t.len() != cols.idx.len() {
            return Err("fused geometry: taps without their weights".into());
        }
        let mut g = self.geometry_tables(xs, ys, freqs, &rows.idx, &cols.idx)?;
        g.extend_from_slice(&rows.t);
        g.extend_from_slice(&cols.t);
        Ok(g)
    }

    /// The geometry buffer: `xs [cols] | ys [rows] | freqs [n_freq, 2] | row table [rows] |
    /// column table [cols]`, the tables (indices into the previous grid) stored as the bits of
    /// `u32`s. Checks every length and index.
    pub fn geometry(
        &self,
        xs: &[f32],
        ys: &[f32],
        freqs: &[f32],
        rows: &[u32],
        cols: &[u32],
    ) -> Result<Vec<f32>, String> {
        if self.bilinear {
            return Err("fused geometry: a bilinear assembly needs its taps' weights".into());
        }
        self.geometry_tables(xs, ys, freqs, rows, cols)
    }

    fn geometry_tables(
        &self,
        xs: &[f32],
        ys: &[f32],
        freqs: &[f32],
        rows: &[u32],
        cols: &[u32],
    ) -> Result<Vec<f32>, String> {
        if xs.len() != self.cols
            || ys.len() != self.rows
            || freqs.len() != 2 * self.n_freq
            || rows.len() != self.rows
            || cols.len() != self.cols
        {
            return Err(format!("fused geometry does not match {self:?}"));
        }
        self.check_tables(rows, cols)?;
        let mut g = Vec::with_capacity(self.geometry_len());
        g.extend_from_slice(xs);
        g.extend_from_slice(ys);
        g.extend_from_slice(freqs);
        g.extend(rows.iter().map(|&r| f32::from_bits(r)));
        g.extend(cols.iter().map(|&c| f32::from_bits(c)));
        Ok(g)
    }
}

/// An [`Assembly::geometry`] buffer read back: coordinates, frequencies and the index tables.
#[derive(Clone, Debug, PartialEq)]
pub struct Geometry {
    pub xs: Vec<f32>,
    pub ys: Vec<f32>,
    pub freqs: Vec<f32>,
    pub rows: Vec<u32>,
    pub cols: Vec<u32>,
    /// The taps' weights (bilinear assemblies; empty otherwise).
    pub row_t: Vec<f32>,
    pub col_t: Vec<f32>,
}

impl Geometry {
    /// The row and column taps of a bilinear assembly.
    pub fn taps(&self) -> (Taps, Taps) {
        (
            Taps {
                idx: self.rows.clone(),
                t: self.row_t.clone(),
            },
            Taps {
                idx: self.cols.clone(),
                t: self.col_t.clone(),
            },
        )
    }
}

impl Assembly {
    /// Reads a geometry buffer (its first [`Assembly::geometry_len`] values), checking that
    /// every index lies in the previous grid.
    pub fn parse(&self, geom: &[f32]) -> Result<Geometry, String> {
        if geom.len() < self.geometry_len() {
            return Err(format!(
                "fused geometry: {} values, {self:?} needs {}",
                geom.len(),
                self.geometry_len()
            ));
        }
        let (xs, rest) = geom.split_at(self.cols);
        let (ys, rest) = rest.split_at(self.rows);
        let (freqs, rest) = rest.split_at(2 * self.n_freq);
        let (rows, rest) = rest.split_at(self.rows);
        let (cols, rest) = rest.split_at(self.cols);
        let (row_t, col_t) = if self.bilinear {
            let (rt, rest) = rest.split_at(self.rows);
            (rt.to_vec(), rest[..self.cols].to_vec())
        } else {
            (Vec::new(), Vec::new())
        };
        if row_t.iter().chain(&col_t).any(|t| !t.is_finite()) {
            return Err("fused geometry: a non-finite tap weight".into());
        }
        let g = Geometry {
            xs: xs.to_vec(),
            ys: ys.to_vec(),
            freqs: freqs.to_vec(),
            rows: rows.iter().map(|v| v.to_bits()).collect(),
            cols: cols.iter().map(|v| v.to_bits()).collect(),
            row_t,
            col_t,
        };
        self.check_tables(&g.rows, &g.cols)?;
        Ok(g)
    }

    /// Every index of the tables lies in the previous grid (when there is one).
    fn check_tables(&self, rows: &[u32], cols: &[u32]) -> Result<(), String> {
        // A bilinear tap also reads the next row and column.
        let reach = self.bilinear as usize;
        if self.c_prev > 0
            && (rows.iter().any(|&r| r as usize + reach >= self.prev_rows)
                || cols.iter().any(|&c| c as usize + reach >= self.prev_cols))
        {
            return Err("fused geometry: an index past the previous grid".into());
        }
        Ok(())
    }
}

/// The dense input an [`Assembly`] stands for, `[batch, c_in, pixels]`, from the references of
/// the unfused kernels (gather or, with `taps` (the row and column weights), bilinear gather,
/// coordinate embeddings, channel concatenation).
#[allow(clippy::too_many_arguments)]
pub fn assemble_input<F: Float>(
    a: &Assembly,
    batch: usize,
    feat: &[F],
    xs: &[F],
    ys: &[F],
    freqs: &[F],
    rows: &[u32],
    cols: &[u32],
    taps: Option<(&[f32], &[f32])>,
) -> Vec<F> {
    let np = a.rows * a.cols;
    let emb = super::coords::coords_forward(
        &super::coords::CoordsShape {
            width: a.cols,
            height: a.rows,
            n_freq: a.n_freq,
            with_cos: true,
        },
        xs,
        ys,
        freqs,
    );
    let up = if a.c_prev > 0 {
        match taps {
            Some((rt, ct)) => super::resample::gather_bilinear(
                feat,
                batch * a.c_prev,
                a.prev_rows,
                a.prev_cols,
                &Taps {
                    idx: rows.to_vec(),
                    t: rt.to_vec(),
                },
                &Taps {
                    idx: cols.to_vec(),
                    t: ct.to_vec(),
                },
            ),
            None => super::resample::gather(
                feat,
                batch * a.c_prev,
                a.prev_rows,
                a.prev_cols,
                rows,
                cols,
            ),
        }
    } else {
        Vec::new()
    };
    let mut x = Vec::with_capacity(batch * a.c_in() * np);
    for b in 0..batch {
        x.extend_from_slice(&up[b * a.c_prev * np..(b + 1) * a.c_prev * np]);
        x.extend_from_slice(&emb);
    }
    x
}
