//! The CPU backend's `reduce` family (`shaders/reduce.wgsl`).

use super::*;

impl ReduceOps for CpuBackend {
    fn sum_axes(
        &mut self,
        x: &CpuBuf,
        y: &CpuBuf,
        outer: usize,
        mid: usize,
        inner: usize,
        scale: f32,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::sum_axes(x.len, y.len, outer, mid, inner)? {
            return Ok(());
        }
        let xg = rd("sum_axes x", x)?;
        let mut yg = wr("sum_axes y", y)?;
        let xv = &xg[..];
        self.rows(&mut yg[..mid], 1, outer * mid * inner, |m, out| {
            let mut acc = 0f32;
            for a in 0..outer {
                let o = (a * mid + m) * inner;
                acc += sum8(&xv[o..o + inner]);
            }
            let v = scale * acc;
            out[0] = if accumulate { v + out[0] } else { v };
        });
        Ok(())
    }

    fn row_norm(&mut self, x: &CpuBuf, y: &CpuBuf, rows: usize, cols: usize) -> BResult<()> {
        if !check::row_norm(x.len, y.len, rows, cols)? {
            return Ok(());
        }
        let xg = rd("row_norm x", x)?;
        let mut yg = wr("row_norm y", y)?;
        let xv = &xg[..];
        self.rows(&mut yg[..rows], 1, rows * cols, |r, out| {
            let row = &xv[r * cols..(r + 1) * cols];
            out[0] = dot8(row, row).sqrt();
        });
        Ok(())
    }

    fn softplus_forward(&mut self, x: &CpuBuf, y: &CpuBuf, n: usize, sign: f32) -> BResult<()> {
        if !check::elementwise("softplus_forward", x.len, y.len, n)? {
            return Ok(());
        }
        let xg = rd("softplus_forward x", x)?;
        let mut yg = wr("softplus_forward y", y)?;
        let xv = &xg[..];
        self.chunks(&mut yg[..n], |start, out| {
            for (j, v) in out.iter_mut().enumerate() {
                *v = r::reduce::softplus(sign * xv[start + j]);
            }
        });
        Ok(())
    }

    fn softplus_backward(&mut self, x: &CpuBuf, dy: &CpuBuf, n: usize, sign: f32) -> BResult<()> {
        if !check::elementwise("softplus_backward", x.len, dy.len, n)? {
            return Ok(());
        }
        let xg = rd("softplus_backward x", x)?;
        let mut dyg = wr("softplus_backward dy", dy)?;
        let xv = &xg[..];
        self.chunks(&mut dyg[..n], |start, out| {
            for (j, v) in out.iter_mut().enumerate() {
                let z = sign * xv[start + j];
                let sig = 1.0 / (1.0 + (-z).exp());
                *v = *v * sign * sig;
            }
        });
        Ok(())
    }

    fn axpby(&mut self, a: f32, x: &CpuBuf, b: f32, y: &CpuBuf, n: usize) -> BResult<()> {
        if !check::elementwise("axpby", x.len, y.len, n)? {
            return Ok(());
        }
        let xg = rd("axpby x", x)?;
        let mut yg = wr("axpby y", y)?;
        let xv = &xg[..];
        self.chunks(&mut yg[..n], |start, out| {
            for (j, v) in out.iter_mut().enumerate() {
                *v = a * xv[start + j] + b * *v;
            }
        });
        Ok(())
    }

    fn count_nonfinite(&mut self, x: &CpuBuf, n: usize) -> BResult<u32> {
        check::need("count_nonfinite x", x.len, n)?;
        let xg = rd("count_nonfinite x", x)?;
        let xv = &xg[..n];
        let count = |c: &[f32]| c.iter().filter(|v| !v.is_finite()).count();
        let total = if n < PAR_WORK || self.threads == 1 {
            count(xv)
        } else {
            self.pool
                .install(|| xv.par_chunks(CHUNK).map(count).sum::<usize>())
        };
        Ok(total.min(u32::MAX as usize) as u32)
    }
}
