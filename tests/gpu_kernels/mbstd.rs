use inrgan::gpu::{GpuError, Recorder};
use inrgan::kernels::mbstd as k;
use inrgan::reference::mbstd::{self as r, MbstdShape};
use inrgan::rng::Rng;

use crate::common::*;

// Tolerances: f32 GPU against the f64 reference. The statistics are means of O(1) stds, dX adds a
// small correction to dY; both are computed in a few dozen f32 operations.
const ATOL: f64 = 2e-5;
const RTOL: f64 = 1e-4;
// Finite differences of the f64 forward; inputs keep every group variance >= 0.01 (std >= 0.1),
// well away from the kink of sqrt at zero variance, so h = 1e-3 is accurate to ~1e-7.
const FD_H: f64 = 1e-3;
const FD_ATOL: f64 = 1e-4;
const FD_RTOL: f64 = 1e-3;

fn shapes() -> Vec<MbstdShape> {
    let mut v = Vec::new();
    for (batch, group) in [(2, 2), (4, 2), (4, 4), (6, 2), (6, 3)] {
        for (channels, num_channels) in [(1, 1), (3, 1), (4, 1), (4, 2)] {
            for height in [1, 3, 5] {
                for width in [1, 3, 5] {
                    v.push(MbstdShape {
                        batch,
                        channels,
                        height,
                        width,
                        group,
                        num_channels,
                    });
                }
            }
        }
    }
    // more than 64 pixels per statistic and per workgroup, F = 3, and G = 1 (zero variance)
    let s = |batch, channels, height, width, group, num_channels| MbstdShape {
        batch,
        channels,
        height,
        width,
        group,
        num_channels,
    };
    v.push(s(8, 6, 9, 7, 4, 2));
    v.push(s(3, 5, 13, 10, 3, 1));
    v.push(s(6, 3, 3, 5, 2, 3));
    v.push(s(3, 2, 3, 3, 1, 1));
    v
}

/// Random `x` whose group variance is at least 0.01 everywhere (when `group > 1`).
fn input(s: &MbstdShape, g: &mut Rng) -> Vec<f32> {
    let mut x = g.normal_vec(s.x_len());
    if s.group < 2 {
        return x;
    }
    let (mm, p) = (s.groups(), s.pixels());
    let stride = mm * s.channels * p;
    for m in 0..mm {
        for ch in 0..s.channels {
            for q in 0..p {
                let base = (m * s.channels + ch) * p + q;
                loop {
                    let vals: Vec<f64> = (0..s.group)
                        .map(|gg| x[base + gg * stride] as f64)
                        .collect();
                    let mu = vals.iter().sum::<f64>() / s.group as f64;
                    let var =
                        vals.iter().map(|v| (v - mu) * (v - mu)).sum::<f64>() / s.group as f64;
                    if var >= 0.01 {
                        break;
                    }
                    for gg in 0..s.group {
                        x[base + gg * stride] = g.normal() as f32;
                    }
                }
            }
        }
    }
    x
}

#[test]
fn mbstd_forward_matches_reference() {
    let mut g = rng(21);
    for s in shapes() {
        let x = input(&s, &mut g);
        let (stat, y) = (zeros(s.stat_len()), zeros(s.y_len()));
        run("mbstd fwd", |rec| {
            k::mbstd_forward(rec, &s, &up(&x), &stat, &y).unwrap()
        });
        let x64 = to64(&x);
        let tag = format!("{s:?}");
        let want_stat = r::mbstd_stat(&s, &x64);
        assert_close(
            &format!("mbstd stat {tag}"),
            &read(&stat),
            &want_stat,
            ATOL,
            RTOL,
        );
        let want = r::mbstd_forward(&s, &x64);
        assert_close(&format!("mbstd fwd {tag}"), &read(&y), &want, ATOL, RTOL);
    }
}

