// FMM family: factorized multiplicative modulation, the INR-GAN per-image weight
// (official `fmm_modulate_linear`, activation "demod").
//
// Per image b, with the packed styles row s = styles[b, (c_out + c_in) * r]:
//   A = s[0 .. c_out*r] as [c_out, r] row-major,  B = s[c_out*r ..] as [r, c_in] row-major,
//   M  = A B / sqrt(r)
//   M' = ws ⊙ (1 + M)                        (ws: the shared weight [c_out, c_in])
//   n_o = ||M'[o, :]||_2                       (written to norms[b, o])
//   W[b, o, :] = M'[o, :] / (n_o + eps)  if demod, else M'[o, :]
//
// Backward, given dW [batch, c_out, c_in], with u = M'_o / (n_o + eps) (= W_o when demod):
//   dM'_o = dW_o / (n_o + eps) - u (u · dW_o) / n_o     (the second term 0 when n_o = 0),
// which equals dW_o/(n+eps) - M'_o (M'_o · dW_o) / (n (n+eps)^2) but never squares M', so large
// modulations stay finite; dM' = dW without demod.
//   dws = sum_b dM' ⊙ (1 + M)                 (fixed order over b; optionally added to dws)
//   dM  = dM' ⊙ ws,  dA = dM B^T / sqrt(r),  dB = A^T dM / sqrt(r)  -> dstyles, packed like styles.
//
// Norms are computed scaled (max |M'_o| first), so M' up to f32's range cannot overflow them.
// Row kernels run one workgroup per (b, o) row: lanes walk the c_in columns (contiguous), the A
// row is uniform across the workgroup, and the row's sums are workgroup tree reductions, so the
// results are deterministic. Out-of-range rows are clamped for loads and never stored.

struct Params {
    batch: u32, c_out: u32, c_in: u32, rank: u32,
    demod: u32, accumulate: u32, _pad0: u32, _pad1: u32,
    inv_sqrt_rank: f32, eps: f32, _pad2: f32, _pad3: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

// fmm_modulate: ws, styles, w_out, norms_out
// fmm_backward_rows: ws, styles, norms_in, dw, scratch
// fmm_backward_styles: ws, styles, g, dstyles
@group(0) @binding(1) var<storage, read> ws: array<f32>;
@group(0) @binding(2) var<storage, read> styles: array<f32>;
@group(0) @binding(3) var<storage, read_write> w_out: array<f32>;
@group(0) @binding(4) var<storage, read_write> norms_out: array<f32>;
@group(0) @binding(3) var<storage, read> norms_in: array<f32>;
@group(0) @binding(4) var<storage, read> dw: array<f32>;
@group(0) @binding(5) var<storage, read_write> scratch: array<f32>;
@group(0) @binding(3) var<storage, read> g3: array<f32>;
@group(0) @binding(4) var<storage, read_write> dstyles: array<f32>;
// fmm_backward_shared: styles, g, dws
@group(0) @binding(1) var<storage, read> styles1: array<f32>;
@group(0) @binding(2) var<storage, read> g2: array<f32>;
@group(0) @binding(3) var<storage, read_write> dws: array<f32>;

const WG: u32 = 64u;
// tree_sum and its workgroup array `partial`: include/tree_sum.wgsl, prepended.

// Maximum over the workgroup of each lane's v. Call in uniform control flow.
fn tree_max(lid: u32, v: f32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid < s) { partial[lid] = max(partial[lid], partial[lid + s]); }
        workgroupBarrier();
    }
    let r = partial[0];
    workgroupBarrier();
    return r;
}

fn style_dim() -> u32 { return (p.c_out + p.c_in) * p.rank; }

// M[b, o, i] = sum_k A[b, o, k] B[b, k, i] / sqrt(r), reading the styles at binding 2.
fn modulation(b: u32, o: u32, i: u32) -> f32 {
    let base = b * style_dim();
    let a0 = base + o * p.rank;
    let b0 = base + p.c_out * p.rank + i;
    var m = 0.0;
    for (var k = 0u; k < p.rank; k++) {
        m += styles[a0 + k] * styles[b0 + k * p.c_in];
    }
    return m * p.inv_sqrt_rank;
}

// Same as `modulation`, reading the styles at binding 1 (fmm_backward_shared's layout).
fn modulation1(b: u32, o: u32, i: u32) -> f32 {
    let base = b * style_dim();
    let a0 = base + o * p.rank;
    let b0 = base + p.c_out * p.rank + i;
    var m = 0.0;
    for (var k = 0u; k < p.rank; k++) {
        m += styles1[a0 + k] * styles1[b0 + k * p.c_in];
    }
    return m * p.inv_sqrt_rank;
}

