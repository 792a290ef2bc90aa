// Adam family: the optimiser step and the weight EMA (StyleGAN2-ADA: Adam with beta1 = 0,
// beta2 = 0.99, eps = 1e-8; EMA of the generator's weights).
//
//   adam_step (PyTorch's Adam, step t >= 1; the host computes step_size = lr / (1 - beta1^t) and
//   bc2_sqrt = sqrt(1 - beta2^t), and 1 - beta in f64, as PyTorch passes them as scalars):
//     g = grad_scale * grad, then nan_to_num (NaN -> 0, +inf -> 1e5, -inf -> -1e5) when enabled
//     m = beta1 * m + (1 - beta1) * g
//     v = beta2 * v + (1 - beta2) * (g * g)
//     param = param - step_size * (m / (sqrt(v) / bc2_sqrt + eps))
//   ema_update: e = lerp(p, e, beta) = p + beta * (e - p), evaluated as torch.lerp does: from p
//     when |beta| < 0.5, else as e - (e - p) * (1 - beta).
//
// One invocation per value at the flat index gid.x + gid.y * nwg.x * WG; no cross-lane traffic.

struct Params {
    n: u32,
    nan_to_num: u32,
    _pad0: u32,
    _pad1: u32,
    step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
    grad_scale: f32,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    ema_beta: f32,
    one_minus_ema_beta: f32,
    _pad2: f32,
    _pad3: f32,
}

@group(0) @binding(0) var<uniform> p: Params;

const WG: u32 = 64u;

fn flat(gid: vec3<u32>, nwg: vec3<u32>) -> u32 { return gid.x + gid.y * nwg.x * WG; }

// NaN -> 0, +inf -> 1e5, -inf -> -1e5, on the bits (immune to fast-math NaN assumptions).
fn nan_to_num(g: f32) -> f32 {
    let bits = bitcast<u32>(g);
    if ((bits & 0x7f800000u) != 0x7f800000u) { return g; }
    if ((bits & 0x007fffffu) != 0u) { return 0.0; }
    return select(1e5, -1e5, (bits & 0x80000000u) != 0u);
}

@group(0) @binding(1) var<storage, read_write> param: array<f32>;
@group(0) @binding(2) var<storage, read> grad: array<f32>;
@group(0) @binding(3) var<storage, read_write> m1: array<f32>;
@group(0) @binding(4) var<storage, read_write> m2: array<f32>;

@compute @workgroup_size(64)
fn adam_step(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    var g = p.grad_scale * grad[i];
    if (p.nan_to_num != 0u) { g = nan_to_num(g); }
    let m = p.beta1 * m1[i] + p.one_minus_beta1 * g;
    let v = p.beta2 * m2[i] + p.one_minus_beta2 * (g * g);
    m1[i] = m;
    m2[i] = v;
    let denom = sqrt(v) / p.bc2_sqrt + p.eps;
    param[i] = param[i] - p.step_size * (m / denom);
}

@group(0) @binding(1) var<storage, read> live: array<f32>;
@group(0) @binding(2) var<storage, read_write> ema: array<f32>;

@compute @workgroup_size(64)
fn ema_update(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = flat(gid, nwg);
    if (i >= p.n) { return; }
    let pv = live[i];
    let ev = ema[i];
    let d = ev - pv;
    var r: f32;
    if (abs(p.ema_beta) < 0.5) {
        r = pv + p.ema_beta * d;
    } else {
        r = ev - d * p.one_minus_ema_beta;
    }
    ema[i] = r;
}
