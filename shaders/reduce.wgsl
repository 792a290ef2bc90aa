// Reductions and small elementwise ops: sums over axes (bias gradients, means, loss totals),
// per-row L2 norms, softplus and its gradient, a*x + b*y, and a count of non-finite values.
//
// Reductions run one workgroup per output value and add in a fixed order (strided lane sums,
// then a tree in workgroup memory), so results are bitwise reproducible run to run.

struct Params {
    n: u32,         // elementwise ops: element count; sum_axes: the middle extent M
    outer: u32,     // sum_axes: A (summed); row_norm: rows
    inner: u32,     // sum_axes: I (summed); row_norm: row length
    accumulate: u32,
    scale: f32,     // sum_axes: factor on the sum; softplus: sign s; axpby: a
    beta: f32,      // axpby: b
    _pad0: f32,
    _pad1: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read_write> Y: array<f32>;

const WG: u32 = 64u;
// tree_sum: include/tree_sum.wgsl, prepended.

// Y[m] = scale * sum_{a, i} X[a, m, i] for X viewed as [outer, n, inner] (+ Y[m] if accumulate).
@compute @workgroup_size(64)
fn sum_axes(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let m = wid.x + wid.y * nwg.x;
    let mm = min(m, p.n - 1u);
    let total = p.outer * p.inner;
    var s = 0.0;
    for (var t = lid.x; t < total; t += WG) {
        let a = t / p.inner;
        let i = t - a * p.inner;
        s += X[(a * p.n + mm) * p.inner + i];
    }
    let r = tree_sum(lid.x, s);
    if (lid.x == 0u && m < p.n) {
        var v = p.scale * r;
        if (p.accumulate != 0u) { v += Y[m]; }
        Y[m] = v;
    }
}

// Y[r] = sqrt(sum_c X[r, c]^2) for X viewed as [outer, inner].
@compute @workgroup_size(64)
fn row_norm(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = wid.x + wid.y * nwg.x;
    let rr = min(r, p.outer - 1u);
    var s = 0.0;
    for (var c = lid.x; c < p.inner; c += WG) {
        let v = X[rr * p.inner + c];
        s += v * v;
    }
    let t = tree_sum(lid.x, s);
    if (lid.x == 0u && r < p.outer) { Y[r] = sqrt(t); }
}

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

fn softplus(z: f32) -> f32 { return max(z, 0.0) + log(1.0 + exp(-abs(z))); }

// Y = softplus(s * X), s = +1 or -1 (the logistic GAN losses).
@compute @workgroup_size(64)
fn softplus_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    Y[i] = softplus(p.scale * X[i]);
}

// Y = dY * s * sigmoid(s * X), reading dY from Y in place; X is the forward input.
@compute @workgroup_size(64)
fn softplus_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    let z = p.scale * X[i];
    let sig = 1.0 / (1.0 + exp(-z));
    Y[i] = Y[i] * p.scale * sig;
}

// Y = a * X + b * Y.
@compute @workgroup_size(64)
fn axpby(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    Y[i] = p.scale * X[i] + p.beta * Y[i];
}

@group(0) @binding(2) var<storage, read_write> count: atomic<u32>;

// count += number of NaN or infinite values in X[0..n].
@compute @workgroup_size(64)
fn count_nonfinite(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    let bits = bitcast<u32>(X[i]);
    if ((bits & 0x7f800000u) == 0x7f800000u) { atomicAdd(&count, 1u); }
}
