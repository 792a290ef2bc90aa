//! The CPU backend's `mbstd` family (`shaders/mbstd.wgsl`).

use super::*;

impl MbstdOps for CpuBackend {
    fn mbstd_forward(
        &mut self,
        s: &MbstdShape,
        x: &CpuBuf,
        stat: &CpuBuf,
        y: &CpuBuf,
    ) -> BResult<()> {
        if !check::mbstd_forward(s, x.len, stat.len, y.len)? {
            return Ok(());
        }
        let xg = rd("mbstd_forward x", x)?;
        let (mut sg, mut yg) = (
            wr("mbstd_forward stat_scratch", stat)?,
            wr("mbstd_forward y", y)?,
        );
        let xv = &xg[..];
        let (np, cpf, nf, mm) = (
            s.pixels(),
            s.channels_per_stat(),
            s.num_channels,
            s.groups(),
        );
        let inv_count = (1.0 / (cpf * np) as f64) as f32;
        let work = s.x_len() * 4;
        self.rows(&mut sg[..s.stat_len()], 1, work, |mf, out| {
            let (m, f) = (mf / nf, mf % nf);
            let mut acc = 0f32;
            for cc in 0..cpf {
                for q in 0..np {
                    acc += mbstd_moments(s, xv, m, f * cpf + cc, q).1;
                }
            }
            out[0] = acc * inv_count;
        });
        let sv = &sg[..];
        let cy = s.channels + nf;
        self.rows(&mut yg[..s.y_len()], np, s.y_len(), |r, out| {
            let (n, ch) = (r / cy, r % cy);
            if ch < s.channels {
                out.copy_from_slice(
                    &xv[(n * s.channels + ch) * np..(n * s.channels + ch + 1) * np],
                );
            } else {
                out.fill(sv[(n % mm) * nf + ch - s.channels]);
            }
        });
        Ok(())
    }

    fn mbstd_backward(
        &mut self,
        s: &MbstdShape,
        x: &CpuBuf,
        dy: &CpuBuf,
        dstat: &CpuBuf,
        dx: &CpuBuf,
    ) -> BResult<()> {
        if !check::mbstd_backward(s, x.len, dy.len, dstat.len, dx.len)? {
            return Ok(());
        }
        let (xg, dyg) = (rd("mbstd_backward x", x)?, rd("mbstd_backward dy", dy)?);
        let (mut dsg, mut dxg) = (
            wr("mbstd_backward dstat_scratch", dstat)?,
            wr("mbstd_backward dx", dx)?,
        );
        let (xv, dyv) = (&xg[..], &dyg[..]);
        let (np, cpf, nf, mm) = (
            s.pixels(),
            s.channels_per_stat(),
            s.num_channels,
            s.groups(),
        );
        let cy = s.channels + nf;
        self.rows(&mut dsg[..s.stat_len()], 1, s.y_len(), |mf, out| {
            let (m, f) = (mf / nf, mf % nf);
            let mut acc = 0f32;
            for g in 0..s.group {
                let o = ((g * mm + m) * cy + s.channels + f) * np;
                acc += sum8(&dyv[o..o + np]);
            }
            out[0] = acc;
        });
        let dsv = &dsg[..];
        let inv_denom = (1.0 / (s.group * cpf * np) as f64) as f32;
        self.rows(&mut dxg[..s.x_len()], np, s.x_len() * 4, |r, out| {
            let (n, ch) = (r / s.channels, r % s.channels);
            let m = n % mm;
            let ds = dsv[m * nf + ch / cpf];
            let (xr, dyr) = (&xv[r * np..(r + 1) * np], &dyv[(n * cy + ch) * np..]);
            for (q, v) in out.iter_mut().enumerate() {
                let (mu, sd) = mbstd_moments(s, xv, m, ch, q);
                *v = dyr[q] + ds * (xr[q] - mu) * inv_denom / sd;
            }
        });
        Ok(())
    }

    fn mbstd_jvp(
        &mut self,
        s: &MbstdShape,
        x: &CpuBuf,
        xdot: &CpuBuf,
        stat: &CpuBuf,
        ydot: &CpuBuf,
    ) -> BResult<()> {
        if !check::mbstd_forward(s, x.len, stat.len, ydot.len)? {
            return Ok(());
        }
        check::need("mbstd_jvp xdot", xdot.len, s.x_len())?;
        let (xg, xdg) = (rd("mbstd_jvp x", x)?, rd("mbstd_jvp xdot", xdot)?);
        let out = r::mbstd::mbstd_jvp(s, &xg[..s.x_len()], &xdg[..s.x_len()]);
        drop((xg, xdg));
        let mut yg = wr("mbstd_jvp ydot", ydot)?;
        yg[..out.len()].copy_from_slice(&out);
        Ok(())
    }

    fn mbstd_backward_jvp(
        &mut self,
        s: &MbstdShape,
        x: &CpuBuf,
        xdot: &CpuBuf,
        dy: &CpuBuf,
        dstat: &CpuBuf,
        dxdot: &CpuBuf,
    ) -> BResult<()> {
        if !check::mbstd_backward(s, x.len, dy.len, dstat.len, dxdot.len)? {
            return Ok(());
        }
        check::need("mbstd_backward_jvp xdot", xdot.len, s.x_len())?;
        let (xg, xdg, dyg) = (
            rd("mbstd_backward_jvp x", x)?,
            rd("mbstd_backward_jvp xdot", xdot)?,
            rd("mbstd_backward_jvp dy", dy)?,
        );
        let out =
            r::mbstd::mbstd_backward_jvp(s, &xg[..s.x_len()], &xdg[..s.x_len()], &dyg[..s.y_len()]);
        drop((xg, xdg, dyg));
        let mut og = wr("mbstd_backward_jvp dxdot", dxdot)?;
        og[..out.len()].copy_from_slice(&out);
        Ok(())
    }
}

/// The group mean and standard deviation of `x` (`[batch, channels, pixels]`) at sample group
/// `m`, channel `ch`, pixel `q`, in `f32` as the kernel computes them.
pub(super) fn mbstd_moments(
    s: &MbstdShape,
    x: &[f32],
    m: usize,
    ch: usize,
    q: usize,
) -> (f32, f32) {
    let stride = s.groups() * s.channels * s.pixels();
    let base = (m * s.channels + ch) * s.pixels() + q;
    let inv_g = (1.0 / s.group as f64) as f32;
    let mut mu = 0f32;
    for g in 0..s.group {
        mu += x[base + g * stride];
    }
    mu *= inv_g;
    let mut sq = 0f32;
    for g in 0..s.group {
        let d = x[base + g * stride] - mu;
        sq += d * d;
    }
    (mu, (sq * inv_g + MBSTD_EPS as f32).sqrt())
}
