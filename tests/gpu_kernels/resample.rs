use inrgan::kernels::reduce;
use inrgan::kernels::resample::{self as k, ConcatShape, GatherTables, SliceShape};
use inrgan::reference::resample as r;

use crate::common::*;

// Tolerances: pure copies are exact; the 2x2 block sums and batch sums are f32 sums of <= 4 (or
// batch-many) N(0, 1) terms against the f64 reference, so 1e-5 absolute suffices.
const EXACT: f64 = 0.0;
const SUM_TOL: f64 = 1e-5;

// (planes = batch * channels, h, w): odd, not multiples of 64, batch > 1 folded into planes.
const UP_SHAPES: &[(usize, usize, usize)] =
    &[(1, 1, 1), (2, 3, 5), (6, 17, 9), (1, 1, 67), (3, 40, 1)];

#[test]
fn upsample2x_forward_matches_reference() {
    let mut g = rng(30);
    for &(pl, h, w) in UP_SHAPES {
        let x = g.normal_vec(pl * h * w);
        let yb = zeros(4 * pl * h * w);
        run("upsample fwd", |rec| {
            k::upsample2x_forward(rec, &up(&x), &yb, pl, h, w).unwrap()
        });
        let want = r::upsample2x_forward(&to64(&x), pl, h, w);
        assert_close(
            &format!("upsample2x {pl}x{h}x{w}"),
            &read(&yb),
            &want,
            EXACT,
            0.0,
        );
    }
}

#[test]
fn upsample2x_backward_matches_reference_and_finite_differences() {
    let mut g = rng(31);
    for &(pl, h, w) in UP_SHAPES {
        let x64 = to64(&g.normal_vec(pl * h * w));
        let dy = g.normal_vec(4 * pl * h * w);
        let dy64 = to64(&dy);
        let dxb = zeros(pl * h * w);
        run("upsample bwd", |rec| {
            k::upsample2x_backward(rec, &up(&dy), &dxb, pl, h, w, false).unwrap()
        });
        let got = read(&dxb);
        let want = r::upsample2x_backward(&dy64, pl, h, w);
        let tag = format!("upsample2x bwd {pl}x{h}x{w}");
        assert_close(&tag, &got, &want, SUM_TOL, 0.0);
        let loss = |v: &[f64]| dot(&dy64, &r::upsample2x_forward(v, pl, h, w));
        check_fd(&tag, &got, loss, &x64, 40, 1e-3, 1e-5, 1e-5, &mut g);
        // the reference backward against the same finite differences
        let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        check_fd(
            &format!("ref {tag}"),
            &want32,
            loss,
            &x64,
            40,
            1e-3,
            1e-5,
            1e-5,
            &mut g,
        );
        // accumulate adds to what is there
        let prior = g.normal_vec(pl * h * w);
        let accb = up(&prior);
        run("upsample bwd acc", |rec| {
            k::upsample2x_backward(rec, &up(&dy), &accb, pl, h, w, true).unwrap()
        });
        let want_acc: Vec<f64> = want
            .iter()
            .zip(&prior)
            .map(|(a, &b)| a + b as f64)
            .collect();
        assert_close(&format!("acc {tag}"), &read(&accb), &want_acc, SUM_TOL, 0.0);
    }
}

#[test]
fn gather_matches_reference() {
    let mut g = rng(32);
    // (planes, h, w, ho, wo)
    for &(pl, h, w, ho, wo) in &[
        (1, 1, 1, 1, 1),
        (2, 3, 5, 7, 3),
        (6, 17, 9, 5, 70),
        (3, 9, 33, 65, 1),
    ] {
        let x = g.normal_vec(pl * h * w);
        let rows: Vec<u32> = (0..ho).map(|_| g.below(h as u64) as u32).collect();
        let cols: Vec<u32> = (0..wo).map(|_| g.below(w as u64) as u32).collect();
        let mut t = GatherTables::new(ctx(), &rows, &cols).unwrap();
        assert_eq!((t.rows(), t.cols()), (ho, wo));
        let (xb, yb) = (up(&x), zeros(pl * ho * wo));
        run("gather", |rec| {
            k::gather(rec, &xb, pl, h, w, &t, &yb).unwrap()
        });
        let want = r::gather(&to64(&x), pl, h, w, &rows, &cols);
        let tag = format!("gather {pl}x{h}x{w} -> {ho}x{wo}");
        assert_close(&tag, &read(&yb), &want, EXACT, 0.0);
        // new tables of the same size (reversed order)
        let rows2: Vec<u32> = rows.iter().rev().copied().collect();
        let cols2: Vec<u32> = cols.iter().rev().copied().collect();
        t.write(ctx(), &rows2, &cols2).unwrap();
        run("gather 2", |rec| {
            k::gather(rec, &xb, pl, h, w, &t, &yb).unwrap()
        });
        let want = r::gather(&to64(&x), pl, h, w, &rows2, &cols2);
        assert_close(&format!("rewritten {tag}"), &read(&yb), &want, EXACT, 0.0);
    }
}

