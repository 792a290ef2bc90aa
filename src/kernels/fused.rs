//! `shaders/fused.wgsl`: one scale block's FMM layers and toRGB outputs in one dispatch
//! (inference). The unfused kernels stay the reference it is tested against.

use bytemuck::{Pod, Zeroable};

use super::u32_of;
use crate::gpu::{GpuBuffer, GpuError, GpuResult, Kernel, Recorder, Shader};
pub use crate::reference::fused::{Assembly, FusedInput, FusedShape, MAX_LAYERS, MAX_WIDTH};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
struct Params {
    pixels: u32,
    n_layers: u32,
    c_in0: u32,
    x_batch_stride: u32,
    w_per_image: u32,
    rgb_per_image: u32,
    rgb_mask: u32,
    c_last: u32,
    alpha: f32,
    gain: f32,
    groups_x: u32,
    bilinear: u32,
    assemble: u32,
    c_prev: u32,
    prev_cols: u32,
    prev_pixels: u32,
    cols: u32,
    n_freq: u32,
    store_out: u32,
    _pad2: u32,
    c_out: [u32; 16],
    w_off: [u32; 16],
    b_off: [u32; 16],
    rgb_off: [u32; 16],
    rgb_b_off: [u32; 16],
}

/// Pixels per workgroup (64 invocations of 4 pixels each).
const WG: usize = 256;

/// The line of `fused.wgsl` each width class replaces.
const MAXW_LINE: &str = "const MAXW: u32 = 512u;";

/// Width classes the shader is compiled for: (widest layer output, the kernel). The kernel
/// takes the smallest class that holds the block's layers.
pub const WIDTH_CLASSES: [(usize, Kernel); 4] = [
    (
        64,
        Kernel::new(Shader::Fused, "level_forward").patched(MAXW_LINE, "const MAXW: u32 = 64u;"),
    ),
    (
        128,
        Kernel::new(Shader::Fused, "level_forward").patched(MAXW_LINE, "const MAXW: u32 = 128u;"),
    ),
    (
        256,
        Kernel::new(Shader::Fused, "level_forward").patched(MAXW_LINE, "const MAXW: u32 = 256u;"),
    ),
    (512, Kernel::new(Shader::Fused, "level_forward")),
];

fn table(name: &str, v: &[usize]) -> GpuResult<[u32; 16]> {
    let mut t = [0u32; 16];
    for (i, &x) in v.iter().enumerate().take(16) {
        t[i] = u32_of(name, x)?;
    }
    Ok(t)
}

