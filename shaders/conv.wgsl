// Conv family: the discriminator's 2D convolution with equalised learning rate, and StyleGAN2's
// blur-and-downsample filter. Planar layouts: X [N, Cin, H, W], W [Cout, Cin, K, K], Y [N, Cout,
// Ho, Wo].
//
//   conv:  Y[n, co, oy, ox] = w_gain * sum_{ci, ky, kx} W[co, ci, ky, kx] X[n, ci, oy*s + ky - pad, ox*s + kx - pad]
//                             + b_gain * b[co]
//          with K odd, pad = K / 2, zero padding, stride s in {1, 2}, Ho = (H + 2 pad - K) / s + 1.
//   dX[n, ci, iy, ix] = w_gain * sum_{co, ky, kx : iy = oy*s + ky - pad, ix = ox*s + kx - pad}
//                       W[co, ci, ky, kx] dY[n, co, oy, ox]          (the transposed convolution)
//   dW[co, ci, ky, kx] = w_gain * sum_{n, oy, ox} dY[n, co, oy, ox] X[n, ci, oy*s + ky - pad, ox*s + kx - pad]
//   db = b_gain * sum over (n, pixels) of dY   (reduce.wgsl's sum_axes, not here)
//
//   blur_down2x: Y[p, i, j] = sum_{a, b in 0..4} f[a] f[b] X[p, 2i + a - 1, 2j + b - 1],
//          f = [1, 3, 3, 1] / 8, zero padding 1, Ho = (H + 2 - 4) / 2 + 1; and its transpose.
//
// Shapes for lavapipe and GPUs alike: lanes are pixels (contiguous across lanes), the batch folded
// in (lane index = n * pixels + pixel, so a 4x4 map still fills a workgroup's 64 lanes); in
// conv_forward a workgroup owns TC output channels taken from the workgroup id (and
// conv_backward_input TC input channels), so every weight load is uniform across the workgroup. conv_backward_weight
// runs one invocation per weight value with the output channel from the workgroup id (so dY
// loads are uniform) and sums over n, oy, ox in that fixed order (a partial sum per row of
// each image). Loads are clamped and masked,
// stores guarded, so any shape works. No atomics: every output is written by one invocation.

