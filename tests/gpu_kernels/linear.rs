use inrgan::kernels::linear::{self as k, BiasMode, Gemm, Strides};
use inrgan::reference::linear::{self as r, LinearShape, ModLinearShape};

use crate::common::*;

// Tolerances: f32 GPU sums against the f64 reference, inputs ~N(0, 1), sums of up to ~70 terms.
const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-4;

fn shapes() -> Vec<LinearShape> {
    vec![
        LinearShape {
            rows: 1,
            d_in: 1,
            d_out: 1,
            w_gain: 1.0,
            b_gain: 1.0,
        },
        LinearShape {
            rows: 3,
            d_in: 7,
            d_out: 5,
            w_gain: 0.37,
            b_gain: 0.01,
        },
        LinearShape {
            rows: 5,
            d_in: 33,
            d_out: 17,
            w_gain: 1.0 / 33f32.sqrt(),
            b_gain: 1.0,
        },
        LinearShape {
            rows: 70,
            d_in: 9,
            d_out: 66,
            w_gain: 0.5,
            b_gain: 2.0,
        },
        LinearShape {
            rows: 300,
            d_in: 4,
            d_out: 3,
            w_gain: 1.5,
            b_gain: 0.3,
        },
    ]
}

#[test]
fn linear_forward_matches_reference() {
    let mut g = rng(1);
    for s in shapes() {
        let x = g.normal_vec(s.rows * s.d_in);
        let w = g.normal_vec(s.d_out * s.d_in);
        let b = g.normal_vec(s.d_out);
        let (xb, wb, bb, yb) = (up(&x), up(&w), up(&b), zeros(s.rows * s.d_out));
        run("linear fwd", |rec| {
            k::linear_forward(rec, &s, &xb, &wb, Some(&bb), &yb).unwrap()
        });
        let want = r::linear_forward(&s, &to64(&x), &to64(&w), Some(&to64(&b)));
        assert_close(&format!("linear fwd {s:?}"), &read(&yb), &want, ATOL, RTOL);
        // and without a bias
        run("linear fwd", |rec| {
            k::linear_forward(rec, &s, &xb, &wb, None, &yb).unwrap()
        });
        let want = r::linear_forward(&s, &to64(&x), &to64(&w), None);
        assert_close(
            &format!("linear fwd no bias {s:?}"),
            &read(&yb),
            &want,
            ATOL,
            RTOL,
        );
    }
}

#[test]
fn linear_backward_matches_reference_and_finite_differences() {
    let mut g = rng(2);
    for s in shapes() {
        let x = g.normal_vec(s.rows * s.d_in);
        let w = g.normal_vec(s.d_out * s.d_in);
        let b = g.normal_vec(s.d_out);
        let dy = g.normal_vec(s.rows * s.d_out);
        let (xb, wb, dyb) = (up(&x), up(&w), up(&dy));
        let (dxb, dwb, dbb) = (zeros(x.len()), zeros(w.len()), zeros(b.len()));
        run("linear bwd", |rec| {
            k::linear_backward_input(rec, &s, &dyb, &wb, &dxb, false).unwrap();
            k::linear_backward_weight(rec, &s, &dyb, &xb, &dwb, false).unwrap();
            k::linear_backward_bias(rec, &s, &dyb, &dbb, false).unwrap();
        });
        let (x64, w64, b64, dy64) = (to64(&x), to64(&w), to64(&b), to64(&dy));
        let (dx, dw, db) = r::linear_backward(&s, &x64, &w64, &dy64);
        let tag = format!("{s:?}");
        let (gdx, gdw, gdb) = (read(&dxb), read(&dwb), read(&dbb));
        assert_close(&format!("linear dX {tag}"), &gdx, &dx, 2e-4, RTOL);
        assert_close(&format!("linear dW {tag}"), &gdw, &dw, 2e-4, RTOL);
        assert_close(&format!("linear db {tag}"), &gdb, &db, 2e-4, RTOL);
        let loss_x = |xv: &[f64]| dot(&dy64, &r::linear_forward(&s, xv, &w64, Some(&b64)));
        let loss_w = |wv: &[f64]| dot(&dy64, &r::linear_forward(&s, &x64, wv, Some(&b64)));
        let loss_b = |bv: &[f64]| dot(&dy64, &r::linear_forward(&s, &x64, &w64, Some(bv)));
        check_fd(
            &format!("linear dX {tag}"),
            &gdx,
            loss_x,
            &x64,
            40,
            1e-3,
            1e-3,
            1e-3,
            &mut g,
        );
        check_fd(
            &format!("linear dW {tag}"),
            &gdw,
            loss_w,
            &w64,
            40,
            1e-3,
            1e-3,
            1e-3,
            &mut g,
        );
        check_fd(
            &format!("linear db {tag}"),
            &gdb,
            loss_b,
            &b64,
            40,
            1e-3,
            1e-3,
            1e-3,
            &mut g,
        );
    }
}

