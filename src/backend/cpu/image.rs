//! The CPU backend's `image` family (`shaders/image.wgsl`).

use super::*;

impl ImageOps for CpuBackend {
    fn to_rgba8(&mut self, x: &CpuBuf, batch: usize, pixels: usize) -> BResult<Vec<u32>> {
        if !check::to_rgba8(x.len, batch, pixels)? {
            return Ok(Vec::new());
        }
        let xg = rd("to_rgba8 x", x)?;
        let xv = &xg[..];
        let mut out = alloc_zeros::<u32>(batch * pixels, "rgba8")?;
        self.chunks(&mut out, |start, o| {
            for (j, v) in o.iter_mut().enumerate() {
                let (b, q) = ((start + j) / pixels, (start + j) % pixels);
                let base = b * 3 * pixels + q;
                *v = r::image::pack_rgba(
                    r::image::quantize(xv[base]),
                    r::image::quantize(xv[base + pixels]),
                    r::image::quantize(xv[base + 2 * pixels]),
                    255,
                );
            }
        });
        Ok(out)
    }
}