#[test]
fn gather_rejects_tables_outside_the_input() {
    let mut rec = inrgan::gpu::Recorder::new(ctx(), "bad gather");
    let t = GatherTables::new(ctx(), &[0, 4], &[1]).unwrap();
    let err = k::gather(&mut rec, &zeros(12), 1, 4, 3, &t, &zeros(2)).unwrap_err();
    assert!(err.to_string().contains("gather"), "{err}");
    let t = GatherTables::new(ctx(), &[3], &[3]).unwrap();
    assert!(k::gather(&mut rec, &zeros(12), 1, 4, 3, &t, &zeros(1)).is_err());
    let mut t = GatherTables::new(ctx(), &[3], &[2]).unwrap();
    assert!(k::gather(&mut rec, &zeros(12), 1, 4, 3, &t, &zeros(1)).is_ok());
    assert!(
        t.write(ctx(), &[1, 2], &[0]).is_err(),
        "length change must fail"
    );
}

fn concat_shapes() -> Vec<ConcatShape> {
    let mut v = Vec::new();
    for &(batch, c1, c2, pixels) in &[(1, 1, 1, 1), (2, 3, 2, 7), (3, 5, 4, 65), (2, 1, 6, 130)] {
        for broadcast in [false, true] {
            v.push(ConcatShape {
                batch,
                c1,
                c2,
                pixels,
                broadcast,
            });
        }
    }
    v
}

#[test]
fn concat_and_slice_match_reference() {
    let mut g = rng(33);
    for s in concat_shapes() {
        let b2 = if s.broadcast { 1 } else { s.batch };
        let x1 = g.normal_vec(s.batch * s.c1 * s.pixels);
        let x2 = g.normal_vec(b2 * s.c2 * s.pixels);
        let yb = zeros(s.batch * s.channels() * s.pixels);
        run("concat", |rec| {
            k::concat_channels(rec, &s, &up(&x1), &up(&x2), &yb).unwrap()
        });
        let y = read(&yb);
        let want = r::concat_channels(&s, &to64(&x1), &to64(&x2));
        assert_close(&format!("concat {s:?}"), &y, &want, EXACT, 0.0);
        // slicing the parts back out
        let (a, b) = (zeros(x1.len()), zeros(s.batch * s.c2 * s.pixels));
        run("slice", |rec| {
            k::slice_channels(rec, &s.first(), &yb, &a, false).unwrap();
            k::slice_channels(rec, &s.second(), &yb, &b, false).unwrap();
        });
        assert_close("slice first", &read(&a), &to64(&x1), EXACT, 0.0);
        let want_b = r::slice_channels(&s.second(), &to64(&y));
        assert_close("slice second", &read(&b), &want_b, EXACT, 0.0);
    }
}

#[test]
fn slice_channels_middle_and_accumulate() {
    let mut g = rng(34);
    let s = SliceShape {
        batch: 3,
        channels: 7,
        c0: 2,
        len: 3,
        pixels: 29,
    };
    let x = g.normal_vec(3 * 7 * 29);
    let prior = g.normal_vec(3 * 3 * 29);
    let yb = up(&prior);
    run("slice acc", |rec| {
        k::slice_channels(rec, &s, &up(&x), &yb, true).unwrap()
    });
    let want: Vec<f64> = r::slice_channels(&s, &to64(&x))
        .iter()
        .zip(&prior)
        .map(|(a, &b)| a + b as f64)
        .collect();
    assert_close("slice accumulate", &read(&yb), &want, 1e-6, 0.0);
    let mut rec = inrgan::gpu::Recorder::new(ctx(), "bad slice");
    let bad = SliceShape { c0: 5, ..s };
    let err = k::slice_channels(&mut rec, &bad, &up(&x), &yb, false).unwrap_err();
    assert!(err.to_string().contains("slice_channels"), "{err}");
}

