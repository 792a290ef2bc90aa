//! The CPU backend's `fmm` family (`shaders/fmm.wgsl`).

use super::*;

impl FmmOps for CpuBackend {
    fn fmm_forward(
        &mut self,
        s: &FmmShape,
        ws: &CpuBuf,
        styles: &CpuBuf,
        w_out: &CpuBuf,
        norms: &CpuBuf,
    ) -> BResult<()> {
        if !check::fmm_forward(s, ws.len, styles.len, w_out.len, norms.len)? {
            return Ok(());
        }
        let (wsg, sg) = (rd("fmm ws", ws)?, rd("fmm styles", styles)?);
        let (mut wg, mut ng) = (wr("fmm w_out", w_out)?, wr("fmm norms", norms)?);
        self.fmm_forward_f32(s, &wsg, &sg, &mut wg, &mut ng);
        Ok(())
    }

    fn fmm_backward(
        &mut self,
        s: &FmmShape,
        ws: &CpuBuf,
        styles: &CpuBuf,
        norms: &CpuBuf,
        dw: &CpuBuf,
        scratch: &CpuBuf,
        dws: &CpuBuf,
        dstyles: &CpuBuf,
        accumulate_dws: bool,
    ) -> BResult<()> {
        if !check::fmm_backward(
            s,
            ws.len,
            styles.len,
            norms.len,
            dw.len,
            scratch.len,
            dws.len,
            dstyles.len,
        )? {
            return Ok(());
        }
        let (wsg, sg, dwg) = (
            rd("fmm ws", ws)?,
            rd("fmm styles", styles)?,
            rd("fmm dw", dw)?,
        );
        let (ng, mut scg) = if s.demod {
            (
                Some(rd("fmm norms", norms)?),
                Some(wr("fmm scratch", scratch)?),
            )
        } else {
            (None, None)
        };
        let (mut dwsg, mut dsg) = (wr("fmm dws", dws)?, wr("fmm dstyles", dstyles)?);
        self.fmm_backward_f32(
            s,
            &wsg,
            &sg,
            ng.as_deref().map_or(&[], |v| v.as_slice()),
            &dwg,
            scg.as_deref_mut().map(|v| v.as_mut_slice()),
            &mut dwsg,
            &mut dsg,
            accumulate_dws,
        )
    }
}

