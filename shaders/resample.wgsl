// Resample family: moving pixels between the INR's scale levels. Maps are planar [.., H * W].
//
//   upsample2x_forward:  Y[bc, i, j] = X[bc, i / 2, j / 2]            X [BC, H, W] -> Y [BC, 2H, 2W]
//   upsample2x_backward: dX[bc, i, j] (+)= dY[bc, 2i, 2j] + dY[bc, 2i, 2j+1]
//                                          + dY[bc, 2i+1, 2j] + dY[bc, 2i+1, 2j+1]  (in that order)
//   gather:              Y[bc, r, c] = X[bc, rows[r], cols[c]]        (nearest sampling at pixels
//                        given by u32 tables; indices are clamped into X, the host checks them)
//   gather_bilinear:     Y[bc, r, c] = (1-tr)((1-tc) X[ir, ic] + tc X[ir, ic+1])
//                                    + tr ((1-tc) X[ir+1, ic] + tc X[ir+1, ic+1])
//                        (ir, tr) and (ic, tc) from separable tap tables (the bilinear link
//                        between scale levels; the host checks ir + 1 < H, ic + 1 < W)
//   gather_bilinear_backward: its transpose as a gather over the host's inverse tables (for
//                        each source row and column, the outputs that read it and their
//                        weights, in output order): fixed-order sums, no atomics
//   concat_channels:     Y[b] = [X1[b]; X2[b]] along channels, or X2[0] for every b (broadcast)
//   slice_channels:      Y[b, c] (+)= X[b, c0 + c] for c < C'            (the backward of concat)
//
// One invocation per output value at the flat index gid.x + gid.y * nwg.x * WG, so consecutive
// lanes write consecutive pixels; indices past the end return before any store.

struct Params {
    n: u32,          // number of outputs (= invocations)
    planes: u32,     // upsample, gather: B*C planes; concat, slice: batch
    h: u32,          // upsample, gather: input height
    w: u32,          // upsample, gather: input width
    ho: u32,         // gather: output rows
    wo: u32,         // gather: output columns
    pixels: u32,     // concat, slice: pixels per channel
    c1: u32,         // concat: channels of X1; slice: channels of X
    c2: u32,         // concat: channels of X2; slice: channels taken (C')
    c0: u32,         // slice: first channel taken
    broadcast: u32,  // concat: X2 is [1, C2, P]
    accumulate: u32, // upsample2x_backward, slice: add into the output
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

const WG: u32 = 64u;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@compute @workgroup_size(64)
fn upsample2x_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    let wo = 2u * p.w;
    let per = 4u * p.h * p.w;
    let bc = i / per;
    let r = i - bc * per;
    let oy = r / wo;
    let ox = r - oy * wo;
    dst[i] = src[(bc * p.h + oy / 2u) * p.w + ox / 2u];
}

// src = dY [BC, 2H, 2W], dst = dX [BC, H, W]; one invocation per dX value.
@compute @workgroup_size(64)
fn upsample2x_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    let hw = p.h * p.w;
    let bc = i / hw;
    let r = i - bc * hw;
    let y = r / p.w;
    let x = r - y * p.w;
    let wo = 2u * p.w;
    let base = (bc * 2u * p.h + 2u * y) * wo + 2u * x;
    var s = src[base] + src[base + 1u] + src[base + wo] + src[base + wo + 1u];
    if (p.accumulate != 0u) { s = dst[i] + s; }
    dst[i] = s;
}

// src = X [BC, C1, P] at bindings 1; dst = Y [B, C', P].
@compute @workgroup_size(64)
fn slice_channels(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    let per = p.c2 * p.pixels;
    let b = i / per;
    let r = i - b * per;
    let c = r / p.pixels;
    let q = r - c * p.pixels;
    var v = src[(b * p.c1 + p.c0 + c) * p.pixels + q];
    if (p.accumulate != 0u) { v = dst[i] + v; }
    dst[i] = v;
}

