use inrgan::kernels::fused::{self as k, Assembly, FusedInput, FusedShape};
use inrgan::reference::fused as r;
use inrgan::reference::resample::Taps;

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
        // An input far wider than the layers (layer 0 never holds it): the 64-wide class.
        s(1, 37, 600, false, vec![(7, true), (64, true)]),
        // The 512-wide class (paper256's coarse blocks).
        s(1, 9, 19, true, vec![(300, true), (65, false)]),
    ]
}

/// A weight pack of N(0, 1) values scaled by 1/sqrt(fan-in) per layer, so activations stay O(1).
fn scaled_weights(g: &mut inrgan::rng::Rng, s: &FusedShape) -> Vec<f32> {
    let (woff, wlen) = s.weight_offsets();
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
    w
}

#[test]
fn fused_level_forward_matches_reference() {
    let mut g = rng(77);
    for s in shapes() {
        let (_, blen) = s.bias_offsets();
        let (_, rlen) = s.rgb_offsets();
        let (_, rblen) = s.rgb_bias_offsets();
        let xn = if s.broadcast_input { 1 } else { s.batch } * s.c_in * s.pixels;
        let x = g.normal_vec(xn);
        let w = scaled_weights(&mut g, &s);
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
            k::level_forward(
                rec,
                &s,
                FusedInput::Dense(&bx),
                &bw,
                &bb,
                &brw,
                &brb,
                &bimg,
                Some(&out),
            )
            .unwrap()
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
        c_in: 8,
        broadcast_input: false,
        layers: vec![(600, true)],
        alpha: 0.2,
        gain: 1.0,
    };
    assert!(!s.fits());
    let b = zeros(600 * 8 * 4);
    let mut rec = inrgan::gpu::Recorder::new(ctx(), "fused too wide");
    let e = k::level_forward(
        &mut rec,
        &s,
        FusedInput::Dense(&b),
        &b,
        &b,
        &b,
        &b,
        &b,
        Some(&b),
    );
    assert!(e.is_err());
}

/// (batch, c_prev, previous grid, grid, n_freq, layers, store the last features)
type Case = (
    usize,
    usize,
    (usize, usize),
    (usize, usize),
    usize,
    Vec<(usize, bool)>,
    bool,
);

/// The input assembled in the kernel (previous features sampled by index tables, then the
/// Fourier embeddings) against the references of the unfused gather, embedding and
/// concatenation, at odd grids, with and without previous features and stored features.
#[test]
fn fused_assembled_input_matches_reference() {
    let mut g = rng(78);
    let cases: Vec<Case> = vec![
        (1, 0, (0, 0), (1, 1), 1, vec![(3, true)], true),
        (2, 0, (0, 0), (7, 9), 5, vec![(11, true), (6, false)], true),
        (2, 5, (3, 4), (7, 9), 2, vec![(9, true)], false),
        (
            3,
            13,
            (5, 7),
            (11, 13),
            4,
            vec![(10, false), (7, true)],
            true,
        ),
        // emoji32's finest block: 128 features and 28 frequencies, a window's tables.
        (
            1,
            128,
            (17, 19),
            (33, 35),
            28,
            vec![(64, true), (64, true)],
            false,
        ),
    ];
    // Each case nearest and bilinear (the tables' weights in the geometry).
    let cases = cases
        .into_iter()
        .flat_map(|c| [(c.clone(), false), (c, true)]);
    for ((batch, c_prev, (pr, pc), (rows, cols), n_freq, layers, keep), bilinear) in cases {
        // A bilinear tap reads two cells: the previous grid needs two rows and columns.
        let (pr, pc) = if bilinear {
            (pr.max(2), pc.max(2))
        } else {
            (pr, pc)
        };
        let a = Assembly {
            c_prev,
            prev_rows: pr,
            prev_cols: pc,
            rows,
            cols,
            n_freq,
            bilinear,
        };
        let s = FusedShape {
            batch,
            pixels: rows * cols,
            c_in: a.c_in(),
            broadcast_input: false,
            layers,
            alpha: 0.2,
            gain: std::f32::consts::SQRT_2,
        };
        let feat = g.normal_vec((batch * c_prev * pr * pc).max(1));
        // Coordinates anywhere in the plane (extrapolation), frequencies as the presets draw.
        let xs: Vec<f32> = (0..cols).map(|i| -3.0 + 0.37 * i as f32).collect();
        let ys: Vec<f32> = (0..rows).map(|i| 5.0 - 0.61 * i as f32).collect();
        let freqs: Vec<f32> = g.normal_vec(2 * n_freq).iter().map(|v| 3.0 * v).collect();
        let pick = |n: usize, m: usize, g: &mut inrgan::rng::Rng| -> Vec<u32> {
            (0..n)
                .map(|_| (g.next_u64() % m.max(1) as u64) as u32)
                .collect()
        };
        let reach = bilinear as usize;
        let (rt, ct) = (
            pick(rows, pr - reach, &mut g),
            pick(cols, pc - reach, &mut g),
        );
        let weights = |n: usize, g: &mut inrgan::rng::Rng| -> Vec<f32> {
            (0..n)
                .map(|i| if i % 3 == 0 { 0.0 } else { g.uniform() as f32 })
                .collect()
        };
        let (rw, cw) = (weights(rows, &mut g), weights(cols, &mut g));
        let geom = if bilinear {
            let taps = |idx: &[u32], t: &[f32]| Taps {
                idx: idx.to_vec(),
                t: t.to_vec(),
            };
            a.geometry_bilinear(&xs, &ys, &freqs, &taps(&rt, &rw), &taps(&ct, &cw))
                .unwrap()
        } else {
            a.geometry(&xs, &ys, &freqs, &rt, &ct).unwrap()
        };
        let w = scaled_weights(&mut g, &s);
        let (_, blen) = s.bias_offsets();
        let (_, rlen) = s.rgb_offsets();
        let (_, rblen) = s.rgb_bias_offsets();
        let bias = g.normal_vec(blen);
        let rgbw = g.normal_vec((batch * rlen).max(1));
        let rgbb = g.normal_vec(rblen.max(1));
        let img = g.normal_vec(batch * 3 * s.pixels);
        let x = r::assemble_input(
            &a,
            batch,
            &to64(&feat),
            &to64(&xs),
            &to64(&ys),
            &to64(&freqs),
            &rt,
            &ct,
            bilinear.then_some((&rw[..], &cw[..])),
        );
        let (want_img, want_out) = r::level_forward(
            &s,
            &x,
            &to64(&w),
            &to64(&bias),
            &to64(&rgbw),
            &to64(&rgbb),
            &to64(&img),
        );
        let (bf, bg, bw, bb, brw, brb, bimg) = (
            up(&feat),
            up(&geom),
            up(&w),
            up(&bias),
            up(&rgbw),
            up(&rgbb),
            up(&img),
        );
        let out = zeros(batch * s.c_last() * s.pixels);
        run("fused assembled", |rec| {
            k::level_forward(
                rec,
                &s,
                FusedInput::Assembled {
                    a: &a,
                    feat: (c_prev > 0).then_some(&bf),
                    geom: &bg,
                },
                &bw,
                &bb,
                &brw,
                &brb,
                &bimg,
                keep.then_some(&out),
            )
            .unwrap()
        });
        let what = format!("{a:?} {:?}", s.layers);
        assert_close(&format!("img {what}"), &read(&bimg), &want_img, ATOL, RTOL);
        let got_out = read(&out);
        if keep {
            assert_close(&format!("out {what}"), &got_out, &want_out, ATOL, RTOL);
        } else {
            assert!(got_out.iter().all(|&v| v == 0.0), "out written: {what}");
        }
    }
}