/// The backward of concat is slice (plus a batch sum for a broadcast input), checked against
/// finite differences of the reference concat.
#[test]
fn concat_backward_through_slice_matches_finite_differences() {
    let mut g = rng(35);
    for s in concat_shapes() {
        let b2 = if s.broadcast { 1 } else { s.batch };
        let x1 = to64(&g.normal_vec(s.batch * s.c1 * s.pixels));
        let x2 = to64(&g.normal_vec(b2 * s.c2 * s.pixels));
        let dy = g.normal_vec(s.batch * s.channels() * s.pixels);
        let dy64 = to64(&dy);
        let dyb = up(&dy);
        let dx1 = zeros(x1.len());
        let part = zeros(s.batch * s.c2 * s.pixels);
        let dx2 = zeros(x2.len());
        run("concat bwd", |rec| {
            k::slice_channels(rec, &s.first(), &dyb, &dx1, false).unwrap();
            if s.broadcast {
                k::slice_channels(rec, &s.second(), &dyb, &part, false).unwrap();
                let m = s.c2 * s.pixels;
                reduce::sum_axes(rec, &part, &dx2, s.batch, m, 1, 1.0, false).unwrap();
            } else {
                k::slice_channels(rec, &s.second(), &dyb, &dx2, false).unwrap();
            }
        });
        let tag = format!("{s:?}");
        let loss1 = |v: &[f64]| dot(&dy64, &r::concat_channels(&s, v, &x2));
        let loss2 = |v: &[f64]| dot(&dy64, &r::concat_channels(&s, &x1, v));
        check_fd(
            &format!("concat dX1 {tag}"),
            &read(&dx1),
            loss1,
            &x1,
            40,
            1e-3,
            SUM_TOL,
            1e-5,
            &mut g,
        );
        check_fd(
            &format!("concat dX2 {tag}"),
            &read(&dx2),
            loss2,
            &x2,
            40,
            1e-3,
            SUM_TOL,
            1e-5,
            &mut g,
        );
    }
}

/// Random taps into an input of `n` (>= 2) along one axis: monotone like a plan's, or
/// scattered, with weights in [0, 1] and the exact ends 0 and 1 included.
fn random_taps(g: &mut inrgan::rng::Rng, len: usize, n: usize, monotone: bool) -> r::Taps {
    let mut idx: Vec<u32> = (0..len)
        .map(|_| (g.next_u64() % (n as u64 - 1)) as u32)
        .collect();
    if monotone {
        idx.sort_unstable();
    }
    let t = (0..len)
        .map(|i| match i % 5 {
            0 => 0.0,
            1 => 1.0,
            _ => g.uniform() as f32,
        })
        .collect();
    r::Taps { idx, t }
}

// (planes, h, w, out rows, out cols): odd shapes, outputs smaller and larger than the input.
const BIL_SHAPES: &[(usize, usize, usize, usize, usize)] = &[
    (1, 2, 2, 1, 1),
    (2, 3, 5, 7, 9),
    (6, 10, 9, 19, 17),
    (3, 5, 67, 2, 130),
    (1, 33, 2, 65, 3),
];

#[test]
fn gather_bilinear_matches_reference() {
    let mut g = rng(35);
    for (n, &(pl, h, w, ho, wo)) in BIL_SHAPES.iter().enumerate() {
        let x = g.normal_vec(pl * h * w);
        let rows = random_taps(&mut g, ho, h, n % 2 == 0);
        let cols = random_taps(&mut g, wo, w, n % 2 == 1);
        let t = k::BilinearTables::new(ctx(), h, w, &rows, &cols).unwrap();
        let yb = zeros(pl * ho * wo);
        run("gather_bilinear", |rec| {
            k::gather_bilinear(rec, &up(&x), pl, &t, &yb).unwrap()
        });
        let want = r::gather_bilinear(&to64(&x), pl, h, w, &rows, &cols);
        let tag = format!("gather_bilinear {pl}x{h}x{w} -> {ho}x{wo}");
        assert_close(&tag, &read(&yb), &want, SUM_TOL, 1e-6);
    }
}