#[test]
fn linear_backward_accumulates() {
    let mut g = rng(3);
    let s = LinearShape {
        rows: 6,
        d_in: 5,
        d_out: 7,
        w_gain: 0.8,
        b_gain: 1.0,
    };
    let x = g.normal_vec(30);
    let dy = g.normal_vec(42);
    let prior = g.normal_vec(35);
    let dwb = up(&prior);
    run("acc", |rec| {
        k::linear_backward_weight(rec, &s, &up(&dy), &up(&x), &dwb, true).unwrap()
    });
    let (_, dw, _) = r::linear_backward(&s, &to64(&x), &vec![0.0; 35], &to64(&dy));
    let want: Vec<f64> = dw.iter().zip(&prior).map(|(a, &b)| a + b as f64).collect();
    assert_close("accumulated dW", &read(&dwb), &want, ATOL, RTOL);
}

fn mod_shapes() -> Vec<ModLinearShape> {
    vec![
        ModLinearShape {
            batch: 1,
            c_in: 1,
            c_out: 1,
            pixels: 1,
        },
        ModLinearShape {
            batch: 2,
            c_in: 5,
            c_out: 3,
            pixels: 7,
        },
        ModLinearShape {
            batch: 3,
            c_in: 12,
            c_out: 9,
            pixels: 65,
        },
        ModLinearShape {
            batch: 2,
            c_in: 3,
            c_out: 6,
            pixels: 259,
        },
    ]
}

#[test]
fn modlinear_forward_matches_reference() {
    let mut g = rng(4);
    for s in mod_shapes() {
        let x = g.normal_vec(s.batch * s.c_in * s.pixels);
        let w = g.normal_vec(s.batch * s.c_out * s.c_in);
        let b = g.normal_vec(s.c_out);
        let yb = zeros(s.batch * s.c_out * s.pixels);
        run("modlinear fwd", |rec| {
            k::modlinear_forward(rec, &s, &up(&x), &up(&w), Some(&up(&b)), &yb, false).unwrap()
        });
        let want = r::modlinear_forward(&s, &to64(&x), &to64(&w), Some(&to64(&b)));
        assert_close(
            &format!("modlinear fwd {s:?}"),
            &read(&yb),
            &want,
            ATOL,
            RTOL,
        );
        // shared weight: the reference with the weight repeated per image
        let ws = g.normal_vec(s.c_out * s.c_in);
        run("modlinear fwd shared", |rec| {
            k::modlinear_forward(rec, &s, &up(&x), &up(&ws), None, &yb, true).unwrap()
        });
        let rep: Vec<f64> = (0..s.batch).flat_map(|_| to64(&ws)).collect();
        let want = r::modlinear_forward(&s, &to64(&x), &rep, None);
        assert_close(
            &format!("shared-weight fwd {s:?}"),
            &read(&yb),
            &want,
            ATOL,
            RTOL,
        );
    }
}