#[test]
fn fused_assembly_checks_its_geometry() {
    let a = Assembly {
        c_prev: 2,
        prev_rows: 3,
        prev_cols: 3,
        rows: 2,
        cols: 2,
        n_freq: 1,
        bilinear: false,
    };
    let ok = a.geometry(&[0.0; 2], &[0.0; 2], &[1.0, 2.0], &[0, 2], &[1, 1]);
    assert_eq!(ok.unwrap().len(), a.geometry_len());
    let past = a.geometry(&[0.0; 2], &[0.0; 2], &[1.0, 2.0], &[0, 3], &[1, 1]);
    assert!(past.unwrap_err().contains("past the previous grid"));
    let short = a.geometry(&[0.0; 1], &[0.0; 2], &[1.0, 2.0], &[0, 1], &[1, 1]);
    assert!(short.is_err());
    // Bilinear: the second tap must lie in the grid too, and the weights come along.
    let b = Assembly {
        bilinear: true,
        ..a.clone()
    };
    let taps = |idx: &[u32]| Taps {
        idx: idx.to_vec(),
        t: vec![0.5; idx.len()],
    };
    assert!(
        b.geometry(&[0.0; 2], &[0.0; 2], &[1.0, 2.0], &[0, 1], &[1, 1])
            .is_err()
    );
    let ok = b.geometry_bilinear(
        &[0.0; 2],
        &[0.0; 2],
        &[1.0, 2.0],
        &taps(&[0, 1]),
        &taps(&[1, 1]),
    );
    let ok = ok.unwrap();
    assert_eq!(ok.len(), b.geometry_len());
    assert_eq!(b.parse(&ok).unwrap().row_t, vec![0.5, 0.5]);
    let past = b.geometry_bilinear(
        &[0.0; 2],
        &[0.0; 2],
        &[1.0, 2.0],
        &taps(&[0, 2]),
        &taps(&[1, 1]),
    );
    assert!(past.unwrap_err().contains("past the previous grid"));
}

/// Where the adapter cuts loops short (lavapipe), blocks whose loops would pass the limit are
/// not taken by the fused path (paper256's 7x512 block), and a direct call is refused; blocks of
/// the emoji presets are.
#[test]
fn fused_path_respects_the_loop_limit() {
    use inrgan::backend::prelude::*;
    let block = |layers: Vec<(usize, bool)>, c_in| FusedShape {
        batch: 1,
        pixels: 300,
        c_in,
        broadcast_input: true,
        layers,
        alpha: 0.2,
        gain: 1.0,
    };
    let wide = block(
        vec![(512, false); 6]
            .into_iter()
            .chain([(512, true)])
            .collect(),
        40,
    );
    let emoji64 = block(
        vec![
            (256, true),
            (256, false),
            (256, true),
            (256, false),
            (256, true),
        ],
        40,
    );
    let mut be = inrgan::backend::gpu::GpuBackend::new(ctx());
    be.set_fused(true);
    assert!(wide.fits() && emoji64.fits());
    assert!(be.fused_fits(&emoji64));
    assert!(emoji64.loop_iterations() <= 65_535);
    match ctx().loop_limit() {
        Some(lim) => {
            assert!(wide.loop_iterations() > lim);
            assert!(!be.fused_fits(&wide));
            let b = zeros(1 << 20);
            let mut rec = inrgan::gpu::Recorder::new(ctx(), "fused past the loop limit");
            let e = k::level_forward(
                &mut rec,
                &wide,
                FusedInput::Dense(&b),
                &b,
                &b,
                &b,
                &b,
                &b,
                None,
            )
            .unwrap_err()
            .to_string();
            assert!(e.contains("loop iterations"), "{e}");
        }
        None => assert!(be.fused_fits(&wide)),
    }
}
