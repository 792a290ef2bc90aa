use inrgan::kernels::fmm as k;
use inrgan::reference::fmm::{self as r, FmmShape};

use crate::common::*;

fn shapes() -> Vec<FmmShape> {
    let s = |batch, c_out, c_in, rank| FmmShape {
        batch,
        c_out,
        c_in,
        rank,
        demod: true,
    };
    vec![
        s(1, 1, 1, 1),
        s(2, 5, 7, 3),
        s(3, 17, 70, 10),
        s(2, 65, 3, 2),
        s(2, 3, 130, 4),
    ]
}

fn with_demod(s: FmmShape, demod: bool) -> FmmShape {
    FmmShape { demod, ..s }
}

/// Inputs: ws ~ N(0, 1), styles ~ N(0, 1) * `style_scale`.
fn inputs(s: &FmmShape, style_scale: f32, g: &mut inrgan::rng::Rng) -> (Vec<f32>, Vec<f32>) {
    let ws = g.normal_vec(s.c_out * s.c_in);
    let st = g
        .normal_vec(s.batch * s.style_dim())
        .into_iter()
        .map(|v| v * style_scale)
        .collect();
    (ws, st)
}

/// Runs the GPU forward: (W, norms).
fn gpu_forward(s: &FmmShape, ws: &[f32], st: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (wb, nb) = (zeros(s.weight_len()), zeros(s.batch * s.c_out));
    run("fmm fwd", |rec| {
        k::fmm_forward(rec, s, &up(ws), &up(st), &wb, &nb).unwrap()
    });
    (read(&wb), read(&nb))
}

/// Runs the GPU backward with `dws` starting at `dws0`: (dws, dstyles).
fn gpu_backward(
    s: &FmmShape,
    ws: &[f32],
    st: &[f32],
    dw: &[f32],
    dws0: &[f32],
    accumulate: bool,
) -> (Vec<f32>, Vec<f32>) {
    let (wsb, stb) = (up(ws), up(st));
    let (wb, nb) = (zeros(s.weight_len()), zeros(s.batch * s.c_out));
    let (scratch, dwsb, dstb) = (
        zeros(s.weight_len()),
        up(dws0),
        zeros(s.batch * s.style_dim()),
    );
    run("fmm bwd", |rec| {
        k::fmm_forward(rec, s, &wsb, &stb, &wb, &nb).unwrap();
        k::fmm_backward(
            rec,
            s,
            &wsb,
            &stb,
            &nb,
            &up(dw),
            &scratch,
            &dwsb,
            &dstb,
            accumulate,
        )
        .unwrap();
    });
    (read(&dwsb), read(&dstb))
}

// Tolerances: f32 GPU against the f64 reference; W rows have unit norm with demod (entries
// <= 1) and O(1..10) entries without; sums of up to 130 terms.
#[test]
fn fmm_forward_matches_reference() {
    let mut g = rng(101);
    for s0 in shapes() {
        for demod in [true, false] {
            let s = with_demod(s0, demod);
            let (ws, st) = inputs(&s, 1.0, &mut g);
            let (w, n) = gpu_forward(&s, &ws, &st);
            let (want_w, want_n) = r::fmm_forward(&s, &to64(&ws), &to64(&st));
            assert_close(&format!("fmm W {s:?}"), &w, &want_w, 2e-5, 1e-4);
            assert_close(&format!("fmm norms {s:?}"), &n, &want_n, 1e-5, 1e-4);
        }
    }
}

#[test]
fn fmm_demod_rows_have_unit_norm() {
    let mut g = rng(102);
    let s = FmmShape {
        batch: 3,
        c_out: 9,
        c_in: 33,
        rank: 5,
        demod: true,
    };
    let (ws, st) = inputs(&s, 1.0, &mut g);
    let (w, _) = gpu_forward(&s, &ws, &st);
    for row in w.chunks(s.c_in) {
        let n: f64 = row.iter().map(|&v| (v as f64).powi(2)).sum::<f64>().sqrt();
        assert!((n - 1.0).abs() < 1e-5, "row norm {n}");
    }
}

#[test]
fn fmm_reference_backward_matches_finite_differences() {
    let mut g = rng(103);
    for s0 in shapes().into_iter().take(3) {
        for demod in [true, false] {
            let s = with_demod(s0, demod);
            let (ws, st) = inputs(&s, 1.0, &mut g);
            let (ws64, st64) = (to64(&ws), to64(&st));
            let dw = to64(&g.normal_vec(s.weight_len()));
            let (dws, dst) = r::fmm_backward(&s, &ws64, &st64, &dw);
            let fd_ws = fd_grad(
                |v| dot(&dw, &r::fmm_forward(&s, v, &st64).0),
                &ws64,
                &(0..ws64.len()).collect::<Vec<_>>(),
                1e-6,
            );
            let fd_st = fd_grad(
                |v| dot(&dw, &r::fmm_forward(&s, &ws64, v).0),
                &st64,
                &(0..st64.len()).collect::<Vec<_>>(),
                1e-6,
            );
            for (a, b) in dws.iter().zip(&fd_ws).chain(dst.iter().zip(&fd_st)) {
                assert!(
                    (a - b).abs() <= 1e-6 + 1e-6 * b.abs(),
                    "{s:?}: {a} vs FD {b}"
                );
            }
        }
    }
}

