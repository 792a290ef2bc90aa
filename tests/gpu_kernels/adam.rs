use inrgan::kernels::adam::{self as k, AdamConfig};
use inrgan::reference::adam as r;

use crate::common::*;

// Tolerances: per-element f32 arithmetic against the f64 reference run from the same f32 start,
// over several steps: relative 1e-5, absolute 1e-6 (parameters move by ~lr = 2e-3 per step).
const ATOL: f64 = 1e-6;
const RTOL: f64 = 1e-5;

fn configs() -> Vec<AdamConfig> {
    vec![
        AdamConfig::stylegan2(0.002),
        AdamConfig {
            lr: 0.01,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            grad_scale: 0.25,
            nan_to_num: false,
        },
    ]
}

#[test]
fn adam_matches_reference_over_several_steps() {
    let mut g = rng(50);
    for cfg in configs() {
        for &n in &[1usize, 7, 1000] {
            let p0 = g.normal_vec(n);
            let (pb, mb, vb) = (up(&p0), zeros(n), zeros(n));
            let (mut p, mut m, mut v) = (to64(&p0), vec![0.0; n], vec![0.0; n]);
            for t in 1..=5u64 {
                let grad = g.normal_vec(n);
                run("adam", |rec| {
                    k::adam_step(rec, &cfg, t, &pb, &up(&grad), &mb, &vb, n).unwrap()
                });
                r::adam_step(&cfg, t, &mut p, &to64(&grad), &mut m, &mut v);
                let tag = format!("adam n={n} t={t} {cfg:?}");
                assert_close(&format!("param {tag}"), &read(&pb), &p, ATOL, RTOL);
                assert_close(&format!("m {tag}"), &read(&mb), &m, ATOL, RTOL);
                assert_close(&format!("v {tag}"), &read(&vb), &v, ATOL, RTOL);
            }
        }
    }
}

#[test]
fn adam_nan_to_num_sanitises_gradients() {
    let cfg = AdamConfig::stylegan2(0.002);
    let n = 7;
    let grad = vec![
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        3e4,
        -0.5,
        0.0,
        1.0,
    ];
    let p0 = vec![0.1f32, -0.2, 0.3, 0.4, 0.5, 0.6, 0.7];
    let (pb, mb, vb) = (up(&p0), zeros(n), zeros(n));
    let (mut p, mut m, mut v) = (to64(&p0), vec![0.0; n], vec![0.0; n]);
    for t in 1..=3u64 {
        run("adam nan", |rec| {
            k::adam_step(rec, &cfg, t, &pb, &up(&grad), &mb, &vb, n).unwrap()
        });
        r::adam_step(&cfg, t, &mut p, &to64(&grad), &mut m, &mut v);
        assert_close(&format!("param t={t}"), &read(&pb), &p, ATOL, RTOL);
        assert_close(&format!("m t={t}"), &read(&mb), &m, ATOL, RTOL);
        assert_close(&format!("v t={t}"), &read(&vb), &v, ATOL, RTOL);
    }
    // beta1 = 0: m is the sanitised gradient itself
    assert_eq!(read(&mb), vec![0.0, 1e5, -1e5, 3e4, -0.5, 0.0, 1.0]);
    // without nan_to_num the NaN reaches the parameter
    let raw = AdamConfig {
        nan_to_num: false,
        ..cfg
    };
    let pb = up(&p0);
    run("adam raw", |rec| {
        k::adam_step(rec, &raw, 1, &pb, &up(&grad), &zeros(n), &zeros(n), n).unwrap()
    });
    assert!(read(&pb)[0].is_nan());
}

#[test]
fn adam_rejects_step_zero_and_short_buffers() {
    let cfg = AdamConfig::stylegan2(0.002);
    let mut rec = inrgan::gpu::Recorder::new(ctx(), "bad adam");
    let (a, b) = (zeros(5), zeros(4));
    assert!(k::adam_step(&mut rec, &cfg, 0, &a, &a, &a, &a, 5).is_err());
    let err = k::adam_step(&mut rec, &cfg, 1, &a, &a, &a, &b, 5).unwrap_err();
    assert!(err.to_string().contains("adam_step v"), "{err}");
}

#[test]
fn ema_matches_reference() {
    let mut g = rng(51);
    for &n in &[1usize, 7, 1000] {
        for beta in [0.999, 0.3, 0.0] {
            let p = g.normal_vec(n);
            let e0 = g.normal_vec(n);
            let eb = up(&e0);
            let mut e = to64(&e0);
            for _ in 0..3 {
                run("ema", |rec| {
                    k::ema_update(rec, &up(&p), &eb, beta, n).unwrap()
                });
                r::ema_update(&to64(&p), &mut e, beta);
            }
            assert_close(
                &format!("ema n={n} beta={beta}"),
                &read(&eb),
                &e,
                1e-6,
                1e-6,
            );
        }
    }
}
