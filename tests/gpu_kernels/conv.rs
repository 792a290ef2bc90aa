use inrgan::gpu::GpuError;
use inrgan::kernels::conv as k;
use inrgan::reference::conv::{self as r, ConvShape};

use crate::common::*;

// Tolerances: f32 GPU sums against the f64 reference with inputs ~N(0, 1). The forward and dX sum
// at most 7 * 9 terms, dW up to 3 * 13 * 13 = 507 terms (values up to ~25), hence the looser atol.
const ATOL: f64 = 1e-4;
const RTOL: f64 = 1e-4;
const ATOL_DW: f64 = 5e-4;
// Finite differences: the convolution is linear, so central differences are exact up to rounding.
const FD_H: f64 = 1e-3;
const FD_TOL: f64 = 1e-3;

/// (batch, c_in, c_out, height, width): odd and small, some with more than 64 pixels, and
/// workgroups (64 lanes of (image, pixel)) that span several small images.
const DIMS: [(usize, usize, usize, usize, usize); 9] = [
    (5, 3, 4, 4, 4),
    // More (image, pixel) pairs than one workgroup's 256, channels not a multiple of 4.
    (4, 6, 9, 17, 11),
    (1, 1, 1, 1, 1),
    (2, 3, 5, 3, 5),
    (3, 5, 7, 7, 9),
    (2, 2, 3, 10, 13),
    (1, 4, 6, 13, 10),
    (3, 1, 2, 9, 7),
    (2, 3, 5, 13, 13),
];

fn shapes() -> Vec<ConvShape> {
    let mut v = Vec::new();
    for &(batch, c_in, c_out, height, width) in &DIMS {
        for kk in [1, 3] {
            for stride in [1, 2] {
                v.push(ConvShape {
                    batch,
                    c_in,
                    c_out,
                    height,
                    width,
                    k: kk,
                    stride,
                    w_gain: 1.0 / ((c_in * kk * kk) as f32).sqrt(),
                    b_gain: 0.7,
                });
            }
        }
    }
    v
}

#[test]
fn conv_output_sizes() {
    let s = |h: usize, kk: usize, stride: usize| ConvShape {
        batch: 1,
        c_in: 1,
        c_out: 1,
        height: h,
        width: h,
        k: kk,
        stride,
        w_gain: 1.0,
        b_gain: 1.0,
    };
    assert_eq!(s(8, 3, 1).out_height(), 8);
    assert_eq!(s(8, 3, 2).out_height(), 4);
    assert_eq!(s(7, 3, 2).out_height(), 4);
    assert_eq!(s(7, 1, 2).out_height(), 4);
    assert_eq!(s(1, 3, 2).out_width(), 1);
    assert_eq!(s(10, 1, 2).out_width(), 5);
}

#[test]
fn conv_forward_matches_reference() {
    let mut g = rng(11);
    for s in shapes() {
        let x = g.normal_vec(s.x_len());
        let w = g.normal_vec(s.w_len());
        let b = g.normal_vec(s.c_out);
        let (xb, wb, bb, yb) = (up(&x), up(&w), up(&b), zeros(s.y_len()));
        run("conv fwd", |rec| {
            k::conv2d_forward(rec, &s, &xb, &wb, Some(&bb), &yb).unwrap()
        });
        let want = r::conv2d_forward(&s, &to64(&x), &to64(&w), Some(&to64(&b)));
        assert_close(&format!("conv fwd {s:?}"), &read(&yb), &want, ATOL, RTOL);
        run("conv fwd", |rec| {
            k::conv2d_forward(rec, &s, &xb, &wb, None, &yb).unwrap()
        });
        let want = r::conv2d_forward(&s, &to64(&x), &to64(&w), None);
        assert_close(
            &format!("conv fwd no bias {s:?}"),
            &read(&yb),
            &want,
            ATOL,
            RTOL,
        );
    }
}

