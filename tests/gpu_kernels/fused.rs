use inrgan::kernels::fused::{self as k, FusedShape};
use inrgan::reference::fused as r;

use crate::common::*;

// Tolerances: f32 sums of up to ~300 products per layer through three layers, against the f64
// reference; weights are scaled by 1/sqrt(c_in) so activations stay O(1).
const ATOL: f64 = 2e-4;
const RTOL: f64 = 2e-4;

fn shapes() -> Vec<FusedShape> {
    let s = |batch, pixels, c_in, broadcast_input, layers: Vec<(usize, bool)>| FusedShape {
        batch,
        pixels,
        c_in,
        broadcast_input,
        layers,
        alpha: 0.2,
        gain: std::f32::consts::SQRT_2,
    };
    vec![
        s(1, 1, 1, false, vec![(1, true)]),
        s(2, 67, 5, false, vec![(7, true), (3, false), (9, true)]),
        s(3, 130, 13, true, vec![(11, false), (6, true)]),
        // Chunked weights: 4096 / 100 rows at a time.
        s(1, 65, 100, false, vec![(97, true), (130, true)]),
        // Level 1 of emoji32: previous features + embeddings, more rows than one chunk.
        s(2, 33, 300, false, vec![(128, false), (128, true)]),
        // Level 0 of emoji32: embeddings shared by the batch, three 256-wide layers.
        s(
            2,
            1024,
            40,
            true,
            vec![(256, true), (256, false), (256, true)],
        ),
        // No toRGB at all.
        s(2, 70, 4, true, vec![(5, false)]),
    ]
}

#[test]
fn fused_level_forward_matches_reference() {
    let mut g = rng(77);
    for s in shapes() {
        let (_, wlen) = s.weight_offsets();
        let (_, blen) = s.bias_offsets();
        let (_, rlen) = s.rgb_offsets();
        let (_, rblen) = s.rgb_bias_offsets();
        let xn = if s.broadcast_input { 1 } else { s.batch } * s.c_in * s.pixels;
        let x = g.normal_vec(xn);
        // Per layer, weights scaled by 1/sqrt(fan-in).
        let (woff, _) = s.weight_offsets();
        let mut w = g.normal_vec(s.batch * wlen);
        for b in 0..s.batch {
            for (j, &(co, _)) in s.layers.iter().enumerate() {
                let ci = s.c_in_of(j);
                let o = b * wlen + woff[j];
                for v in &mut w[o..o + co * ci] {
                    *v /= (ci as f32).sqrt();
                }
            }
        }
        let bias = g.normal_vec(blen.max(1));
        let rgbw: Vec<f32> = g
            .normal_vec((s.batch * rlen).max(1))
            .iter()
            .map(|v| v * 0.1)
            .collect();
        let rgbb = g.normal_vec(rblen.max(1));
        let img = g.normal_vec(s.batch * 3 * s.pixels);
        let (want_img, want_out) = r::level_forward(
            &s,
            &to64(&x),
            &to64(&w),
            &to64(&bias),
            &to64(&rgbw),
            &to64(&rgbb),
            &to64(&img),
        );
        let (bx, bw, bb, brw, brb, bimg) =
            (up(&x), up(&w), up(&bias), up(&rgbw), up(&rgbb), up(&img));
        let out = zeros(s.batch * s.c_last() * s.pixels);
        run("fused", |rec| {
            k::level_forward(rec, &s, &bx, &bw, &bb, &brw, &brb, &bimg, &out).unwrap()
        });
        let what = format!("{s:?}");
        assert_close(&format!("img {what}"), &read(&bimg), &want_img, ATOL, RTOL);
        assert_close(&format!("out {what}"), &read(&out), &want_out, ATOL, RTOL);
    }
}

#[test]
fn fused_rejects_blocks_it_cannot_hold() {
    let s = FusedShape {
        batch: 1,
        pixels: 4,
        c_in: 600,
        broadcast_input: false,
        layers: vec![(8, true)],
        alpha: 0.2,
        gain: 1.0,
    };
    assert!(!s.fits());
    let b = zeros(600 * 8 * 4);
    let mut rec = inrgan::gpu::Recorder::new(ctx(), "fused too wide");
    let e = k::level_forward(&mut rec, &s, &b, &b, &b, &b, &b, &b, &b);
    assert!(e.is_err());
}
