//! The mapping network (z to w, truncation, the average w) and the hypernetwork's affine layers.

use super::*;

impl Generator {
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

    pub(super) fn mapping_shape(&self, i: usize, rows: usize) -> LinearShape {
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

    pub(super) fn affine_shape(&self, rows: usize, d_out: usize) -> LinearShape {
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
            return Err(BackendError::Shape(format!(
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

    /// Backward of `styles = affine(w)`: parameter gradients into `grads`, input gradient added
    /// to `dw`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn affine_backward<B: Backend>(
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
}
