//! The whole generator on every backend: GPU and CPU against the f64 reference backend, and the
//! reference backend's gradients against central finite differences, for a random subset of
//! every parameter tensor and of the input w (tiny preset with nearest and with bilinear links,
//! and with embeddings at the coarsest level only; batch 2).

#[path = "common/mod.rs"]
mod common;

use common::*;
use inrgan::backend::cpu::CpuBackend;
use inrgan::backend::gpu::GpuBackend;
use inrgan::backend::prelude::*;
use inrgan::backend::reference::RefBackend;
use inrgan::model::config::ModelConfig;
use inrgan::model::generator::Generator;
use inrgan::model::params::ParamSet;

const BATCH: usize = 2;
const SEED: u64 = 21;

/// Both links: nearest (2x upsampling) and bilinear (taps, halo cells, their transpose), and
/// finer levels without embeddings (their input is the link's features alone).
const PRESETS: [&str; 3] = ["tiny", "tiny-bilinear", "tiny-smooth"];

fn setup(preset: &str) -> (Generator, Vec<Vec<f32>>, Vec<f32>, Vec<f32>) {
    let cfg = ModelConfig::preset(preset).unwrap();
    let g = Generator::new(&cfg);
    let mut rng = rng(SEED);
    let mut host: Vec<Vec<f32>> = g.specs().iter().map(|s| s.initial(&mut rng)).collect();
    // Non-zero biases so that their gradients and the lrelu masks are exercised.
    for (s, v) in g.specs().iter().zip(host.iter_mut()) {
        if s.name.ends_with(".bias") {
            v.iter_mut().for_each(|x| *x += 0.1 * rng.normal() as f32);
        }
    }
    let z: Vec<f32> = (0..BATCH as u64).flat_map(|i| g.latent(100 + i)).collect();
    let r = g.cfg.resolution;
    let dimg = rng.normal_vec(BATCH * 3 * r * r);
    (g, host, z, dimg)
}

/// Image, parameter gradients (per tensor), w and dw.
type Outputs = (Vec<f32>, Vec<Vec<f32>>, Vec<f32>, Vec<f32>);

/// Image, parameter gradients (per tensor) and dw on backend `be`.
fn run_model<B: Backend>(
    be: &mut B,
    g: &Generator,
    host: &[Vec<f32>],
    z: &[f32],
    dimg: &[f32],
) -> Outputs {
    let p = ParamSet::from_host(be, g.specs(), host).unwrap();
    let grads = ParamSet::zeros(be, g.specs()).unwrap();
    let plan = g.training_plan();
    let mt = g.map(be, &p, z, BATCH).unwrap();
    let w = be.read(mt.w()).unwrap();
    let tape = g.synthesize(be, &p, mt.w(), BATCH, &plan).unwrap();
    let img = be.read(tape.img()).unwrap();
    let d = be.upload(dimg, "dimg").unwrap();
    let dw = g
        .synthesize_backward(be, &p, mt.w(), &plan, &tape, &d, &grads)
        .unwrap();
    let dw_host = be.read(&dw).unwrap();
    g.map_backward(be, &p, &mt, &dw, &grads).unwrap();
    (img, grads.to_host(be).unwrap(), w, dw_host)
}

fn compare(tag: &str, got: &Outputs, want: &Outputs, g: &Generator, tol: f64) {
    assert_close(&format!("{tag} w"), &got.2, &to64(&want.2), tol, tol);
    assert_close(&format!("{tag} image"), &got.0, &to64(&want.0), tol, tol);
    assert_close(&format!("{tag} dw"), &got.3, &to64(&want.3), tol, tol);
    for (s, (a, b)) in g.specs().iter().zip(got.1.iter().zip(&want.1)) {
        let scale = b.iter().map(|v| v.abs()).fold(0.0f32, f32::max) as f64;
        assert_close(
            &format!("{tag} d{}", s.name),
            a,
            &to64(b),
            tol * scale.max(1.0),
            tol,
        );
    }
}