fn mprime(b: u32, o: u32, i: u32) -> f32 {
    return ws[o * p.c_in + i] * (1.0 + modulation(b, o, i));
}

// ||M'[b, o, :]|| as max * sqrt(sum (v / max)^2): cannot overflow for finite M'.
fn row_norm(lid: u32, b: u32, o: u32) -> f32 {
    var mx = 0.0;
    for (var i = lid; i < p.c_in; i += WG) { mx = max(mx, abs(mprime(b, o, i))); }
    let m = tree_max(lid, mx);
    let inv = select(0.0, 1.0 / m, m > 0.0);
    var ss = 0.0;
    for (var i = lid; i < p.c_in; i += WG) {
        let v = mprime(b, o, i) * inv;
        ss += v * v;
    }
    return m * sqrt(tree_sum(lid, ss));
}

// One workgroup per row (b, o) of W: W[b, o, :] and norms[b, o].
@compute @workgroup_size(64)
fn fmm_modulate(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let rows = p.batch * p.c_out;
    let row = wid.x + wid.y * nwg.x;
    let rr = min(row, rows - 1u);
    let b = rr / p.c_out;
    let o = rr - b * p.c_out;
    let n = row_norm(lid.x, b, o);
    if (row >= rows) { return; }
    let scale = select(1.0, 1.0 / (n + p.eps), p.demod != 0u);
    for (var i = lid.x; i < p.c_in; i += WG) {
        w_out[rr * p.c_in + i] = mprime(b, o, i) * scale;
    }
    if (lid.x == 0u) { norms_out[rr] = n; }
}

// One workgroup per row (b, o): scratch[b, o, :] = dM'_o through the row normalisation.
@compute @workgroup_size(64)
fn fmm_backward_rows(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let rows = p.batch * p.c_out;
    let row = wid.x + wid.y * nwg.x;
    let rr = min(row, rows - 1u);
    let b = rr / p.c_out;
    let o = rr - b * p.c_out;
    let n = norms_in[rr];
    let inv = 1.0 / (n + p.eps);
    var d = 0.0;
    for (var i = lid.x; i < p.c_in; i += WG) {
        d += mprime(b, o, i) * inv * dw[rr * p.c_in + i];
    }
    let dot = tree_sum(lid.x, d);
    if (row >= rows) { return; }
    let coef = select(0.0, dot / n, n > 0.0);
    for (var i = lid.x; i < p.c_in; i += WG) {
        let u = mprime(b, o, i) * inv;
        scratch[rr * p.c_in + i] = dw[rr * p.c_in + i] * inv - u * coef;
    }
}

// One invocation per (o, i): dws[o, i] (+)= sum_b g[b, o, i] (1 + M[b, o, i]), g = dM'.
@compute @workgroup_size(64)
fn fmm_backward_shared(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    let per = p.c_out * p.c_in;
    if (idx >= per) { return; }
    let o = idx / p.c_in;
    let i = idx - o * p.c_in;
    var s = 0.0;
    for (var b = 0u; b < p.batch; b++) {
        s += g2[b * per + idx] * (1.0 + modulation1(b, o, i));
    }
    if (p.accumulate != 0u) { s += dws[idx]; }
    dws[idx] = s;
}

// One invocation per style value (b, j): dA[o, k] = sum_i dM[o, i] B[k, i] / sqrt(r) for
// j < c_out*r, dB[k, i] = sum_o A[o, k] dM[o, i] / sqrt(r) after, with dM = g ⊙ ws.
@compute @workgroup_size(64)
fn fmm_backward_styles(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    let sd = style_dim();
    if (idx >= p.batch * sd) { return; }
    let b = idx / sd;
    let j = idx - b * sd;
    let base = b * sd;
    let gbase = b * p.c_out * p.c_in;
    let na = p.c_out * p.rank;
    var s = 0.0;
    if (j < na) {
        let o = j / p.rank;
        let k = j - o * p.rank;
        let bk = base + na + k * p.c_in;
        for (var i = 0u; i < p.c_in; i++) {
            let oi = o * p.c_in + i;
            s += g3[gbase + oi] * ws[oi] * styles[bk + i];
        }
    } else {
        let jb = j - na;
        let k = jb / p.c_in;
        let i = jb - k * p.c_in;
        for (var o = 0u; o < p.c_out; o++) {
            let oi = o * p.c_in + i;
            s += styles[base + o * p.rank + k] * g3[gbase + oi] * ws[oi];
        }
    }
    dstyles[idx] = s * p.inv_sqrt_rank;
}
