// Minibatch standard deviation family (StyleGAN2-ADA MinibatchStdLayer) for the discriminator's
// epilogue. X [N, C, H, W] (P = H*W pixels), groups of G samples, F statistics, M = N / G,
// sample n = g*M + m, channel c = f*(C/F) + c':
//
//   mu[m, c, p]  = (1/G) sum_g X[g*M + m, c, p]
//   std[m, c, p] = sqrt((1/G) sum_g (X[g*M + m, c, p] - mu)^2 + 1e-8)
//   stat[m, f]   = mean over (c', p) of std[m, f*(C/F) + c', p]
//   Y[n, c, p]   = X[n, c, p] for c < C;  Y[n, C + f, p] = stat[n mod M, f]
//
// Backward: dstat[m, f] = sum_{g, p} dY[g*M + m, C + f, p];
//   dX[n, c, p] = dY[n, c, p] + dstat[m, f] (X[n, c, p] - mu) / (G std (C/F) P)
// (the mean's own derivative cancels because the deviations sum to zero).
//
// The two sums (stat, dstat) run one workgroup per (m, f): strided lane sums, then a tree in
// workgroup memory, so they are deterministic. The elementwise kernels run one invocation per
// output with the flat index gid.x + gid.y * nwg.x * WG and recompute mu and std over the G
// samples (G is small). Indices are clamped for loads and stores guarded: any shape works.

struct Params {
    batch: u32, channels: u32, pixels: u32, group: u32,
    num_f: u32, m: u32, cpf: u32, _pad0: u32,
    eps: f32, inv_count: f32, inv_g: f32, inv_denom: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
// mbstd_stat: X, stat. mbstd_backward_stat: dY, dstat. mbstd_concat: X, stat, Y.
// mbstd_backward_input: X, dY, dstat, dX.
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> out2: array<f32>;
@group(0) @binding(2) var<storage, read> in2: array<f32>;
@group(0) @binding(3) var<storage, read_write> out3: array<f32>;
@group(0) @binding(3) var<storage, read> in3: array<f32>;
@group(0) @binding(4) var<storage, read_write> out4: array<f32>;

const WG: u32 = 64u;
// tree_sum: include/tree_sum.wgsl, prepended.

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// (mu, std) over the group of sample group m at channel ch, pixel q, from X in `src`.
fn moments(m: u32, ch: u32, q: u32) -> vec2<f32> {
    let stride = p.m * p.channels * p.pixels;
    let base = (m * p.channels + ch) * p.pixels + q;
    var mu = 0.0;
    for (var g = 0u; g < p.group; g++) { mu += src[base + g * stride]; }
    mu *= p.inv_g;
    var sq = 0.0;
    for (var g = 0u; g < p.group; g++) {
        let d = src[base + g * stride] - mu;
        sq += d * d;
    }
    return vec2<f32>(mu, sqrt(sq * p.inv_g + p.eps));
}

// One workgroup per (m, f): stat[m * F + f] = mean over (c', q) of std.
@compute @workgroup_size(64)
fn mbstd_stat(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let mf = wid.x + wid.y * nwg.x;
    let total_mf = p.m * p.num_f;
    let mfc = min(mf, total_mf - 1u);
    let m = mfc / p.num_f;
    let f = mfc - m * p.num_f;
    let total = p.cpf * p.pixels;
    var s = 0.0;
    for (var t = lid.x; t < total; t += WG) {
        let cc = t / p.pixels;
        let q = t - cc * p.pixels;
        s += moments(m, f * p.cpf + cc, q).y;
    }
    let r = tree_sum(lid.x, s);
    if (lid.x == 0u && mf < total_mf) { out2[mf] = r * p.inv_count; }
}

// One workgroup per (m, f): dstat[m * F + f] = sum_{g, q} dY[g * M + m, C + f, q].
@compute @workgroup_size(64)
fn mbstd_backward_stat(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_id) lid: vec3<u32>) {
    let mf = wid.x + wid.y * nwg.x;
    let total_mf = p.m * p.num_f;
    let mfc = min(mf, total_mf - 1u);
    let m = mfc / p.num_f;
    let f = mfc - m * p.num_f;
    let cy = p.channels + p.num_f;
    let total = p.group * p.pixels;
    var s = 0.0;
    for (var t = lid.x; t < total; t += WG) {
        let g = t / p.pixels;
        let q = t - g * p.pixels;
        s += src[((g * p.m + m) * cy + p.channels + f) * p.pixels + q];
    }
    let r = tree_sum(lid.x, s);
    if (lid.x == 0u && mf < total_mf) { out2[mf] = r; }
}

