// Coords family: Fourier coordinate embeddings (official CoordFuser), fixed or learned.
//
// Inputs: per-axis coordinates xs [width] and ys [height] (computed on the host in f64, so the
// grid can sit anywhere in the plane at any density) and frequencies F [n_freq, 2].
// Pixel p = r * width + c has (x, y) = (xs[c], ys[r]) and phases phi_j = F[j,0] x + F[j,1] y.
// Output E [D, height * width], planar:
//   E[j, p] = sin(phi_j)              for j < n_freq
//   E[n_freq + j, p] = cos(phi_j)     if with_cos (D = 2 n_freq; all sines, then all cosines)
// Backward for learned frequencies, given dE:
//   dF[j, 0] = sum_p x_p (cos(phi_j) dE[j, p] - sin(phi_j) dE[n_freq + j, p])
//   dF[j, 1] = the same with y_p     (the second term only with cos)
// one workgroup per j with a fixed-order tree reduction (deterministic); `accumulate` adds.
//
// Phases are reduced to [-pi, pi] (Cody-Waite with a short 2*pi head) before sin/cos, whose
// accuracy is only specified on that range. Forward lanes are pixels (contiguous); the frequency
// comes from the workgroup id, so it is uniform across the workgroup.

struct Params {
    width: u32, height: u32, n_freq: u32, with_cos: u32,
    accumulate: u32, _pad0: u32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> xs: array<f32>;
@group(0) @binding(2) var<storage, read> ys: array<f32>;
@group(0) @binding(3) var<storage, read> freqs: array<f32>;
@group(0) @binding(4) var<storage, read_write> emb: array<f32>;   // coords_forward
@group(0) @binding(4) var<storage, read> demb: array<f32>;        // coords_backward
@group(0) @binding(5) var<storage, read_write> dfreqs: array<f32>;

const WG: u32 = 64u;
const INV_TWO_PI: f32 = 0.15915494309189535;
const TWO_PI_HI: f32 = 6.28125;                 // 201/32: q * TWO_PI_HI is exact for |q| < 2^16
const TWO_PI_LO: f32 = 0.0019353071795864769;   // 2*pi - TWO_PI_HI

fn reduce_phase(phi: f32) -> f32 {
    let q = round(phi * INV_TWO_PI);
    return (phi - q * TWO_PI_HI) - q * TWO_PI_LO;
}

// E[j, p] (and E[n_freq + j, p]); workgroups: x, y = pixel tiles (flat), z = j.
@compute @workgroup_size(64)
fn coords_forward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let np = p.width * p.height;
    let px = (wid.x + wid.y * nwg.x) * WG + lid.x;
    let j = wid.z;
    if (px >= np || j >= p.n_freq) { return; }
    let r = px / p.width;
    let c = px - r * p.width;
    let t = reduce_phase(freqs[2u * j] * xs[c] + freqs[2u * j + 1u] * ys[r]);
    emb[j * np + px] = sin(t);
    if (p.with_cos != 0u) { emb[(p.n_freq + j) * np + px] = cos(t); }
}

var<workgroup> partial: array<vec2<f32>, 64>;

// One workgroup per frequency j (flat over x, y): dF[j, :].
@compute @workgroup_size(64)
fn coords_backward(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let np = p.width * p.height;
    let j = wid.x + wid.y * nwg.x;
    let jj = min(j, p.n_freq - 1u);
    let fx = freqs[2u * jj];
    let fy = freqs[2u * jj + 1u];
    var acc = vec2<f32>(0.0);
    for (var px = lid.x; px < np; px += WG) {
        let r = px / p.width;
        let c = px - r * p.width;
        let x = xs[c];
        let y = ys[r];
        let t = reduce_phase(fx * x + fy * y);
        var g = cos(t) * demb[jj * np + px];
        if (p.with_cos != 0u) { g -= sin(t) * demb[(p.n_freq + jj) * np + px]; }
        acc += g * vec2<f32>(x, y);
    }
    partial[lid.x] = acc;
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s = s / 2u) {
        if (lid.x < s) { partial[lid.x] = partial[lid.x] + partial[lid.x + s]; }
        workgroupBarrier();
    }
    if (lid.x == 0u && j < p.n_freq) {
        var v = partial[0];
        if (p.accumulate != 0u) { v += vec2<f32>(dfreqs[2u * j], dfreqs[2u * j + 1u]); }
        dfreqs[2u * j] = v.x;
        dfreqs[2u * j + 1u] = v.y;
    }
}