#[test]
fn modlinear_backward_matches_reference_and_finite_differences() {
    let mut g = rng(5);
    for s in mod_shapes() {
        let x = g.normal_vec(s.batch * s.c_in * s.pixels);
        let w = g.normal_vec(s.batch * s.c_out * s.c_in);
        let b = g.normal_vec(s.c_out);
        let dy = g.normal_vec(s.batch * s.c_out * s.pixels);
        let (xb, wb, dyb) = (up(&x), up(&w), up(&dy));
        let (dxb, dwb, dbb) = (zeros(x.len()), zeros(w.len()), zeros(b.len()));
        run("modlinear bwd", |rec| {
            k::modlinear_backward_input(rec, &s, &dyb, &wb, &dxb, false, false).unwrap();
            k::modlinear_backward_weight(rec, &s, &dyb, &xb, &dwb, false).unwrap();
            k::modlinear_backward_bias(rec, &s, &dyb, &dbb, false).unwrap();
        });
        let (x64, w64, b64, dy64) = (to64(&x), to64(&w), to64(&b), to64(&dy));
        let (dx, dw, db) = r::modlinear_backward(&s, &x64, &w64, &dy64);
        let tag = format!("{s:?}");
        let (gdx, gdw, gdb) = (read(&dxb), read(&dwb), read(&dbb));
        let atol = 1e-4 * (s.pixels as f64).sqrt().max(1.0) * 4.0;
        assert_close(&format!("modlinear dX {tag}"), &gdx, &dx, atol, RTOL);
        assert_close(&format!("modlinear dW {tag}"), &gdw, &dw, atol, RTOL);
        assert_close(&format!("modlinear db {tag}"), &gdb, &db, atol, RTOL);
        let loss_x = |v: &[f64]| dot(&dy64, &r::modlinear_forward(&s, v, &w64, Some(&b64)));
        let loss_w = |v: &[f64]| dot(&dy64, &r::modlinear_forward(&s, &x64, v, Some(&b64)));
        let loss_b = |v: &[f64]| dot(&dy64, &r::modlinear_forward(&s, &x64, &w64, Some(v)));
        check_fd(
            &format!("modlinear dX {tag}"),
            &gdx,
            loss_x,
            &x64,
            30,
            1e-3,
            2e-3,
            1e-3,
            &mut g,
        );
        check_fd(
            &format!("modlinear dW {tag}"),
            &gdw,
            loss_w,
            &w64,
            30,
            1e-3,
            2e-3,
            1e-3,
            &mut g,
        );
        check_fd(
            &format!("modlinear db {tag}"),
            &gdb,
            loss_b,
            &b64,
            30,
            1e-3,
            2e-3,
            1e-3,
            &mut g,
        );
    }
}

#[test]
fn gemm_rejects_short_buffers() {
    let mut rec = inrgan::gpu::Recorder::new(ctx(), "bad");
    let st = |sb, si, sj| Strides { sb, si, sj };
    let gm = Gemm {
        m: 4,
        n: 4,
        k: 4,
        batch: 1,
        a: st(0, 4, 1),
        b: st(0, 4, 1),
        c: st(0, 4, 1),
        alpha: 1.0,
        bias: BiasMode::None,
        bias_gain: 0.0,
        accumulate: false,
        act: None,
    };
    let err = k::gemm(&mut rec, &gm, &zeros(16), &zeros(15), None, &zeros(16)).unwrap_err();
    assert!(err.to_string().contains("gemm B"), "{err}");
}

#[test]
fn gemm_matches_its_reference_with_general_strides() {
    let mut g = rng(6);
    // A transposed, B with a batch stride and padding between rows, accumulate into C, bias per col.
    let (m, n, kk, batch) = (5, 67, 3, 2);
    let gm = Gemm {
        m,
        n,
        k: kk,
        batch,
        a: Strides {
            sb: m * kk + 1,
            si: 1,
            sj: m,
        },
        b: Strides {
            sb: kk * (n + 2),
            si: n + 2,
            sj: 1,
        },
        c: Strides {
            sb: m * n,
            si: n,
            sj: 1,
        },
        alpha: 0.7,
        bias: BiasMode::PerCol,
        bias_gain: 0.5,
        accumulate: true,
        // The activation epilogue on a strided, accumulated result.
        act: Some((0.2, 1.4)),
    };
    let (ea, eb, ec) = gm.extents();
    let (a, b, bias, c0) = (
        g.normal_vec(ea),
        g.normal_vec(eb),
        g.normal_vec(n),
        g.normal_vec(ec),
    );
    let cb = up(&c0);
    run("gemm", |rec| {
        k::gemm(rec, &gm, &up(&a), &up(&b), Some(&up(&bias)), &cb).unwrap()
    });
    let mut want = to64(&c0);
    r::gemm(&gm, &to64(&a), &to64(&b), Some(&to64(&bias)), &mut want);
    assert_close("strided gemm", &read(&cb), &want, ATOL, RTOL);
}

