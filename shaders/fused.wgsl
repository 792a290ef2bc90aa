// The fully fused forward of one scale block (inference): every FMM layer of the block and its
// toRGB outputs for a tile of pixels of one image, in one dispatch. Each invocation takes four
// pixels and keeps their activations as vec4s in private memory, so activations are never
// written out between layers (the fully fused MLP of tiny-cuda-nn, with per-image weights). Every
// lane of a workgroup reads the same weight at the same time (one image per workgroup), so
// weights arrive as uniform, cached loads, each serving four pixels (2.3x the one-pixel version
// on lavapipe; `docs/lavapipe.md` measured the same lever).
//
// Lavapipe (Mesa 22.3) ends every loop of an invocation once the invocation has taken 65535 loop
// back-edges in all (one limiter per invocation, shared by all its loops), so the products run
// eight terms per iteration (`dot_rows4`, two inputs for four outputs) and the host sends blocks
// that would pass the limit (`FusedShape::loop_iterations`: paper256's wide blocks) to the
// unfused kernels there.

// Per layer j: h' = lrelu_alpha(W_j[b] h + bias_j) * gain; after the layers whose bit is set in
// rgb_mask: rgb += R_j[b] h' + rgb_bias_j. At the end img[b, :, px] += rgb and
// out[b, :, px] = h (the block's last features, the next block's input).
//
// Packing (all offsets in floats): wpack[b * w_per_image + w_off[j] + o * c_in_j + i];
// bpack[b_off[j] + o]; rgbw[b * rgb_per_image + rgb_off[j] + c * c_out_j + i];
// rgbb[rgb_b_off[j] + c]. x[b * x_batch_stride + i * pixels + px] (x_batch_stride 0: one input
// shared by the batch).
//
// Assembled input (assemble = 1): the block's input is never stored. For pixel px = r * cols + c
// of this block's grid, channel i < c_prev is the previous block's feature
// x[(b * c_prev + i) * prev_pixels + rowtab[r] * prev_cols + coltab[c]] (nearest sampling by the
// host's index tables), then sin and cos of phi_j = F[j, 0] xs[c] + F[j, 1] ys[r] (as
// coords.wgsl). geom = xs [cols] | ys [rows] | F [n_freq, 2] | rowtab [rows] | coltab [cols],
// the tables as u32 bits. With bilinear = 1 the tables are the first of two taps per axis and
// geom continues with their weights, row t [rows] | col t [cols]: channel i is
// (1 - tr)((1 - tc) x[s] + tc x[s + 1]) + tr ((1 - tc) x[s + W] + tc x[s + W + 1]) with
// s = rowtab[r] * prev_cols + coltab[c] (the unfused gather_bilinear, value for value). This removes the gather, embedding and concatenation passes, which
// write and read c_in floats a pixel (0.8 GB at 1024² for emoji32's finest block).
// store_out = 0 skips writing the last features (the last block of a frame).

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
    // Up to 16 layers, four per vec4.
    c_out: array<vec4<u32>, 4>,
    w_off: array<vec4<u32>, 4>,
    b_off: array<vec4<u32>, 4>,
    rgb_off: array<vec4<u32>, 4>,
    rgb_b_off: array<vec4<u32>, 4>,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> wpack: array<f32>;
@group(0) @binding(3) var<storage, read> bpack: array<f32>;
@group(0) @binding(4) var<storage, read> rgbw: array<f32>;
@group(0) @binding(5) var<storage, read> rgbb: array<f32>;
@group(0) @binding(6) var<storage, read_write> img: array<f32>;
@group(0) @binding(7) var<storage, read_write> out: array<f32>;
@group(0) @binding(8) var<storage, read> geom: array<f32>;

const WG: u32 = 64u;
// Pixels per invocation: each weight load serves four pixels (lanes hold pixels lid, lid + 64,
// lid + 128, lid + 192 of the workgroup's 256, so adjacent lanes read adjacent pixels).
const PPI: u32 = 4u;
// Widest layer output a block may have (wider blocks use the unfused kernels); the input may be
// any width. The host compiles this file once per width class, replacing this line
// (`kernels::fused::WIDTH_CLASSES`): private arrays sized to the block compile far faster on
// lavapipe (64: 2.5 s, 256: 29 s, 512: 170 s) and are what a GPU can keep in registers.
const MAXW: u32 = 512u;
const INV_TWO_PI: f32 = 0.15915494309189535;
const TWO_PI_HI: f32 = 6.28125;
const TWO_PI_LO: f32 = 0.0019353071795864769;

