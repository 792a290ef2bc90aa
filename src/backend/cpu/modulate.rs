//! The CPU backend's `modulate` family (`shaders/modulate.wgsl`).

use super::*;

impl ModulateOps for CpuBackend {
    fn style_modulate_forward(
        &mut self,
        m: &ModulateShape,
        ws: &CpuBuf,
        s: &CpuBuf,
        w: &CpuBuf,
    ) -> BResult<()> {
        if !check::modulate_forward(m, ws.len, s.len, w.len)? {
            return Ok(());
        }
        let (wsg, sg) = (rd("style_modulate ws", ws)?, rd("style_modulate s", s)?);
        let mut wg = wr("style_modulate w", w)?;
        let (co, ci, gain) = (m.c_out, m.c_in, m.gain);
        let n = m.batch * co * ci;
        self.rows(&mut wg[..n], ci, n, |row, out| {
            let (b, o) = (row / co, row % co);
            let (wr_, sr) = (&wsg[o * ci..(o + 1) * ci], &sg[b * ci..(b + 1) * ci]);
            for i in 0..ci {
                out[i] = gain * wr_[i] * sr[i];
            }
        });
        Ok(())
    }

    fn style_modulate_backward(
        &mut self,
        m: &ModulateShape,
        ws: &CpuBuf,
        s: &CpuBuf,
        dw: &CpuBuf,
        dws: &CpuBuf,
        ds: &CpuBuf,
        accumulate_dws: bool,
    ) -> BResult<()> {
        if !check::modulate_backward(m, ws.len, s.len, dw.len, dws.len, ds.len)? {
            return Ok(());
        }
        let (wsg, sg, dwg) = (
            rd("style_modulate ws", ws)?,
            rd("style_modulate s", s)?,
            rd("style_modulate dw", dw)?,
        );
        let (mut dwsg, mut dsg) = (wr("style_modulate dws", dws)?, wr("style_modulate ds", ds)?);
        let (co, ci, gain, batch) = (m.c_out, m.c_in, m.gain, m.batch);
        let per = co * ci;
        let (wsv, sv, dwv) = (&wsg[..], &sg[..], &dwg[..]);
        self.rows(&mut dwsg[..per], ci, batch * per, |o, out| {
            let mut accv = vec![0f32; ci];
            for b in 0..batch {
                let (d, sr) = (&dwv[b * per + o * ci..], &sv[b * ci..]);
                for i in 0..ci {
                    accv[i] += d[i] * sr[i];
                }
            }
            for (v, a) in out.iter_mut().zip(accv) {
                let g = gain * a;
                *v = if accumulate_dws { g + *v } else { g };
            }
        });
        self.rows(&mut dsg[..batch * ci], ci, batch * per, |b, out| {
            out.fill(0.0);
            for o in 0..co {
                let (d, w) = (&dwv[b * per + o * ci..], &wsv[o * ci..]);
                for i in 0..ci {
                    out[i] += d[i] * w[i];
                }
            }
            out.iter_mut().for_each(|v| *v *= gain);
        });
        Ok(())
    }
}
