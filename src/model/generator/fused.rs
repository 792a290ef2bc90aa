//! The fused forward: a whole level in one kernel where the backend has one.

use super::*;

impl Generator {
    /// Floats per output pixel of the widest buffer a frame evaluated to `levels` levels holds
    /// (the finest level's input `[features | embeddings]` or its widest layer): what bounds
    /// the rows of a strip under a GPU's storage-binding limit.
    pub fn frame_channels(&self, levels: usize) -> usize {
        let levels = levels.clamp(1, self.cfg.levels.len());
        self.unfused_channels(levels - 1).max(3)
    }

    /// Level `k`'s widest per-cell buffer layer by layer: its input `[features | embeddings]`
    /// or its widest layer.
    pub(super) fn unfused_channels(&self, k: usize) -> usize {
        let lv = &self.cfg.levels[k];
        let c_prev = match k {
            0 => 0,
            k => self.cfg.levels[k - 1].widths.last().copied().unwrap_or(0),
        };
        let emb = 2 * level_frequencies(lv).len();
        (c_prev + emb).max(lv.widths.iter().copied().max().unwrap_or(0))
    }

    /// Level `k` as one fused block of `pixels` pixels for `batch` images.
    pub(super) fn fused_shape(&self, k: usize, batch: usize, pixels: usize) -> FusedShape {
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

    /// Level `k` of `plan` through the fused kernel: the block's input is assembled inside the
    /// kernel from the previous level's features and this level's coordinates (nothing of
    /// width `c_in` is stored); only the RGB is carried over by the link. The tape serves the
    /// image and, unless `last`, the next level's input; it cannot serve the backward.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn fused_level<B: Backend>(
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
                    return Err(BackendError::Shape(
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
        .map_err(BackendError::Shape)?;
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
    pub(super) fn fused_block<B: Backend>(
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
            return Err(BackendError::Shape("a fused block without layers".into()));
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
}
