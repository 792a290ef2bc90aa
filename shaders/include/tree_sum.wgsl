// Prepended to reduce.wgsl, mbstd.wgsl and fmm.wgsl by `Shader::source` (WGSL has no includes):
// the sum over a 64-lane workgroup of each lane's v, in a fixed tree order (no float atomics, so
// runs are bitwise reproducible). Safe to call repeatedly; call in uniform control flow.
var<workgroup> partial: array<f32, 64>;

fn tree_sum(lid: u32, v: f32) -> f32 {
    partial[lid] = v;
    workgroupBarrier();
    for (var s = 32u; s > 0u; s = s / 2u) {
        if (lid < s) { partial[lid] = partial[lid] + partial[lid + s]; }
        workgroupBarrier();
    }
    let r = partial[0];
    workgroupBarrier();
    return r;
}

