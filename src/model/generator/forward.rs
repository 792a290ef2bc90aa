//! The forward pass, level by level, with the tape its backward reads.

use super::*;

impl Generator {
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
    /// in one pass and keeps only its last features: the result holds the images, not a tape.
    pub fn synthesize_fast<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        ws: &[&B::Buf],
        batch: usize,
        plan: &Plan,
    ) -> BResult<Synthesis<B>> {
        Ok(Synthesis(
            self.synthesize_inner(be, p, ws, batch, plan, true)?,
        ))
    }

    pub(super) fn synthesize_inner<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        ws: &[&B::Buf],
        batch: usize,
        plan: &Plan,
        fast: bool,
    ) -> BResult<SynthTape<B>> {
        if ws.is_empty() {
            return Err(BackendError::Shape("synthesize: no w".into()));
        }
        if plan.levels.is_empty() || plan.levels.len() > self.levels.len() {
            return Err(BackendError::Shape(
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
            let emb = be.output(cs.channels() * np, "emb")?;
            be.coords_forward(&cs, &xs, &ys, &freqs, &emb)?;
            // Input: [up(prev features) | emb], and the RGB carried from the previous level.
            // The first level's toRGB adds to zeros; later levels' start from the link.
            let img = if k == 0 {
                be.zeros(batch * 3 * np, "img")?
            } else {
                be.output(batch * 3 * np, "img")?
            };
            let (input, broadcast_input) = if k == 0 {
                (emb, true)
            } else {
                let prev = &levels[k - 1];
                let prev_grid = &plan.levels[k - 1];
                let (c_prev, feat) = self.prev_features(k, levels.as_slice())?;
                let up = be.output(batch * c_prev * np, "up feat")?;
                self.link(be, &grid.link, feat, batch * c_prev, prev_grid, &up)?;
                self.link(be, &grid.link, &prev.img, batch * 3, prev_grid, &img)?;
                let cat = ConcatShape {
                    batch,
                    c1: c_prev,
                    c2: cs.channels(),
                    pixels: np,
                    broadcast: true,
                };
                let x = be.output(batch * cat.channels() * np, "level input")?;
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
                let act = be.output(batch * l.c_out * np, "act")?;
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
    pub(super) fn modulated_weight<B: Backend>(
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
        let styles = be.output(batch * fs.style_dim(), "styles")?;
        let aff = self.affine_shape(batch, fs.style_dim());
        be.gemm(
            &Gemm::linear_forward(&aff, true),
            &p.bufs[l.aff_w],
            w,
            Some(&p.bufs[l.aff_b]),
            &styles,
        )?;
        let wb = be.output(fs.weight_len(), "fmm weight")?;
        let norms = be.output(batch * l.c_out, "fmm norms")?;
        be.fmm_forward(&fs, &p.bufs[l.weight], &styles, &wb, &norms)?;
        Ok((styles, wb, norms))
    }

    /// A toRGB's per-image modulated weight `[batch, 3, c_in]`: (styles, weight).
    pub(super) fn rgb_weight<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        w: &B::Buf,
        rl: &RgbLayer,
        batch: usize,
    ) -> BResult<(B::Buf, B::Buf)> {
        let s = be.output(batch * rl.c_in, "rgb styles")?;
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
        let wr = be.output(batch * 3 * rl.c_in, "rgb weight")?;
        be.style_modulate_forward(&m, &p.bufs[rl.weight], &s, &wr)?;
        Ok((s, wr))
    }

    /// The channels and buffer of level `k - 1`'s last features (level `k`'s input).
    pub(super) fn prev_features<'t, B: Backend>(
        &self,
        k: usize,
        levels: &'t [LevelTape<B>],
    ) -> BResult<(usize, &'t B::Buf)> {
        let c_prev = self.levels[k - 1].layers.last().map_or(0, |l| l.c_out);
        let feat = levels[k - 1]
            .acts
            .last()
            .ok_or_else(|| BackendError::Shape("empty level".into()))?;
        Ok((c_prev, feat))
    }

    /// Moves `planes` planes from the previous level's grid to this level's by `link`.
    pub(super) fn link<B: Backend>(
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
            Link::None => Err(BackendError::Shape(
                "a level after the first needs a link".into(),
            )),
        }
    }
}
