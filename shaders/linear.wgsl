// Linear family: one strided, batched matrix product with an optional bias.
//
//   C[b](m, n) = alpha * sum_k A[b](m, k) * B[b](k, n)  (+ bias_gain * bias[m or n])  (+ C if accumulate)
//   then, if has_act: C = lrelu_{act_alpha}(C) * act_gain (the layers' activation as an epilogue,
//   so the pre-activation is never written)
//
// where X[b](i, j) = X[b * s_b + i * s_i + j * s_j] for each operand. Every layer of the model is
// this product with different strides: the dense linear layer (mapping network, affine heads,
// discriminator epilogue) forward and backward (dX, dW), and the per-pixel modulated linear layer
// of the INR (each image b has its own weight) forward and backward. The bias gradient is a
// reduction (reduce.wgsl).
//
// Shape for lavapipe and GPUs alike: a workgroup owns TM rows of C and WG*TN columns; the rows
// come from the workgroup id, so the A operand (the weight in every use) is uniform across the
// workgroup and each lane streams its own columns (pixels), contiguous across lanes when s_n = 1.
// Out-of-range rows and columns are clamped for loads and skipped for stores, so any shape works.

struct Params {
    m: u32, n: u32, k: u32, batch: u32,
    a_b: u32, a_m: u32, a_k: u32, b_b: u32,
    b_k: u32, b_n: u32, c_b: u32, c_m: u32,
    c_n: u32, bias_mode: u32, accumulate: u32, has_act: u32,
    alpha: f32, bias_gain: f32, act_alpha: f32, act_gain: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;
@group(0) @binding(2) var<storage, read> B: array<f32>;
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> C: array<f32>;

const WG: u32 = 64u;
const TM: u32 = 4u;
const TN: u32 = 4u;

// Lavapipe (Mesa 22.3) ends every loop of an invocation once the invocation has taken 65535 loop
// back-edges in all (one limiter per invocation, shared by all its loops), so long sums would be
// cut short: weight gradients sum over pixels (65536 for one 256² image). The k loop therefore
// takes four terms per iteration.
fn k_span(k0: u32, k1: u32, ar: vec4<u32>, bc: vec4<u32>, acc: ptr<function, array<vec4<f32>, 4>>) {
    var kk = k0;
    for (; kk + 4u <= k1; kk += 4u) {
        k_term(kk, ar, bc, acc);
        k_term(kk + 1u, ar, bc, acc);
        k_term(kk + 2u, ar, bc, acc);
        k_term(kk + 3u, ar, bc, acc);
    }
    for (; kk < k1; kk++) {
        k_term(kk, ar, bc, acc);
    }
}

// acc[r] += A[row r, kk] * B[kk, the four columns].
fn k_term(kk: u32, ar: vec4<u32>, bc: vec4<u32>, acc: ptr<function, array<vec4<f32>, 4>>) {
    let ak = kk * p.a_k;
    let bk = kk * p.b_k;
    let bv = vec4<f32>(B[bc.x + bk], B[bc.y + bk], B[bc.z + bk], B[bc.w + bk]);
    (*acc)[0] += A[ar.x + ak] * bv;
    (*acc)[1] += A[ar.y + ak] * bv;
    (*acc)[2] += A[ar.z + ak] * bv;
    (*acc)[3] += A[ar.w + ak] * bv;
}

@compute @workgroup_size(64)
fn gemm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.z;
    let m0 = wid.y * TM;
    if (m0 >= p.m) { return; }
    let nb = wid.x * WG * TN + lid.x;
    let mlast = p.m - 1u;
    let nlast = p.n - 1u;
    let r0 = min(m0, mlast);
    let r1 = min(m0 + 1u, mlast);
    let r2 = min(m0 + 2u, mlast);
    let r3 = min(m0 + 3u, mlast);
    let c0 = min(nb, nlast);
    let c1 = min(nb + WG, nlast);
    let c2 = min(nb + 2u * WG, nlast);
    let c3 = min(nb + 3u * WG, nlast);
    let abase = b * p.a_b;
    let bbase = b * p.b_b;
    let a0 = abase + r0 * p.a_m;
    let a1 = abase + r1 * p.a_m;
    let a2 = abase + r2 * p.a_m;
    let a3 = abase + r3 * p.a_m;
    let b0 = bbase + c0 * p.b_n;
    let b1 = bbase + c1 * p.b_n;
    let b2 = bbase + c2 * p.b_n;
    let b3 = bbase + c3 * p.b_n;
    var acc = array<vec4<f32>, 4>(vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0), vec4<f32>(0.0));
    k_span(0u, p.k, vec4<u32>(a0, a1, a2, a3), vec4<u32>(b0, b1, b2, b3), &acc);
    let acc0 = acc[0];
    let acc1 = acc[1];
    let acc2 = acc[2];
    let acc3 = acc[3];
    var rows = array<vec4<f32>, 4>(acc0, acc1, acc2, acc3);
    let cols = vec4<u32>(nb, nb + WG, nb + 2u * WG, nb + 3u * WG);
    for (var r = 0u; r < TM; r++) {
        let m = m0 + r;
        if (m >= p.m) { break; }
        for (var q = 0u; q < TN; q++) {
            let n = cols[q];
            if (n >= p.n) { break; }
            store(b, m, n, rows[r][q]);
        }
    }
}

// C[b](m, n) from its dot product: scale, bias, accumulation and the activation epilogue.
fn store(b: u32, m: u32, n: u32, dot: f32) {
    var v = p.alpha * dot;
    if (p.bias_mode == 1u) { v += p.bias_gain * bias[m]; }
    if (p.bias_mode == 2u) { v += p.bias_gain * bias[n]; }
    let ci = b * p.c_b + m * p.c_m + n * p.c_n;
    if (p.accumulate != 0u) { v += C[ci]; }
    if (p.has_act != 0u) { v = select(p.act_alpha * v, v, v > 0.0) * p.act_gain; }
    C[ci] = v;
}

// Skinny products (few columns: the hypernetwork's affine heads and the mapping network for one
// image), where `gemm`'s 256-column tile would leave all but a few lanes idle. A workgroup owns
// TM rows of one column; its lanes split the k sum (lane l takes k = l, l + WG, ...; contiguous
// across lanes when a_k = 1) and a tree sum in workgroup memory finishes the four dot products.
var<workgroup> part: array<vec4<f32>, WG>;

@compute @workgroup_size(64)
fn gemm_skinny(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let b = wid.z;
    let n = wid.x;
    // The dispatch has ceil(m / TM) row tiles, so m0 < m: no early exit before the barriers.
    let m0 = wid.y * TM;
    let mlast = p.m - 1u;
    let abase = b * p.a_b;
    let a0 = abase + min(m0, mlast) * p.a_m;
    let a1 = abase + min(m0 + 1u, mlast) * p.a_m;
    let a2 = abase + min(m0 + 2u, mlast) * p.a_m;
    let a3 = abase + min(m0 + 3u, mlast) * p.a_m;
    let bcol = b * p.b_b + n * p.b_n;
    var acc = vec4<f32>(0.0);
    for (var kk = lid.x; kk < p.k; kk += WG) {
        let ak = kk * p.a_k;
        acc += vec4<f32>(A[a0 + ak], A[a1 + ak], A[a2 + ak], A[a3 + ak]) * B[bcol + kk * p.b_k];
    }
    part[lid.x] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid.x < s) {
            part[lid.x] += part[lid.x + s];
        }
        workgroupBarrier();
    }
    let m = m0 + lid.x;
    if (lid.x < TM && m < p.m) {
        store(b, m, n, part[0][lid.x]);
    }
}
