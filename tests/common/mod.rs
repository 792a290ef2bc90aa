//! Helpers shared by the test binaries: the one GPU context, uploads, readback, comparisons and
//! central finite differences.
#![allow(dead_code)]

use std::sync::OnceLock;

use inrgan::gpu::{GpuBuffer, GpuContext, Recorder};
use inrgan::rng::Rng;

/// The device every GPU test uses. With no adapter this panics with the GPU layer's message,
/// which says what to install: GPU tests never skip silently.
pub fn ctx() -> &'static GpuContext {
    adapter()
        .as_ref()
        .unwrap_or_else(|e| panic!("GPU tests need an adapter and found none:\n{e}"))
}

/// The device for the GPU half of a test that also checks the CPU backend, so that the CPU
/// half runs on a machine without any adapter. `None` there, with a line on stderr; but where
/// `INRGAN_TEST_REQUIRE_GPU=1` (CI, which installs lavapipe) a missing adapter fails the test.
pub fn ctx_opt() -> Option<&'static GpuContext> {
    match adapter() {
        Ok(c) => Some(c),
        Err(e) if std::env::var("INRGAN_TEST_REQUIRE_GPU").as_deref() == Ok("1") => {
            panic!("INRGAN_TEST_REQUIRE_GPU=1 and no adapter:\n{e}")
        }
        Err(e) => {
            eprintln!("no GPU adapter: the GPU half of this test is skipped ({e})");
            None
        }
    }
}

/// The one context of this test binary, or why there is none (looked for once).
fn adapter() -> &'static Result<GpuContext, String> {
    static CTX: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    CTX.get_or_init(|| {
        GpuContext::new()
            .inspect(|c| eprintln!("GPU tests run on: {}", c.summary()))
            .map_err(|e| e.to_string())
    })
}

pub fn up(data: &[f32]) -> GpuBuffer<f32> {
    GpuBuffer::from_slice(ctx(), data, "test input").expect("upload")
}

pub fn zeros(n: usize) -> GpuBuffer<f32> {
    GpuBuffer::zeros(ctx(), n, "test output").expect("alloc")
}

pub fn read(b: &GpuBuffer<f32>) -> Vec<f32> {
    b.read(ctx()).expect("readback")
}

/// Records with `f`, submits, and waits.
pub fn run(label: &str, f: impl FnOnce(&mut Recorder)) {
    let mut rec = Recorder::new(ctx(), label);
    f(&mut rec);
    rec.submit().expect("submit");
    ctx().wait().expect("wait");
}

pub fn rng(seed: u64) -> Rng {
    Rng::new(seed)
}

pub fn to64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

/// Asserts `|got - want| <= atol + rtol * |want|` elementwise, reporting the worst element.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], atol: f64, rtol: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    let mut worst = (0usize, 0.0f64, 0.0f64);
    for (i, (&g, &w)) in got.iter().zip(want).enumerate() {
        let g = g as f64;
        assert!(g.is_finite(), "{what}: element {i} is {g}");
        let err = (g - w).abs();
        let excess = err - (atol + rtol * w.abs());
        if excess > worst.1 {
            worst = (i, excess, err);
        }
    }
    if worst.1 > 0.0 {
        let i = worst.0;
        panic!(
            "{what}: element {i} is {} but the reference says {} (|err| {:.3e} > atol {atol:e} + rtol {rtol:e} * |ref|)",
            got[i], want[i], worst.2
        );
    }
}

/// Central finite differences of the scalar `loss` at `x` for the indices `idx`, step `h`.
pub fn fd_grad(loss: impl Fn(&[f64]) -> f64, x: &[f64], idx: &[usize], h: f64) -> Vec<f64> {
    let mut xp = x.to_vec();
    idx.iter()
        .map(|&i| {
            let orig = xp[i];
            xp[i] = orig + h;
            let lp = loss(&xp);
            xp[i] = orig - h;
            let lm = loss(&xp);
            xp[i] = orig;
            (lp - lm) / (2.0 * h)
        })
        .collect()
}

/// Up to `max` indices of `0..n` (all of them when `n <= max`), drawn without bias.
pub fn subset(n: usize, max: usize, rng: &mut Rng) -> Vec<usize> {
    if n <= max {
        return (0..n).collect();
    }
    let mut v: Vec<usize> = (0..n).collect();
    for i in 0..max {
        let j = i + rng.below((n - i) as u64) as usize;
        v.swap(i, j);
    }
    v.truncate(max);
    v
}

/// `sum_i r_i y_i`: the scalar whose gradient with respect to `y` is `r` (the "upstream" gradient).
pub fn dot(r: &[f64], y: &[f64]) -> f64 {
    r.iter().zip(y).map(|(a, b)| a * b).sum()
}

/// Checks a GPU gradient `got` (all entries) against finite differences of `loss` on a subset
/// of entries.
#[allow(clippy::too_many_arguments)]
pub fn check_fd(
    what: &str,
    got: &[f32],
    loss: impl Fn(&[f64]) -> f64,
    x: &[f64],
    max_checks: usize,
    h: f64,
    atol: f64,
    rtol: f64,
    rng: &mut Rng,
) {
    assert_eq!(got.len(), x.len(), "{what}: gradient length");
    let idx = subset(x.len(), max_checks, rng);
    let fd = fd_grad(&loss, x, &idx, h);
    let g: Vec<f32> = idx.iter().map(|&i| got[i]).collect();
    assert_close(
        &format!("{what} vs finite differences"),
        &g,
        &fd,
        atol,
        rtol,
    );
}
