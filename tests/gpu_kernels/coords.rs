use inrgan::kernels::coords as k;
use inrgan::reference::coords::{self as r, CoordsShape};

use crate::common::*;

/// (width, height) of the test grids: odd, not multiples of the workgroup, 1x1 included.
const GRIDS: &[(usize, usize)] = &[(1, 1), (3, 5), (17, 9), (70, 3)];

/// Coordinates for a grid: uniform in [-1, 1] with one coordinate per axis pushed to ±8.
fn coords(w: usize, h: usize, g: &mut inrgan::rng::Rng) -> (Vec<f32>, Vec<f32>) {
    let mut xs = g.uniform_vec(w, -1.0, 1.0);
    let mut ys = g.uniform_vec(h, -1.0, 1.0);
    xs[w - 1] = 8.0;
    ys[0] = -8.0;
    (xs, ys)
}

/// Largest |phase| over the grid: f32 phases carry an error of about ulp(phase).
fn max_phase(xs: &[f32], ys: &[f32], f: &[f32]) -> f64 {
    let mx = |v: &[f32]| v.iter().fold(0.0f64, |a, &b| a.max((b as f64).abs()));
    f.chunks(2)
        .map(|p| (p[0] as f64).abs() * mx(xs) + (p[1] as f64).abs() * mx(ys))
        .fold(0.0, f64::max)
}

fn gpu_forward(s: &CoordsShape, xs: &[f32], ys: &[f32], f: &[f32]) -> Vec<f32> {
    let eb = zeros(s.channels() * s.pixels());
    run("coords fwd", |rec| {
        k::coords_forward(rec, s, &up(xs), &up(ys), &up(f), &eb).unwrap()
    });
    read(&eb)
}

// Tolerance: 2e-6 for sin/cos themselves plus 4 ulp of the largest phase.
#[test]
fn coords_forward_matches_reference() {
    let mut g = rng(201);
    for &(w, h) in GRIDS {
        for with_cos in [false, true] {
            for n_freq in [1, 5] {
                let s = CoordsShape {
                    width: w,
                    height: h,
                    n_freq,
                    with_cos,
                };
                let (xs, ys) = coords(w, h, &mut g);
                let f: Vec<f32> = g.normal_vec(2 * n_freq).iter().map(|v| v * 3.0).collect();
                let got = gpu_forward(&s, &xs, &ys, &f);
                let want = r::coords_forward(&s, &to64(&xs), &to64(&ys), &to64(&f));
                let atol = 2e-6 + 4.0 * f32::EPSILON as f64 * max_phase(&xs, &ys, &f);
                assert_close(&format!("coords fwd {s:?}"), &got, &want, atol, 0.0);
            }
        }
    }
}

#[test]
fn coords_forward_log_basis_on_training_grid() {
    // The official configuration at 32²: log basis with diagonals, sin and cos.
    let (xs, ys) = r::training_grid(32);
    let basis = r::log_basis(32, true);
    let f = basis.as_flattened().to_vec();
    let s = CoordsShape {
        width: 32,
        height: 32,
        n_freq: basis.len(),
        with_cos: true,
    };
    assert_eq!(s.channels(), 40);
    let got = gpu_forward(&s, &xs, &ys, &f);
    let want = r::coords_forward(&s, &to64(&xs), &to64(&ys), &to64(&f));
    let atol = 2e-6 + 4.0 * f32::EPSILON as f64 * max_phase(&xs, &ys, &f);
    assert_close("coords log basis 32", &got, &want, atol, 0.0);
}

#[test]
fn coords_backward_matches_reference_and_finite_differences() {
    let mut g = rng(202);
    for &(w, h) in GRIDS {
        for with_cos in [false, true] {
            let s = CoordsShape {
                width: w,
                height: h,
                n_freq: 3,
                with_cos,
            };
            let (xs, ys) = coords(w, h, &mut g);
            let f: Vec<f32> = g.normal_vec(6).iter().map(|v| v * 2.0).collect();
            let de = g.normal_vec(s.channels() * s.pixels());
            let dfb = zeros(6);
            run("coords bwd", |rec| {
                k::coords_backward(rec, &s, &up(&xs), &up(&ys), &up(&f), &up(&de), &dfb, false)
                    .unwrap()
            });
            let got = read(&dfb);
            let (x64, y64, f64_, de64) = (to64(&xs), to64(&ys), to64(&f), to64(&de));
            let want = r::coords_backward(&s, &x64, &y64, &f64_, &de64);
            // Sums of up to 210 terms of size up to 8 with phase errors ~ ulp(50).
            let atol = 1e-4 * (s.pixels() as f64).sqrt() * 8.0;
            let tag = format!("{s:?}");
            assert_close(&format!("coords dfreqs {tag}"), &got, &want, atol, 1e-4);
            let loss = |v: &[f64]| dot(&de64, &r::coords_forward(&s, &x64, &y64, v));
            check_fd(
                &format!("coords dfreqs {tag}"),
                &got,
                loss,
                &f64_,
                6,
                1e-5,
                atol,
                1e-4,
                &mut g,
            );
            // the reference backward against FD, tightly
            let fd = fd_grad(loss, &f64_, &[0, 1, 2, 3, 4, 5], 1e-6);
            for (a, b) in want.iter().zip(&fd) {
                assert!(
                    (a - b).abs() < 1e-6 * (1.0 + b.abs()),
                    "{tag}: {a} vs FD {b}"
                );
            }
        }
    }
}