struct Params {
    batch: u32, c_in: u32, c_out: u32, height: u32,
    width: u32, k: u32, stride: u32, pad: u32,
    out_h: u32, out_w: u32, has_bias: u32, accumulate: u32,
    w_gain: f32, b_gain: f32, _pad0: f32, _pad1: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
// conv_forward: X, W, bias, Y. conv_backward_input: dY, W, dX. conv_backward_weight: dY, X, dW.
// blur_down2x_forward: X, Y. blur_down2x_backward: dY, dX.
@group(0) @binding(1) var<storage, read> in1: array<f32>;
@group(0) @binding(2) var<storage, read> in2: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out4: array<f32>;
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;

const WG: u32 = 64u;
const TC: u32 = 8u;
// (image, pixel) pairs per invocation in conv_forward and conv_backward_input: lanes hold pairs
// lid, lid + 64, lid + 128 and lid + 192 of the workgroup's 256 (adjacent lanes, adjacent
// pixels), so each weight load serves four pixels and each input load four channels: 16
// multiply-adds per 4 + 4 loads (one pixel per invocation did 4 per 1 + 4).
const PPI: u32 = 4u;

// in1 at four indices, zero where `ok` is false (the indices are clamped in range).
fn gather4(idx: vec4<u32>, ok: vec4<bool>) -> vec4<f32> {
    return select(vec4<f32>(0.0), vec4<f32>(in1[idx.x], in1[idx.y], in1[idx.z], in1[idx.w]), ok);
}

// The invocation's four (image, pixel) pairs of a map of `npix` pixels, `cols` wide: image,
// row, column (pairs past the end repeat the last one; their results are not stored).
struct Pairs {
    n: vec4<u32>,
    y: vec4<i32>,
    x: vec4<u32>,
}

fn pairs(base: u32, total: u32, npix: u32, cols: u32) -> Pairs {
    let f = min(vec4<u32>(base, base + WG, base + 2u * WG, base + 3u * WG), vec4<u32>(total - 1u));
    let n = f / npix;
    let pc = f - n * npix;
    let y = pc / cols;
    return Pairs(n, vec4<i32>(y), pc - y * cols);
}

// Grid: x (spilling into z) = tiles of WG * PPI (image, output pixel) pairs, y = tiles of TC
// output channels.
@compute @workgroup_size(64)
fn conv_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let co0 = wid.y * TC;
    if (co0 >= p.c_out) { return; }
    let npix = p.out_h * p.out_w;
    let total = p.batch * npix;
    let base = (wid.z * nwg.x + wid.x) * WG * PPI + lid.x;
    let q = pairs(base, total, npix, p.out_w);
    let s = i32(p.stride);
    let iy0 = q.y * s - i32(p.pad);
    let ix0 = vec4<i32>(q.x) * s - i32(p.pad);
    let kk = p.k * p.k;
    let wrow = p.c_in * kk;
    let clast = p.c_out - 1u;
    var wr: array<u32, TC>;
    for (var r = 0u; r < TC; r++) {
        wr[r] = min(co0 + r, clast) * wrow;
    }
    let hw = p.height * p.width;
    let hmax = vec4<i32>(i32(p.height) - 1);
    let wmax = vec4<i32>(i32(p.width) - 1);
    let zero = vec4<i32>(0);
    // acc[r][j]: output channel co0 + r at pair j.
    var acc: array<vec4<f32>, TC>;
    for (var ci = 0u; ci < p.c_in; ci++) {
        let xbase = (q.n * p.c_in + ci) * hw;
        let wci = ci * kk;
        for (var ky = 0u; ky < p.k; ky++) {
            let iy = iy0 + i32(ky);
            let yok = iy >= zero & iy <= hmax;
            let xrow = xbase + vec4<u32>(clamp(iy, zero, hmax)) * p.width;
            for (var kx = 0u; kx < p.k; kx++) {
                let ix = ix0 + i32(kx);
                let xv = gather4(xrow + vec4<u32>(clamp(ix, zero, wmax)), yok & ix >= zero & ix <= wmax);
                let t = wci + ky * p.k + kx;
                for (var r = 0u; r < TC; r++) {
                    acc[r] += in2[wr[r] + t] * xv;
                }
            }
        }
    }
    for (var j = 0u; j < PPI; j++) {
        let f = base + j * WG;
        if (f >= total) { break; }
        let n = f / npix;
        let pc = f - n * npix;
        for (var r = 0u; r < TC; r++) {
            let co = co0 + r;
            if (co >= p.c_out) { break; }
            var v = p.w_gain * acc[r][j];
            if (p.has_bias != 0u) { v += p.b_gain * bias[co]; }
            out4[(n * p.c_out + co) * npix + pc] = v;
        }
    }
}