#[test]
fn conv_backward_matches_reference_and_finite_differences() {
    let mut g = rng(12);
    for s in shapes() {
        let x = g.normal_vec(s.x_len());
        let w = g.normal_vec(s.w_len());
        let b = g.normal_vec(s.c_out);
        let dy = g.normal_vec(s.y_len());
        let (xb, wb, dyb) = (up(&x), up(&w), up(&dy));
        let (dxb, dwb, dbb) = (zeros(x.len()), zeros(w.len()), zeros(b.len()));
        run("conv bwd", |rec| {
            k::conv2d_backward_input(rec, &s, &dyb, &wb, &dxb, false).unwrap();
            k::conv2d_backward_weight(rec, &s, &dyb, &xb, &dwb, false).unwrap();
            k::conv2d_backward_bias(rec, &s, &dyb, &dbb, false).unwrap();
        });
        let (x64, w64, b64, dy64) = (to64(&x), to64(&w), to64(&b), to64(&dy));
        let (dx, dw, db) = r::conv2d_backward(&s, &x64, &w64, &dy64);
        let tag = format!("{s:?}");
        let (gdx, gdw, gdb) = (read(&dxb), read(&dwb), read(&dbb));
        assert_close(&format!("conv dX {tag}"), &gdx, &dx, ATOL, RTOL);
        assert_close(&format!("conv dW {tag}"), &gdw, &dw, ATOL_DW, RTOL);
        assert_close(&format!("conv db {tag}"), &gdb, &db, ATOL_DW, RTOL);
        let loss_x = |v: &[f64]| dot(&dy64, &r::conv2d_forward(&s, v, &w64, Some(&b64)));
        let loss_w = |v: &[f64]| dot(&dy64, &r::conv2d_forward(&s, &x64, v, Some(&b64)));
        let loss_b = |v: &[f64]| dot(&dy64, &r::conv2d_forward(&s, &x64, &w64, Some(v)));
        for (what, got, loss, at) in [
            ("dX", &gdx, &loss_x as &dyn Fn(&[f64]) -> f64, &x64),
            ("dW", &gdw, &loss_w, &w64),
            ("db", &gdb, &loss_b, &b64),
        ] {
            check_fd(
                &format!("conv {what} {tag}"),
                got,
                loss,
                at,
                30,
                FD_H,
                FD_TOL,
                FD_TOL,
                &mut g,
            );
        }
    }
}

#[test]
fn conv_reference_backward_matches_finite_differences() {
    let mut g = rng(13);
    for s in shapes().into_iter().step_by(3) {
        let x = to64(&g.normal_vec(s.x_len()));
        let w = to64(&g.normal_vec(s.w_len()));
        let b = to64(&g.normal_vec(s.c_out));
        let dy = to64(&g.normal_vec(s.y_len()));
        let (dx, dw, db) = r::conv2d_backward(&s, &x, &w, &dy);
        let pairs: [(&[f64], &[f64]); 3] = [(&dx, &x), (&dw, &w), (&db, &b)];
        for (i, (grad, at)) in pairs.into_iter().enumerate() {
            let loss = |v: &[f64]| {
                let (xx, ww, bb) = match i {
                    0 => (v, &w[..], &b[..]),
                    1 => (&x[..], v, &b[..]),
                    _ => (&x[..], &w[..], v),
                };
                dot(&dy, &r::conv2d_forward(&s, xx, ww, Some(bb)))
            };
            let idx = subset(at.len(), 30, &mut g);
            let fd = fd_grad(loss, at, &idx, FD_H);
            let got: Vec<f32> = idx.iter().map(|&j| grad[j] as f32).collect();
            assert_close(
                &format!("reference conv grad {i} {s:?}"),
                &got,
                &fd,
                1e-5,
                1e-5,
            );
        }
    }
}