/// The skinny path (fewer than 32 columns, k >= 32: lanes split the k sum) and the tiled path on
/// either side of the switch, with transposed and padded operands, both bias modes, accumulation
/// and the activation epilogue.
#[test]
fn skinny_gemm_matches_its_reference() {
    let mut g = rng(7);
    let cases = [
        // (m, n, k, batch, A transposed, bias per row)
        (1, 1, 32, 1, false, true),
        (5, 1, 300, 2, false, true),
        (67, 3, 33, 1, true, false),
        (130, 31, 97, 2, false, true),
        (9, 32, 64, 1, true, true),
        (4097, 1, 256, 1, false, true),
        (6, 2, 1000, 3, true, false),
    ];
    for (m, n, kk, batch, a_t, per_row) in cases {
        let a = if a_t {
            Strides {
                sb: m * kk + 3,
                si: 1,
                sj: m,
            }
        } else {
            Strides {
                sb: m * (kk + 1),
                si: kk + 1,
                sj: 1,
            }
        };
        let gm = Gemm {
            m,
            n,
            k: kk,
            batch,
            a,
            b: Strides {
                sb: kk * n + 2,
                si: n,
                sj: 1,
            },
            c: Strides {
                sb: m * n,
                si: n,
                sj: 1,
            },
            alpha: 0.9,
            bias: if per_row {
                BiasMode::PerRow
            } else {
                BiasMode::PerCol
            },
            bias_gain: 0.3,
            accumulate: batch > 1,
            act: (kk % 2 == 0).then_some((0.2, 1.4)),
        };
        let (ea, eb, ec) = gm.extents();
        let (av, bv, bias, c0) = (
            g.normal_vec(ea),
            g.normal_vec(eb),
            g.normal_vec(if per_row { m } else { n }),
            g.normal_vec(ec),
        );
        let cb = up(&c0);
        run("skinny gemm", |rec| {
            k::gemm(rec, &gm, &up(&av), &up(&bv), Some(&up(&bias)), &cb).unwrap()
        });
        let mut want = to64(&c0);
        r::gemm(&gm, &to64(&av), &to64(&bv), Some(&to64(&bias)), &mut want);
        // Sums of up to 1000 terms of N(0, 1) products.
        assert_close(
            &format!("gemm {m}x{n}x{kk} batch {batch}"),
            &read(&cb),
            &want,
            ATOL * (kk as f64).sqrt(),
            RTOL,
        );
    }
}

/// Products summed over more than 65536 terms (weight gradients of large batches): lavapipe
/// with naga's loop bounding ends a loop statement after 65536 iterations in one invocation.
#[test]
fn gemm_sums_past_65536_terms() {
    let mut g = rng(8);
    for (m, n, kk) in [(3, 5, 70_001), (2, 40, 66_000)] {
        let gm = Gemm {
            m,
            n,
            k: kk,
            batch: 1,
            a: Strides {
                sb: 0,
                si: kk,
                sj: 1,
            },
            b: Strides {
                sb: 0,
                si: 1,
                sj: kk,
            },
            c: Strides {
                sb: 0,
                si: n,
                sj: 1,
            },
            alpha: 1.0,
            bias: BiasMode::None,
            bias_gain: 0.0,
            accumulate: false,
            act: None,
        };
        let (ea, eb, ec) = gm.extents();
        // Positive values, so a truncated sum cannot hide behind cancellation.
        let a: Vec<f32> = g.normal_vec(ea).iter().map(|v| v.abs()).collect();
        let b: Vec<f32> = g.normal_vec(eb).iter().map(|v| v.abs()).collect();
        let cb = zeros(ec);
        run("gemm long k", |rec| {
            k::gemm(rec, &gm, &up(&a), &up(&b), None, &cb).unwrap()
        });
        let mut want = vec![0.0; ec];
        r::gemm(&gm, &to64(&a), &to64(&b), None, &mut want);
        assert_close(&format!("gemm k = {kk}"), &read(&cb), &want, 1e-2, 1e-4);
    }
}
