//! The CPU backend's `augment` family (`shaders/augment.wgsl`).

use super::*;

impl AugmentOps for CpuBackend {
    fn aug_color(
        &mut self,
        s: &AugShape,
        x: &CpuBuf,
        prm: &CpuBuf,
        y: &CpuBuf,
        brightness: bool,
    ) -> BResult<()> {
        let Some(pv) = check::augment(s, "aug_color", x.len, y.len, || {
            Ok(rd("aug_color params", prm)?.clone())
        })?
        else {
            return Ok(());
        };
        let xg = rd("aug_color x", x)?;
        let mut yg = wr("aug_color y", y)?;
        let (np, nc, xv) = (s.pixels(), s.channels, &xg[..]);
        let inv = 1.0 / nc as f32;
        self.rows(&mut yg[..s.len()], nc * np, s.len() * 2, |b, out| {
            let beta = if brightness { pv[b * AUG_PARAMS] } else { 0.0 };
            let sat = pv[b * AUG_PARAMS + 1];
            let xb = &xv[b * nc * np..(b + 1) * nc * np];
            for p in 0..np {
                let mut m = 0.0f32;
                for c in 0..nc {
                    m += xb[c * np + p];
                }
                m *= inv;
                for c in 0..nc {
                    out[c * np + p] = sat * (xb[c * np + p] - m) + m + beta;
                }
            }
        });
        Ok(())
    }

    fn aug_blend(
        &mut self,
        s: &AugShape,
        x: &CpuBuf,
        prm: &CpuBuf,
        mu: &CpuBuf,
        y: &CpuBuf,
    ) -> BResult<()> {
        let Some(pv) = check::augment(s, "aug_blend", x.len, y.len, || {
            Ok(rd("aug_blend params", prm)?.clone())
        })?
        else {
            return Ok(());
        };
        check::need("aug_blend mu", mu.len, s.batch)?;
        let mv = rd("aug_blend mu", mu)?.clone();
        let xg = rd("aug_blend x", x)?;
        let mut yg = wr("aug_blend y", y)?;
        let (n, xv) = (s.per_image(), &xg[..]);
        self.rows(&mut yg[..s.len()], n, s.len(), |b, out| {
            let (k, m) = (pv[b * AUG_PARAMS + 2], mv[b]);
            for (o, &v) in out.iter_mut().zip(&xv[b * n..(b + 1) * n]) {
                *o = k * (v - m) + m;
            }
        });
        Ok(())
    }

    fn aug_shift_forward(
        &mut self,
        s: &AugShape,
        x: &CpuBuf,
        prm: &CpuBuf,
        y: &CpuBuf,
    ) -> BResult<()> {
        let Some(pv) = check::augment(s, "aug_shift_forward", x.len, y.len, || {
            Ok(rd("aug_shift_forward params", prm)?.clone())
        })?
        else {
            return Ok(());
        };
        let xg = rd("aug_shift_forward x", x)?;
        let mut yg = wr("aug_shift_forward y", y)?;
        let (h, w, xv) = (s.height, s.width, &xg[..]);
        self.rows(&mut yg[..s.len()], h * w, s.len(), |plane, out| {
            let a = AugParams::from_f32s(&pv[(plane / s.channels) * AUG_PARAMS..]);
            let src = &xv[plane * h * w..(plane + 1) * h * w];
            for i in 0..h {
                let si = (i as i64 - a.ty as i64).clamp(0, h as i64 - 1) as usize;
                for j in 0..w {
                    let sj = (j as i64 - a.tx as i64).clamp(0, w as i64 - 1) as usize;
                    out[i * w + j] = if a.cut_out(i, j) {
                        0.0
                    } else {
                        src[si * w + sj]
                    };
                }
            }
        });
        Ok(())
    }

    fn aug_shift_backward(
        &mut self,
        s: &AugShape,
        dy: &CpuBuf,
        prm: &CpuBuf,
        dx: &CpuBuf,
    ) -> BResult<()> {
        let Some(pv) = check::augment(s, "aug_shift_backward", dy.len, dx.len, || {
            Ok(rd("aug_shift_backward params", prm)?.clone())
        })?
        else {
            return Ok(());
        };
        let dyg = rd("aug_shift_backward dy", dy)?;
        let mut dxg = wr("aug_shift_backward dx", dx)?;
        let (h, w, dyv) = (s.height, s.width, &dyg[..]);
        self.rows(&mut dxg[..s.len()], h * w, s.len() * 2, |plane, out| {
            let a = AugParams::from_f32s(&pv[(plane / s.channels) * AUG_PARAMS..]);
            let d = &dyv[plane * h * w..(plane + 1) * h * w];
            for i in 0..h {
                let (r0, r1) = r::augment::shift_sources(i, a.ty as i64, h);
                for j in 0..w {
                    let (c0, c1) = r::augment::shift_sources(j, a.tx as i64, w);
                    // As the kernel: rows, each summed over its columns, in increasing order.
                    let mut acc = 0.0f32;
                    for oi in r0..r1 {
                        let mut row = 0.0f32;
                        for oj in c0..c1 {
                            if !a.cut_out(oi, oj) {
                                row += d[oi * w + oj];
                            }
                        }
                        acc += row;
                    }
                    out[i * w + j] = acc;
                }
            }
        });
        Ok(())
    }
}