#[test]
fn mbstd_backward_matches_reference_and_finite_differences() {
    let mut g = rng(22);
    for s in shapes() {
        let x = input(&s, &mut g);
        let dy = g.normal_vec(s.y_len());
        let (dstat, dx) = (zeros(s.stat_len()), zeros(s.x_len()));
        run("mbstd bwd", |rec| {
            k::mbstd_backward(rec, &s, &up(&x), &up(&dy), &dstat, &dx).unwrap()
        });
        let (x64, dy64) = (to64(&x), to64(&dy));
        let tag = format!("{s:?}");
        // dstat[m, f] = sum over g and pixels of dY at channel C + f
        let cy = s.channels + s.num_channels;
        let mut want_ds = vec![0.0; s.stat_len()];
        for n in 0..s.batch {
            for f in 0..s.num_channels {
                for q in 0..s.pixels() {
                    want_ds[(n % s.groups()) * s.num_channels + f] +=
                        dy64[(n * cy + s.channels + f) * s.pixels() + q];
                }
            }
        }
        assert_close(
            &format!("mbstd dstat {tag}"),
            &read(&dstat),
            &want_ds,
            1e-4,
            RTOL,
        );
        let want = r::mbstd_backward(&s, &x64, &dy64);
        let got = read(&dx);
        assert_close(&format!("mbstd dX {tag}"), &got, &want, 1e-4, RTOL);
        let loss = |v: &[f64]| dot(&dy64, &r::mbstd_forward(&s, v));
        check_fd(
            &format!("mbstd dX {tag}"),
            &got,
            loss,
            &x64,
            30,
            FD_H,
            FD_ATOL,
            FD_RTOL,
            &mut g,
        );
    }
}

#[test]
fn mbstd_reference_backward_matches_finite_differences() {
    let mut g = rng(23);
    for s in shapes().into_iter().step_by(5) {
        let x = to64(&input(&s, &mut g));
        let dy = to64(&g.normal_vec(s.y_len()));
        let dx = r::mbstd_backward(&s, &x, &dy);
        let loss = |v: &[f64]| dot(&dy, &r::mbstd_forward(&s, v));
        let idx = subset(x.len(), 40, &mut g);
        let fd = fd_grad(loss, &x, &idx, FD_H);
        let got: Vec<f32> = idx.iter().map(|&i| dx[i] as f32).collect();
        assert_close(&format!("reference mbstd dX {s:?}"), &got, &fd, 1e-5, 1e-4);
    }
}

#[test]
fn mbstd_of_identical_samples_is_sqrt_eps() {
    // Every sample equal: zero variance, so each statistic is sqrt(1e-8) = 1e-4.
    let s = MbstdShape {
        batch: 4,
        channels: 3,
        height: 3,
        width: 5,
        group: 2,
        num_channels: 1,
    };
    let one: Vec<f32> = rng(24).normal_vec(s.channels * s.pixels());
    let x: Vec<f32> = (0..s.batch).flat_map(|_| one.iter().copied()).collect();
    let (stat, y) = (zeros(s.stat_len()), zeros(s.y_len()));
    run("mbstd const", |rec| {
        k::mbstd_forward(rec, &s, &up(&x), &stat, &y).unwrap()
    });
    assert_close("sqrt eps", &read(&stat), &[1e-4, 1e-4], 1e-9, 1e-4);
}

