//! The backward pass through the synthesis network and the links.

use super::*;

impl Generator {
    /// The transpose of [`Generator::link`]: `dy` on this level's grid into `dx` on the
    /// previous level's (overwritten). Nearest gathers at arbitrary cells have no backward
    /// (the training plan uses `Upsample2x` for nearest links).
    pub(super) fn link_backward<B: Backend>(
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
            Link::Gather { .. } | Link::None => Err(BackendError::Shape(
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
        let mut dimg_k = be.output(batch * 3 * tape.levels[n - 1].np, "dimg")?;
        be.copy(dimg, &dimg_k, batch * 3 * tape.levels[n - 1].np)?;
        // Gradient flowing into the last activation of the level being processed.
        let mut dfeat_next: Option<B::Buf> = None;
        for k in (0..n).rev() {
            let lv = &self.levels[k];
            let lt = &tape.levels[k];
            let grid = &plan.levels[k];
            if k > 0 && !matches!(grid.link, Link::Upsample2x | Link::Bilinear { .. }) {
                return Err(BackendError::Shape(
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
                let dpre = be.output(batch * l.c_out * np, "dpre")?;
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
                let dwb = be.output(fs.weight_len(), "dwb")?;
                let mut gw = Gemm::modlinear_backward_weight(&ms, false);
                if j == 0 && lt.broadcast_input {
                    gw.b = Strides { sb: 0, ..gw.b };
                }
                be.gemm(&gw, &dpre, x, None, &dwb)?;
                let scratch = be.output(fs.weight_len(), "fmm scratch")?;
                let dstyles = be.output(batch * fs.style_dim(), "dstyles")?;
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
                    let dx = be.output(batch * l.c_in * np, "dx")?;
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
                        let dup = be.output(batch * c_prev * np, "dup")?;
                        be.slice_channels(&cat.first(), &dx, &dup, false)?;
                        let pg = &plan.levels[k - 1];
                        let dprev = be.output(batch * c_prev * pg.rows * pg.cols, "dprev feat")?;
                        self.link_backward(be, &grid.link, &dup, batch * c_prev, pg, &dprev)?;
                        dfeat_next = Some(dprev);
                    }
                }
            }
            if k > 0 {
                let pg = &plan.levels[k - 1];
                let d = be.output(batch * 3 * pg.rows * pg.cols, "dimg prev")?;
                self.link_backward(be, &grid.link, &dimg_k, batch * 3, pg, &d)?;
                dimg_k = d;
            }
        }
        Ok(dw)
    }
}
