//! The CPU backend's main products (`bench --suite cpu`): per-pixel modulated linear layers and
//! 3x3 convolutions, on one thread and on all of them.

use anyhow::Result;
use inrgan::backend::Backend;
use inrgan::backend::cpu::CpuBackend;
use inrgan::reference::conv::ConvShape;
use inrgan::reference::linear::{Gemm, ModLinearShape};
use inrgan::rng::Rng;

/// Timing of the CPU backend's per-pixel products, on 1 thread and on all of them ; best of 3 rounds.
pub fn modlinear() -> Result<()> {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    for threads in [1, all] {
        let mut be = CpuBackend::with_threads(threads)?;
        let mut r = Rng::new(1);
        let ms = ModLinearShape {
            batch: 1,
            c_in: 64,
            c_out: 64,
            pixels: 65536,
        };
        let x = be.upload(&r.normal_vec(64 * 65536), "x")?;
        let w = be.upload(&r.normal_vec(64 * 64), "w")?;
        let b = be.upload(&r.normal_vec(64), "b")?;
        let y = be.zeros(64 * 65536, "y")?;
        let dw = be.zeros(64 * 64, "dw")?;
        let flops = 2.0 * 64.0 * 64.0 * 65536.0;
        let cases = [
            ("forward", Gemm::modlinear_forward(&ms, true, false)),
            (
                "forward, no bias",
                Gemm::modlinear_forward(&ms, false, false),
            ),
            (
                "backward input",
                Gemm::modlinear_backward_input(&ms, false, false),
            ),
            (
                "backward weight",
                Gemm::modlinear_backward_weight(&ms, false),
            ),
        ];
        for (name, g) in cases {
            let (a, bb, bias, c) = match name {
                "forward" => (&w, &x, Some(&b), &y),
                "forward, no bias" => (&w, &x, None, &y),
                "backward input" => (&w, &y, None, &x),
                _ => (&y, &x, None, &dw),
            };
            be.gemm(&g, a, bb, bias, c)?;
            let reps = 20;
            let mut best = f64::INFINITY;
            for _ in 0..3 {
                let t0 = std::time::Instant::now();
                for _ in 0..reps {
                    be.gemm(&g, a, bb, bias, c)?;
                }
                best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
            }
            println!(
                "{}: modlinear {name} 64->64 x 65536 px: {:.3} ms, {:.1} GFLOP/s",
                be.name(),
                best * 1e3,
                flops / best / 1e9
            );
        }
    }
    Ok(())
}

/// Timing of the CPU backend's 3x3 convolution (batch 4, 64 -> 64 channels, 64x64 pixels), run
/// like [`cpu_modlinear_timing`]; best of 3 rounds.
pub fn conv() -> Result<()> {
    let mut be = CpuBackend::new()?;
    let mut r = Rng::new(2);
    let s = ConvShape {
        batch: 4,
        c_in: 64,
        c_out: 64,
        height: 64,
        width: 64,
        k: 3,
        stride: 1,
        w_gain: 1.0 / 24.0,
        b_gain: 1.0,
    };
    let x = be.upload(&r.normal_vec(s.x_len()), "x")?;
    let w = be.upload(&r.normal_vec(s.w_len()), "w")?;
    let b = be.upload(&r.normal_vec(s.c_out), "b")?;
    let y = be.zeros(s.y_len(), "y")?;
    let dx = be.zeros(s.x_len(), "dx")?;
    let dw = be.zeros(s.w_len(), "dw")?;
    let flops = 2.0 * (s.y_len() * s.c_in * 9) as f64;
    for name in ["forward", "backward input", "backward weight"] {
        let run = |be: &mut CpuBackend| match name {
            "forward" => be.conv2d_forward(&s, &x, &w, Some(&b), &y),
            "backward input" => be.conv2d_backward_input(&s, &y, &w, &dx, false),
            _ => be.conv2d_backward_weight(&s, &y, &x, &dw, false),
        };
        run(&mut be)?;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t0 = std::time::Instant::now();
            for _ in 0..5 {
                run(&mut be)?;
            }
            best = best.min(t0.elapsed().as_secs_f64() / 5.0);
        }
        println!(
            "{}: conv3x3 {name} 4x64->64 at 64x64: {:.2} ms, {:.1} GFLOP/s",
            be.name(),
            best * 1e3,
            flops / best / 1e9
        );
    }
    Ok(())
}
