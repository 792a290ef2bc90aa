// Act family: bias + leaky ReLU with gain (StyleGAN2's bias_act with act = lrelu).
//
// X is viewed as [outer, C, inner] (planar maps: inner = pixels; row vectors [N, C]: inner = 1),
// so the channel of flat index i is (i / inner) % C.
//
//   act_forward:  Y = lrelu_alpha(X + b_gain * bias[c]) * gain     (bias optional; alpha = 1 is
//                 a linear layer with gain; lrelu_alpha(z) = z if z > 0 else alpha * z)
//   act_backward: dX (+)= dY * gain * (Y > 0 ? 1 : alpha)
//
// The backward reads the forward OUTPUT Y instead of the pre-activation: with gain > 0 and
// alpha >= 0, Y > 0 exactly when X + b_gain * bias > 0, so the slope is recovered from Y (at
// exactly 0 it takes alpha, as the forward does). The bias gradient b_gain * sum dX over
// outer and inner is a reduction (reduce.wgsl sum_axes).
//
// One invocation per value at the flat index gid.x + gid.y * nwg.x * WG.

struct Params {
    n: u32,
    channels: u32,
    inner: u32,
    has_bias: u32,
    accumulate: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
    alpha: f32,
    gain: f32,
    b_gain: f32,
    _pad3: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 64u;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> bias: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

@compute @workgroup_size(64)
fn act_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    var z = x[i];
    if (p.has_bias != 0u) {
        let c = (i / p.inner) % p.channels;
        z += p.b_gain * bias[c];
    }
    let a = select(p.alpha * z, z, z > 0.0);
    y[i] = a * p.gain;
}

@group(0) @binding(1) var<storage, read> y_in: array<f32>;
@group(0) @binding(2) var<storage, read> dy: array<f32>;
@group(0) @binding(3) var<storage, read_write> dx: array<f32>;

@compute @workgroup_size(64)
fn act_backward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    let slope = select(p.alpha, 1.0, y_in[i] > 0.0);
    var g = dy[i] * p.gain * slope;
    if (p.accumulate != 0u) { g = dx[i] + g; }
    dx[i] = g;
}
