use inrgan::gpu::GpuBuffer;
use inrgan::kernels::reduce as k;
use inrgan::reference::reduce as r;

use crate::common::*;

#[test]
fn sum_axes_matches_reference() {
    let mut g = rng(10);
    for &(a, m, i) in &[
        (1, 1, 1),
        (1, 5, 1),
        (3, 7, 5),
        (4, 3, 129),
        (1, 2, 1000),
        (70, 9, 1),
    ] {
        let x = g.normal_vec(a * m * i);
        let yb = zeros(m);
        run("sum_axes", |rec| {
            k::sum_axes(rec, &up(&x), &yb, a, m, i, 0.5, false).unwrap()
        });
        let want = r::sum_axes(&to64(&x), a, m, i, 0.5);
        assert_close(
            &format!("sum_axes {a}x{m}x{i}"),
            &read(&yb),
            &want,
            1e-4,
            1e-5,
        );
        // accumulate adds to what is there
        run("sum_axes acc", |rec| {
            k::sum_axes(rec, &up(&x), &yb, a, m, i, 1.0, true).unwrap()
        });
        let want2: Vec<f64> = want.iter().map(|v| v * 3.0).collect();
        assert_close(
            &format!("sum_axes acc {a}x{m}x{i}"),
            &read(&yb),
            &want2,
            2e-4,
            1e-5,
        );
    }
}

#[test]
fn sum_axes_is_deterministic() {
    let mut g = rng(11);
    let x = g.normal_vec(5 * 3 * 777);
    let xb = up(&x);
    let mut outs = Vec::new();
    for _ in 0..3 {
        let yb = zeros(3);
        run("det", |rec| {
            k::sum_axes(rec, &xb, &yb, 5, 3, 777, 1.0, false).unwrap()
        });
        outs.push(read(&yb));
    }
    assert_eq!(outs[0], outs[1]);
    assert_eq!(outs[1], outs[2]);
}

#[test]
fn row_norm_matches_reference() {
    let mut g = rng(12);
    for &(rows, cols) in &[(1, 1), (3, 7), (5, 130), (66, 2)] {
        let x = g.normal_vec(rows * cols);
        let yb = zeros(rows);
        run("row_norm", |rec| {
            k::row_norm(rec, &up(&x), &yb, rows, cols).unwrap()
        });
        let want = r::row_norm(&to64(&x), rows, cols);
        assert_close(
            &format!("row_norm {rows}x{cols}"),
            &read(&yb),
            &want,
            1e-5,
            1e-5,
        );
    }
}

#[test]
fn softplus_forward_backward() {
    let mut g = rng(13);
    for &n in &[1usize, 7, 65, 1000] {
        let mut x = g.normal_vec(n);
        x.iter_mut().for_each(|v| *v *= 6.0); // reach the saturated ends
        let dy = g.normal_vec(n);
        for sign in [1.0f32, -1.0] {
            let (xb, yb) = (up(&x), zeros(n));
            run("softplus", |rec| {
                k::softplus_forward(rec, &xb, &yb, n, sign).unwrap()
            });
            let want = r::softplus_forward(&to64(&x), sign as f64);
            assert_close(
                &format!("softplus n={n} s={sign}"),
                &read(&yb),
                &want,
                1e-5,
                1e-5,
            );
            let dyb = up(&dy);
            run("softplus bwd", |rec| {
                k::softplus_backward(rec, &xb, &dyb, n, sign).unwrap()
            });
            let (x64, dy64) = (to64(&x), to64(&dy));
            let want = r::softplus_backward(&x64, &dy64, sign as f64);
            let got = read(&dyb);
            assert_close(&format!("softplus bwd n={n}"), &got, &want, 1e-5, 1e-5);
            let loss = |v: &[f64]| dot(&dy64, &r::softplus_forward(v, sign as f64));
            check_fd(
                "softplus bwd",
                &got,
                loss,
                &x64,
                50,
                1e-4,
                1e-4,
                1e-3,
                &mut g,
            );
        }
    }
}

#[test]
fn axpby_matches_reference() {
    let mut g = rng(14);
    let n = 131;
    let x = g.normal_vec(n);
    let y = g.normal_vec(n);
    let yb = up(&y);
    run("axpby", |rec| {
        k::axpby(rec, 0.5, &up(&x), -2.0, &yb, n).unwrap()
    });
    let mut want = to64(&y);
    r::axpby(0.5, &to64(&x), -2.0, &mut want);
    assert_close("axpby", &read(&yb), &want, 1e-6, 1e-6);
}

#[test]
fn count_nonfinite_counts_nan_and_inf() {
    let mut x = vec![1.0f32; 300];
    x[0] = f32::NAN;
    x[17] = f32::INFINITY;
    x[299] = f32::NEG_INFINITY;
    x[150] = f32::MAX; // finite
    let cb = GpuBuffer::<u32>::zeros(ctx(), 1, "count").unwrap();
    run("nonfinite", |rec| {
        k::count_nonfinite(rec, &up(&x), 300, &cb).unwrap()
    });
    assert_eq!(cb.read(ctx()).unwrap(), vec![r::count_nonfinite(&x)]);
    assert_eq!(r::count_nonfinite(&x), 3);
}