impl CpuBackend {
    pub(super) fn fmm_forward_f32(
        &self,
        s: &FmmShape,
        ws: &[f32],
        styles: &[f32],
        w_out: &mut [f32],
        norms: &mut [f32],
    ) {
        let (co, ci, rk) = (s.c_out, s.c_in, s.rank);
        let sd = s.style_dim();
        let inv = (1.0 / (rk as f64).sqrt()) as f32;
        let eps = FMM_EPS as f32;
        let w_out = &mut w_out[..s.weight_len()];
        let norms = &mut norms[..s.batch * co];
        let tasks: Vec<_> = w_out
            .chunks_mut(ci)
            .zip(norms.iter_mut())
            .enumerate()
            .collect();
        self.tasks(
            tasks,
            s.weight_len() * rk,
            || (),
            |_, (row, (wrow, nrm))| {
                let (b, o) = (row / co, row % co);
                let sty = &styles[b * sd..(b + 1) * sd];
                modulation_row(sty, co, ci, rk, o, wrow);
                for (i, v) in wrow.iter_mut().enumerate() {
                    *v = ws[o * ci + i] * (1.0 + *v * inv);
                }
                let nv = scaled_norm(wrow);
                *nrm = nv;
                if s.demod {
                    let sc = 1.0 / (nv + eps);
                    wrow.iter_mut().for_each(|v| *v *= sc);
                }
            },
        );
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn fmm_backward_f32(
        &self,
        s: &FmmShape,
        ws: &[f32],
        styles: &[f32],
        norms: &[f32],
        dw: &[f32],
        mut scratch: Option<&mut [f32]>,
        dws: &mut [f32],
        dstyles: &mut [f32],
        acc: bool,
    ) -> BResult<()> {
        let (co, ci, rk, batch) = (s.c_out, s.c_in, s.rank, s.batch);
        let sd = s.style_dim();
        let wl = s.weight_len();
        let inv = (1.0 / (rk as f64).sqrt()) as f32;
        let eps = FMM_EPS as f32;
        // 1. M (kept for dws) per row and, with demod, dM' through the row normalisation.
        // Every row is overwritten (modulation_row).
        let mut mm = self.partials(wl, "fmm modulation")?;
        {
            let grows: Vec<Option<&mut [f32]>> = match scratch.as_deref_mut() {
                Some(sc) => sc[..wl].chunks_mut(ci).map(Some).collect(),
                None => (0..batch * co).map(|_| None).collect(),
            };
            let rows: Vec<_> = mm.chunks_mut(ci).zip(grows).enumerate().collect();
            self.tasks(
                rows,
                wl * rk,
                || (),
                |_, (row, (mrow, grow))| {
                    let (b, o) = (row / co, row % co);
                    modulation_row(&styles[b * sd..(b + 1) * sd], co, ci, rk, o, mrow);
                    mrow.iter_mut().for_each(|v| *v *= inv);
                    if let Some(grow) = grow {
                        let nv = norms[row];
                        let ninv = 1.0 / (nv + eps);
                        let d = &dw[row * ci..(row + 1) * ci];
                        for i in 0..ci {
                            grow[i] = ws[o * ci + i] * (1.0 + mrow[i]) * ninv;
                        }
                        let dot = dot8(grow, d);
                        let coef = if nv > 0.0 { dot / nv } else { 0.0 };
                        for i in 0..ci {
                            grow[i] = d[i] * ninv - grow[i] * coef;
                        }
                    }
                },
            );
        }
        // The gradient before the row normalisation.
        let g: &[f32] = match scratch.as_deref() {
            Some(sc) => &sc[..wl],
            None => &dw[..wl],
        };
        // 2. dws[o, i] (+)= sum_b g[b, o, i] (1 + M[b, o, i]), over b in order.
        let per = co * ci;
        {
            let mm = &mm;
            self.rows(&mut dws[..per], ci, wl, |o, out| {
                let mut accv = vec![0f32; ci];
                for b in 0..batch {
                    let r0 = b * per + o * ci;
                    for (i, a) in accv.iter_mut().enumerate() {
                        *a += g[r0 + i] * (1.0 + mm[r0 + i]);
                    }
                }
                for (v, a) in out.iter_mut().zip(accv) {
                    *v = if acc { a + *v } else { a };
                }
            });
        }
        // 3. dM = g * ws, then dA = dM B^T / sqrt(r) and dB = A^T dM / sqrt(r).
        self.chunks(&mut mm, |start, out| {
            for (j, v) in out.iter_mut().enumerate() {
                *v = g[start + j] * ws[(start + j) % per];
            }
        });
        let dm = &mm;
        let na = co * rk;
        self.rows(
            &mut dstyles[..batch * sd],
            sd,
            batch * per * rk * 2,
            |b, out| {
                let sty = &styles[b * sd..(b + 1) * sd];
                let dmb = &dm[b * per..(b + 1) * per];
                let (da, db) = out.split_at_mut(na);
                for o in 0..co {
                    let drow = &dmb[o * ci..(o + 1) * ci];
                    for kk in 0..rk {
                        da[o * rk + kk] = dot8(drow, &sty[na + kk * ci..na + (kk + 1) * ci]) * inv;
                    }
                }
                db.fill(0.0);
                for o in 0..co {
                    let drow = &dmb[o * ci..(o + 1) * ci];
                    for kk in 0..rk {
                        let a = sty[o * rk + kk];
                        for (v, &d) in db[kk * ci..(kk + 1) * ci].iter_mut().zip(drow) {
                            *v += a * d;
                        }
                    }
                }
                db.iter_mut().for_each(|v| *v *= inv);
            },
        );
        self.recycle(mm);
        Ok(())
    }
}

/// Row `o` of `A B` (before the `1 / sqrt(rank)`) of one image's packed styles into `out`.
pub(super) fn modulation_row(
    sty: &[f32],
    co: usize,
    ci: usize,
    rk: usize,
    o: usize,
    out: &mut [f32],
) {
    out.fill(0.0);
    let bm = &sty[co * rk..];
    for kk in 0..rk {
        let ak = sty[o * rk + kk];
        let brow = &bm[kk * ci..(kk + 1) * ci];
        for (v, &bv) in out.iter_mut().zip(brow) {
            *v += ak * bv;
        }
    }
}
