//! The CPU backend's `adam` family (`shaders/adam.wgsl`).

use super::*;

impl AdamOps for CpuBackend {
    fn adam_step(
        &mut self,
        cfg: &AdamConfig,
        t: u64,
        p: &CpuBuf,
        g: &CpuBuf,
        m: &CpuBuf,
        v: &CpuBuf,
        n: usize,
    ) -> BResult<()> {
        if !check::adam(t, p.len, g.len, m.len, v.len, n)? {
            return Ok(());
        }
        let gg = rd("adam_step grad", g)?;
        let (mut pg, mut mg, mut vg) = (
            wr("adam_step param", p)?,
            wr("adam_step m", m)?,
            wr("adam_step v", v)?,
        );
        let gv = &gg[..n];
        let tasks: Vec<_> = pg[..n]
            .chunks_mut(CHUNK)
            .zip(mg[..n].chunks_mut(CHUNK))
            .zip(vg[..n].chunks_mut(CHUNK))
            .enumerate()
            .collect();
        self.tasks(
            tasks,
            n,
            || (),
            |_, (i, ((pc, mc), vc))| {
                let start = i * CHUNK;
                r::adam::adam_step(cfg, t, pc, &gv[start..start + pc.len()], mc, vc);
            },
        );
        Ok(())
    }

    fn ema_update(&mut self, p: &CpuBuf, e: &CpuBuf, beta: f64, n: usize) -> BResult<()> {
        if !check::ema(p.len, e.len, n)? {
            return Ok(());
        }
        let pg = rd("ema_update param", p)?;
        let mut eg = wr("ema_update ema", e)?;
        let pv = &pg[..n];
        self.chunks(&mut eg[..n], |start, out| {
            r::adam::ema_update(&pv[start..start + out.len()], out, beta);
        });
        Ok(())
    }
}