// Grid: x (spilling into z) = tiles of WG * PPI (image, input pixel) pairs, y = tiles of TC
// input channels.
@compute @workgroup_size(64)
fn conv_backward_input(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let ci0 = wid.y * TC;
    if (ci0 >= p.c_in) { return; }
    let hw = p.height * p.width;
    let total = p.batch * hw;
    let base = (wid.z * nwg.x + wid.x) * WG * PPI + lid.x;
    let q = pairs(base, total, hw, p.width);
    let kk = p.k * p.k;
    let clast = p.c_in - 1u;
    var cr: array<u32, TC>;
    for (var r = 0u; r < TC; r++) {
        cr[r] = min(ci0 + r, clast) * kk;
    }
    let npix = p.out_h * p.out_w;
    // Output row oy reads input row iy at tap ky when oy * s = iy + pad - ky.
    let ty0 = q.y + i32(p.pad);
    let tx0 = vec4<i32>(q.x) + i32(p.pad);
    let s = i32(p.stride);
    let ohmax = vec4<i32>(i32(p.out_h) - 1);
    let owmax = vec4<i32>(i32(p.out_w) - 1);
    let zero = vec4<i32>(0);
    var acc: array<vec4<f32>, TC>;
    for (var co = 0u; co < p.c_out; co++) {
        let dbase = (q.n * p.c_out + co) * npix;
        let wco = co * p.c_in * kk;
        for (var ky = 0u; ky < p.k; ky++) {
            let ty = ty0 - i32(ky);
            let oy = ty / s;
            let yok = ty >= zero & oy * s == ty & oy <= ohmax;
            let drow = dbase + vec4<u32>(clamp(oy, zero, ohmax)) * p.out_w;
            for (var kx = 0u; kx < p.k; kx++) {
                let tx = tx0 - i32(kx);
                let ox = tx / s;
                let g = gather4(drow + vec4<u32>(clamp(ox, zero, owmax)),
                                yok & tx >= zero & ox * s == tx & ox <= owmax);
                let t = wco + ky * p.k + kx;
                for (var r = 0u; r < TC; r++) {
                    acc[r] += in2[cr[r] + t] * g;
                }
            }
        }
    }
    for (var j = 0u; j < PPI; j++) {
        let f = base + j * WG;
        if (f >= total) { break; }
        let n = f / hw;
        let pc = f - n * hw;
        for (var r = 0u; r < TC; r++) {
            let ci = ci0 + r;
            if (ci >= p.c_in) { break; }
            let i = (n * p.c_in + ci) * hw + pc;
            var v = p.w_gain * acc[r][j];
            if (p.accumulate != 0u) { v += out3[i]; }
            out3[i] = v;
        }
    }
}

// One image's term of dW[co + r, ci, ky, kx] for the four output channels of `d` (their dY
// planes' starts): sum over oy, ox of dY[d[r] + oy, ox] X[xbase + ...]. Lavapipe (Mesa 22.3)
// ends every loop of an invocation once the invocation has taken 65535 loop back-edges in all,
// so rows are summed four pixels per iteration: batch * out_h * (out_w / 4 + 2) back-edges
// (emoji64 at batch 32: 36 864). `kernels::conv` refuses larger sums on lavapipe.
fn dw_image(d: vec4<u32>, xbase: u32, ky: u32, kx: u32) -> vec4<f32> {
    let hmax = i32(p.height) - 1;
    var acc = vec4<f32>(0.0);
    for (var oy = 0u; oy < p.out_h; oy++) {
        let iy = i32(oy * p.stride + ky) - i32(p.pad);
        let yok = iy >= 0 && iy <= hmax;
        let xrow = xbase + u32(clamp(iy, 0, hmax)) * p.width;
        acc += dw_row(d + oy * p.out_w, xrow, yok, kx);
    }
    return acc;
}

fn dw_row(drow: vec4<u32>, xrow: u32, yok: bool, kx: u32) -> vec4<f32> {
    var acc = vec4<f32>(0.0);
    var ox = 0u;
    for (; ox + 4u <= p.out_w; ox += 4u) {
        acc += dw_term(drow, xrow, yok, kx, ox) + dw_term(drow, xrow, yok, kx, ox + 1u)
            + dw_term(drow, xrow, yok, kx, ox + 2u) + dw_term(drow, xrow, yok, kx, ox + 3u);
    }
    for (; ox < p.out_w; ox++) {
        acc += dw_term(drow, xrow, yok, kx, ox);
    }
    return acc;
}

// One X value (a gather) times four dY values (uniform across the workgroup).
fn dw_term(drow: vec4<u32>, xrow: u32, yok: bool, kx: u32, ox: u32) -> vec4<f32> {
    let wmax = i32(p.width) - 1;
    let ix = i32(ox * p.stride + kx) - i32(p.pad);
    let ok = yok && ix >= 0 && ix <= wmax;
    let xv = select(0.0, in2[xrow + u32(clamp(ix, 0, wmax))], ok);
    let o = drow + ox;
    return vec4<f32>(in1[o.x], in1[o.y], in1[o.z], in1[o.w]) * xv;
}

