//! The whole discriminator on every backend: GPU and CPU against the f64 reference backend, and
//! the reference backend's gradients against central finite differences, for a random subset of
//! every parameter tensor and of the input images (tiny preset, batch 4).

#[path = "common/mod.rs"]
mod common;

use common::*;
use inrgan::backend::cpu::CpuBackend;
use inrgan::backend::gpu::GpuBackend;
use inrgan::backend::prelude::*;
use inrgan::backend::reference::RefBackend;
use inrgan::model::config::ModelConfig;
use inrgan::model::discriminator::{Discriminator, param_specs};
use inrgan::model::params::ParamSet;

const BATCH: usize = 4;

fn setup() -> (Discriminator, Vec<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let cfg = ModelConfig::preset("tiny").unwrap();
    let d = Discriminator::new(&cfg);
    let mut r = rng(31);
    let mut host: Vec<Vec<f32>> = d.specs().iter().map(|s| s.initial(&mut r)).collect();
    for (s, v) in d.specs().iter().zip(host.iter_mut()) {
        if s.name.ends_with(".bias") {
            v.iter_mut().for_each(|x| *x += 0.1 * r.normal() as f32);
        }
    }
    let res = cfg.resolution;
    let x = r.uniform_vec(BATCH * 3 * res * res, -1.0, 1.0);
    let dlogits = r.normal_vec(BATCH);
    (d, host, x, dlogits)
}

type Outputs = (Vec<f32>, Vec<Vec<f32>>, Vec<f32>);

fn run_model<B: Backend>(
    be: &mut B,
    d: &Discriminator,
    host: &[Vec<f32>],
    x: &[f32],
    dl: &[f32],
) -> Outputs {
    let p = ParamSet::from_host(be, d.specs(), host).unwrap();
    let grads = ParamSet::zeros(be, d.specs()).unwrap();
    let xb = be.upload(x, "x").unwrap();
    let tape = d.forward(be, &p, &xb, BATCH).unwrap();
    let logits = be.read(tape.logits()).unwrap();
    let dlb = be.upload(dl, "dlogits").unwrap();
    let dx = be.zeros(x.len(), "dx").unwrap();
    d.backward(be, &p, &xb, &tape, &dlb, &grads, Some(&dx))
        .unwrap();
    (logits, grads.to_host(be).unwrap(), be.read(&dx).unwrap())
}

fn compare(tag: &str, got: &Outputs, want: &Outputs, d: &Discriminator, tol: f64) {
    assert_close(&format!("{tag} logits"), &got.0, &to64(&want.0), tol, tol);
    let sx = want.2.iter().map(|v| v.abs()).fold(0.0f32, f32::max) as f64;
    assert_close(
        &format!("{tag} dx"),
        &got.2,
        &to64(&want.2),
        tol * sx.max(1e-3),
        tol,
    );
    for (s, (a, b)) in d.specs().iter().zip(got.1.iter().zip(&want.1)) {
        let scale = b.iter().map(|v| v.abs()).fold(0.0f32, f32::max) as f64;
        assert_close(
            &format!("{tag} d{}", s.name),
            a,
            &to64(b),
            tol * scale.max(1e-3),
            tol,
        );
    }
}

#[test]
fn gpu_and_cpu_backends_match_the_reference_backend() {
    let (d, host, x, dl) = setup();
    let want = run_model(&mut RefBackend::new(), &d, &host, &x, &dl);
    let gpu = run_model(&mut GpuBackend::new(ctx()), &d, &host, &x, &dl);
    compare("gpu", &gpu, &want, &d, 2e-3);
    let cpu = run_model(
        &mut CpuBackend::new().expect("cpu backend"),
        &d,
        &host,
        &x,
        &dl,
    );
    compare("cpu", &cpu, &want, &d, 2e-3);
}

#[test]
fn reference_gradients_match_finite_differences() {
    let (d, host, x, dl) = setup();
    let mut be = RefBackend::new();
    let (_, grads, dx) = run_model(&mut be, &d, &host, &x, &dl);
    let p = ParamSet::from_host(&mut be, d.specs(), &host).unwrap();
    let dl64 = to64(&dl);
    let loss = |be: &mut RefBackend, p: &ParamSet<RefBackend>, xv: &[f64]| -> f64 {
        let xb = be.upload_f64(xv, "x").unwrap();
        let tape = d.forward(be, p, &xb, BATCH).unwrap();
        dot(&dl64, &be.read_f64(tape.logits()).unwrap())
    };
    let x64 = to64(&x);
    let r = &mut rng(78);
    let h = 1e-5;
    for &i in &subset(x64.len(), 12, r) {
        let mut a = x64.clone();
        a[i] += h;
        let lp = loss(&mut be, &p, &a);
        a[i] -= 2.0 * h;
        let lm = loss(&mut be, &p, &a);
        let fd = (lp - lm) / (2.0 * h);
        assert_close(
            &format!("dx[{i}] vs finite differences"),
            &[dx[i]],
            &[fd],
            1e-6,
            1e-4,
        );
    }
    let mut checked = 0;
    for (t, s) in d.specs().iter().enumerate() {
        let orig = be.read_f64(&p.bufs[t]).unwrap();
        for &i in &subset(s.len(), 4, r) {
            let mut v = orig.clone();
            v[i] += h;
            be.write_f64(&p.bufs[t], &v).unwrap();
            let lp = loss(&mut be, &p, &x64);
            v[i] -= 2.0 * h;
            be.write_f64(&p.bufs[t], &v).unwrap();
            let lm = loss(&mut be, &p, &x64);
            be.write_f64(&p.bufs[t], &orig).unwrap();
            let fd = (lp - lm) / (2.0 * h);
            assert_close(
                &format!("d{}[{i}] vs finite differences", s.name),
                &[grads[t][i]],
                &[fd],
                1e-6,
                1e-4,
            );
            checked += 1;
        }
    }
    assert!(checked >= 4 * d.specs().len() - 8, "checked {checked}");
}

