use inrgan::gpu::GpuBuffer;
use inrgan::kernels::image as k;
use inrgan::reference::image as r;

use crate::common::*;

// Tolerance: bytes must match the reference exactly, except by one where x * 127.5 + 128 lies
// within 1e-4 of an integer (f32 rounding or a fused multiply-add may land either side).
fn near_boundary(x: f32) -> bool {
    let v = x as f64 * 127.5 + 128.0;
    v.is_finite() && (v - v.round()).abs() < 1e-4
}

fn check_pixels(what: &str, got: &[u32], x: &[f32], batch: usize, pixels: usize) {
    let want = r::to_rgba8(x, batch, pixels);
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (&gp, &wp)) in got.iter().zip(&want).enumerate() {
        let (gb, wb) = (gp.to_le_bytes(), wp.to_le_bytes());
        assert_eq!(gb[3], 255, "{what}: alpha of pixel {i}");
        let (b, q) = (i / pixels, i % pixels);
        for ch in 0..3 {
            let xv = x[(b * 3 + ch) * pixels + q];
            let diff = (gb[ch] as i32 - wb[ch] as i32).abs();
            let ok = diff == 0 || (diff == 1 && near_boundary(xv));
            assert!(
                ok,
                "{what}: pixel {i} channel {ch} of x = {xv}: {} vs reference {}",
                gb[ch], wb[ch]
            );
        }
    }
}

/// Values over [-1.3, 1.3] (some clamp) plus the special cases.
fn inputs(n: usize, g: &mut inrgan::rng::Rng) -> Vec<f32> {
    let mut x = g.uniform_vec(n, -1.3, 1.3);
    let special = [
        -1.0,
        1.0,
        0.0,
        2.0,
        -2.0,
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.5 / 127.5,
        -0.999,
    ];
    for (v, s) in x.iter_mut().zip(special) {
        *v = s;
    }
    x
}

const SIZES: &[(usize, usize, usize)] = &[(1, 1, 1), (2, 3, 5), (3, 17, 9), (1, 70, 3)];

#[test]
fn quantize_reference_endpoints_and_byte_order() {
    assert_eq!(r::quantize(-1.0f32), 0);
    assert_eq!(r::quantize(1.0f32), 255);
    assert_eq!(r::quantize(0.0f32), 128);
    assert_eq!(r::quantize(5.0f32), 255);
    assert_eq!(r::quantize(-5.0f32), 0);
    assert_eq!(r::quantize(f32::NAN), 0);
    assert_eq!(r::quantize(-0.5f64 / 127.5), 127); // 127.0 exactly: half up
    assert_eq!(r::pack_rgba(1, 2, 3, 4).to_le_bytes(), [1, 2, 3, 4]);
}

#[test]
fn to_rgba8_matches_reference() {
    let mut g = rng(60);
    for &(batch, h, w) in SIZES {
        let pixels = h * w;
        let x = inputs(batch * 3 * pixels, &mut g);
        let out = GpuBuffer::<u32>::zeros(ctx(), batch * pixels, "rgba").unwrap();
        run("to_rgba8", |rec| {
            k::to_rgba8(rec, &up(&x), &out, batch, pixels).unwrap()
        });
        let got = out.read(ctx()).unwrap();
        check_pixels(
            &format!("to_rgba8 {batch}x{h}x{w}"),
            &got,
            &x,
            batch,
            pixels,
        );
    }
}

/// Copies an Rgba8Unorm texture back as one u32 per pixel (rows padded to 256 bytes in transit).
fn read_texture(tex: &wgpu::Texture, w: u32, h: u32) -> Vec<u32> {
    let c = ctx();
    let row = (4 * w).div_ceil(256) * 256;
    let buf = c.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("texture readback"),
        size: (row * h) as u64,
        usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    let mut enc = c.device.create_command_encoder(&Default::default());
    enc.copy_texture_to_buffer(
        wgpu::TexelCopyTextureInfo {
            texture: tex,
            mip_level: 0,
            origin: wgpu::Origin3d::ZERO,
            aspect: wgpu::TextureAspect::All,
        },
        wgpu::TexelCopyBufferInfo {
            buffer: &buf,
            layout: wgpu::TexelCopyBufferLayout {
                offset: 0,
                bytes_per_row: Some(row),
                rows_per_image: Some(h),
            },
        },
        wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
    );
    c.queue.submit([enc.finish()]);
    let slice = buf.slice(..);
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    c.wait().expect("wait");
    rx.recv().expect("map callback").expect("map");
    let view = slice.get_mapped_range().expect("mapped range");
    let mut out = Vec::with_capacity((w * h) as usize);
    for y in 0..h as usize {
        let r = &view[y * row as usize..y * row as usize + 4 * w as usize];
        out.extend(
            r.chunks_exact(4)
                .map(|p| u32::from_le_bytes([p[0], p[1], p[2], p[3]])),
        );
    }
    out
}