// One invocation per value of Y [N, C + F, P].
@compute @workgroup_size(64)
fn mbstd_concat(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let cy = p.channels + p.num_f;
    let per = cy * p.pixels;
    if (i >= p.batch * per) { return; }
    let n = i / per;
    let r = i - n * per;
    let ch = r / p.pixels;
    let q = r - ch * p.pixels;
    var v: f32;
    if (ch < p.channels) {
        v = src[(n * p.channels + ch) * p.pixels + q];
    } else {
        v = in2[(n % p.m) * p.num_f + (ch - p.channels)];
    }
    out3[i] = v;
}

// One invocation per value of dX [N, C, P].
@compute @workgroup_size(64)
fn mbstd_backward_input(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let per = p.channels * p.pixels;
    if (i >= p.batch * per) { return; }
    let n = i / per;
    let r = i - n * per;
    let ch = r / p.pixels;
    let q = r - ch * p.pixels;
    let m = n % p.m;
    let ms = moments(m, ch, q);
    let ds = in3[m * p.num_f + ch / p.cpf];
    let cy = p.channels + p.num_f;
    out4[i] = in2[(n * cy + ch) * p.pixels + q] + ds * (src[i] - ms.x) * p.inv_denom / ms.y;
}

// ---- Tangents (forward-mode derivatives) for the R1 penalty's double backward ----
// With Xdot a tangent of X (in `in2`):
//   mu_dot = mean_g Xdot,   std_dot = sum_g (X_g - mu) Xdot_g / (G std)
//   stat_dot[m, f] = mean over (c', p) of std_dot        (then mbstd_concat(Xdot, stat_dot))
//   dX_dot = dstat [(Xdot - mu_dot) / std - (X - mu) std_dot / std^2] * inv_denom   (dY fixed)

// (mu_dot, std_dot) at (m, ch, q) given (mu, std); X in `src`, Xdot in `in2`.
fn tangent_moments(m: u32, ch: u32, q: u32, ms: vec2<f32>) -> vec2<f32> {
    let stride = p.m * p.channels * p.pixels;
    let base = (m * p.channels + ch) * p.pixels + q;
    var md = 0.0;
    var acc = 0.0;
    for (var g = 0u; g < p.group; g++) {
        let xd = in2[base + g * stride];
        md += xd;
        acc += (src[base + g * stride] - ms.x) * xd;
    }
    return vec2<f32>(md * p.inv_g, acc * p.inv_g / ms.y);
}

// One workgroup per (m, f): stat_dot[m * F + f]. Bindings: X, Xdot, stat_dot.
@compute @workgroup_size(64)
fn mbstd_jvp_stat(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let mf = wid.x + wid.y * nwg.x;
    let total_mf = p.m * p.num_f;
    let mfc = min(mf, total_mf - 1u);
    let m = mfc / p.num_f;
    let f = mfc - m * p.num_f;
    let total = p.cpf * p.pixels;
    var s = 0.0;
    for (var t = lid.x; t < total; t += WG) {
        let cc = t / p.pixels;
        let q = t - cc * p.pixels;
        let ch = f * p.cpf + cc;
        s += tangent_moments(m, ch, q, moments(m, ch, q)).y;
    }
    let r = tree_sum(lid.x, s);
    if (lid.x == 0u && mf < total_mf) { out3[mf] = r * p.inv_count; }
}

// One invocation per value of dX_dot [N, C, P]. Bindings: X, Xdot, dstat, dX_dot.
@compute @workgroup_size(64)
fn mbstd_backward_jvp(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    let per = p.channels * p.pixels;
    if (i >= p.batch * per) { return; }
    let n = i / per;
    let r = i - n * per;
    let ch = r / p.pixels;
    let q = r - ch * p.pixels;
    let m = n % p.m;
    let ms = moments(m, ch, q);
    let td = tangent_moments(m, ch, q, ms);
    let ds = in3[m * p.num_f + ch / p.cpf];
    out4[i] = ds * ((in2[i] - td.x) / ms.y - (src[i] - ms.x) * td.y / (ms.y * ms.y)) * p.inv_denom;
}