#[test]
fn names_are_unique_and_shapes_follow_the_config() {
    for (name, _) in inrgan::model::config::PRESETS {
        let cfg = ModelConfig::preset(name).unwrap();
        let specs = param_specs(&cfg);
        let mut names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "{name}: duplicate names");
        let d = Discriminator::new(&cfg);
        let r = cfg.resolution;
        let from = specs
            .iter()
            .find(|s| s.name == format!("d.b{r}.fromrgb.weight"))
            .unwrap();
        assert_eq!(from.shape, vec![cfg.discriminator.channels(r), 3, 1, 1]);
        eprintln!("{name}: D has {} parameters", d.param_count());
    }
}

#[test]
fn a_batch_the_group_does_not_divide_is_an_error() {
    let (d, host, _, _) = setup();
    let mut be = RefBackend::new();
    let p = ParamSet::from_host(&mut be, d.specs(), &host).unwrap();
    let r = d.cfg.resolution;
    let x = be.zeros(3 * 3 * r * r, "x").unwrap();
    let err = d
        .forward(&mut be, &p, &x, 3)
        .err()
        .expect("group 2 does not divide 3");
    assert!(err.to_string().contains("divisible"), "{err}");
}

/// R1 = weight * (gamma / 2) * (1/N) |grad_x sum_n D(x_n)|² in f64 on the reference backend.
fn r1_value(
    be: &mut RefBackend,
    d: &Discriminator,
    p: &ParamSet<RefBackend>,
    x: &[f64],
    gamma: f64,
    weight: f64,
) -> f64 {
    let xb = be.upload_f64(x, "x").unwrap();
    let tape = d.forward(be, p, &xb, BATCH).unwrap();
    let ones = be.upload_f64(&[1.0; BATCH], "ones").unwrap();
    let scratch = ParamSet::zeros(be, d.specs()).unwrap();
    let g = be.zeros(x.len(), "g").unwrap();
    d.backward(be, p, &xb, &tape, &ones, &scratch, Some(&g))
        .unwrap();
    let g = be.read_f64(&g).unwrap();
    weight * gamma / 2.0 / BATCH as f64 * g.iter().map(|v| v * v).sum::<f64>()
}

fn r1_grads<B: Backend>(
    be: &mut B,
    d: &Discriminator,
    host: &[Vec<f32>],
    x: &[f32],
    gamma: f32,
    weight: f32,
) -> (f32, Vec<Vec<f32>>) {
    let p = ParamSet::from_host(be, d.specs(), host).unwrap();
    let grads = ParamSet::zeros(be, d.specs()).unwrap();
    let xb = be.upload(x, "x").unwrap();
    let pen = d
        .r1_backward(be, &p, &xb, BATCH, gamma, weight, &grads)
        .unwrap();
    (pen, grads.to_host(be).unwrap())
}

#[test]
fn r1_double_backward_matches_finite_differences_and_backends_agree() {
    let (d, host, x, _) = setup();
    let (gamma, weight) = (2.5f32, 16.0f32);
    let mut be = RefBackend::new();
    let (pen, grads) = r1_grads(&mut be, &d, &host, &x, gamma, weight);
    assert!(pen > 0.0 && pen.is_finite());
    let p = ParamSet::from_host(&mut be, d.specs(), &host).unwrap();
    let x64 = to64(&x);
    let r = &mut rng(79);
    let h = 1e-5;
    let mut checked = 0;
    for (t, s) in d.specs().iter().enumerate() {
        let orig = be.read_f64(&p.bufs[t]).unwrap();
        for &i in &subset(s.len(), 4, r) {
            let mut v = orig.clone();
            v[i] += h;
            be.write_f64(&p.bufs[t], &v).unwrap();
            let lp = r1_value(&mut be, &d, &p, &x64, gamma as f64, weight as f64);
            v[i] -= 2.0 * h;
            be.write_f64(&p.bufs[t], &v).unwrap();
            let lm = r1_value(&mut be, &d, &p, &x64, gamma as f64, weight as f64);
            be.write_f64(&p.bufs[t], &orig).unwrap();
            let fd = (lp - lm) / (2.0 * h);
            let scale = grads[t].iter().map(|v| v.abs()).fold(0.0f32, f32::max) as f64;
            assert_close(
                &format!("R1 d{}[{i}] vs finite differences", s.name),
                &[grads[t][i]],
                &[fd],
                1e-5 * scale.max(1.0),
                1e-3,
            );
            checked += 1;
        }
    }
    assert!(checked >= 4 * d.specs().len() - 8);
    // GPU and CPU against the reference.
    for (tag, (pg, gg)) in [
        (
            "gpu",
            r1_grads(&mut GpuBackend::new(ctx()), &d, &host, &x, gamma, weight),
        ),
        (
            "cpu",
            r1_grads(
                &mut CpuBackend::new().unwrap(),
                &d,
                &host,
                &x,
                gamma,
                weight,
            ),
        ),
    ] {
        assert!(
            (pg - pen).abs() <= 2e-3 * pen.abs(),
            "{tag} penalty {pg} vs {pen}"
        );
        for (s, (a, b)) in d.specs().iter().zip(gg.iter().zip(&grads)) {
            let scale = b.iter().map(|v| v.abs()).fold(0.0f32, f32::max) as f64;
            assert_close(
                &format!("{tag} R1 d{}", s.name),
                a,
                &to64(b),
                3e-3 * scale.max(1e-3),
                3e-3,
            );
        }
    }
}