#[test]
fn fmm_backward_matches_reference_and_finite_differences() {
    let mut g = rng(104);
    for s0 in shapes() {
        for demod in [true, false] {
            let s = with_demod(s0, demod);
            let (ws, st) = inputs(&s, 1.0, &mut g);
            let dw = g.normal_vec(s.weight_len());
            let (gdws, gdst) = gpu_backward(&s, &ws, &st, &dw, &vec![0.0; ws.len()], false);
            let (ws64, st64, dw64) = (to64(&ws), to64(&st), to64(&dw));
            let (dws, dst) = r::fmm_backward(&s, &ws64, &st64, &dw64);
            let tag = format!("{s:?}");
            // dws sums over the batch; without demod its entries are O(sqrt(c_in * rank)).
            assert_close(&format!("fmm dws {tag}"), &gdws, &dws, 1e-4, 2e-4);
            assert_close(&format!("fmm dstyles {tag}"), &gdst, &dst, 1e-4, 2e-4);
            let loss_ws = |v: &[f64]| dot(&dw64, &r::fmm_forward(&s, v, &st64).0);
            let loss_st = |v: &[f64]| dot(&dw64, &r::fmm_forward(&s, &ws64, v).0);
            check_fd(
                &format!("fmm dws {tag}"),
                &gdws,
                loss_ws,
                &ws64,
                30,
                1e-4,
                2e-4,
                1e-3,
                &mut g,
            );
            check_fd(
                &format!("fmm dstyles {tag}"),
                &gdst,
                loss_st,
                &st64,
                30,
                1e-4,
                2e-4,
                1e-3,
                &mut g,
            );
        }
    }
}

#[test]
fn fmm_backward_accumulates_dws() {
    let mut g = rng(105);
    let s = FmmShape {
        batch: 2,
        c_out: 5,
        c_in: 7,
        rank: 3,
        demod: true,
    };
    let (ws, st) = inputs(&s, 1.0, &mut g);
    let dw = g.normal_vec(s.weight_len());
    let prior = g.normal_vec(ws.len());
    let (gdws, _) = gpu_backward(&s, &ws, &st, &dw, &prior, true);
    let (dws, _) = r::fmm_backward(&s, &to64(&ws), &to64(&st), &to64(&dw));
    let want: Vec<f64> = dws.iter().zip(&prior).map(|(a, &b)| a + b as f64).collect();
    assert_close("fmm accumulated dws", &gdws, &want, 1e-4, 2e-4);
}

#[test]
fn fmm_large_modulation_stays_finite() {
    let mut g = rng(106);
    let s = FmmShape {
        batch: 2,
        c_out: 5,
        c_in: 70,
        rank: 10,
        demod: true,
    };
    // styles ~ 1e12: M ~ 1e24 and M' squared would overflow f32; the scaled norm and the
    // backward written through W keep everything finite.
    for scale in [30.0f32, 1e12] {
        let (ws, st) = inputs(&s, scale, &mut g);
        let (w, n) = gpu_forward(&s, &ws, &st);
        let (want_w, want_n) = r::fmm_forward(&s, &to64(&ws), &to64(&st));
        assert_close(&format!("large W x{scale}"), &w, &want_w, 1e-5, 1e-3);
        assert_close(&format!("large norms x{scale}"), &n, &want_n, 0.0, 1e-4);
        let dw = g.normal_vec(s.weight_len());
        let (gdws, gdst) = gpu_backward(&s, &ws, &st, &dw, &vec![0.0; ws.len()], false);
        let (dws, dst) = r::fmm_backward(&s, &to64(&ws), &to64(&st), &to64(&dw));
        // Relative to the largest entry: cancellation in dM' is relative to |dW|/n.
        let m = |v: &[f64]| v.iter().fold(0.0f64, |a, b| a.max(b.abs()));
        assert_close(
            &format!("large dws x{scale}"),
            &gdws,
            &dws,
            1e-3 * m(&dws),
            1e-3,
        );
        assert_close(
            &format!("large dstyles x{scale}"),
            &gdst,
            &dst,
            1e-3 * m(&dst),
            1e-3,
        );
    }
}

#[test]
fn fmm_rejects_bad_shapes() {
    let s = FmmShape {
        batch: 2,
        c_out: 3,
        c_in: 4,
        rank: 2,
        demod: true,
    };
    let mut rec = inrgan::gpu::Recorder::new(ctx(), "bad");
    let err = k::fmm_forward(
        &mut rec,
        &s,
        &zeros(12),
        &zeros(2 * 14 - 1),
        &zeros(24),
        &zeros(6),
    )
    .unwrap_err();
    assert!(err.to_string().contains("fmm styles"), "{err}");
    let s0 = FmmShape { rank: 0, ..s };
    let err =
        k::fmm_forward(&mut rec, &s0, &zeros(12), &zeros(1), &zeros(24), &zeros(6)).unwrap_err();
    assert!(err.to_string().contains("rank"), "{err}");
}
