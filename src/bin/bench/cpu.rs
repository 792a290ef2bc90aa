//! The CPU backend's main products (`bench --suite cpu`): per-pixel modulated linear layers and
//! 3x3 convolutions, on one thread and on all of them.

use anyhow::Result;
use inrgan::backend::cpu::CpuBackend;
use inrgan::backend::prelude::*;
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

/// Timing of the CPU backend's convolutions: a 3x3 one at batch 4, 64 -> 64 channels, 64x64
/// pixels, then every convolution of emoji32's discriminator at training batch 32 (their maps
/// shrink to 4x4, where the batch, not the image, has to fill the products); best of 3 rounds.
pub fn conv() -> Result<()> {
    let mut be = CpuBackend::new()?;
    let shape = |batch, c_in, c_out, res, k: usize| ConvShape {
        batch,
        c_in,
        c_out,
        height: res,
        width: res,
        k,
        stride: 1,
        w_gain: 1.0 / ((c_in * k * k) as f32).sqrt(),
        b_gain: 1.0,
    };
    conv_case(&mut be, &shape(4, 64, 64, 64, 3), 5)?;
    println!("emoji32's discriminator, batch 32:");
    let d = [
        (3, 32, 32, 1),
        (32, 32, 32, 3),
        (32, 64, 16, 3),
        (32, 64, 16, 1),
        (64, 64, 16, 3),
        (64, 128, 8, 3),
        (64, 128, 8, 1),
        (128, 128, 8, 3),
        (128, 256, 4, 3),
        (128, 256, 4, 1),
        (257, 256, 4, 3),
    ];
    let mut total = [0.0f64; 3];
    for (c_in, c_out, res, k) in d {
        let t = conv_case(&mut be, &shape(32, c_in, c_out, res, k), 5)?;
        for (a, b) in total.iter_mut().zip(t) {
            *a += b;
        }
    }
    println!(
        "{}: the discriminator's convolutions: forward {:.2} ms, backward input {:.2} ms, \
         backward weight {:.2} ms",
        be.name(),
        total[0] * 1e3,
        total[1] * 1e3,
        total[2] * 1e3
    );
    Ok(())
}

/// Times forward, backward input and backward weight of one convolution; returns their seconds.
fn conv_case(be: &mut CpuBackend, s: &ConvShape, reps: usize) -> Result<[f64; 3]> {
    let mut r = Rng::new(2);
    let x = be.upload(&r.normal_vec(s.x_len()), "x")?;
    let w = be.upload(&r.normal_vec(s.w_len()), "w")?;
    let b = be.upload(&r.normal_vec(s.c_out), "b")?;
    let y = be.zeros(s.y_len(), "y")?;
    let dx = be.zeros(s.x_len(), "dx")?;
    let dw = be.zeros(s.w_len(), "dw")?;
    let flops = 2.0 * (s.y_len() * s.c_in * s.k * s.k) as f64;
    let mut out = [0.0; 3];
    let mut line = String::new();
    for (i, name) in ["forward", "backward input", "backward weight"]
        .into_iter()
        .enumerate()
    {
        let run = |be: &mut CpuBackend| match i {
            0 => be.conv2d_forward(s, &x, &w, Some(&b), &y),
            1 => be.conv2d_backward_input(s, &y, &w, &dx, false),
            _ => be.conv2d_backward_weight(s, &y, &x, &dw, false),
        };
        run(be)?;
        let mut best = f64::INFINITY;
        for _ in 0..3 {
            let t0 = std::time::Instant::now();
            for _ in 0..reps {
                run(be)?;
            }
            best = best.min(t0.elapsed().as_secs_f64() / reps as f64);
        }
        out[i] = best;
        line += &format!(
            "  {name} {:.2} ms ({:.0} GFLOP/s)",
            best * 1e3,
            flops / best / 1e9
        );
    }
    println!(
        "{}: conv{k}x{k} {}x{}->{} at {}x{}:{line}",
        be.name(),
        s.batch,
        s.c_in,
        s.c_out,
        s.height,
        s.width,
        k = s.k
    );
    Ok(out)
}