#[test]
fn gather_bilinear_backward_matches_reference_and_finite_differences() {
    let mut g = rng(36);
    for (n, &(pl, h, w, ho, wo)) in BIL_SHAPES.iter().enumerate() {
        let x64 = to64(&g.normal_vec(pl * h * w));
        let rows = random_taps(&mut g, ho, h, n % 2 == 1);
        let cols = random_taps(&mut g, wo, w, n % 2 == 0);
        let dy = g.normal_vec(pl * ho * wo);
        let dy64 = to64(&dy);
        let inv = k::BilinearInverse::new(ctx(), h, w, &rows, &cols).unwrap();
        let dxb = zeros(pl * h * w);
        run("gather_bilinear bwd", |rec| {
            k::gather_bilinear_backward(rec, &up(&dy), pl, &inv, &dxb, false).unwrap()
        });
        let got = read(&dxb);
        let want = r::gather_bilinear_backward(&dy64, pl, h, w, &rows, &cols);
        let tag = format!("gather_bilinear bwd {pl}x{h}x{w} <- {ho}x{wo}");
        assert_close(&tag, &got, &want, 1e-4, 1e-5);
        let loss = |v: &[f64]| dot(&dy64, &r::gather_bilinear(v, pl, h, w, &rows, &cols));
        check_fd(&tag, &got, loss, &x64, 40, 1e-3, 1e-4, 1e-4, &mut g);
        let want32: Vec<f32> = want.iter().map(|&v| v as f32).collect();
        check_fd(
            &format!("ref {tag}"),
            &want32,
            loss,
            &x64,
            40,
            1e-3,
            1e-5,
            1e-5,
            &mut g,
        );
        // accumulate adds to what is there
        let prior = g.normal_vec(pl * h * w);
        let accb = up(&prior);
        run("gather_bilinear bwd acc", |rec| {
            k::gather_bilinear_backward(rec, &up(&dy), pl, &inv, &accb, true).unwrap()
        });
        let want_acc: Vec<f64> = want
            .iter()
            .zip(&prior)
            .map(|(a, &b)| a + b as f64)
            .collect();
        assert_close(&format!("acc {tag}"), &read(&accb), &want_acc, 1e-4, 1e-5);
    }
}

#[test]
fn gather_bilinear_rejects_taps_outside_the_input() {
    let taps = |idx: Vec<u32>| r::Taps {
        t: vec![0.5; idx.len()],
        idx,
    };
    // The second tap of index 2 is row 3 of a 3-row input.
    let err = k::BilinearTables::new(ctx(), 3, 4, &taps(vec![0, 2]), &taps(vec![0])).err();
    assert!(err.is_some_and(|e| e.to_string().contains("rows")));
    assert!(k::BilinearTables::new(ctx(), 3, 4, &taps(vec![0, 1]), &taps(vec![2])).is_ok());
    assert!(k::BilinearInverse::new(ctx(), 3, 4, &taps(vec![0, 1]), &taps(vec![3])).is_err());
    let nan = r::Taps {
        idx: vec![0],
        t: vec![f32::NAN],
    };
    assert!(k::BilinearTables::new(ctx(), 3, 4, &nan, &taps(vec![0])).is_err());
}

#[test]
fn bilinear_taps_inverse_is_the_transpose() {
    // Every (output, source, weight) triple of the forward appears once in the inverse, in
    // increasing output order per source.
    let mut g = rng(37);
    let taps = random_taps(&mut g, 23, 7, false);
    let (off, outs, wts) = taps.inverse(7);
    assert_eq!(off.len(), 8);
    assert_eq!(off[7] as usize, 2 * 23);
    for s in 0..7 {
        let range = off[s] as usize..off[s + 1] as usize;
        assert!(outs[range.clone()].windows(2).all(|w| w[0] <= w[1]));
        for e in range {
            let o = outs[e] as usize;
            let (i, t) = (taps.idx[o] as usize, taps.t[o]);
            let want = if i == s { 1.0 - t } else { t };
            assert!(
                i == s || i + 1 == s,
                "source {s} lists output {o} reading {i}"
            );
            assert_eq!(wts[e], want);
        }
    }
}
