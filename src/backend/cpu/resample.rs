//! The CPU backend's `resample` family (`shaders/resample.wgsl`).

use super::*;

impl ResampleOps for CpuBackend {
    fn upsample2x_forward(
        &mut self,
        x: &CpuBuf,
        y: &CpuBuf,
        planes: usize,
        h: usize,
        w: usize,
    ) -> BResult<()> {
        if !check::upsample_forward(x.len, y.len, planes, h, w)? {
            return Ok(());
        }
        let xg = rd("upsample2x_forward x", x)?;
        let mut yg = wr("upsample2x_forward y", y)?;
        let xv = &xg[..];
        let n = planes * h * w * 4;
        self.rows(&mut yg[..n], 2 * w, n, |r, out| {
            let (p, i) = (r / (2 * h), r % (2 * h));
            let src = &xv[(p * h + i / 2) * w..(p * h + i / 2 + 1) * w];
            for (j, v) in out.iter_mut().enumerate() {
                *v = src[j / 2];
            }
        });
        Ok(())
    }

    fn upsample2x_backward(
        &mut self,
        dy: &CpuBuf,
        dx: &CpuBuf,
        planes: usize,
        h: usize,
        w: usize,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::upsample_backward(dy.len, dx.len, planes, h, w)? {
            return Ok(());
        }
        let dyg = rd("upsample2x_backward dy", dy)?;
        let mut dxg = wr("upsample2x_backward dx", dx)?;
        let dyv = &dyg[..];
        let n = planes * h * w;
        self.rows(&mut dxg[..n], w, 4 * n, |r, out| {
            let (p, i) = (r / h, r % h);
            let base = (p * 2 * h + 2 * i) * 2 * w;
            let (d0, d1) = (&dyv[base..base + 2 * w], &dyv[base + 2 * w..base + 4 * w]);
            for (j, v) in out.iter_mut().enumerate() {
                let g = d0[2 * j] + d0[2 * j + 1] + d1[2 * j] + d1[2 * j + 1];
                *v = if accumulate { *v + g } else { g };
            }
        });
        Ok(())
    }

    fn gather(
        &mut self,
        x: &CpuBuf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &[u32],
        cols: &[u32],
        y: &CpuBuf,
    ) -> BResult<()> {
        if !check::gather(x.len, planes, h, w, rows, cols, y.len)? {
            return Ok(());
        }
        let xg = rd("gather x", x)?;
        let mut yg = wr("gather y", y)?;
        let xv = &xg[..];
        let (nr, nc) = (rows.len(), cols.len());
        self.rows(
            &mut yg[..planes * nr * nc],
            nc,
            planes * nr * nc,
            |r, out| {
                let (p, rr) = (r / nr, rows[r % nr] as usize);
                let src = &xv[(p * h + rr) * w..(p * h + rr + 1) * w];
                for (v, &c) in out.iter_mut().zip(cols) {
                    *v = src[c as usize];
                }
            },
        );
        Ok(())
    }

    fn gather_bilinear(
        &mut self,
        x: &CpuBuf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &Taps,
        cols: &Taps,
        y: &CpuBuf,
    ) -> BResult<()> {
        if !check::gather_bilinear("gather_bilinear", x.len, planes, h, w, rows, cols, y.len)? {
            return Ok(());
        }
        let xg = rd("gather_bilinear x", x)?;
        let mut yg = wr("gather_bilinear y", y)?;
        let xv = &xg[..];
        let (nr, nc) = (rows.len(), cols.len());
        // Per column: (index, 1 - t, t), computed once.
        let cw: Vec<(usize, f32, f32)> = cols
            .idx
            .iter()
            .zip(&cols.t)
            .map(|(&i, &t)| (i as usize, 1.0 - t, t))
            .collect();
        self.rows(
            &mut yg[..planes * nr * nc],
            nc,
            4 * planes * nr * nc,
            |r, out| {
                let (p, rr) = (r / nr, r % nr);
                let (ir, tr) = (rows.idx[rr] as usize, rows.t[rr]);
                let r0 = &xv[(p * h + ir) * w..(p * h + ir + 1) * w];
                let r1 = &xv[(p * h + ir + 1) * w..(p * h + ir + 2) * w];
                for (v, &(ic, uc, tc)) in out.iter_mut().zip(&cw) {
                    let a = uc * r0[ic] + tc * r0[ic + 1];
                    let b = uc * r1[ic] + tc * r1[ic + 1];
                    *v = (1.0 - tr) * a + tr * b;
                }
            },
        );
        Ok(())
    }

