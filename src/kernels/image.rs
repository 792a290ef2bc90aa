//! `shaders/image.wgsl`: the generator's planar RGB output to packed RGBA8 pixels, in a buffer
//! or straight into an `Rgba8Unorm` storage texture.

use bytemuck::{Pod, Zeroable};

use super::{WG, need, u32_of};
use crate::gpu::{GpuBuffer, GpuError, GpuResult, Kernel, Recorder, Shader, groups_1d};

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
struct Params {
    pixels: u32,
    batch: u32,
    width: u32,
    image: u32,
    row0: u32,
    _pad: [u32; 3],
}

/// Planar `x [batch, 3, pixels]` to `out [batch, pixels]` packed RGBA8 (R in the lowest byte,
/// alpha 255), each byte `clamp(floor(x * 127.5 + 128), 0, 255)`.
pub fn to_rgba8(
    rec: &mut Recorder,
    x: &GpuBuffer<f32>,
    out: &GpuBuffer<u32>,
    batch: usize,
    pixels: usize,
) -> GpuResult<()> {
    let n = batch * pixels;
    if n == 0 {
        return Ok(());
    }
    need("to_rgba8 x", x, 3 * n)?;
    need("to_rgba8 out", out, n)?;
    u32_of("to_rgba8 x values", 3 * n)?;
    let p = Params {
        pixels: u32_of("pixels", pixels)?,
        batch: u32_of("batch", batch)?,
        width: 0,
        image: 0,
        ..Default::default()
    };
    rec.dispatch(
        Kernel::new(Shader::Image, "to_rgba8"),
        &p,
        &[Some(x.raw()), Some(out.raw())],
        groups_1d(n, WG),
    )
}

/// Image `image` of planar `x [batch, 3, height * width]` into the top-left `width x height`
/// region of `texture` (2D, `Rgba8Unorm`, `STORAGE_BINDING` usage), same bytes as [`to_rgba8`].
#[allow(clippy::too_many_arguments)]
pub fn to_texture(
    rec: &mut Recorder,
    x: &GpuBuffer<f32>,
    batch: usize,
    image: usize,
    width: usize,
    height: usize,
    texture: &wgpu::Texture,
) -> GpuResult<()> {
    to_texture_at(rec, x, batch, image, width, height, 0, texture)
}

/// [`to_texture`] into rows `row0 .. row0 + height` of `texture` (a strip of a larger picture).
#[allow(clippy::too_many_arguments)]
pub fn to_texture_at(
    rec: &mut Recorder,
    x: &GpuBuffer<f32>,
    batch: usize,
    image: usize,
    width: usize,
    height: usize,
    row0: usize,
    texture: &wgpu::Texture,
) -> GpuResult<()> {
    let pixels = width * height;
    if pixels == 0 {
        return Ok(());
    }
    if image >= batch {
        return Err(GpuError::Shape(format!(
            "to_texture: image {image} of a batch of {batch}"
        )));
    }
    if texture.format() != wgpu::TextureFormat::Rgba8Unorm
        || texture.dimension() != wgpu::TextureDimension::D2
        || !texture
            .usage()
            .contains(wgpu::TextureUsages::STORAGE_BINDING)
    {
        return Err(GpuError::Shape(format!(
            "to_texture: needs a 2D Rgba8Unorm texture with STORAGE_BINDING usage, got {:?} {:?} {:?}",
            texture.dimension(),
            texture.format(),
            texture.usage()
        )));
    }
    if (texture.width() as usize) < width || (texture.height() as usize) < row0 + height {
        return Err(GpuError::Shape(format!(
            "to_texture: a {width}x{height} image does not fit a {}x{} texture",
            texture.width(),
            texture.height()
        )));
    }
    need("to_texture x", x, batch * 3 * pixels)?;
    u32_of("to_texture x values", batch * 3 * pixels)?;
    let p = Params {
        pixels: u32_of("pixels", pixels)?,
        batch: u32_of("batch", batch)?,
        width: u32_of("width", width)?,
        image: u32_of("image", image)?,
        row0: u32_of("row0", row0)?,
        ..Default::default()
    };
    let view = texture.create_view(&wgpu::TextureViewDescriptor {
        label: Some("to_texture view"),
        mip_level_count: Some(1),
        ..Default::default()
    });
    rec.dispatch_resources(
        Kernel::new(Shader::Image, "to_texture"),
        &p,
        &[
            x.raw().as_entire_binding(),
            wgpu::BindingResource::TextureView(&view),
        ],
        groups_1d(pixels, WG),
    )
}