#[test]
fn mbstd_rejects_bad_shapes() {
    let s = MbstdShape {
        batch: 4,
        channels: 4,
        height: 3,
        width: 3,
        group: 2,
        num_channels: 2,
    };
    let (x, st, y) = (zeros(s.x_len()), zeros(s.stat_len()), zeros(s.y_len()));
    let mut rec = Recorder::new(ctx(), "bad mbstd");
    for bad in [
        MbstdShape { group: 3, ..s },
        MbstdShape { group: 0, ..s },
        MbstdShape {
            num_channels: 3,
            ..s
        },
        MbstdShape { height: 0, ..s },
    ] {
        let e = k::mbstd_forward(&mut rec, &bad, &x, &st, &y).unwrap_err();
        assert!(matches!(e, GpuError::Shape(_)), "{e}");
    }
    let short = zeros(s.y_len() - 1);
    let e = k::mbstd_forward(&mut rec, &s, &x, &st, &short).unwrap_err();
    assert!(matches!(e, GpuError::Shape(_)), "{e}");
    let e = k::mbstd_backward(&mut rec, &s, &x, &short, &st, &x).unwrap_err();
    assert!(matches!(e, GpuError::Shape(_)), "{e}");
    let e = k::mbstd_backward(&mut rec, &s, &x, &y, &zeros(1), &x).unwrap_err();
    assert!(matches!(e, GpuError::Shape(_)), "{e}");
    assert!(rec.is_empty());
}

/// The tangents used by the R1 double backward: the references against central differences of
/// the forward and backward, and the kernels against the references.
#[test]
fn mbstd_tangents_match_finite_differences_and_the_kernels() {
    let mut g = rng(90);
    for &(n, gr, c, f, h, w) in &[(4, 2, 3, 1, 3, 3), (6, 3, 4, 2, 1, 5), (4, 4, 8, 1, 4, 4)] {
        let s = r::MbstdShape {
            batch: n,
            channels: c,
            height: h,
            width: w,
            group: gr,
            num_channels: f,
        };
        let x = g.normal_vec(s.x_len());
        let xd = g.normal_vec(s.x_len());
        let dy = g.normal_vec(s.y_len());
        let (x64, xd64, dy64) = (to64(&x), to64(&xd), to64(&dy));
        let eps = 1e-5;
        let shift =
            |k: f64| -> Vec<f64> { x64.iter().zip(&xd64).map(|(a, b)| a + k * b).collect() };
        let fd_fwd: Vec<f64> = r::mbstd_forward(&s, &shift(eps))
            .iter()
            .zip(r::mbstd_forward(&s, &shift(-eps)))
            .map(|(a, b)| (a - b) / (2.0 * eps))
            .collect();
        let jvp = r::mbstd_jvp(&s, &x64, &xd64);
        let jvp32: Vec<f32> = jvp.iter().map(|&v| v as f32).collect();
        assert_close(
            &format!("mbstd_jvp reference {s:?}"),
            &jvp32,
            &fd_fwd,
            1e-6,
            1e-5,
        );
        let fd_bwd: Vec<f64> = r::mbstd_backward(&s, &shift(eps), &dy64)
            .iter()
            .zip(r::mbstd_backward(&s, &shift(-eps), &dy64))
            .map(|(a, b)| (a - b) / (2.0 * eps))
            .collect();
        let bj = r::mbstd_backward_jvp(&s, &x64, &xd64, &dy64);
        let bj32: Vec<f32> = bj.iter().map(|&v| v as f32).collect();
        assert_close(
            &format!("mbstd_backward_jvp reference {s:?}"),
            &bj32,
            &fd_bwd,
            1e-6,
            1e-5,
        );
        // Kernels.
        let (xb, xdb, dyb) = (up(&x), up(&xd), up(&dy));
        let (st, yd, dxd) = (zeros(s.stat_len()), zeros(s.y_len()), zeros(s.x_len()));
        run("mbstd jvp", |rec| {
            k::mbstd_jvp(rec, &s, &xb, &xdb, &st, &yd).unwrap();
        });
        assert_close(
            &format!("mbstd_jvp kernel {s:?}"),
            &read(&yd),
            &jvp,
            1e-5,
            1e-4,
        );
        run("mbstd backward jvp", |rec| {
            k::mbstd_backward_jvp(rec, &s, &xb, &xdb, &dyb, &st, &dxd).unwrap();
        });
        assert_close(
            &format!("mbstd_backward_jvp kernel {s:?}"),
            &read(&dxd),
            &bj,
            1e-5,
            1e-4,
        );
    }
}
