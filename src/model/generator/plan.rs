//! Plans: where each level is evaluated (training grid, windows, tiles, previews) and how it reads the previous level.

use super::*;

impl Generator {
    /// The training plan: with nearest links every level on its full grid, nearest 2x
    /// upsampling between levels; with bilinear links the window plan of the training square
    /// at the training size (the coarse levels on their grids plus a ring of halo cells).
    pub fn training_plan(&self) -> Plan {
        if self.cfg.link == LinkMode::Bilinear {
            let r = self.cfg.resolution;
            if let Ok(plan) = self.window_plan(Window::TRAINING, r, r) {
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

    /// The plan for a window of the plane rendered at `width x height` pixels: the finest level
    /// at the pixels, each coarser level on the cells it must supply (shorthand for
    /// [`Generator::plan`] of [`PlanRequest::new`]).
    pub fn window_plan(&self, win: Window, width: usize, height: usize) -> BResult<Plan> {
        self.plan(&PlanRequest::new(win, width, height))
    }

    /// The plan for a [`PlanRequest`]: tiles of one image agree exactly with the whole image,
    /// so they join without seams; a plan that stops after `levels` levels evaluates the last
    /// of them at the output pixels, and its image is the RGB accumulated up to that level (the
    /// official skip architecture's early exit: the accelerated low-resolution inference).
    pub fn plan(&self, req: &PlanRequest) -> BResult<Plan> {
        let PlanRequest {
            window: win,
            width,
            height,
            ref cols,
            ref rows,
            levels,
        } = *req;
        let (cols, rows) = (cols.clone(), rows.clone());
        let n_levels = levels.unwrap_or(self.levels.len());
        if n_levels == 0 || n_levels > self.levels.len() {
            return Err(BackendError::Request(format!(
                "{n_levels} levels asked of a model with {}",
                self.levels.len()
            )));
        }
        let Window { x0, x1, y0, y1 } = win;
        if width == 0
            || height == 0
            || x1 <= x0
            || y1 <= y0
            || !x0.is_finite()
            || !x1.is_finite()
            || !y0.is_finite()
            || !y1.is_finite()
        {
            return Err(BackendError::Request(format!(
                "empty or non-finite window {win} at {width}x{height} (expected x0,y0,x1,y1 with x1 > x0 and y1 > y0)"
            )));
        }
        if cols.is_empty() || rows.is_empty() || cols.end > width || rows.end > height {
            return Err(BackendError::Request(format!(
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

    /// [`Generator::plan`] for bilinear links (the window is checked). Samples sit at
    /// centres: pixel `(c, r)` at `(x0 + (x1 - x0)(c + 1/2) / width, y1 - (y1 - y0)(r + 1/2) /
    /// height)`, cell `j` of level `k` at `-1 + (2 / R_k)(j + 1/2)`. A sample at `p` reads the
    /// previous level at `u = (p + 1) R / 2 - 1/2`: cells `floor(u)` and `floor(u) + 1` with
    /// weights `1 - t` and `t`, `t = u - floor(u)` (per axis; computed in f64). Each coarser
    /// level is evaluated on exactly the cells the next one reads, outside the square too, so a
    /// tile's cells are those of the whole image and tiles join bitwise.
    pub(super) fn bilinear_plan(
        &self,
        win: Window,
        width: usize,
        height: usize,
        cols: std::ops::Range<usize>,
        rows: std::ops::Range<usize>,
        n: usize,
    ) -> Plan {
        let Window { x0, x1, y0, y1 } = win;
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

/// What to plan: the `width x height` rendering of `window`, all of it or the tile of pixels
/// `cols x rows`, through all levels or the first `levels`.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanRequest {
    pub window: Window,
    pub width: usize,
    pub height: usize,
    pub cols: std::ops::Range<usize>,
    pub rows: std::ops::Range<usize>,
    /// Levels evaluated; `None`: all.
    pub levels: Option<usize>,
}

impl PlanRequest {
    /// The whole `width x height` image of `window`, all levels.
    pub fn new(window: Window, width: usize, height: usize) -> Self {
        Self {
            window,
            width,
            height,
            cols: 0..width,
            rows: 0..height,
            levels: None,
        }
    }

    /// Only the pixels `cols x rows` (a tile).
    pub fn tile(self, cols: std::ops::Range<usize>, rows: std::ops::Range<usize>) -> Self {
        Self { cols, rows, ..self }
    }

    /// Stop after the first `n` levels (the early exit).
    pub fn levels(self, n: usize) -> Self {
        Self {
            levels: Some(n),
            ..self
        }
    }
}