#[test]
fn conv_backward_accumulates() {
    let mut g = rng(14);
    let s = ConvShape {
        batch: 2,
        c_in: 3,
        c_out: 5,
        height: 9,
        width: 7,
        k: 3,
        stride: 2,
        w_gain: 0.3,
        b_gain: 1.0,
    };
    let x = g.normal_vec(s.x_len());
    let w = g.normal_vec(s.w_len());
    let dy = g.normal_vec(s.y_len());
    let (px, pw, pb) = (
        g.normal_vec(s.x_len()),
        g.normal_vec(s.w_len()),
        g.normal_vec(s.c_out),
    );
    let (dxb, dwb, dbb) = (up(&px), up(&pw), up(&pb));
    let (xb, wb, dyb) = (up(&x), up(&w), up(&dy));
    run("conv acc", |rec| {
        k::conv2d_backward_input(rec, &s, &dyb, &wb, &dxb, true).unwrap();
        k::conv2d_backward_weight(rec, &s, &dyb, &xb, &dwb, true).unwrap();
        k::conv2d_backward_bias(rec, &s, &dyb, &dbb, true).unwrap();
    });
    let (dx, dw, db) = r::conv2d_backward(&s, &to64(&x), &to64(&w), &to64(&dy));
    let plus = |a: &[f64], b: &[f32]| -> Vec<f64> {
        a.iter().zip(b).map(|(u, &v)| u + v as f64).collect()
    };
    assert_close("accumulated dX", &read(&dxb), &plus(&dx, &px), ATOL, RTOL);
    assert_close(
        "accumulated dW",
        &read(&dwb),
        &plus(&dw, &pw),
        ATOL_DW,
        RTOL,
    );
    assert_close(
        "accumulated db",
        &read(&dbb),
        &plus(&db, &pb),
        ATOL_DW,
        RTOL,
    );
}

#[test]
fn conv_rejects_bad_shapes() {
    let s = ConvShape {
        batch: 2,
        c_in: 3,
        c_out: 4,
        height: 5,
        width: 5,
        k: 3,
        stride: 1,
        w_gain: 1.0,
        b_gain: 1.0,
    };
    let (x, w, y) = (zeros(s.x_len()), zeros(s.w_len()), zeros(s.y_len()));
    let short = zeros(s.y_len() - 1);
    let mut rec = inrgan::gpu::Recorder::new(ctx(), "bad conv");
    for bad in [
        ConvShape { k: 2, ..s },
        ConvShape { stride: 3, ..s },
        ConvShape { height: 0, ..s },
    ] {
        let e = k::conv2d_forward(&mut rec, &bad, &x, &w, None, &y).unwrap_err();
        assert!(matches!(e, GpuError::Shape(_)), "{e}");
    }
    let e = k::conv2d_forward(&mut rec, &s, &x, &w, None, &short).unwrap_err();
    assert!(matches!(e, GpuError::Shape(_)), "{e}");
    let e =
        k::conv2d_backward_weight(&mut rec, &s, &y, &x, &zeros(s.w_len() - 1), false).unwrap_err();
    assert!(matches!(e, GpuError::Shape(_)), "{e}");
    let e = k::blur_down2x_forward(&mut rec, &x, &y, 6, 1, 5).unwrap_err();
    assert!(matches!(e, GpuError::Shape(_)), "{e}");
    assert!(rec.is_empty());
}

/// (planes, height, width) for the blur.
const BLUR_DIMS: [(usize, usize, usize); 7] = [
    (1, 2, 2),
    (3, 3, 5),
    (2, 5, 3),
    (5, 7, 9),
    (4, 10, 13),
    (2, 13, 10),
    (3, 16, 16),
];

#[test]
fn blur_down2x_output_sizes() {
    for (h, want) in [
        (1, 0),
        (2, 1),
        (3, 1),
        (4, 2),
        (5, 2),
        (9, 4),
        (10, 5),
        (13, 6),
    ] {
        assert_eq!(r::blur_down2x_out(h), want, "size {h}");
    }
}