#[test]
fn coords_backward_accumulates() {
    let mut g = rng(203);
    let s = CoordsShape {
        width: 17,
        height: 9,
        n_freq: 4,
        with_cos: true,
    };
    let (xs, ys) = coords(17, 9, &mut g);
    let f = g.normal_vec(8);
    let de = g.normal_vec(s.channels() * s.pixels());
    let prior = g.normal_vec(8);
    let dfb = up(&prior);
    run("coords bwd acc", |rec| {
        k::coords_backward(rec, &s, &up(&xs), &up(&ys), &up(&f), &up(&de), &dfb, true).unwrap()
    });
    let d = r::coords_backward(&s, &to64(&xs), &to64(&ys), &to64(&f), &to64(&de));
    let want: Vec<f64> = d.iter().zip(&prior).map(|(a, &b)| a + b as f64).collect();
    assert_close("coords accumulated dfreqs", &read(&dfb), &want, 2e-3, 1e-4);
}

#[test]
fn coords_rejects_short_buffers() {
    let s = CoordsShape {
        width: 3,
        height: 5,
        n_freq: 2,
        with_cos: true,
    };
    let mut rec = inrgan::gpu::Recorder::new(ctx(), "bad");
    let err =
        k::coords_forward(&mut rec, &s, &zeros(3), &zeros(5), &zeros(4), &zeros(59)).unwrap_err();
    assert!(err.to_string().contains("coords emb"), "{err}");
}

#[test]
fn training_grid_follows_the_official_convention() {
    let (xs, ys) = r::training_grid(4);
    assert_eq!(xs, vec![-1.0, -0.5, 0.0, 0.5]);
    assert_eq!(ys, vec![0.5, 0.0, -0.5, -1.0]);
    for res in [1, 3, 32, 64, 255] {
        let (xs, ys) = r::training_grid(res);
        assert_eq!((xs.len(), ys.len()), (res, res));
        assert_eq!(xs[0], -1.0);
        assert_eq!(ys[res - 1], -1.0);
        let (wx, wy) = r::window_grid(-1.0, 1.0, -1.0, 1.0, res, res);
        assert_eq!(xs, wx, "window [-1,1)² at {res} is the training grid");
        assert_eq!(ys, wy, "window [-1,1)² at {res} is the training grid");
    }
}

#[test]
fn window_grid_places_any_window() {
    // a 2x-denser grid over the right half, shifted up
    let (xs, ys) = r::window_grid(0.0, 1.0, 0.5, 2.5, 4, 8);
    assert_eq!(xs, vec![0.0, 0.25, 0.5, 0.75]);
    assert_eq!(ys, vec![2.25, 2.0, 1.75, 1.5, 1.25, 1.0, 0.75, 0.5]);
    // non-square: 3 wide, 5 high
    let (xs, ys) = r::window_grid(-8.0, 8.0, -2.0, 3.0, 3, 5);
    let want_x: Vec<f32> = (0..3)
        .map(|c| (-8.0 + 16.0 * c as f64 / 3.0) as f32)
        .collect();
    assert_eq!(xs, want_x);
    assert_eq!(ys, vec![2.0, 1.0, 0.0, -1.0, -2.0]);
}

#[test]
fn log_basis_matches_the_official_order() {
    use std::f64::consts::PI;
    assert_eq!(r::log_basis_len(1), 0);
    assert_eq!(r::log_basis_len(2), 1);
    assert_eq!(r::log_basis_len(3), 2);
    assert_eq!(r::log_basis_len(32), 5);
    assert_eq!(r::log_basis_len(33), 6);
    assert!(r::log_basis(1, true).is_empty());
    let b = r::log_basis(32, true);
    assert_eq!(b.len(), 20);
    let q = |v: f64| v as f32;
    for k in 0..5 {
        let p = 2f64.powi(k as i32);
        assert_eq!(b[k], [0.0, q(PI / 2.0 * p)], "horizontal {k}");
        assert_eq!(b[5 + k], [q(PI / 2.0 * p), 0.0], "vertical {k}");
        assert_eq!(
            b[10 + k],
            [q(-PI / 4.0 * p), q(PI / 4.0 * p)],
            "main diagonal {k}"
        );
        assert_eq!(
            b[15 + k],
            [q(PI / 4.0 * p), q(PI / 4.0 * p)],
            "anti-diagonal {k}"
        );
    }
    let b2 = r::log_basis(64, false);
    assert_eq!(b2.len(), 12);
    assert_eq!(b2[..6], r::log_basis(64, true)[..6]);
    // lowest frequency: period 4 coordinate units; highest: 4 pixels (8 / R units)
    assert!((2.0 * PI / b2[0][1] as f64 - 4.0).abs() < 1e-6);
    assert!((2.0 * PI / b2[5][1] as f64 - 8.0 / 64.0).abs() < 1e-7);
}