#[test]
fn gpu_and_cpu_backends_match_the_reference_backend() {
    for preset in PRESETS {
        backends_match(preset);
    }
}

fn backends_match(preset: &str) {
    let (g, host, z, dimg) = setup(preset);
    let want = run_model(&mut RefBackend::new(), &g, &host, &z, &dimg);
    let gpu = run_model(&mut GpuBackend::new(ctx()), &g, &host, &z, &dimg);
    // f32 against f64 through ~10 layers, FMM normalisation and sums over 256 pixels.
    compare(&format!("{preset} gpu"), &gpu, &want, &g, 2e-3);
    let cpu = run_model(
        &mut CpuBackend::new().expect("cpu backend"),
        &g,
        &host,
        &z,
        &dimg,
    );
    compare(&format!("{preset} cpu"), &cpu, &want, &g, 2e-3);
}

#[test]
fn reference_gradients_match_finite_differences() {
    for preset in PRESETS {
        gradients_match(preset);
    }
}

fn gradients_match(preset: &str) {
    let (g, host, z, dimg) = setup(preset);
    let mut be = RefBackend::new();
    let (_, grads, w, dw) = run_model(&mut be, &g, &host, &z, &dimg);
    let p = ParamSet::from_host(&mut be, g.specs(), &host).unwrap();
    let plan = g.training_plan();
    let dimg64 = to64(&dimg);
    let r = &mut rng(77);
    let h = 1e-5;
    // loss(params, w) = <dimg, G(w)>, evaluated in f64.
    let loss_w = |be: &mut RefBackend, p: &ParamSet<RefBackend>, wv: &[f64]| -> f64 {
        let wb = be.upload_f64(wv, "w").unwrap();
        let tape = g.synthesize(be, p, &wb, BATCH, &plan).unwrap();
        dot(&dimg64, &be.read_f64(tape.img()).unwrap())
    };
    // Input w.
    let w64 = to64(&w);
    let idx = subset(w64.len(), 8, r);
    for &i in &idx {
        let mut a = w64.clone();
        a[i] += h;
        let lp = loss_w(&mut be, &p, &a);
        a[i] -= 2.0 * h;
        let lm = loss_w(&mut be, &p, &a);
        let fd = (lp - lm) / (2.0 * h);
        assert_close(
            &format!("{preset} dw[{i}] vs finite differences"),
            &[dw[i]],
            &[fd],
            1e-5,
            1e-4,
        );
    }
    // Every trainable parameter tensor, through the mapping network too.
    let mt_loss = |be: &mut RefBackend, p: &ParamSet<RefBackend>| -> f64 {
        let mt = g.map(be, p, &z, BATCH).unwrap();
        let tape = g.synthesize(be, p, mt.w(), BATCH, &plan).unwrap();
        dot(&dimg64, &be.read_f64(tape.img()).unwrap())
    };
    let mut checked = 0;
    for (t, s) in g.specs().iter().enumerate() {
        if !s.trainable {
            continue;
        }
        let orig = be.read_f64(&p.bufs[t]).unwrap();
        for &i in &subset(s.len(), 3, r) {
            let mut v = orig.clone();
            v[i] += h;
            be.write_f64(&p.bufs[t], &v).unwrap();
            let lp = mt_loss(&mut be, &p);
            v[i] -= 2.0 * h;
            be.write_f64(&p.bufs[t], &v).unwrap();
            let lm = mt_loss(&mut be, &p);
            be.write_f64(&p.bufs[t], &orig).unwrap();
            let fd = (lp - lm) / (2.0 * h);
            assert_close(
                &format!("{preset} d{}[{i}] vs finite differences", s.name),
                &[grads[t][i]],
                &[fd],
                1e-5,
                1e-4,
            );
            checked += 1;
        }
    }
    assert!(checked > 60, "checked {checked} parameter values");
}