#[test]
fn blur_down2x_matches_reference_and_finite_differences() {
    let mut g = rng(15);
    for (planes, h, w) in BLUR_DIMS {
        let (ho, wo) = (r::blur_down2x_out(h), r::blur_down2x_out(w));
        let x = g.normal_vec(planes * h * w);
        let dy = g.normal_vec(planes * ho * wo);
        let (yb, dxb) = (zeros(dy.len()), zeros(x.len()));
        run("blur", |rec| {
            k::blur_down2x_forward(rec, &up(&x), &yb, planes, h, w).unwrap();
            k::blur_down2x_backward(rec, &up(&dy), &dxb, planes, h, w, false).unwrap();
        });
        let (x64, dy64) = (to64(&x), to64(&dy));
        let tag = format!("planes {planes} {h}x{w}");
        let want = r::blur_down2x_forward(&x64, planes, h, w);
        assert_close(&format!("blur fwd {tag}"), &read(&yb), &want, 1e-5, 1e-5);
        let dx = r::blur_down2x_backward(&dy64, planes, h, w);
        let gdx = read(&dxb);
        assert_close(&format!("blur dX {tag}"), &gdx, &dx, 1e-5, 1e-5);
        let loss = |v: &[f64]| dot(&dy64, &r::blur_down2x_forward(v, planes, h, w));
        check_fd(
            &format!("blur dX {tag}"),
            &gdx,
            loss,
            &x64,
            40,
            FD_H,
            1e-4,
            1e-4,
            &mut g,
        );
        // the reference backward too, in f64
        let idx = subset(x64.len(), 40, &mut g);
        let fd = fd_grad(loss, &x64, &idx, FD_H);
        let refg: Vec<f32> = idx.iter().map(|&i| dx[i] as f32).collect();
        assert_close(&format!("reference blur dX {tag}"), &refg, &fd, 1e-6, 1e-5);
        // accumulate adds onto what is there
        let prior = g.normal_vec(x.len());
        let accb = up(&prior);
        run("blur acc", |rec| {
            k::blur_down2x_backward(rec, &up(&dy), &accb, planes, h, w, true).unwrap()
        });
        let want: Vec<f64> = dx.iter().zip(&prior).map(|(a, &b)| a + b as f64).collect();
        assert_close(
            &format!("blur dX acc {tag}"),
            &read(&accb),
            &want,
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn blur_down2x_of_a_constant_keeps_the_interior() {
    // The filter sums to 1: interior outputs of a constant image equal the constant; the borders
    // lose the taps that fall on the zero padding (1/8 per side, per axis).
    let (h, w) = (8, 6);
    let x = vec![1.0f32; h * w];
    let y = zeros(r::blur_down2x_out(h) * r::blur_down2x_out(w));
    run("blur const", |rec| {
        k::blur_down2x_forward(rec, &up(&x), &y, 1, h, w).unwrap()
    });
    let y = read(&y);
    let wo = r::blur_down2x_out(w);
    assert!((y[wo + 1] - 1.0).abs() < 1e-6, "{y:?}");
    assert!((y[0] - 0.875 * 0.875).abs() < 1e-6, "{y:?}");
}

/// Weight gradients summed over more than 65536 (image, pixel) terms: lavapipe with naga's loop
/// bounding ends a loop statement after 65536 iterations in one invocation, which a single
/// nested loop over n, oy, ox would hit (emoji64 at batch 32 sums 131072 terms).
#[test]
fn conv_weight_gradient_sums_past_65536_terms() {
    let mut g = rng(13);
    let s = ConvShape {
        batch: 17,
        c_in: 2,
        c_out: 1,
        height: 64,
        width: 64,
        k: 3,
        stride: 1,
        w_gain: 1.0 / 18f32.sqrt(),
        b_gain: 1.0,
    };
    // Positive values, so a truncated sum cannot hide behind cancellation.
    let x: Vec<f32> = g.normal_vec(s.x_len()).iter().map(|v| v.abs()).collect();
    let dy: Vec<f32> = g.normal_vec(s.y_len()).iter().map(|v| v.abs()).collect();
    let w = vec![0.0f32; s.w_len()];
    let dwb = zeros(s.w_len());
    let (xb, dyb) = (up(&x), up(&dy));
    run("conv dW long", |rec| {
        k::conv2d_backward_weight(rec, &s, &dyb, &xb, &dwb, false).unwrap();
    });
    let (_, dw, _) = r::conv2d_backward(&s, &to64(&x), &to64(&w), &to64(&dy));
    // f32 sums of ~70k positive terms against the f64 reference.
    assert_close("conv dW, 69632 terms", &read(&dwb), &dw, 1e-2, 1e-4);
}

/// Wide convolutions (paper256's discriminator reaches 512 channels): the forward's and dX's
/// sums over channels and taps, with the per-channel loops of their register tiles, must not
/// pass lavapipe's 65535 loop back-edges per invocation (they would be cut short, silently).
#[test]
fn wide_convolutions_sum_every_channel() {
    let mut g = rng(14);
    let s = ConvShape {
        batch: 2,
        c_in: 1100,
        c_out: 1030,
        height: 3,
        width: 4,
        k: 3,
        stride: 1,
        w_gain: 1.0 / (1100.0f32 * 9.0).sqrt(),
        b_gain: 1.0,
    };
    // Positive values, so a truncated sum cannot hide behind cancellation.
    let pos = |v: Vec<f32>| -> Vec<f32> { v.iter().map(|x| x.abs()).collect() };
    let x = pos(g.normal_vec(s.x_len()));
    let w = pos(g.normal_vec(s.w_len()));
    let dy = pos(g.normal_vec(s.y_len()));
    let (xb, wb, dyb) = (up(&x), up(&w), up(&dy));
    let (yb, dxb) = (zeros(s.y_len()), zeros(s.x_len()));
    run("conv wide", |rec| {
        k::conv2d_forward(rec, &s, &xb, &wb, None, &yb).unwrap();
        k::conv2d_backward_input(rec, &s, &dyb, &wb, &dxb, false).unwrap();
    });
    let want = r::conv2d_forward(&s, &to64(&x), &to64(&w), None);
    assert_close("wide conv forward", &read(&yb), &want, 1e-3, 1e-4);
    let (dx, _, _) = r::conv2d_backward(&s, &to64(&x), &to64(&w), &to64(&dy));
    assert_close("wide conv dX", &read(&dxb), &dx, 1e-3, 1e-4);
}

/// Where the adapter cuts loops short (lavapipe), a forward or dX over so many channels that its
/// sum would pass the limit is refused with an error naming it; elsewhere it runs.
#[test]
fn convolutions_past_the_loop_limit_are_refused_where_loops_are_cut() {
    let s = ConvShape {
        batch: 1,
        c_in: 8000,
        c_out: 2,
        height: 2,
        width: 3,
        k: 3,
        stride: 1,
        w_gain: 0.01,
        b_gain: 1.0,
    };
    let (x, w, y) = (zeros(s.x_len()), zeros(s.w_len()), zeros(s.y_len()));
    let t = ConvShape {
        c_in: 2,
        c_out: 8000,
        ..s
    };
    let (tx, tw, ty) = (zeros(t.x_len()), zeros(t.w_len()), zeros(t.y_len()));
    let mut rec = inrgan::gpu::Recorder::new(ctx(), "conv past the loop limit");
    let fwd = k::conv2d_forward(&mut rec, &s, &x, &w, None, &y);
    let dx = k::conv2d_backward_input(&mut rec, &t, &ty, &tw, &tx, false);
    if ctx().loop_limit().is_some() {
        for (what, r) in [("conv2d_forward", fwd), ("conv2d_backward_input", dx)] {
            let e = r
                .expect_err("a sum past the loop limit must be refused")
                .to_string();
            assert!(e.contains(what) && e.contains("loop"), "{e}");
        }
    } else {
        fwd.unwrap();
        dx.unwrap();
    }
}

/// Where the adapter cuts loops short (lavapipe), a weight gradient whose sum would pass the
/// limit is refused with an error naming it, not computed wrong; elsewhere it runs.
#[test]
fn conv_weight_gradient_past_the_loop_limit_is_refused_where_loops_are_cut() {
    let s = ConvShape {
        batch: 80,
        c_in: 1,
        c_out: 1,
        height: 64,
        width: 64,
        k: 3,
        stride: 1,
        w_gain: 1.0,
        b_gain: 1.0,
    };
    let (x, dy, dw) = (zeros(s.x_len()), zeros(s.y_len()), zeros(s.w_len()));
    let mut rec = inrgan::gpu::Recorder::new(ctx(), "conv dW past the limit");
    let r = k::conv2d_backward_weight(&mut rec, &s, &dy, &x, &dw, false);
    match ctx().loop_limit() {
        Some(_) => {
            let e = r.unwrap_err().to_string();
            assert!(e.contains("loop iterations"), "{e}");
        }
        None => r.unwrap(),
    }
}
