//! Every [`Backend`] operation on the CPU backend (1 and 2 threads) and on the GPU backend
//! (lavapipe here) against the `f64` reference backend, at small odd shapes with batch > 1, with
//! the tolerances stated in each test; the CPU backend must be bitwise identical whatever its
//! thread count. Bad arguments must give errors, not panics.
//!
//! Each `parity!` test is one generic body run on every backend with the same seeded inputs; it
//! returns its named outputs, which are compared with the reference's as
//! `|got - want| <= atol + rtol * |want|`.

#[path = "common/mod.rs"]
mod common;

use common::{assert_close, ctx_opt, rng, to64};
use inrgan::backend::BResult;
use inrgan::backend::cpu::CpuBackend;
use inrgan::backend::gpu::GpuBackend;
use inrgan::backend::prelude::*;
use inrgan::backend::reference::RefBackend;
use inrgan::reference::act::ActShape;
use inrgan::reference::adam::AdamConfig;
use inrgan::reference::augment::{AUG_PARAMS, AugParams, AugShape};
use inrgan::reference::conv::{ConvShape, blur_down2x_out};
use inrgan::reference::coords::CoordsShape;
use inrgan::reference::fmm::FmmShape;
use inrgan::reference::fused::{Assembly, FusedInput, FusedShape};
use inrgan::reference::linear::{BiasMode, Gemm, LinearShape, ModLinearShape, Strides};
use inrgan::reference::mbstd::MbstdShape;
use inrgan::reference::modulate::ModulateShape;
use inrgan::reference::resample::{ConcatShape, SliceShape, Taps};
use inrgan::rng::Rng;

/// Named outputs of one test body.
type Outs = Vec<(String, Vec<f64>)>;

/// Reads a buffer as `f64`: exactly for the reference, widened for the `f32` backends.
trait Read64: Backend {
    fn read64(&mut self, b: &Self::Buf) -> BResult<Vec<f64>>;
}

impl Read64 for RefBackend {
    fn read64(&mut self, b: &Self::Buf) -> BResult<Vec<f64>> {
        self.read_f64(b)
    }
}

impl Read64 for CpuBackend {
    fn read64(&mut self, b: &Self::Buf) -> BResult<Vec<f64>> {
        Ok(to64(&self.read(b)?))
    }
}

impl Read64 for GpuBackend<'_> {
    fn read64(&mut self, b: &Self::Buf) -> BResult<Vec<f64>> {
        Ok(to64(&self.read(b)?))
    }
}

fn bu<B: Backend>(be: &mut B, v: &[f32]) -> BResult<B::Buf> {
    be.upload(v, "test")
}

fn bz<B: Backend>(be: &mut B, n: usize) -> BResult<B::Buf> {
    be.zeros(n, "test")
}

/// Appends output `name` read from `b`.
fn out<B: Read64>(o: &mut Outs, be: &mut B, name: impl Into<String>, b: &B::Buf) -> BResult<()> {
    o.push((name.into(), be.read64(b)?));
    Ok(())
}

fn normal(r: &mut Rng, n: usize) -> Vec<f32> {
    r.normal_vec(n)
}

fn cpu(threads: usize) -> CpuBackend {
    CpuBackend::with_threads(threads).expect("cpu backend")
}

fn to32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}

