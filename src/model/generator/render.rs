//! Rendering: a latent to an image on any plan, in tiles, supersampled.

use super::*;

impl Generator {
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
            return Err(BackendError::Shape(format!(
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
            return Err(BackendError::Shape(format!(
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
        win: Window,
        width: usize,
        height: usize,
        tile: usize,
        mut on_tile: impl FnMut(usize, usize, usize, usize, &[f32]) -> BResult<()>,
    ) -> BResult<()> {
        let tile = tile.max(1);
        for r0 in (0..height).step_by(tile) {
            for c0 in (0..width).step_by(tile) {
                let (c1, r1) = ((c0 + tile).min(width), (r0 + tile).min(height));
                let plan = self.plan(&PlanRequest::new(win, width, height).tile(c0..c1, r0..r1))?;
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
    pub fn supersampling(&self, win: Window, width: usize, height: usize, cap: usize) -> usize {
        let Window { x0, x1, y0, y1 } = win;
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
        win: Window,
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
                .ok_or_else(|| BackendError::Shape(format!("{v} pixels x {ss} samples overflow")))
        };
        let plan = self.plan(
            &PlanRequest::new(win, big(width)?, big(height)?)
                .tile(
                    big(cols.start)?..big(cols.end)?,
                    big(rows.start)?..big(rows.end)?,
                )
                .levels(levels),
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
        win: Window,
        width: usize,
        height: usize,
    ) -> BResult<Vec<f32>> {
        let plan = self.window_plan(win, width, height)?;
        self.render_plan(be, p, w, 1, &plan)
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
