//! The CPU backend's `coords` family (`shaders/coords.wgsl`).

use super::*;

impl CoordsOps for CpuBackend {
    fn coords_forward(
        &mut self,
        s: &CoordsShape,
        xs: &CpuBuf,
        ys: &CpuBuf,
        freqs: &CpuBuf,
        emb: &CpuBuf,
    ) -> BResult<()> {
        if !check::coords_forward(s, xs.len, ys.len, freqs.len, emb.len)? {
            return Ok(());
        }
        let (xg, yg, fg) = (
            rd("coords xs", xs)?,
            rd("coords ys", ys)?,
            rd("coords freqs", freqs)?,
        );
        let mut eg = wr("coords emb", emb)?;
        let (np, nf, wd) = (s.pixels(), s.n_freq, s.width);
        let (xv, yv, fv) = (&xg[..], &yg[..], &fg[..]);
        self.rows(
            &mut eg[..s.channels() * np],
            np,
            s.channels() * np * 8,
            |c, out| {
                let (j, cos) = if c < nf { (c, false) } else { (c - nf, true) };
                let (fx, fy) = (fv[2 * j], fv[2 * j + 1]);
                for (px, v) in out.iter_mut().enumerate() {
                    let phi = fx * xv[px % wd] + fy * yv[px / wd];
                    *v = if cos { phi.cos() } else { phi.sin() };
                }
            },
        );
        Ok(())
    }

    fn coords_backward(
        &mut self,
        s: &CoordsShape,
        xs: &CpuBuf,
        ys: &CpuBuf,
        freqs: &CpuBuf,
        demb: &CpuBuf,
        dfreqs: &CpuBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::coords_backward(s, xs.len, ys.len, freqs.len, demb.len, dfreqs.len)? {
            return Ok(());
        }
        let (xg, yg, fg) = (
            rd("coords xs", xs)?,
            rd("coords ys", ys)?,
            rd("coords freqs", freqs)?,
        );
        let dg = rd("coords demb", demb)?;
        let mut dfg = wr("coords dfreqs", dfreqs)?;
        let (np, nf, wd) = (s.pixels(), s.n_freq, s.width);
        let (xv, yv, fv, de) = (&xg[..], &yg[..], &fg[..], &dg[..]);
        self.rows(&mut dfg[..2 * nf], 2, s.channels() * np * 8, |j, out| {
            let (fx, fy) = (fv[2 * j], fv[2 * j + 1]);
            let (mut ax, mut ay) = ([0f32; 8], [0f32; 8]);
            for px in 0..np {
                let (x, y) = (xv[px % wd], yv[px / wd]);
                let phi = fx * x + fy * y;
                let mut g = phi.cos() * de[j * np + px];
                if s.with_cos {
                    g -= phi.sin() * de[(nf + j) * np + px];
                }
                ax[px % 8] += g * x;
                ay[px % 8] += g * y;
            }
            let tree =
                |a: [f32; 8]| ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
            let (gx, gy) = (tree(ax), tree(ay));
            if accumulate {
                out[0] += gx;
                out[1] += gy;
            } else {
                out[0] = gx;
                out[1] = gy;
            }
        });
        Ok(())
    }
}