/// Runs one body on every backend and compares (see the module doc).
fn parity(
    name: &str,
    atol: f64,
    rtol: f64,
    fr: fn(&mut RefBackend) -> BResult<Outs>,
    fc: fn(&mut CpuBackend) -> BResult<Outs>,
    fg: fn(&mut GpuBackend<'static>) -> BResult<Outs>,
) {
    let want = fr(&mut RefBackend::new()).expect("reference backend");
    let c1 = fc(&mut cpu(1)).expect("cpu backend, 1 thread");
    let c2 = fc(&mut cpu(2)).expect("cpu backend, 2 threads");
    assert_eq!(want.len(), c1.len(), "{name}: output count");
    for ((w, a), b) in want.iter().zip(&c1).zip(&c2) {
        let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert!(
            bits(&a.1) == bits(&b.1),
            "{name}: cpu {} differs between 1 and 2 threads",
            a.0
        );
        assert_close(
            &format!("{name}: cpu {}", w.0),
            &to32(&a.1),
            &w.1,
            atol,
            rtol,
        );
    }
    // The GPU half needs an adapter (lavapipe in CI, where its absence fails); the CPU half
    // above runs everywhere.
    let Some(ctx) = ctx_opt() else { return };
    let g = fg(&mut GpuBackend::new(ctx)).expect("gpu backend");
    assert_eq!(want.len(), g.len(), "{name}: output count");
    for (w, gg) in want.iter().zip(&g) {
        assert_close(
            &format!("{name}: gpu {}", w.0),
            &to32(&gg.1),
            &w.1,
            atol,
            rtol,
        );
    }
}

/// A test running `$body` (generic over the backend `$be`) on every backend.
macro_rules! parity {
    ($name:ident, atol = $atol:expr, rtol = $rtol:expr, |$be:ident| $body:block) => {
        #[test]
        fn $name() {
            fn body<B: Backend + Read64>($be: &mut B) -> BResult<Outs> $body
            parity(
                stringify!($name),
                $atol,
                $rtol,
                body::<RefBackend>,
                body::<CpuBackend>,
                body::<GpuBackend<'static>>,
            );
        }
    };
}

const fn st(sb: usize, si: usize, sj: usize) -> Strides {
    Strides { sb, si, sj }
}

/// Runs `g` with random operands (C pre-filled at random, so accumulation is visible).
fn run_gemm<B: Read64>(be: &mut B, o: &mut Outs, tag: &str, g: &Gemm, seed: u64) -> BResult<()> {
    let mut r = rng(seed);
    let (ea, eb, ec) = g.extents();
    let a = bu(be, &normal(&mut r, ea))?;
    let b = bu(be, &normal(&mut r, eb))?;
    let c = bu(be, &normal(&mut r, ec))?;
    let bias = match g.bias {
        BiasMode::None => None,
        BiasMode::PerRow => Some(bu(be, &normal(&mut r, g.m))?),
        BiasMode::PerCol => Some(bu(be, &normal(&mut r, g.n))?),
    };
    be.gemm(g, &a, &b, bias.as_ref(), &c)?;
    out(o, be, tag, &c)
}

parity!(gemm_layers, atol = 1e-5, rtol = 1e-5, |be| {
    let mut o = Outs::new();
    let ls = LinearShape {
        rows: 3,
        d_in: 9,
        d_out: 7,
        w_gain: 0.37,
        b_gain: 0.5,
    };
    let ms = ModLinearShape {
        batch: 3,
        c_in: 5,
        c_out: 7,
        pixels: 13,
    };
    for acc in [false, true] {
        run_gemm(
            be,
            &mut o,
            "linear fwd",
            &Gemm::linear_forward(&ls, true),
            1,
        )?;
        run_gemm(
            be,
            &mut o,
            &format!("linear dX {acc}"),
            &Gemm::linear_backward_input(&ls, acc),
            2,
        )?;
        run_gemm(
            be,
            &mut o,
            &format!("linear dW {acc}"),
            &Gemm::linear_backward_weight(&ls, acc),
            3,
        )?;
        for shared in [false, true] {
            let tag = format!("shared {shared} acc {acc}");
            run_gemm(
                be,
                &mut o,
                &format!("modlinear fwd {tag}"),
                &Gemm::modlinear_forward(&ms, true, shared),
                4,
            )?;
            run_gemm(
                be,
                &mut o,
                &format!("modlinear dX {tag}"),
                &Gemm::modlinear_backward_input(&ms, shared, acc),
                5,
            )?;
        }
        run_gemm(
            be,
            &mut o,
            &format!("modlinear dW {acc}"),
            &Gemm::modlinear_backward_weight(&ms, acc),
            6,
        )?;
    }
    // Per-column bias, a column-major C with padding, accumulate.
    let g = Gemm {
        m: 5,
        n: 3,
        k: 7,
        batch: 2,
        a: st(40, 1, 5),
        b: st(21, 3, 1),
        c: st(19, 1, 6),
        alpha: -1.3,
        bias: BiasMode::PerCol,
        bias_gain: 0.7,
        accumulate: true,
        act: None,
    };
    run_gemm(be, &mut o, "strided per-col bias", &g, 7)?;
    // The activation epilogue, strided and on the layers' contiguous layout.
    let ga = Gemm {
        act: Some((0.2, 1.4)),
        ..g
    };
    run_gemm(be, &mut o, "strided act epilogue", &ga, 9)?;
    let ms = ModLinearShape {
        batch: 3,
        c_in: 7,
        c_out: 5,
        pixels: 67,
    };
    let gl = Gemm {
        act: Some((0.2, std::f32::consts::SQRT_2)),
        ..Gemm::modlinear_forward(&ms, true, false)
    };
    run_gemm(be, &mut o, "layer act epilogue", &gl, 10)?;
    // K = 0: C = bias (+ C).
    let g0 = Gemm { k: 0, ..g };
    run_gemm(be, &mut o, "k = 0", &g0, 8)?;
    Ok(o)
});

parity!(gemm_tiles_and_ksplit, atol = 5e-4, rtol = 1e-4, |be| {
    let mut o = Outs::new();
    // Several row and column tiles, batch 2.
    let ms = ModLinearShape {
        batch: 2,
        c_in: 13,
        c_out: 300,
        pixels: 1100,
    };
    run_gemm(
        be,
        &mut o,
        "tiled fwd",
        &Gemm::modlinear_forward(&ms, true, false),
        11,
    )?;
    // Few tiles and a long K: split along K (weight gradient over many pixels), accumulated,
    // and a per-column bias.
    let ms = ModLinearShape {
        batch: 2,
        c_in: 7,
        c_out: 5,
        pixels: 4500,
    };
    run_gemm(
        be,
        &mut o,
        "ksplit dW",
        &Gemm::modlinear_backward_weight(&ms, true),
        12,
    )?;
    let g = Gemm {
        bias: BiasMode::PerCol,
        bias_gain: 0.3,
        ..Gemm::modlinear_backward_weight(&ms, false)
    };
    run_gemm(be, &mut o, "ksplit dW bias", &g, 13)?;
    Ok(o)
});

#[test]
fn gemm_overlapping_outputs_cpu() {
    // Orders the GPU leaves undefined (overlapping C across the batch, aliased C elements):
    // the CPU backend must give the reference's sequential meaning.
    let cases = [
        Gemm {
            m: 3,
            n: 4,
            k: 5,
            batch: 3,
            a: st(15, 5, 1),
            b: st(20, 4, 1),
            c: st(0, 4, 1),
            alpha: 0.5,
            bias: BiasMode::PerRow,
            bias_gain: 1.0,
            accumulate: true,
            act: None,
        },
        Gemm {
            m: 3,
            n: 4,
            k: 5000,
            batch: 2,
            a: st(15000, 5000, 1),
            b: st(20000, 4, 1),
            c: st(4, 4, 1),
            alpha: 0.5,
            bias: BiasMode::None,
            bias_gain: 0.0,
            accumulate: true,
            act: None,
        },
        Gemm {
            m: 3,
            n: 4,
            k: 5,
            batch: 2,
            a: st(15, 5, 1),
            b: st(20, 4, 1),
            c: st(4, 0, 1),
            alpha: 0.5,
            bias: BiasMode::None,
            bias_gain: 0.0,
            accumulate: true,
            act: None,
        },
    ];
    for (i, g) in cases.iter().enumerate() {
        let mut want = Outs::new();
        run_gemm(&mut RefBackend::new(), &mut want, "c", g, 20).expect("reference");
        for t in [1, 2] {
            let mut got = Outs::new();
            run_gemm(&mut cpu(t), &mut got, "c", g, 20).expect("cpu");
            assert_close(
                &format!("overlap case {i}, {t} threads"),
                &to32(&got[0].1),
                &want[0].1,
                1e-3,
                1e-4,
            );
        }
    }
}

fn fmm_case<B: Read64>(be: &mut B, o: &mut Outs, s: &FmmShape, seed: u64) -> BResult<()> {
    let mut r = rng(seed);
    let ws = bu(be, &normal(&mut r, s.c_out * s.c_in))?;
    let sty: Vec<f32> = normal(&mut r, s.batch * s.style_dim())
        .iter()
        .map(|v| 0.5 * v)
        .collect();
    let styles = bu(be, &sty)?;
    let w = bz(be, s.weight_len())?;
    let norms = bz(be, s.batch * s.c_out)?;
    be.fmm_forward(s, &ws, &styles, &w, &norms)?;
    let tag = format!("demod {}", s.demod);
    out(o, be, format!("W {tag}"), &w)?;
    out(o, be, format!("norms {tag}"), &norms)?;
    let dw = bu(be, &normal(&mut r, s.weight_len()))?;
    let scratch = bz(be, s.weight_len())?;
    let dws = bu(be, &normal(&mut r, s.c_out * s.c_in))?;
    let dstyles = bu(be, &normal(&mut r, s.batch * s.style_dim()))?;
    for acc in [true, false] {
        be.fmm_backward(s, &ws, &styles, &norms, &dw, &scratch, &dws, &dstyles, acc)?;
        out(o, be, format!("dws {tag} acc {acc}"), &dws)?;
        out(o, be, format!("dstyles {tag} acc {acc}"), &dstyles)?;
    }
    Ok(())
}

parity!(fmm, atol = 1e-4, rtol = 2e-4, |be| {
    let mut o = Outs::new();
    for demod in [true, false] {
        let s = FmmShape {
            batch: 3,
            c_out: 5,
            c_in: 7,
            rank: 3,
            demod,
        };
        fmm_case(be, &mut o, &s, 30)?;
    }
    Ok(o)
});

parity!(style_modulate, atol = 1e-5, rtol = 1e-5, |be| {
    let mut o = Outs::new();
    let mut r = rng(40);
    let m = ModulateShape {
        batch: 3,
        c_out: 5,
        c_in: 7,
        gain: 0.3,
    };
    let ws = bu(be, &normal(&mut r, 35))?;
    let s = bu(be, &normal(&mut r, 21))?;
    let w = bz(be, 105)?;
    be.style_modulate_forward(&m, &ws, &s, &w)?;
    out(&mut o, be, "w", &w)?;
    let dw = bu(be, &normal(&mut r, 105))?;
    let dws = bu(be, &normal(&mut r, 35))?;
    let ds = bu(be, &normal(&mut r, 21))?;
    for acc in [true, false] {
        be.style_modulate_backward(&m, &ws, &s, &dw, &dws, &ds, acc)?;
        out(&mut o, be, format!("dws {acc}"), &dws)?;
        out(&mut o, be, format!("ds {acc}"), &ds)?;
    }
    Ok(o)
});

parity!(coords, atol = 2e-4, rtol = 1e-4, |be| {
    let mut o = Outs::new();
    let mut r = rng(50);
    for with_cos in [true, false] {
        let s = CoordsShape {
            width: 7,
            height: 5,
            n_freq: 3,
            with_cos,
        };
        let xs = bu(be, &r.uniform_vec(7, -1.0, 1.0))?;
        let ys = bu(be, &r.uniform_vec(5, -1.0, 1.0))?;
        let freqs = bu(be, &r.uniform_vec(6, -6.0, 6.0))?;
        let n = s.channels() * s.pixels();
        let emb = bz(be, n)?;
        be.coords_forward(&s, &xs, &ys, &freqs, &emb)?;
        out(&mut o, be, format!("emb cos {with_cos}"), &emb)?;
        let demb = bu(be, &normal(&mut r, n))?;
        let df = bu(be, &normal(&mut r, 6))?;
        for acc in [true, false] {
            be.coords_backward(&s, &xs, &ys, &freqs, &demb, &df, acc)?;
            out(&mut o, be, format!("dfreqs cos {with_cos} acc {acc}"), &df)?;
        }
    }
    Ok(o)
});

parity!(act, atol = 1e-5, rtol = 1e-5, |be| {
    let mut o = Outs::new();
    let mut r = rng(60);
    // Planar maps with long planes, and rows [N, C] (inner = 1); one linear shape.
    let shapes = [
        ActShape::lrelu(3, 5, 67),
        ActShape::lrelu(7, 5, 1),
        ActShape {
            alpha: 1.0,
            gain: 0.5,
            b_gain: 2.0,
            ..ActShape::lrelu(3, 2, 5)
        },
    ];
    for s in shapes {
        let n = s.len();
        let x = bu(be, &normal(&mut r, n))?;
        let b = bu(be, &normal(&mut r, s.channels))?;
        let y = bz(be, n)?;
        be.act_forward(&s, &x, None, &y)?;
        out(&mut o, be, format!("{s:?} no bias"), &y)?;
        be.act_forward(&s, &x, Some(&b), &y)?;
        out(&mut o, be, format!("{s:?} bias"), &y)?;
        let dy = bu(be, &normal(&mut r, n))?;
        let dx = bu(be, &normal(&mut r, n))?;
        for acc in [true, false] {
            be.act_backward(&s, &y, &dy, &dx, acc)?;
            out(&mut o, be, format!("{s:?} dx {acc}"), &dx)?;
        }
    }
    Ok(o)
});

parity!(resample, atol = 1e-6, rtol = 1e-6, |be| {
    let mut o = Outs::new();
    let mut r = rng(70);
    let (planes, h, w) = (4, 3, 5);
    let x = bu(be, &normal(&mut r, planes * h * w))?;
    let y = bz(be, planes * h * w * 4)?;
    be.upsample2x_forward(&x, &y, planes, h, w)?;
    out(&mut o, be, "upsample", &y)?;
    let dy = bu(be, &normal(&mut r, planes * h * w * 4))?;
    let dx = bu(be, &normal(&mut r, planes * h * w))?;
    for acc in [true, false] {
        be.upsample2x_backward(&dy, &dx, planes, h, w, acc)?;
        out(&mut o, be, format!("upsample dx {acc}"), &dx)?;
    }
    let (rows, cols) = ([2u32, 0, 2, 1], [4u32, 0, 3, 3, 1, 2, 0]);
    let g = bz(be, planes * 4 * 7)?;
    be.gather(&x, planes, h, w, &rows, &cols, &g)?;
    out(&mut o, be, "gather", &g)?;
    for broadcast in [false, true] {
        let s = ConcatShape {
            batch: 3,
            c1: 2,
            c2: 3,
            pixels: 5,
            broadcast,
        };
        let x1 = bu(be, &normal(&mut r, 3 * 2 * 5))?;
        let x2 = bu(be, &normal(&mut r, if broadcast { 15 } else { 45 }))?;
        let y = bz(be, 3 * 5 * 5)?;
        be.concat_channels(&s, &x1, &x2, &y)?;
        out(&mut o, be, format!("concat {broadcast}"), &y)?;
        let sl = bu(be, &normal(&mut r, 3 * 3 * 5))?;
        for acc in [true, false] {
            be.slice_channels(&s.second(), &y, &sl, acc)?;
            out(&mut o, be, format!("slice {broadcast} {acc}"), &sl)?;
        }
    }
    let c = bz(be, 11)?;
    be.copy(&x, &c, 11)?;
    out(&mut o, be, "copy", &c)?;
    Ok(o)
});

// The bilinear link: odd shapes, taps monotone and scattered, weights at 0, 1 and between;
// the backward sums up to 2 x 2 x (outputs per source) terms.
parity!(resample_bilinear, atol = 1e-5, rtol = 1e-5, |be| {
    let mut o = Outs::new();
    let mut r = rng(71);
    for (planes, h, w, ho, wo) in [(3, 4, 6, 9, 11), (2, 7, 3, 5, 2), (5, 2, 2, 3, 67)] {
        let mut taps = |n: usize, len: usize| Taps {
            idx: (0..len).map(|i| ((i * 7 + 3) % (n - 1)) as u32).collect(),
            t: (0..len)
                .map(|i| match i % 4 {
                    0 => 0.0,
                    1 => 1.0,
                    _ => r.uniform() as f32,
                })
                .collect(),
        };
        let (rows, cols) = (taps(h, ho), taps(w, wo));
        let x = bu(be, &normal(&mut r, planes * h * w))?;
        let y = bz(be, planes * ho * wo)?;
        be.gather_bilinear(&x, planes, h, w, &rows, &cols, &y)?;
        out(&mut o, be, format!("bilinear {h}x{w}->{ho}x{wo}"), &y)?;
        let dy = bu(be, &normal(&mut r, planes * ho * wo))?;
        let dx = bu(be, &normal(&mut r, planes * h * w))?;
        for acc in [true, false] {
            be.gather_bilinear_backward(&dy, planes, h, w, &rows, &cols, &dx, acc)?;
            out(
                &mut o,
                be,
                format!("bilinear dx {h}x{w}<-{ho}x{wo} {acc}"),
                &dx,
            )?;
        }
    }
    Ok(o)
});

// The augmentation ops and the composed pipeline (forward and backward) at odd shapes.
parity!(augment, atol = 2e-5, rtol = 2e-5, |be| {
    let mut o = Outs::new();
    let mut r = rng(130);
    for (batch, channels, height, width) in [(3, 3, 7, 9), (2, 1, 4, 1), (5, 3, 16, 16)] {
        let s = AugShape {
            batch,
            channels,
            height,
            width,
        };
        let cfg = inrgan::train::augment::AugmentConfig::with_mode(
            inrgan::train::augment::AugmentMode::Fixed,
        );
        let mut prm = inrgan::train::augment::sample(&cfg, 0.8, batch, height.max(width), &mut r);
        // One image unaugmented, one shifted past the edge.
        prm[..AUG_PARAMS].copy_from_slice(&AugParams::IDENTITY.to_f32s());
        prm[AUG_PARAMS + 3] = -(width as f32) - 2.0;
        let p = bu(be, &prm)?;
        let x = bu(be, &normal(&mut r, s.len()))?;
        let mu = bu(be, &normal(&mut r, batch))?;
        let y = bz(be, s.len())?;
        for bri in [true, false] {
            be.aug_color(&s, &x, &p, &y, bri)?;
            out(&mut o, be, format!("color {bri} {s:?}"), &y)?;
        }
        be.aug_blend(&s, &x, &p, &mu, &y)?;
        out(&mut o, be, format!("blend {s:?}"), &y)?;
        be.aug_shift_forward(&s, &x, &p, &y)?;
        out(&mut o, be, format!("shift {s:?}"), &y)?;
        be.aug_shift_backward(&s, &x, &p, &y)?;
        out(&mut o, be, format!("shift bwd {s:?}"), &y)?;
        let fy = inrgan::train::augment::forward(be, &s, &x, &p)?;
        out(&mut o, be, format!("pipeline {s:?}"), &fy)?;
        let dx = inrgan::train::augment::backward(be, &s, &x, &p)?;
        out(&mut o, be, format!("pipeline bwd {s:?}"), &dx)?;
    }
    Ok(o)
});

fn conv_case<B: Read64>(be: &mut B, o: &mut Outs, s: &ConvShape, seed: u64) -> BResult<()> {
    let mut r = rng(seed);
    let x = bu(be, &normal(&mut r, s.x_len()))?;
    let w = bu(be, &normal(&mut r, s.w_len()))?;
    let b = bu(be, &normal(&mut r, s.c_out))?;
    let y = bz(be, s.y_len())?;
    let tag = format!("k{} s{} {}x{}", s.k, s.stride, s.height, s.width);
    be.conv2d_forward(s, &x, &w, Some(&b), &y)?;
    out(o, be, format!("y {tag}"), &y)?;
    be.conv2d_forward(s, &x, &w, None, &y)?;
    out(o, be, format!("y no bias {tag}"), &y)?;
    let dy = bu(be, &normal(&mut r, s.y_len()))?;
    let dx = bu(be, &normal(&mut r, s.x_len()))?;
    let dw = bu(be, &normal(&mut r, s.w_len()))?;
    for acc in [true, false] {
        be.conv2d_backward_input(s, &dy, &w, &dx, acc)?;
        out(o, be, format!("dx {tag} {acc}"), &dx)?;
        be.conv2d_backward_weight(s, &dy, &x, &dw, acc)?;
        out(o, be, format!("dw {tag} {acc}"), &dw)?;
    }
    Ok(())
}

fn conv_shape(
    batch: usize,
    c_in: usize,
    c_out: usize,
    h: usize,
    w: usize,
    k: usize,
    stride: usize,
) -> ConvShape {
    ConvShape {
        batch,
        c_in,
        c_out,
        height: h,
        width: w,
        k,
        stride,
        w_gain: 1.0 / ((c_in * k * k) as f32).sqrt(),
        b_gain: 0.7,
    }
}

parity!(conv, atol = 1e-4, rtol = 1e-4, |be| {
    let mut o = Outs::new();
    for (k, stride) in [(3, 1), (3, 2), (1, 1), (1, 2)] {
        for (h, w) in [(7, 5), (6, 4)] {
            conv_case(be, &mut o, &conv_shape(3, 3, 5, h, w, k, stride), 80)?;
        }
    }
    Ok(o)
});

parity!(conv_blocks, atol = 2e-4, rtol = 1e-4, |be| {
    // Shapes that cut the CPU work into several pixel blocks, channel blocks and bins.
    let mut o = Outs::new();
    conv_case(be, &mut o, &conv_shape(2, 19, 67, 9, 7, 3, 1), 90)?;
    conv_case(be, &mut o, &conv_shape(2, 19, 67, 9, 7, 3, 2), 91)?;
    conv_case(be, &mut o, &conv_shape(3, 2, 3, 41, 37, 3, 1), 92)?;
    conv_case(be, &mut o, &conv_shape(3, 2, 3, 41, 37, 1, 1), 93)?;
    // Small maps: the CPU backend puts up to 8 images side by side (a full group and a partial
    // one here), and the weight gradient's bins and blocks start in the middle of an image.
    conv_case(be, &mut o, &conv_shape(11, 19, 67, 4, 4, 3, 1), 94)?;
    conv_case(be, &mut o, &conv_shape(11, 19, 67, 4, 4, 1, 1), 95)?;
    conv_case(be, &mut o, &conv_shape(121, 2, 3, 7, 5, 3, 1), 96)?;
    // Enough small-map pixels for the weight gradient's minimum bins: every bin's task gathers
    // its taps once for all 67 output channels.
    conv_case(be, &mut o, &conv_shape(11, 19, 67, 8, 8, 3, 1), 97)?;
    Ok(o)
});

/// One fused block: `x` dense (`None`: an assembly with `c_prev` previous channels on a
/// `prev` grid, a `grid` of its own and `n_freq` frequencies), random weights scaled by
/// 1/sqrt(fan-in); outputs img and, when `keep`, the last features.
#[allow(clippy::too_many_arguments)]
fn fused_case<B: Read64>(
    be: &mut B,
    o: &mut Outs,
    s: &FusedShape,
    asm: Option<Assembly>,
    keep: bool,
    seed: u64,
) -> BResult<()> {
    let mut r = rng(seed);
    let (woff, wlen) = s.weight_offsets();
    let mut w = normal(&mut r, s.batch * wlen);
    for b in 0..s.batch {
        for (j, &(co, _)) in s.layers.iter().enumerate() {
            let ci = s.c_in_of(j);
            let at = b * wlen + woff[j];
            w[at..at + co * ci]
                .iter_mut()
                .for_each(|v| *v /= (ci as f32).sqrt());
        }
    }
    let (_, blen) = s.bias_offsets();
    let (_, rlen) = s.rgb_offsets();
    let (_, rblen) = s.rgb_bias_offsets();
    let bias = bu(be, &normal(&mut r, blen))?;
    let rgbw = bu(be, &normal(&mut r, (s.batch * rlen).max(1)))?;
    let rgbb = bu(be, &normal(&mut r, rblen.max(1)))?;
    let img = bu(be, &normal(&mut r, s.batch * 3 * s.pixels))?;
    let w = bu(be, &w)?;
    let out_buf = bz(be, s.batch * s.c_last() * s.pixels)?;
    let keep_out = keep.then_some(&out_buf);
    match asm {
        None => {
            let n = if s.broadcast_input { 1 } else { s.batch } * s.c_in * s.pixels;
            let x = bu(be, &normal(&mut r, n))?;
            be.fused_level_forward(
                s,
                FusedInput::Dense(&x),
                &w,
                &bias,
                &rgbw,
                &rgbb,
                &img,
                keep_out,
            )?;
        }
        Some(a) => {
            let feat = bu(
                be,
                &normal(
                    &mut r,
                    (s.batch * a.c_prev * a.prev_rows * a.prev_cols).max(1),
                ),
            )?;
            // Coordinates anywhere in the plane, frequencies as the presets draw them, random
            // tables into the previous grid.
            let xs: Vec<f32> = (0..a.cols).map(|i| -3.0 + 0.37 * i as f32).collect();
            let ys: Vec<f32> = (0..a.rows).map(|i| 5.0 - 0.61 * i as f32).collect();
            let freqs: Vec<f32> = normal(&mut r, 2 * a.n_freq)
                .iter()
                .map(|v| 3.0 * v)
                .collect();
            let pick = |n: usize, m: usize, r: &mut Rng| -> Vec<u32> {
                (0..n)
                    .map(|_| (r.next_u64() % m.max(1) as u64) as u32)
                    .collect()
            };
            let reach = a.bilinear as usize;
            let (rt, ct) = (
                pick(a.rows, a.prev_rows - reach, &mut r),
                pick(a.cols, a.prev_cols - reach, &mut r),
            );
            let geom = if a.bilinear {
                let mut taps = |idx: Vec<u32>| Taps {
                    t: (0..idx.len())
                        .map(|i| if i % 3 == 0 { 1.0 } else { r.uniform() as f32 })
                        .collect(),
                    idx,
                };
                let (rows, cols) = (taps(rt), taps(ct));
                a.geometry_bilinear(&xs, &ys, &freqs, &rows, &cols)
            } else {
                a.geometry(&xs, &ys, &freqs, &rt, &ct)
            }
            .map_err(inrgan::gpu::GpuError::Shape)?;
            let geom = bu(be, &geom)?;
            let input = FusedInput::Assembled {
                a: &a,
                feat: (a.c_prev > 0).then_some(&feat),
                geom: &geom,
            };
            be.fused_level_forward(s, input, &w, &bias, &rgbw, &rgbb, &img, keep_out)?;
        }
    }
    out(o, be, format!("fused img {s:?}"), &img)?;
    out(o, be, format!("fused out {s:?}"), &out_buf)
}

parity!(fused_block, atol = 2e-4, rtol = 2e-4, |be| {
    // Odd shapes, tiles cut short, inputs wider than the layers; against the oracle's
    // composite of the unfused references.
    let mut o = Outs::new();
    let s = |batch, pixels, c_in, broadcast_input, layers: Vec<(usize, bool)>| FusedShape {
        batch,
        pixels,
        c_in,
        broadcast_input,
        layers,
        alpha: 0.2,
        gain: std::f32::consts::SQRT_2,
    };
    fused_case(
        be,
        &mut o,
        &s(1, 1, 1, false, vec![(1, true)]),
        None,
        true,
        1,
    )?;
    fused_case(
        be,
        &mut o,
        &s(2, 67, 5, false, vec![(7, true), (3, false), (9, true)]),
        None,
        true,
        2,
    )?;
    fused_case(
        be,
        &mut o,
        &s(3, 1100, 13, true, vec![(11, false), (6, true)]),
        None,
        false,
        3,
    )?;
    fused_case(
        be,
        &mut o,
        &s(2, 70, 4, true, vec![(5, false)]),
        None,
        true,
        4,
    )?;
    fused_case(
        be,
        &mut o,
        &s(1, 37, 150, false, vec![(7, true), (64, true)]),
        None,
        true,
        5,
    )?;
    let asm = |c_prev, prev: (usize, usize), grid: (usize, usize), n_freq| Assembly {
        c_prev,
        prev_rows: prev.0,
        prev_cols: prev.1,
        rows: grid.0,
        cols: grid.1,
        n_freq,
        bilinear: false,
    };
    for (batch, a, layers, keep, seed) in [
        (
            2,
            asm(0, (0, 0), (7, 9), 5),
            vec![(11, true), (6, false)],
            true,
            6,
        ),
        (2, asm(5, (3, 4), (7, 9), 2), vec![(9, true)], false, 7),
        (
            3,
            asm(13, (5, 7), (11, 13), 4),
            vec![(10, false), (7, true)],
            true,
            8,
        ),
        // emoji32's finest block at a window's tables, more pixels than one CPU tile.
        (
            1,
            asm(40, (17, 19), (33, 47), 28),
            vec![(64, true), (64, true)],
            false,
            9,
        ),
    ] {
        let shape = s(batch, a.rows * a.cols, a.c_in(), false, layers);
        fused_case(be, &mut o, &shape, Some(a.clone()), keep, seed)?;
        // The same block reading its previous features through bilinear taps.
        if a.c_prev > 0 {
            let b = Assembly {
                bilinear: true,
                ..a
            };
            fused_case(be, &mut o, &shape, Some(b), keep, seed + 100)?;
        }
    }
    Ok(o)
});

parity!(pack, atol = 0.0, rtol = 0.0, |be| {
    // The fused blocks' per-image weight packs: parts of 5, 1 and 7 values per image.
    let mut o = Outs::new();
    let mut r = rng(110);
    for batch in [1, 3] {
        let parts: Vec<(Vec<f32>, usize)> = [5, 1, 7]
            .iter()
            .map(|&n| (normal(&mut r, batch * n), n))
            .collect();
        let bufs = parts
            .iter()
            .map(|(v, n)| Ok((bu(be, v)?, *n)))
            .collect::<BResult<Vec<_>>>()?;
        let refs: Vec<_> = bufs.iter().map(|(b, n)| (b, *n)).collect();
        let y = be.pack(batch, &refs, "pack")?;
        out(&mut o, be, format!("pack batch {batch}"), &y)?;
        let one = be.pack(batch, &refs[..1], "pack")?;
        out(&mut o, be, format!("pack of one part, batch {batch}"), &one)?;
    }
    Ok(o)
});

parity!(blur, atol = 1e-5, rtol = 1e-5, |be| {
    let mut o = Outs::new();
    let mut r = rng(100);
    let planes = 4;
    for (h, w) in [(7, 5), (6, 4), (2, 3)] {
        let n_out = planes * blur_down2x_out(h) * blur_down2x_out(w);
        let x = bu(be, &normal(&mut r, planes * h * w))?;
        let y = bz(be, n_out)?;
        be.blur_down2x_forward(&x, &y, planes, h, w)?;
        out(&mut o, be, format!("blur {h}x{w}"), &y)?;
        let dy = bu(be, &normal(&mut r, n_out))?;
        let dx = bu(be, &normal(&mut r, planes * h * w))?;
        for acc in [true, false] {
            be.blur_down2x_backward(&dy, &dx, planes, h, w, acc)?;
            out(&mut o, be, format!("blur dx {h}x{w} {acc}"), &dx)?;
        }
    }
    Ok(o)
});

parity!(mbstd, atol = 1e-5, rtol = 1e-4, |be| {
    let mut o = Outs::new();
    let mut r = rng(110);
    for (batch, group) in [(6, 3), (5, 5), (3, 1)] {
        let s = MbstdShape {
            batch,
            channels: 4,
            height: 3,
            width: 5,
            group,
            num_channels: 2,
        };
        let x = bu(be, &normal(&mut r, s.x_len()))?;
        let stat = bz(be, s.stat_len())?;
        let y = bz(be, s.y_len())?;
        be.mbstd_forward(&s, &x, &stat, &y)?;
        out(&mut o, be, format!("y {batch}/{group}"), &y)?;
        out(&mut o, be, format!("stat {batch}/{group}"), &stat)?;
        let dy = bu(be, &normal(&mut r, s.y_len()))?;
        let dstat = bz(be, s.stat_len())?;
        let dx = bu(be, &normal(&mut r, s.x_len()))?;
        be.mbstd_backward(&s, &x, &dy, &dstat, &dx)?;
        out(&mut o, be, format!("dx {batch}/{group}"), &dx)?;
        out(&mut o, be, format!("dstat {batch}/{group}"), &dstat)?;
    }
    Ok(o)
});

parity!(reduce, atol = 1e-5, rtol = 1e-5, |be| {
    let mut o = Outs::new();
    let mut r = rng(120);
    let (outer, mid, inner) = (3, 5, 77);
    let x = bu(be, &normal(&mut r, outer * mid * inner))?;
    let y = bu(be, &normal(&mut r, mid))?;
    for acc in [true, false] {
        be.sum_axes(&x, &y, outer, mid, inner, 0.3, acc)?;
        out(&mut o, be, format!("sum_axes {acc}"), &y)?;
    }
    let n = bz(be, 7)?;
    be.row_norm(&x, &n, 7, 33)?;
    out(&mut o, be, "row_norm", &n)?;
    let sx: Vec<f32> = normal(&mut r, 301).iter().map(|v| 4.0 * v).collect();
    let sxb = bu(be, &sx)?;
    for sign in [1.0, -1.0] {
        let sp = bz(be, 301)?;
        be.softplus_forward(&sxb, &sp, 301, sign)?;
        out(&mut o, be, format!("softplus {sign}"), &sp)?;
        let d = bu(be, &normal(&mut r, 301))?;
        be.softplus_backward(&sxb, &d, 301, sign)?;
        out(&mut o, be, format!("softplus grad {sign}"), &d)?;
    }
    let yb = bu(be, &normal(&mut r, 301))?;
    be.axpby(0.7, &sxb, -1.3, &yb, 299)?;
    out(&mut o, be, "axpby", &yb)?;
    let mut bad = normal(&mut r, 203);
    for (i, v) in [
        (3, f32::NAN),
        (50, f32::INFINITY),
        (51, f32::NEG_INFINITY),
        (202, f32::NAN),
    ] {
        bad[i] = v;
    }
    let bb = bu(be, &bad)?;
    let counts = vec![
        be.count_nonfinite(&bb, 203)? as f64,
        be.count_nonfinite(&bb, 202)? as f64,
        be.count_nonfinite(&bb, 0)? as f64,
    ];
    o.push(("count_nonfinite".into(), counts));
    Ok(o)
});

parity!(adam_ema, atol = 1e-6, rtol = 1e-5, |be| {
    let mut o = Outs::new();
    let mut r = rng(130);
    let n = 301;
    let mut cfg = AdamConfig::stylegan2(2e-3);
    cfg.grad_scale = 0.25;
    let cfg2 = AdamConfig {
        beta1: 0.9,
        nan_to_num: false,
        ..AdamConfig::stylegan2(1e-2)
    };
    for (i, c) in [cfg, cfg2].iter().enumerate() {
        let p = bu(be, &normal(&mut r, n))?;
        let m = bz(be, n)?;
        let v = bz(be, n)?;
        for t in 1..=3 {
            let mut g = normal(&mut r, n);
            if c.nan_to_num {
                g[7] = f32::NAN;
                g[8] = f32::INFINITY;
                g[9] = f32::NEG_INFINITY;
            }
            let gb = bu(be, &g)?;
            be.adam_step(c, t, &p, &gb, &m, &v, n - 2)?;
        }
        out(&mut o, be, format!("adam p {i}"), &p)?;
        out(&mut o, be, format!("adam m {i}"), &m)?;
        out(&mut o, be, format!("adam v {i}"), &v)?;
    }
    for beta in [0.3, 0.999] {
        let p = bu(be, &normal(&mut r, n))?;
        let e = bu(be, &normal(&mut r, n))?;
        be.ema_update(&p, &e, beta, n)?;
        out(&mut o, be, format!("ema {beta}"), &e)?;
    }
    Ok(o)
});

parity!(image_and_memory, atol = 1.0, rtol = 0.0, |be| {
    // Bytes may differ by one where f32 and f64 round across a step.
    let mut o = Outs::new();
    let mut r = rng(140);
    let (batch, pixels) = (2, 37);
    let x: Vec<f32> = normal(&mut r, batch * 3 * pixels)
        .iter()
        .map(|v| 0.8 * v)
        .collect();
    let xb = bu(be, &x)?;
    let px = be.to_rgba8(&xb, batch, pixels)?;
    for ch in 0..4 {
        let v = px.iter().map(|&p| p.to_le_bytes()[ch] as f64).collect();
        o.push((format!("rgba8 byte {ch}"), v));
    }
    o.push((
        "rgba8 empty".into(),
        vec![be.to_rgba8(&xb, 0, pixels)?.len() as f64],
    ));
    // Memory: write the start, read all, length.
    let m = bz(be, 9)?;
    be.write(&m, &[1.0, 2.0, 3.0])?;
    be.flush()?;
    out(&mut o, be, "write", &m)?;
    o.push(("len".into(), vec![be.len(&m) as f64]));
    Ok(o)
});

/// Calls that must fail (and not panic) on every backend.
fn bad_calls<B: Backend>(be: &mut B) {
    let small = be.zeros(4, "small").expect("alloc");
    let big = be.zeros(4096, "big").expect("alloc");
    let big2 = be.zeros(4096, "big2").expect("alloc");
    let name = be.name();
    let expect_err = |what: &str, r: BResult<()>| {
        assert!(r.is_err(), "{name}: {what} should fail");
    };
    let ms = ModLinearShape {
        batch: 2,
        c_in: 5,
        c_out: 7,
        pixels: 13,
    };
    let g = Gemm::modlinear_forward(&ms, false, false);
    expect_err("gemm short A", be.gemm(&g, &small, &big, None, &big2));
    expect_err("gemm short C", be.gemm(&g, &big, &big, None, &small));
    let gb = Gemm::modlinear_forward(&ms, true, false);
    expect_err(
        "gemm bias mode without bias",
        be.gemm(&gb, &big, &big, None, &big2),
    );
    expect_err(
        "gemm short bias",
        be.gemm(&gb, &big, &big, Some(&small), &big2),
    );
    let huge = Gemm {
        c: st(usize::MAX / 2, 1, 1),
        ..g
    };
    expect_err("gemm huge strides", be.gemm(&huge, &big, &big, None, &big2));
    let fs = FmmShape {
        batch: 2,
        c_out: 3,
        c_in: 4,
        rank: 0,
        demod: true,
    };
    expect_err("fmm rank 0", be.fmm_forward(&fs, &big, &big, &big2, &big2));
    let fs = FmmShape { rank: 2, ..fs };
    expect_err(
        "fmm short styles",
        be.fmm_forward(&fs, &big, &small, &big2, &big2),
    );
    expect_err(
        "fmm short scratch",
        be.fmm_backward(&fs, &big, &big, &big, &big, &small, &big2, &big2, false),
    );
    let m = ModulateShape {
        batch: 2,
        c_out: 3,
        c_in: 4,
        gain: 1.0,
    };
    expect_err(
        "modulate short w",
        be.style_modulate_forward(&m, &big, &big, &small),
    );
    let cs = CoordsShape {
        width: 5,
        height: 3,
        n_freq: 2,
        with_cos: true,
    };
    expect_err(
        "coords short xs",
        be.coords_forward(&cs, &small, &big, &big, &big2),
    );
    let a = ActShape {
        gain: -1.0,
        ..ActShape::lrelu(2, 3, 5)
    };
    expect_err("act negative gain", be.act_forward(&a, &big, None, &big2));
    expect_err(
        "act short bias",
        be.act_forward(&ActShape::lrelu(2, 5, 5), &big, Some(&small), &big2),
    );
    expect_err(
        "upsample short y",
        be.upsample2x_forward(&big, &small, 2, 3, 3),
    );
    expect_err(
        "gather out of range",
        be.gather(&big, 2, 3, 3, &[0, 3], &[1], &big2),
    );
    let taps = |idx: Vec<u32>| Taps {
        t: vec![0.25; idx.len()],
        idx,
    };
    expect_err(
        "bilinear second tap out of range",
        be.gather_bilinear(&big, 2, 3, 3, &taps(vec![0, 2]), &taps(vec![1]), &big2),
    );
    expect_err(
        "bilinear backward second tap out of range",
        be.gather_bilinear_backward(&big2, 2, 3, 3, &taps(vec![1]), &taps(vec![2]), &big, false),
    );
    expect_err(
        "bilinear taps without weights",
        be.gather_bilinear(
            &big,
            2,
            3,
            3,
            &Taps {
                idx: vec![0],
                t: vec![],
            },
            &taps(vec![1]),
            &big2,
        ),
    );
    let sl = SliceShape {
        batch: 2,
        channels: 3,
        c0: 2,
        len: 2,
        pixels: 5,
    };
    expect_err(
        "slice past the channels",
        be.slice_channels(&sl, &big, &big2, false),
    );
    let cc = ConcatShape {
        batch: 2,
        c1: 3,
        c2: 2,
        pixels: 5,
        broadcast: false,
    };
    expect_err(
        "concat short x2",
        be.concat_channels(&cc, &big, &small, &big2),
    );
    let cv = conv_shape(2, 3, 4, 5, 5, 2, 1);
    expect_err(
        "conv even kernel",
        be.conv2d_forward(&cv, &big, &big, None, &big2),
    );
    let cv = conv_shape(2, 3, 4, 5, 5, 3, 3);
    expect_err(
        "conv stride 3",
        be.conv2d_backward_input(&cv, &big, &big, &big2, false),
    );
    let cv = conv_shape(2, 3, 4, 5, 5, 3, 1);
    expect_err(
        "conv short w",
        be.conv2d_backward_weight(&cv, &big, &big, &small, false),
    );
    expect_err(
        "blur too small",
        be.blur_down2x_forward(&big, &big2, 2, 1, 5),
    );
    let mb = MbstdShape {
        batch: 5,
        channels: 4,
        height: 2,
        width: 2,
        group: 2,
        num_channels: 1,
    };
    expect_err(
        "mbstd batch not a multiple of the group",
        be.mbstd_forward(&mb, &big, &big2, &big2),
    );
    expect_err(
        "sum_axes short x",
        be.sum_axes(&small, &big, 3, 5, 7, 1.0, false),
    );
    expect_err("row_norm short y", be.row_norm(&big, &small, 9, 3));
    expect_err(
        "softplus short y",
        be.softplus_forward(&big, &small, 9, 1.0),
    );
    expect_err("axpby short x", be.axpby(1.0, &small, 1.0, &big, 9));
    expect_err(
        "count_nonfinite short",
        be.count_nonfinite(&small, 9).map(|_| ()),
    );
    let cfg = AdamConfig::stylegan2(1e-3);
    expect_err(
        "adam t = 0",
        be.adam_step(&cfg, 0, &big, &big2, &big, &big2, 4),
    );
    expect_err("ema short", be.ema_update(&small, &big, 0.5, 9));
    expect_err("to_rgba8 short", be.to_rgba8(&small, 2, 3).map(|_| ()));
    expect_err("write too long", be.write(&small, &[0.0; 5]));
}

/// Buffers passed both as an input and as an output of one call (host backends only).
fn aliased_calls<B: Backend>(be: &mut B) {
    let a = be.zeros(4096, "a").expect("alloc");
    let b = be.zeros(4096, "b").expect("alloc");
    let name = be.name();
    let expect_err = |what: &str, r: BResult<()>| {
        assert!(r.is_err(), "{name}: {what} should fail");
    };
    let ms = ModLinearShape {
        batch: 2,
        c_in: 5,
        c_out: 7,
        pixels: 13,
    };
    let g = Gemm::modlinear_forward(&ms, false, false);
    expect_err("gemm A = C", be.gemm(&g, &a, &b, None, &a));
    expect_err("axpby x = y", be.axpby(1.0, &a, 1.0, &a, 9));
    expect_err(
        "act x = y",
        be.act_forward(&ActShape::lrelu(2, 3, 5), &a, None, &a),
    );
    let fs = FmmShape {
        batch: 2,
        c_out: 3,
        c_in: 4,
        rank: 2,
        demod: true,
    };
    expect_err("fmm w_out = norms", be.fmm_forward(&fs, &a, &a, &b, &b));
}

#[test]
fn shape_errors_are_errors() {
    bad_calls(&mut RefBackend::new());
    bad_calls(&mut cpu(2));
    aliased_calls(&mut RefBackend::new());
    aliased_calls(&mut cpu(2));
    if let Some(ctx) = ctx_opt() {
        bad_calls(&mut GpuBackend::new(ctx));
    }
}

#[test]
fn empty_shapes_are_no_ops() {
    fn body<B: Backend>(be: &mut B) -> BResult<()> {
        let (e, f, g) = (be.zeros(0, "e")?, be.zeros(0, "f")?, be.zeros(0, "g")?);
        let ms = ModLinearShape {
            batch: 0,
            c_in: 5,
            c_out: 7,
            pixels: 13,
        };
        be.gemm(&Gemm::modlinear_forward(&ms, true, false), &e, &f, None, &g)?;
        be.act_forward(&ActShape::lrelu(0, 3, 5), &e, None, &f)?;
        be.upsample2x_forward(&e, &f, 0, 3, 3)?;
        be.gather(&e, 2, 3, 3, &[], &[1], &f)?;
        be.sum_axes(&e, &f, 3, 0, 2, 1.0, false)?;
        be.softplus_forward(&e, &f, 0, 1.0)?;
        be.conv2d_forward(&conv_shape(2, 0, 4, 5, 5, 3, 1), &e, &f, None, &g)?;
        assert_eq!(be.count_nonfinite(&e, 0)?, 0);
        assert!(be.to_rgba8(&e, 0, 5)?.is_empty());
        assert!(be.read(&e)?.is_empty());
        Ok(())
    }
    body(&mut RefBackend::new()).expect("reference");
    body(&mut cpu(2)).expect("cpu");
    if let Some(ctx) = ctx_opt() {
        body(&mut GpuBackend::new(ctx)).expect("gpu");
    }
}

/// CPU outputs at shapes large enough to run in parallel.
fn big_cpu_outputs(be: &mut CpuBackend) -> BResult<Outs> {
    let mut o = Outs::new();
    let ms = ModLinearShape {
        batch: 2,
        c_in: 33,
        c_out: 70,
        pixels: 5000,
    };
    run_gemm(
        be,
        &mut o,
        "fwd",
        &Gemm::modlinear_forward(&ms, true, false),
        1,
    )?;
    run_gemm(
        be,
        &mut o,
        "dx",
        &Gemm::modlinear_backward_input(&ms, false, true),
        2,
    )?;
    run_gemm(
        be,
        &mut o,
        "dw",
        &Gemm::modlinear_backward_weight(&ms, true),
        3,
    )?;
    let ms1 = ModLinearShape { batch: 1, ..ms };
    run_gemm(
        be,
        &mut o,
        "fwd b1",
        &Gemm::modlinear_forward(&ms1, true, true),
        4,
    )?;
    conv_case(be, &mut o, &conv_shape(3, 9, 17, 37, 35, 3, 1), 5)?;
    conv_case(be, &mut o, &conv_shape(3, 9, 17, 37, 35, 3, 2), 6)?;
    conv_case(be, &mut o, &conv_shape(2, 9, 17, 37, 35, 1, 1), 7)?;
    fmm_case(
        be,
        &mut o,
        &FmmShape {
            batch: 3,
            c_out: 65,
            c_in: 70,
            rank: 5,
            demod: true,
        },
        8,
    )?;
    let mut r = rng(9);
    let n = 70_001;
    let x = bu(be, &normal(&mut r, n))?;
    let y = bu(be, &normal(&mut r, n))?;
    be.act_forward(&ActShape::lrelu(3, 7, 3333), &x, None, &y)?;
    out(&mut o, be, "act", &y)?;
    let s = bz(be, 7)?;
    be.sum_axes(&x, &s, 3, 7, 3333, 1.0, false)?;
    out(&mut o, be, "sum_axes", &s)?;
    be.blur_down2x_backward(&x, &y, 9, 97, 79, true)?;
    out(&mut o, be, "blur dx", &y)?;
    Ok(o)
}

#[test]
fn cpu_threads_bitwise_identical() {
    let one = big_cpu_outputs(&mut cpu(1)).expect("1 thread");
    for t in [2, 3] {
        let many = big_cpu_outputs(&mut cpu(t)).expect("threads");
        for (a, b) in one.iter().zip(&many) {
            let same =
                a.1.iter()
                    .zip(&b.1)
                    .all(|(x, y)| x.to_bits() == y.to_bits());
            assert!(
                same && a.1.len() == b.1.len(),
                "{}: 1 vs {t} threads differ",
                a.0
            );
        }
    }
    // And the same work against the reference, loosely (long sums in f32).
    let want = {
        fn reference_outputs(be: &mut RefBackend) -> BResult<Outs> {
            let mut o = Outs::new();
            let ms = ModLinearShape {
                batch: 2,
                c_in: 33,
                c_out: 70,
                pixels: 5000,
            };
            run_gemm(
                be,
                &mut o,
                "fwd",
                &Gemm::modlinear_forward(&ms, true, false),
                1,
            )?;
            run_gemm(
                be,
                &mut o,
                "dx",
                &Gemm::modlinear_backward_input(&ms, false, true),
                2,
            )?;
            run_gemm(
                be,
                &mut o,
                "dw",
                &Gemm::modlinear_backward_weight(&ms, true),
                3,
            )?;
            Ok(o)
        }
        reference_outputs(&mut RefBackend::new()).expect("reference")
    };
    for (w, g) in want.iter().zip(&one) {
        assert_close(&format!("big {}", w.0), &to32(&g.1), &w.1, 2e-3, 1e-4);
    }
}