// The phase reduction of coords.wgsl (sin and cos are only accurate on [-pi, pi]).
fn reduce_phase(phi: vec4<f32>) -> vec4<f32> {
    let q = round(phi * INV_TWO_PI);
    return (phi - q * TWO_PI_HI) - q * TWO_PI_LO;
}
// sum_i wpack[row + i] * h[i] for four pixels at once, four products per iteration.
// Four rows at once (rows row, row + stride, ...): each activation load serves four weights, so
// private-memory traffic per product is a quarter of dot_row's (register blocking over outputs).
fn dot_rows4(row: u32, stride: u32, n: u32, h: ptr<function, array<vec4<f32>, MAXW>>) -> array<vec4<f32>, 4> {
    var a0 = vec4<f32>(0.0);
    var a1 = vec4<f32>(0.0);
    var a2 = vec4<f32>(0.0);
    var a3 = vec4<f32>(0.0);
    let r1 = row + stride;
    let r2 = r1 + stride;
    let r3 = r2 + stride;
    var i = 0u;
    for (; i + 2u <= n; i += 2u) {
        let h0 = (*h)[i];
        let h1 = (*h)[i + 1u];
        a0 += wpack[row + i] * h0 + wpack[row + i + 1u] * h1;
        a1 += wpack[r1 + i] * h0 + wpack[r1 + i + 1u] * h1;
        a2 += wpack[r2 + i] * h0 + wpack[r2 + i + 1u] * h1;
        a3 += wpack[r3 + i] * h0 + wpack[r3 + i + 1u] * h1;
    }
    if i < n {
        let h0 = (*h)[i];
        a0 += wpack[row + i] * h0;
        a1 += wpack[r1 + i] * h0;
        a2 += wpack[r2 + i] * h0;
        a3 += wpack[r3 + i] * h0;
    }
    return array<vec4<f32>, 4>(a0, a1, a2, a3);
}

// Adds W[o, :] h to acc[o] (or sets it) for o < c_out, weights row-major with `stride` per row.
fn layer_dots(w: u32, stride: u32, n: u32, c_out: u32, add: bool, h: ptr<function, array<vec4<f32>, MAXW>>, acc: ptr<function, array<vec4<f32>, MAXW>>) {
    var o = 0u;
    for (; o + 4u <= c_out; o += 4u) {
        let d = dot_rows4(w + o * stride, stride, n, h);
        for (var r = 0u; r < 4u; r++) {
            (*acc)[o + r] = select(d[r], (*acc)[o + r] + d[r], add);
        }
    }
    for (; o < c_out; o++) {
        let d = dot_row(w + o * stride, n, h);
        (*acc)[o] = select(d, (*acc)[o] + d, add);
    }
}

fn dot_row(row: u32, n: u32, h: ptr<function, array<vec4<f32>, MAXW>>) -> vec4<f32> {
    var acc = vec4<f32>(0.0);
    var i = 0u;
    for (; i + 4u <= n; i += 4u) {
        acc += wpack[row + i] * (*h)[i] + wpack[row + i + 1u] * (*h)[i + 1u]
            + wpack[row + i + 2u] * (*h)[i + 2u] + wpack[row + i + 3u] * (*h)[i + 3u];
    }
    for (; i < n; i++) {
        acc += wpack[row + i] * (*h)[i];
    }
    return acc;
}

// Per invocation: its pixels' coordinates and source cells in the previous grid, and where the
// frequencies start in geom (assembled input).
struct Pixels {
    src: array<u32, 4>,
    xs: vec4<f32>,
    ys: vec4<f32>,
    // Bilinear taps' weights (second row, second column).
    tr: vec4<f32>,
    tc: vec4<f32>,
    g_f: u32,
}

// Input channel i of the block for the invocation's four pixels: loaded (dense input), the
// previous block's feature at the pixels' source cells, or sin / cos of a frequency's phase.
fn input_channel(i: u32, b: u32, q: array<u32, 4>, at: Pixels) -> vec4<f32> {
    if p.assemble == 0u {
        let xo = b * p.x_batch_stride + i * p.pixels;
        return vec4<f32>(x[xo + q[0]], x[xo + q[1]], x[xo + q[2]], x[xo + q[3]]);
    }
    if i < p.c_prev {
        let xo = (b * p.c_prev + i) * p.prev_pixels;
        if p.bilinear == 0u {
            return vec4<f32>(x[xo + at.src[0]], x[xo + at.src[1]], x[xo + at.src[2]], x[xo + at.src[3]]);
        }
        // The four taps of the four pixels as vec4s (no loop: cheap for lavapipe to compile).
        let s = vec4<u32>(at.src[0], at.src[1], at.src[2], at.src[3]) + vec4<u32>(xo);
        let t = s + vec4<u32>(p.prev_cols);
        let x00 = vec4<f32>(x[s.x], x[s.y], x[s.z], x[s.w]);
        let x01 = vec4<f32>(x[s.x + 1u], x[s.y + 1u], x[s.z + 1u], x[s.w + 1u]);
        let x10 = vec4<f32>(x[t.x], x[t.y], x[t.z], x[t.w]);
        let x11 = vec4<f32>(x[t.x + 1u], x[t.y + 1u], x[t.z + 1u], x[t.w + 1u]);
        let uc = vec4<f32>(1.0) - at.tc;
        let top = uc * x00 + at.tc * x01;
        let bottom = uc * x10 + at.tc * x11;
        return (vec4<f32>(1.0) - at.tr) * top + at.tr * bottom;
    }
    let j = i - p.c_prev;
    let f = select(j - p.n_freq, j, j < p.n_freq);
    let t = reduce_phase(geom[at.g_f + 2u * f] * at.xs + geom[at.g_f + 2u * f + 1u] * at.ys);
    return select(cos(t), sin(t), j < p.n_freq);
}