@group(0) @binding(2) var<storage, read> rows: array<u32>;
@group(0) @binding(3) var<storage, read> cols: array<u32>;
@group(0) @binding(4) var<storage, read_write> gathered: array<f32>;

// src = X [BC, H, W], rows [Ho], cols [Wo], gathered = Y [BC, Ho, Wo].
@compute @workgroup_size(64)
fn gather(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    let per = p.ho * p.wo;
    let bc = i / per;
    let r = i - bc * per;
    let oy = r / p.wo;
    let ox = r - oy * p.wo;
    let sy = min(rows[oy], p.h - 1u);
    let sx = min(cols[ox], p.w - 1u);
    gathered[i] = src[(bc * p.h + sy) * p.w + sx];
}

@group(0) @binding(3) var<storage, read> tw: array<f32>;

// src = X [BC, H, W]; rows = [row index (Ho) | column index (Wo)]; tw = [row t (Ho) |
// column t (Wo)]; gathered = Y [BC, Ho, Wo].
@compute @workgroup_size(64)
fn gather_bilinear(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    let per = p.ho * p.wo;
    let bc = i / per;
    let r = i - bc * per;
    let oy = r / p.wo;
    let ox = r - oy * p.wo;
    let sy = min(rows[oy], p.h - 2u);
    let sx = min(rows[p.ho + ox], p.w - 2u);
    let tr = tw[oy];
    let tc = tw[p.ho + ox];
    let o0 = (bc * p.h + sy) * p.w + sx;
    let o1 = o0 + p.w;
    let a = (1.0 - tc) * src[o0] + tc * src[o0 + 1u];
    let b = (1.0 - tc) * src[o1] + tc * src[o1 + 1u];
    gathered[i] = (1.0 - tr) * a + tr * b;
}

// src = dY [BC, Ho, Wo]; rows = [row offsets (H + 1) | row outputs (2 Ho) | column offsets
// (W + 1) | column outputs (2 Wo)]; tw = [row weights (2 Ho) | column weights (2 Wo)];
// gathered = dX [BC, H, W] (accumulated into when asked). One invocation per dX value.
@compute @workgroup_size(64)
fn gather_bilinear_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    let hw = p.h * p.w;
    let bc = i / hw;
    let r = i - bc * hw;
    let y = r / p.w;
    let x = r - y * p.w;
    let rout = p.h + 1u;
    let coff = rout + 2u * p.ho;
    let cout = coff + p.w + 1u;
    var s = 0.0;
    for (var e = rows[y]; e < rows[y + 1u]; e++) {
        let dyr = (bc * p.ho + rows[rout + e]) * p.wo;
        var acc = 0.0;
        for (var f = rows[coff + x]; f < rows[coff + x + 1u]; f++) {
            acc += tw[2u * p.ho + f] * src[dyr + rows[cout + f]];
        }
        s += tw[e] * acc;
    }
    if (p.accumulate != 0u) { s = gathered[i] + s; }
    gathered[i] = s;
}

@group(0) @binding(2) var<storage, read> src2: array<f32>;
@group(0) @binding(3) var<storage, read_write> joined: array<f32>;

// src = X1 [B, C1, P], src2 = X2 [B or 1, C2, P], joined = Y [B, C1 + C2, P].
@compute @workgroup_size(64)
fn concat_channels(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    let ct = p.c1 + p.c2;
    let per = ct * p.pixels;
    let b = i / per;
    let r = i - b * per;
    let c = r / p.pixels;
    let q = r - c * p.pixels;
    var v: f32;
    if (c < p.c1) {
        v = src[(b * p.c1 + c) * p.pixels + q];
    } else {
        let b2 = select(b, 0u, p.broadcast != 0u);
        v = src2[(b2 * p.c2 + (c - p.c1)) * p.pixels + q];
    }
    joined[i] = v;
}