fn texture(w: u32, h: u32, format: wgpu::TextureFormat) -> wgpu::Texture {
    ctx().device.create_texture(&wgpu::TextureDescriptor {
        label: Some("to_texture test"),
        size: wgpu::Extent3d {
            width: w,
            height: h,
            depth_or_array_layers: 1,
        },
        mip_level_count: 1,
        sample_count: 1,
        dimension: wgpu::TextureDimension::D2,
        format,
        usage: wgpu::TextureUsages::STORAGE_BINDING | wgpu::TextureUsages::COPY_SRC,
        view_formats: &[],
    })
}

#[test]
fn to_texture_matches_reference() {
    let mut g = rng(61);
    for &(batch, h, w) in SIZES {
        let pixels = h * w;
        let x = inputs(batch * 3 * pixels, &mut g);
        let xb = up(&x);
        let tex = texture(w as u32, h as u32, wgpu::TextureFormat::Rgba8Unorm);
        for image in 0..batch {
            run("to_texture", |rec| {
                k::to_texture(rec, &xb, batch, image, w, h, &tex).unwrap()
            });
            let got = read_texture(&tex, w as u32, h as u32);
            let one = &x[image * 3 * pixels..(image + 1) * 3 * pixels];
            check_pixels(
                &format!("to_texture {batch}x{h}x{w} image {image}"),
                &got,
                one,
                1,
                pixels,
            );
        }
    }
}

/// A picture written as strips at row offsets equals the picture written at once.
#[test]
fn to_texture_at_writes_strips() {
    let mut g = rng(62);
    let (h, w) = (13, 7);
    let x = inputs(3 * h * w, &mut g);
    let tex = texture(w as u32, h as u32, wgpu::TextureFormat::Rgba8Unorm);
    for (r0, r1) in [(0, 5), (5, 6), (6, 13)] {
        let strip: Vec<f32> = (0..3)
            .flat_map(|c| x[c * h * w + r0 * w..c * h * w + r1 * w].to_vec())
            .collect();
        let sb = up(&strip);
        run("to_texture_at", |rec| {
            k::to_texture_at(rec, &sb, 1, 0, w, r1 - r0, r0, &tex).unwrap()
        });
    }
    let got = read_texture(&tex, w as u32, h as u32);
    check_pixels("to_texture strips", &got, &x, 1, h * w);
    let mut rec = inrgan::gpu::Recorder::new(ctx(), "strip out of range");
    let sb = up(&x[..3 * w]);
    assert!(k::to_texture_at(&mut rec, &sb, 1, 0, w, 1, h, &tex).is_err());
}

#[test]
fn to_texture_rejects_bad_targets() {
    let mut rec = inrgan::gpu::Recorder::new(ctx(), "bad texture");
    let x = zeros(2 * 3 * 15);
    let small = texture(4, 3, wgpu::TextureFormat::Rgba8Unorm);
    let err = k::to_texture(&mut rec, &x, 2, 0, 5, 3, &small).unwrap_err();
    assert!(err.to_string().contains("fit"), "{err}");
    let ok = texture(5, 3, wgpu::TextureFormat::Rgba8Unorm);
    assert!(
        k::to_texture(&mut rec, &x, 2, 2, 5, 3, &ok).is_err(),
        "image index"
    );
    let float = texture(5, 3, wgpu::TextureFormat::Rgba32Float);
    assert!(
        k::to_texture(&mut rec, &x, 2, 1, 5, 3, &float).is_err(),
        "format"
    );
}