@compute @workgroup_size(64)
fn level_forward(
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(workgroup_id) wid: vec3<u32>,
) {
    let b = wid.y;
    let base = (wid.z * p.groups_x + wid.x) * WG * PPI + lid.x;
    // Out-of-range pixels compute on a valid pixel and store nothing.
    var q: array<u32, 4>;
    for (var k = 0u; k < PPI; k++) {
        q[k] = min(base + k * WG, p.pixels - 1u);
    }
    var h: array<vec4<f32>, MAXW>;
    var hn: array<vec4<f32>, MAXW>;
    // Where this invocation's pixels read an assembled input.
    var at: Pixels;
    if p.assemble == 1u {
        let rows = p.pixels / p.cols;
        at.g_f = p.cols + rows;
        let g_rt = at.g_f + 2u * p.n_freq;
        let g_ct = g_rt + rows;
        for (var k = 0u; k < PPI; k++) {
            let r = q[k] / p.cols;
            let c = q[k] - r * p.cols;
            at.xs[k] = geom[c];
            at.ys[k] = geom[p.cols + r];
            at.src[k] = bitcast<u32>(geom[g_rt + r]) * p.prev_cols + bitcast<u32>(geom[g_ct + c]);
            if p.bilinear == 1u {
                at.tr[k] = geom[g_ct + p.cols + r];
                at.tc[k] = geom[g_ct + p.cols + rows + c];
            }
        }
    }
    // Layer 0 reads its input in chunks of MAXW channels (so the input may be wider than the
    // block's width class): each chunk is loaded or computed once per pixel into h, and every
    // output's dot product over the chunk is added to hn.
    let c0 = p.c_out[0][0];
    let w0 = b * p.w_per_image + p.w_off[0][0];
    for (var o = 0u; o < c0; o++) {
        hn[o] = vec4<f32>(0.0);
    }
    for (var i0 = 0u; i0 < p.c_in0; i0 += MAXW) {
        let n = min(MAXW, p.c_in0 - i0);
        for (var t = 0u; t < n; t++) {
            h[t] = input_channel(i0 + t, b, q, at);
        }
        layer_dots(w0 + i0, p.c_in0, n, c0, true, &h, &hn);
    }
    var rgb: array<vec4<f32>, 3>;
    var c_in = p.c_in0;
    for (var j = 0u; j < p.n_layers; j++) {
        let c_out = p.c_out[j >> 2u][j & 3u];
        let woff = b * p.w_per_image + p.w_off[j >> 2u][j & 3u];
        let boff = p.b_off[j >> 2u][j & 3u];
        if j > 0u {
            layer_dots(woff, c_in, c_in, c_out, false, &h, &hn);
        }
        for (var o = 0u; o < c_out; o++) {
            let z = hn[o] + bpack[boff + o];
            h[o] = select(p.alpha * z, z, z > vec4<f32>(0.0)) * p.gain;
        }
        c_in = c_out;
        if ((p.rgb_mask >> j) & 1u) == 1u {
            let roff = b * p.rgb_per_image + p.rgb_off[j >> 2u][j & 3u];
            let rb = p.rgb_b_off[j >> 2u][j & 3u];
            for (var c = 0u; c < 3u; c++) {
                var acc = vec4<f32>(0.0);
                for (var i = 0u; i < c_out; i++) {
                    acc += rgbw[roff + c * c_out + i] * h[i];
                }
                rgb[c] += acc + rgbb[rb + c];
            }
        }
    }
    for (var k = 0u; k < PPI; k++) {
        let px = base + k * WG;
        if px < p.pixels {
            for (var c = 0u; c < 3u; c++) {
                let i = (b * 3u + c) * p.pixels + px;
                img[i] = img[i] + rgb[c][k];
            }
            if p.store_out == 1u {
                for (var o = 0u; o < p.c_last; o++) {
                    out[(b * p.c_last + o) * p.pixels + px] = h[o][k];
                }
            }
        }
    }
}
