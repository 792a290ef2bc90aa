use inrgan::kernels::act::{self as k, ActShape};
use inrgan::reference::act as r;

use crate::common::*;

// Tolerances: one f32 multiply-add and a scale per value (rtol 1e-6 of the f64 reference);
// bias gradients are f32 sums of up to ~200 terms (atol 2e-5).
const RTOL: f64 = 1e-6;
const ATOL: f64 = 1e-6;
const SUM_ATOL: f64 = 2e-5;

fn shapes() -> Vec<ActShape> {
    let mut v = Vec::new();
    // (outer, channels, inner): planar maps with batch > 1, row vectors (inner = 1), odd sizes
    for &(o, c, i) in &[(1, 1, 1), (3, 5, 7), (2, 7, 65), (70, 9, 1), (1, 3, 131)] {
        v.push(ActShape::lrelu(o, c, i));
        v.push(ActShape {
            alpha: 1.0,
            gain: 0.5,
            b_gain: 0.7,
            ..ActShape::lrelu(o, c, i)
        });
        v.push(ActShape {
            alpha: 0.0,
            gain: 1.3,
            b_gain: 0.01,
            ..ActShape::lrelu(o, c, i)
        });
    }
    v
}

/// Inputs whose pre-activation `x + b_gain * bias` stays at least 0.1 away from the kink at 0.
fn away_from_kink(s: &ActShape, g: &mut inrgan::rng::Rng) -> (Vec<f32>, Vec<f32>) {
    let bias = g.normal_vec(s.channels);
    let x = (0..s.len())
        .map(|i| {
            let ch = (i / s.inner) % s.channels;
            let n = g.normal();
            let z = n.signum() * (0.1 + n.abs());
            (z - s.b_gain as f64 * bias[ch] as f64) as f32
        })
        .collect();
    (x, bias)
}

#[test]
fn act_forward_matches_reference() {
    let mut g = rng(40);
    for s in shapes() {
        let x = g.normal_vec(s.len());
        let b = g.normal_vec(s.channels);
        let (xb, bb, yb) = (up(&x), up(&b), zeros(s.len()));
        run("act fwd", |rec| {
            k::act_forward(rec, &s, &xb, Some(&bb), &yb).unwrap()
        });
        let want = r::act_forward(&s, &to64(&x), Some(&to64(&b)));
        assert_close(&format!("act fwd {s:?}"), &read(&yb), &want, ATOL, RTOL);
        run("act fwd no bias", |rec| {
            k::act_forward(rec, &s, &xb, None, &yb).unwrap()
        });
        let want = r::act_forward(&s, &to64(&x), None);
        assert_close(
            &format!("act fwd no bias {s:?}"),
            &read(&yb),
            &want,
            ATOL,
            RTOL,
        );
    }
}

#[test]
fn act_backward_matches_reference_and_finite_differences() {
    let mut g = rng(41);
    for s in shapes() {
        let (x, b) = away_from_kink(&s, &mut g);
        let dy = g.normal_vec(s.len());
        let (x64, b64, dy64) = (to64(&x), to64(&b), to64(&dy));
        let (xb, bb, yb) = (up(&x), up(&b), zeros(s.len()));
        let (dyb, dxb, dbb) = (up(&dy), zeros(s.len()), zeros(s.channels));
        run("act fwd+bwd", |rec| {
            k::act_forward(rec, &s, &xb, Some(&bb), &yb).unwrap();
            k::act_backward(rec, &s, &yb, &dyb, &dxb, false).unwrap();
            k::act_backward_bias(rec, &s, &dxb, &dbb, false).unwrap();
        });
        let y64 = r::act_forward(&s, &x64, Some(&b64));
        let (dx, db) = r::act_backward(&s, &y64, &dy64);
        let tag = format!("{s:?}");
        let (gdx, gdb) = (read(&dxb), read(&dbb));
        assert_close(&format!("act dX {tag}"), &gdx, &dx, ATOL, RTOL);
        assert_close(&format!("act db {tag}"), &gdb, &db, SUM_ATOL, 1e-5);
        let loss_x = |v: &[f64]| dot(&dy64, &r::act_forward(&s, v, Some(&b64)));
        let loss_b = |v: &[f64]| dot(&dy64, &r::act_forward(&s, &x64, Some(v)));
        check_fd(
            &format!("act dX {tag}"),
            &gdx,
            loss_x,
            &x64,
            40,
            1e-3,
            1e-5,
            1e-5,
            &mut g,
        );
        check_fd(
            &format!("act db {tag}"),
            &gdb,
            loss_b,
            &b64,
            40,
            1e-3,
            SUM_ATOL,
            1e-5,
            &mut g,
        );
        // the reference backward against the same finite differences
        let dx32: Vec<f32> = dx.iter().map(|&v| v as f32).collect();
        let db32: Vec<f32> = db.iter().map(|&v| v as f32).collect();
        check_fd(
            &format!("ref act dX {tag}"),
            &dx32,
            loss_x,
            &x64,
            40,
            1e-3,
            1e-5,
            1e-5,
            &mut g,
        );
        check_fd(
            &format!("ref act db {tag}"),
            &db32,
            loss_b,
            &b64,
            40,
            1e-3,
            SUM_ATOL,
            1e-5,
            &mut g,
        );
    }
}

#[test]
fn act_backward_accumulates() {
    let mut g = rng(42);
    let s = ActShape::lrelu(3, 5, 11);
    let y = g.normal_vec(s.len());
    let dy = g.normal_vec(s.len());
    let prior = g.normal_vec(s.len());
    let dxb = up(&prior);
    run("act bwd acc", |rec| {
        k::act_backward(rec, &s, &up(&y), &up(&dy), &dxb, true).unwrap()
    });
    let (dx, _) = r::act_backward(&s, &to64(&y), &to64(&dy));
    let want: Vec<f64> = dx.iter().zip(&prior).map(|(a, &b)| a + b as f64).collect();
    assert_close("act dX accumulated", &read(&dxb), &want, ATOL, RTOL);
}

#[test]
fn act_rejects_bad_gain_and_short_buffers() {
    let mut rec = inrgan::gpu::Recorder::new(ctx(), "bad act");
    let s = ActShape {
        gain: -1.0,
        ..ActShape::lrelu(1, 2, 3)
    };
    let err = k::act_forward(&mut rec, &s, &zeros(6), None, &zeros(6)).unwrap_err();
    assert!(err.to_string().contains("gain"), "{err}");
    let s = ActShape::lrelu(1, 2, 3);
    let err = k::act_forward(&mut rec, &s, &zeros(6), Some(&zeros(1)), &zeros(6)).unwrap_err();
    assert!(err.to_string().contains("bias"), "{err}");
}
