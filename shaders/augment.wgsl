// Augment family: DiffAugment's differentiable augmentations of the images D sees, per image,
// on planar [B, C, H, W] images (reference: src/reference/augment.rs). Per image, 8 parameters
// in prm: brightness, saturation, contrast, tx, ty, cut column, cut row, cut side (integers
// stored exactly as floats).
//
//   aug_color:          y[b, c, p] = s (x[b, c, p] - m[b, p]) + m[b, p] + beta   (m: mean over
//                       channels; beta = brightness, or 0 when with_brightness = 0: the transpose)
//   aug_blend:          y[b, i] = k (x[b, i] - mu[b]) + mu[b]                    (contrast; mu
//                       from the reduce kernels: the image's mean, or its gradient's)
//   aug_shift_forward:  y[b, c, i, j] = 0 in the cut square, else x[b, c, clamp(i - ty),
//                       clamp(j - tx)]                                           (edge replicate)
//   aug_shift_backward: dx[b, c, i, j] = sum of dy over the outputs that read (i, j), outside
//                       the cut square: a rectangle of rows x columns, summed rows then columns
//                       in increasing order (a gather: no atomics)
//
// One invocation per output value (aug_color: per pixel) at the flat index
// gid.x + gid.y * nwg.x * WG.

struct Params {
    n: u32,          // invocations
    batch: u32,
    channels: u32,
    height: u32,
    width: u32,
    with_brightness: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read> prm: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;
@group(0) @binding(4) var<storage, read> mu: array<f32>;

const WG: u32 = 64u;
const NP: u32 = 8u;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@compute @workgroup_size(64)
fn aug_color(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = flat(gid, nwg);
    if (q >= p.n) { return; }
    let np = p.height * p.width;
    let b = q / np;
    let px = q - b * np;
    let base = b * p.channels * np + px;
    var m = 0.0;
    for (var c = 0u; c < p.channels; c++) {
        m += src[base + c * np];
    }
    m = m / f32(p.channels);
    let beta = select(0.0, prm[b * NP], p.with_brightness != 0u);
    let s = prm[b * NP + 1u];
    for (var c = 0u; c < p.channels; c++) {
        let v = src[base + c * np];
        dst[base + c * np] = s * (v - m) + m + beta;
    }
}

@compute @workgroup_size(64)
fn aug_blend(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    let b = i / (p.channels * p.height * p.width);
    let k = prm[b * NP + 2u];
    dst[i] = k * (src[i] - mu[b]) + mu[b];
}

// Value q of [B, C, H, W]: (plane, row, column, image).
fn locate(q: u32) -> vec4<u32> {
    let np = p.height * p.width;
    let plane = q / np;
    let r = q - plane * np;
    let i = r / p.width;
    return vec4<u32>(plane, i, r - i * p.width, plane / p.channels);
}

fn cut_out(b: u32, i: u32, j: u32) -> bool {
    let x0 = i32(prm[b * NP + 5u]);
    let y0 = i32(prm[b * NP + 6u]);
    let n = i32(prm[b * NP + 7u]);
    let ii = i32(i);
    let jj = i32(j);
    return n > 0 && ii >= y0 && ii < y0 + n && jj >= x0 && jj < x0 + n;
}

@compute @workgroup_size(64)
fn aug_shift_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = flat(gid, nwg);
    if (q >= p.n) { return; }
    let at = locate(q);
    let plane = at.x;
    let i = at.y;
    let j = at.z;
    let b = at.w;
    if cut_out(b, i, j) {
        dst[q] = 0.0;
        return;
    }
    let tx = i32(prm[b * NP + 3u]);
    let ty = i32(prm[b * NP + 4u]);
    let si = u32(clamp(i32(i) - ty, 0, i32(p.height) - 1));
    let sj = u32(clamp(i32(j) - tx, 0, i32(p.width) - 1));
    dst[q] = src[plane * p.height * p.width + si * p.width + sj];
}

// The outputs [lo, hi) along an axis of n that a shift by t with edge replication reads from
// source index s (reference::augment::shift_sources).
fn sources(s: i32, t: i32, n: i32) -> vec2<i32> {
    let n1 = n - 1;
    var lo: i32;
    var hi: i32;
    if n1 == 0 {
        lo = 0;
        hi = 0;
    } else if s == 0 {
        lo = 0;
        hi = t;
    } else if s == n1 {
        lo = n1 + t;
        hi = n1;
    } else {
        lo = s + t;
        hi = s + t;
    }
    lo = clamp(lo, 0, n);
    hi = clamp(hi + 1, 0, n);
    return vec2<i32>(lo, max(hi, lo));
}

// src = dY [B, C, H, W]; dst = dX.
@compute @workgroup_size(64)
fn aug_shift_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let q = flat(gid, nwg);
    if (q >= p.n) { return; }
    let at = locate(q);
    let plane = at.x;
    let i = at.y;
    let j = at.z;
    let b = at.w;
    let tx = i32(prm[b * NP + 3u]);
    let ty = i32(prm[b * NP + 4u]);
    let rows = sources(i32(i), ty, i32(p.height));
    let cols = sources(i32(j), tx, i32(p.width));
    var acc = 0.0;
    for (var oi = rows.x; oi < rows.y; oi++) {
        var row = 0.0;
        for (var oj = cols.x; oj < cols.y; oj++) {
            if !cut_out(b, u32(oi), u32(oj)) {
                row += src[(plane * p.height + u32(oi)) * p.width + u32(oj)];
            }
        }
        acc += row;
    }
    dst[q] = acc;
}