    fn gather_bilinear_backward(
        &mut self,
        dy: &CpuBuf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &Taps,
        cols: &Taps,
        dx: &CpuBuf,
        accumulate: bool,
    ) -> BResult<()> {
        let what = "gather_bilinear_backward";
        if !check::gather_bilinear(what, dx.len, planes, h, w, rows, cols, dy.len)? {
            return Ok(());
        }
        let dyg = rd("gather_bilinear_backward dy", dy)?;
        let mut dxg = wr("gather_bilinear_backward dx", dx)?;
        let dyv = &dyg[..];
        let (nr, nc) = (rows.len(), cols.len());
        let (roff, rout, rwt) = rows.inverse(h);
        let (coff, cout, cwt) = cols.inverse(w);
        // One task per (plane, source row): the rows of dY it feeds, each reduced over columns
        // by the column inverse, summed in output order.
        self.rows(
            &mut dxg[..planes * h * w],
            w,
            8 * planes * nr * nc,
            |r, out| {
                let (p, i) = (r / h, r % h);
                let mut acc = vec![0f32; w];
                for e in roff[i] as usize..roff[i + 1] as usize {
                    let (rr, wr_) = (rout[e] as usize, rwt[e]);
                    let d = &dyv[(p * nr + rr) * nc..(p * nr + rr + 1) * nc];
                    for (j, a) in acc.iter_mut().enumerate() {
                        let mut s = 0f32;
                        for f in coff[j] as usize..coff[j + 1] as usize {
                            s += cwt[f] * d[cout[f] as usize];
                        }
                        *a += wr_ * s;
                    }
                }
                for (v, a) in out.iter_mut().zip(acc) {
                    *v = if accumulate { *v + a } else { a };
                }
            },
        );
        Ok(())
    }

    fn concat_channels(
        &mut self,
        s: &ConcatShape,
        x1: &CpuBuf,
        x2: &CpuBuf,
        y: &CpuBuf,
    ) -> BResult<()> {
        if !check::concat(s, x1.len, x2.len, y.len)? {
            return Ok(());
        }
        let (g1, g2) = (rd("concat_channels x1", x1)?, rd("concat_channels x2", x2)?);
        let mut yg = wr("concat_channels y", y)?;
        let (v1, v2) = (&g1[..], &g2[..]);
        let (p, c) = (s.pixels, s.channels());
        let n = s.batch * c * p;
        self.rows(&mut yg[..n], p, n, |r, out| {
            let (b, ch) = (r / c, r % c);
            let src = if ch < s.c1 {
                &v1[(b * s.c1 + ch) * p..(b * s.c1 + ch + 1) * p]
            } else {
                let b2 = if s.broadcast { 0 } else { b };
                let c2 = ch - s.c1;
                &v2[(b2 * s.c2 + c2) * p..(b2 * s.c2 + c2 + 1) * p]
            };
            out.copy_from_slice(src);
        });
        Ok(())
    }

    fn slice_channels(
        &mut self,
        s: &SliceShape,
        x: &CpuBuf,
        y: &CpuBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::slice(s, x.len, y.len)? {
            return Ok(());
        }
        let xg = rd("slice_channels x", x)?;
        let mut yg = wr("slice_channels y", y)?;
        let xv = &xg[..];
        let p = s.pixels;
        let n = s.batch * s.len * p;
        self.rows(&mut yg[..n], p, n, |r, out| {
            let (b, ch) = (r / s.len, r % s.len);
            let src = &xv[(b * s.channels + s.c0 + ch) * p..(b * s.channels + s.c0 + ch + 1) * p];
            if accumulate {
                for (v, &a) in out.iter_mut().zip(src) {
                    *v += a;
                }
            } else {
                out.copy_from_slice(src);
            }
        });
        Ok(())
    }
}
