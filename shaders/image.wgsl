// Image family: the generator's output to 8-bit pixels.
//
// Each channel value x (nominal range [-1, 1]) becomes the byte
//   q(x) = clamp(floor(x * 127.5 + 128.0), 0, 255)
// i.e. x * 127.5 + 127.5 rounded half up (floor(v + 0.5)); NaN gives 0 (tested on the bits).
//
//   to_rgba8:   planar X [B, 3, H*W] -> packed u32 [B, H*W] = r | g << 8 | b << 16 | 255 << 24,
//               so the u32s' little-endian bytes are R, G, B, A (PNG / Rgba8Unorm order)
//   to_texture: the same bytes of image `image` into a texture_storage_2d<rgba8unorm, write>
//               (stored as q / 255; the unorm conversion gives back q exactly), pixel
//               (x, y) = (i % W, row0 + i / W): W x H texels from row row0 of the texture.
//
// One invocation per pixel at the flat index gid.x + gid.y * nwg.x * WG.

struct Params {
    pixels: u32,
    batch: u32,
    width: u32,
    image: u32,
    // to_texture: the first texture row written (a strip of a larger picture).
    row0: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;

const WG: u32 = 64u;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

fn quantize(v: f32) -> u32 {
    if ((bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u) { return 0u; }
    return u32(clamp(floor(v * 127.5 + 128.0), 0.0, 255.0));
}

@group(0) @binding(2) var<storage, read_write> rgba: array<u32>;

@compute @workgroup_size(64)
fn to_rgba8(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.batch * p.pixels) { return; }
    let b = i / p.pixels;
    let q = i - b * p.pixels;
    let base = b * 3u * p.pixels + q;
    let r = quantize(x[base]);
    let g = quantize(x[base + p.pixels]);
    let bl = quantize(x[base + 2u * p.pixels]);
    rgba[i] = r | (g << 8u) | (bl << 16u) | (255u << 24u);
}

@group(0) @binding(2) var tex: texture_storage_2d<rgba8unorm, write>;

@compute @workgroup_size(64)
fn to_texture(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.pixels) { return; }
    let base = p.image * 3u * p.pixels + i;
    let r = f32(quantize(x[base]));
    let g = f32(quantize(x[base + p.pixels]));
    let bl = f32(quantize(x[base + 2u * p.pixels]));
    let px = vec2<u32>(i % p.width, p.row0 + i / p.width);
    textureStore(tex, px, vec4<f32>(r, g, bl, 255.0) / 255.0);
}
