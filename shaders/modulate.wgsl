// Modulate family: StyleGAN2's weight modulation without demodulation (the toRGB layers):
//
//   W[b, o, i] = gain * ws[o, i] * s[b, i]          ws: shared weight [c_out, c_in], s: styles [batch, c_in]
//
// Backward, given dW [batch, c_out, c_in]:
//   dws[o, i] (+)= gain * sum_b dW[b, o, i] s[b, i]     (fixed order over b)
//   ds[b, i]      = gain * sum_o dW[b, o, i] ws[o, i]   (fixed order over o)
// One invocation per output value; the weights are tiny (c_out = 3 for RGB).

struct Params {
    batch: u32, c_out: u32, c_in: u32, accumulate: u32,
    gain: f32, _pad0: f32, _pad1: f32, _pad2: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
// Bindings: forward (ws, s, out), backward_shared (s, dw, dws), backward_styles (ws, dw, ds).
@group(0) @binding(1) var<storage, read> ws: array<f32>;
@group(0) @binding(2) var<storage, read> s: array<f32>;
@group(0) @binding(1) var<storage, read> s1: array<f32>;
@group(0) @binding(2) var<storage, read> dw: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

const WG: u32 = 64u;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

@compute @workgroup_size(64)
fn style_modulate_forward(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat(gid, nwg);
    let per = p.c_out * p.c_in;
    if (t >= p.batch * per) { return; }
    let b = t / per;
    let oi = t - b * per;
    let i = oi % p.c_in;
    out[t] = p.gain * ws[oi] * s[b * p.c_in + i];
}

@compute @workgroup_size(64)
fn style_modulate_backward_shared(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let oi = flat(gid, nwg);
    let per = p.c_out * p.c_in;
    if (oi >= per) { return; }
    let i = oi % p.c_in;
    var acc = 0.0;
    for (var b = 0u; b < p.batch; b++) {
        acc += dw[b * per + oi] * s1[b * p.c_in + i];
    }
    var v = p.gain * acc;
    if (p.accumulate != 0u) { v += out[oi]; }
    out[oi] = v;
}

@compute @workgroup_size(64)
fn style_modulate_backward_styles(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = flat(gid, nwg);
    if (t >= p.batch * p.c_in) { return; }
    let b = t / p.c_in;
    let i = t - b * p.c_in;
    let per = p.c_out * p.c_in;
    var acc = 0.0;
    for (var o = 0u; o < p.c_out; o++) {
        acc += dw[b * per + o * p.c_in + i] * ws[o * p.c_in + i];
    }
    var v = p.gain * acc;
    if (p.accumulate != 0u) { v += out[t]; }
    out[t] = v;
}
