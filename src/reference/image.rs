//! Generator output to 8-bit pixels.

use super::{Float, c};

/// `x` in nominal `[-1, 1]` to a byte: `clamp(floor(x * 127.5 + 128), 0, 255)`, i.e.
/// `x * 127.5 + 127.5` rounded half up; NaN gives 0. Computed in `F` in this order (the kernel
/// does the same in f32).
pub fn quantize<F: Float>(x: F) -> u8 {
    if x.is_nan() {
        return 0;
    }
    let v = (x * c::<F>(127.5) + c::<F>(128.0)).floor();
    let v = v.max(F::zero()).min(c::<F>(255.0));
    v.to_u8().unwrap_or(0)
}

/// Packs bytes as a `u32` whose little-endian bytes are `r, g, b, a` (R in the lowest byte).
pub fn pack_rgba(r: u8, g: u8, b: u8, a: u8) -> u32 {
    u32::from_le_bytes([r, g, b, a])
}

/// Planar `X [batch, 3, pixels]` to packed RGBA8 `[batch, pixels]`, alpha 255.
pub fn to_rgba8<F: Float>(x: &[F], batch: usize, pixels: usize) -> Vec<u32> {
    let mut out = Vec::with_capacity(batch * pixels);
    for b in 0..batch {
        let base = b * 3 * pixels;
        for q in 0..pixels {
            out.push(pack_rgba(
                quantize(x[base + q]),
                quantize(x[base + pixels + q]),
                quantize(x[base + 2 * pixels + q]),
                255,
            ));
        }
    }
    out
}
