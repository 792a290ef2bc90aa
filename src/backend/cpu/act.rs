//! The CPU backend's `act` family (`shaders/act.wgsl`).

use super::*;

impl ActOps for CpuBackend {
    fn act_forward(
        &mut self,
        s: &ActShape,
        x: &CpuBuf,
        bias: Option<&CpuBuf>,
        y: &CpuBuf,
    ) -> BResult<()> {
        if !check::act_forward(s, x.len, bias.map(|b| b.len), y.len)? {
            return Ok(());
        }
        let xg = rd("act_forward x", x)?;
        let bg_ = rd_opt("act_forward bias", bias)?;
        let mut yg = wr("act_forward y", y)?;
        let (alpha, gain, bgain) = (s.alpha, s.gain, s.b_gain);
        let (inner, chans, n) = (s.inner, s.channels, s.len());
        let (xv, bv) = (&xg[..], bg_.as_deref().map(|v| v.as_slice()));
        let act = move |z: f32| (if z > 0.0 { z } else { alpha * z }) * gain;
        if inner >= 64 {
            self.rows(&mut yg[..n], inner, n, |pl, out| {
                let xr = &xv[pl * inner..(pl + 1) * inner];
                match bv {
                    Some(b) => {
                        let add = bgain * b[pl % chans];
                        for (v, &z) in out.iter_mut().zip(xr) {
                            *v = act(z + add);
                        }
                    }
                    None => {
                        for (v, &z) in out.iter_mut().zip(xr) {
                            *v = act(z);
                        }
                    }
                }
            });
        } else {
            self.chunks(&mut yg[..n], |start, out| {
                for (j, v) in out.iter_mut().enumerate() {
                    let i = start + j;
                    let z = match bv {
                        Some(b) => xv[i] + bgain * b[(i / inner) % chans],
                        None => xv[i],
                    };
                    *v = act(z);
                }
            });
        }
        Ok(())
    }

    fn act_backward(
        &mut self,
        s: &ActShape,
        y: &CpuBuf,
        dy: &CpuBuf,
        dx: &CpuBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::act_backward(s, y.len, dy.len, dx.len)? {
            return Ok(());
        }
        let (yg, dyg) = (rd("act_backward y", y)?, rd("act_backward dy", dy)?);
        let mut dxg = wr("act_backward dx", dx)?;
        let (alpha, gain) = (s.alpha, s.gain);
        let (yv, dyv) = (&yg[..], &dyg[..]);
        self.chunks(&mut dxg[..s.len()], |start, out| {
            for (j, v) in out.iter_mut().enumerate() {
                let i = start + j;
                let slope = if yv[i] > 0.0 { 1.0 } else { alpha };
                let g = dyv[i] * gain * slope;
                *v = if accumulate { *v + g } else { g };
            }
        });
        Ok(())
    }
}