/// See [`crate::reference::fused::level_forward`]: `img += rgb of the block`,
/// `out = the block's last features` (not written when `out` is None). An assembled input
/// ([`FusedInput::Assembled`]) is built per pixel in the kernel, as
/// [`crate::reference::fused::assemble_input`] does on the host.
#[allow(clippy::too_many_arguments)]
pub fn level_forward(
    rec: &mut Recorder,
    s: &FusedShape,
    input: FusedInput<'_, GpuBuffer<f32>>,
    w: &GpuBuffer<f32>,
    bias: &GpuBuffer<f32>,
    rgbw: &GpuBuffer<f32>,
    rgbb: &GpuBuffer<f32>,
    img: &GpuBuffer<f32>,
    out: Option<&GpuBuffer<f32>>,
) -> GpuResult<()> {
    if !s.fits() {
        return Err(GpuError::Shape(format!(
            "fused block: at most {MAX_LAYERS} layers of at most {MAX_WIDTH} channels, got {} -> {:?}",
            s.c_in, s.layers
        )));
    }
    if s.batch == 0 || s.pixels == 0 {
        return Ok(());
    }
    rec.ctx().check_loops("fused block", s.loop_iterations())?;
    let (woff, wlen) = s.weight_offsets();
    let (boff, _) = s.bias_offsets();
    let (roff, rlen) = s.rgb_offsets();
    let (rboff, rblen) = s.rgb_bias_offsets();
    s.check_buffers(&input, |b| b.len(), w, bias, rgbw, rgbb, img, out)
        .map_err(GpuError::Shape)?;
    // (x binding, geometry binding, assembly)
    let (x, geom, asm) = match input {
        FusedInput::Dense(x) => (Some(x), None, None),
        FusedInput::Assembled { a, feat, geom } => (
            (a.c_prev > 0).then_some(feat).flatten(),
            Some(geom),
            Some(a),
        ),
    };
    u32_of(
        "fused values",
        s.batch * wlen.max(s.c_last().max(s.c_in) * s.pixels),
    )?;
    let c_out: Vec<usize> = s.layers.iter().map(|l| l.0).collect();
    let mask = s
        .layers
        .iter()
        .enumerate()
        .fold(0u32, |m, (j, l)| if l.1 { m | (1 << j) } else { m });
    // Workgroups of pixels, folded into x and z to stay under the 65535 per-dimension limit.
    let groups = s.pixels.div_ceil(WG);
    let gx = groups.min(65535);
    let gz = groups.div_ceil(gx);
    let p = Params {
        groups_x: u32_of("groups", gx)?,
        pixels: u32_of("pixels", s.pixels)?,
        n_layers: s.layers.len() as u32,
        c_in0: u32_of("c_in", s.c_in)?,
        x_batch_stride: if s.broadcast_input {
            0
        } else {
            u32_of("x stride", s.c_in * s.pixels)?
        },
        w_per_image: u32_of("weights per image", wlen)?,
        rgb_per_image: u32_of("rgb weights per image", rlen)?,
        rgb_mask: mask,
        c_last: u32_of("c_last", s.c_last())?,
        alpha: s.alpha,
        gain: s.gain,
        c_out: table("c_out", &c_out)?,
        w_off: table("w_off", &woff)?,
        b_off: table("b_off", &boff)?,
        rgb_off: table("rgb_off", &roff)?,
        rgb_b_off: table("rgb_b_off", &rboff)?,
        assemble: asm.is_some() as u32,
        c_prev: u32_of("c_prev", asm.map_or(0, |a| a.c_prev))?,
        prev_cols: u32_of("prev cols", asm.map_or(0, |a| a.prev_cols))?,
        prev_pixels: u32_of("prev pixels", asm.map_or(0, |a| a.prev_rows * a.prev_cols))?,
        cols: u32_of("cols", asm.map_or(0, |a| a.cols))?,
        n_freq: u32_of("n_freq", asm.map_or(0, |a| a.n_freq))?,
        store_out: out.is_some() as u32,
        bilinear: asm.is_some_and(|a| a.bilinear) as u32,
        ..Default::default()
    };
    // A toRGB-less block still binds something at the rgb slots.
    let rw = if rlen == 0 { w } else { rgbw };
    let rb = if rblen == 0 { bias } else { rgbb };
    let widest = s.layers.iter().map(|l| l.0).max().unwrap_or(0);
    let kernel = WIDTH_CLASSES
        .iter()
        .find(|(w, _)| *w >= widest)
        .map(|(_, k)| *k)
        .ok_or_else(|| GpuError::Shape(format!("fused block {widest} wide")))?;
    rec.dispatch(
        kernel,
        &p,
        // Unused slots bind a buffer already bound with the same access (the shared dummy
        // would be bound read-only and read-write at once, which is invalid).
        &[
            Some(x.unwrap_or(w).raw()),
            Some(w.raw()),
            Some(bias.raw()),
            Some(rw.raw()),
            Some(rb.raw()),
            Some(img.raw()),
            Some(out.unwrap_or(img).raw()),
            Some(geom.unwrap_or(w).raw()),
        ],
        [
            u32_of("workgroups", gx)?,
            u32_of("batch", s.batch)?,
            u32_of("workgroups", gz)?,
        ],
    )
}