// Grid: x = tiles of WG weights of one output channel (ci, ky, kx), y = groups of four output
// channels (TCW): each X load serves four products.
const TCW: u32 = 4u;
@compute @workgroup_size(64)
fn conv_backward_weight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let co0 = wid.y * TCW;
    let kk = p.k * p.k;
    let per = p.c_in * kk;
    let t = wid.x * WG + lid.x;
    if (co0 >= p.c_out || t >= per) { return; }
    let ci = t / kk;
    let r = t - ci * kk;
    let ky = r / p.k;
    let kx = r - ky * p.k;
    let hw = p.height * p.width;
    let npix = p.out_h * p.out_w;
    // Channels past c_out repeat the last one (not stored).
    let co = min(vec4<u32>(co0, co0 + 1u, co0 + 2u, co0 + 3u), vec4<u32>(p.c_out - 1u));
    var acc = vec4<f32>(0.0);
    for (var n = 0u; n < p.batch; n++) {
        acc += dw_image((n * p.c_out + co) * npix, (n * p.c_in + ci) * hw, ky, kx);
    }
    for (var j = 0u; j < TCW; j++) {
        if (co0 + j >= p.c_out) { break; }
        let i = (co0 + j) * per + t;
        var v = p.w_gain * acc[j];
        if (p.accumulate != 0u) { v += out3[i]; }
        out3[i] = v;
    }
}

// Tap t of the 1D filter [1, 3, 3, 1] / 8.
fn f4(t: i32) -> f32 { return select(0.125, 0.375, t == 1 || t == 2); }

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// One invocation per output value; planes = batch (= N * C), height/width the input size.
@compute @workgroup_size(64)
fn blur_down2x_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let npix = p.out_h * p.out_w;
    if (i >= p.batch * npix) { return; }
    let pl = i / npix;
    let q = i - pl * npix;
    let oy = q / p.out_w;
    let ox = q - oy * p.out_w;
    let base = pl * p.height * p.width;
    let hmax = i32(p.height) - 1;
    let wmax = i32(p.width) - 1;
    var acc = 0.0;
    for (var a = 0; a < 4; a++) {
        let iy = i32(2u * oy) + a - 1;
        if (iy < 0 || iy > hmax) { continue; }
        var row = 0.0;
        for (var b = 0; b < 4; b++) {
            let ix = i32(2u * ox) + b - 1;
            if (ix < 0 || ix > wmax) { continue; }
            row += f4(b) * in1[base + u32(iy) * p.width + u32(ix)];
        }
        acc += f4(a) * row;
    }
    out2[i] = acc;
}

// One invocation per input value: dX[p, y, x] = sum of f[a] f[b] dY[p, i, j] over the outputs
// (i, j) with 2i + a - 1 = y and 2j + b - 1 = x.
@compute @workgroup_size(64)
fn blur_down2x_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let hw = p.height * p.width;
    if (i >= p.batch * hw) { return; }
    let pl = i / hw;
    let q = i - pl * hw;
    let y = q / p.width;
    let x = q - y * p.width;
    let base = pl * p.out_h * p.out_w;
    var acc = 0.0;
    for (var a = 0; a < 4; a++) {
        let ty = i32(y) + 1 - a;
        if (ty < 0 || (ty & 1) != 0 || ty / 2 >= i32(p.out_h)) { continue; }
        var row = 0.0;
        for (var b = 0; b < 4; b++) {
            let tx = i32(x) + 1 - b;
            if (tx < 0 || (tx & 1) != 0 || tx / 2 >= i32(p.out_w)) { continue; }
            row += f4(b) * in1[base + u32(ty / 2) * p.out_w + u32(tx / 2)];
        }
        acc += f4(a) * row;
    }
    var v = acc;
    if (p.accumulate != 0u) { v += out2[i]; }
    out2[i] = v;
}
