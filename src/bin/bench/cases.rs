//! The benchmark cases: realistic shapes of the emoji presets (batch 32 training at 32² with
//! widths 256/128/64, and a 256² viewport render).

use inrgan::gpu::GpuResult;
use inrgan::kernels::{linear as kl, reduce as kr};
use inrgan::reference::{linear as rl, reduce as rr};

use super::{Bench, Case};

fn case(
    name: &str,
    shape: String,
    flops: f64,
    gpu: impl Fn(&mut inrgan::gpu::Recorder) -> GpuResult<()> + 'static,
    cpu: impl Fn() + 'static,
) -> Case {
    Case {
        name: name.into(),
        shape,
        flops,
        gpu: Box::new(gpu),
        cpu: Box::new(cpu),
    }
}

pub fn all(b: &mut Bench) -> GpuResult<Vec<Case>> {
    let mut v = Vec::new();
    linear(b, &mut v)?;
    reduce(b, &mut v)?;
    Ok(v)
}

fn linear(b: &mut Bench, v: &mut Vec<Case>) -> GpuResult<()> {
    let s = rl::LinearShape {
        rows: 32,
        d_in: 256,
        d_out: 256,
        w_gain: 1.0 / 16.0,
        b_gain: 1.0,
    };
    let shape = format!("{}x{} -> {}", s.rows, s.d_in, s.d_out);
    let flops = 2.0 * (s.rows * s.d_in * s.d_out) as f64;
    let (x, w, bias, dy) = (
        b.normal(s.rows * s.d_in),
        b.normal(s.d_out * s.d_in),
        b.normal(s.d_out),
        b.normal(s.rows * s.d_out),
    );
    {
        let (xb, wb, bb, yb) = (
            b.up(&x)?,
            b.up(&w)?,
            b.up(&bias)?,
            b.zeros(s.rows * s.d_out)?,
        );
        let (x, w, bias) = (x.clone(), w.clone(), bias.clone());
        v.push(case(
            "linear fwd",
            shape.clone(),
            flops,
            move |r| kl::linear_forward(r, &s, &xb, &wb, Some(&bb), &yb),
            move || {
                std::hint::black_box(rl::linear_forward(&s, &x, &w, Some(&bias)));
            },
        ));
    }
    {
        let (dyb, wb, xb) = (b.up(&dy)?, b.up(&w)?, b.up(&x)?);
        let (dxb, dwb, dbb) = (b.zeros(x.len())?, b.zeros(w.len())?, b.zeros(s.d_out)?);
        let (x, w, dy) = (x.clone(), w.clone(), dy.clone());
        v.push(case(
            "linear bwd (dX + dW + db)",
            shape,
            2.0 * flops,
            move |r| {
                kl::linear_backward_input(r, &s, &dyb, &wb, &dxb, false)?;
                kl::linear_backward_weight(r, &s, &dyb, &xb, &dwb, false)?;
                kl::linear_backward_bias(r, &s, &dyb, &dbb, false)
            },
            move || {
                std::hint::black_box(rl::linear_backward(&s, &x, &w, &dy));
            },
        ));
    }
    for (label, s) in [
        (
            "modlinear fwd (train)",
            rl::ModLinearShape {
                batch: 32,
                c_in: 128,
                c_out: 128,
                pixels: 16 * 16,
            },
        ),
        (
            "modlinear fwd (render)",
            rl::ModLinearShape {
                batch: 1,
                c_in: 64,
                c_out: 64,
                pixels: 256 * 256,
            },
        ),
    ] {
        let shape = format!("B{} {}->{} @ {} px", s.batch, s.c_in, s.c_out, s.pixels);
        let flops = 2.0 * (s.batch * s.pixels * s.c_in * s.c_out) as f64;
        let x = b.normal(s.batch * s.c_in * s.pixels);
        let w = b.normal(s.batch * s.c_out * s.c_in);
        let bias = b.normal(s.c_out);
        let (xb, wb, bb, yb) = (
            b.up(&x)?,
            b.up(&w)?,
            b.up(&bias)?,
            b.zeros(s.batch * s.c_out * s.pixels)?,
        );
        {
            let (x, w, bias) = (x.clone(), w.clone(), bias.clone());
            v.push(case(
                label,
                shape.clone(),
                flops,
                move |r| kl::modlinear_forward(r, &s, &xb, &wb, Some(&bb), &yb, false),
                move || {
                    std::hint::black_box(rl::modlinear_forward(&s, &x, &w, Some(&bias)));
                },
            ));
        }
        if s.batch > 1 {
            let dy = b.normal(s.batch * s.c_out * s.pixels);
            let (dyb, wb, xb) = (b.up(&dy)?, b.up(&w)?, b.up(&x)?);
            let (dxb, dwb, dbb) = (b.zeros(x.len())?, b.zeros(w.len())?, b.zeros(s.c_out)?);
            v.push(case(
                "modlinear bwd (train)",
                shape,
                2.0 * flops,
                move |r| {
                    kl::modlinear_backward_input(r, &s, &dyb, &wb, &dxb, false, false)?;
                    kl::modlinear_backward_weight(r, &s, &dyb, &xb, &dwb, false)?;
                    kl::modlinear_backward_bias(r, &s, &dyb, &dbb, false)
                },
                move || {
                    std::hint::black_box(rl::modlinear_backward(&s, &x, &w, &dy));
                },
            ));
        }
    }
    Ok(())
}

fn reduce(b: &mut Bench, v: &mut Vec<Case>) -> GpuResult<()> {
    let (a, m, i) = (32, 128, 1024);
    let x = b.normal(a * m * i);
    let (xb, yb) = (b.up(&x)?, b.zeros(m)?);
    v.push(case(
        "sum_axes (bias grad)",
        format!("[{a}, {m}, {i}] -> [{m}]"),
        (a * m * i) as f64,
        move |r| kr::sum_axes(r, &xb, &yb, a, m, i, 1.0, false),
        move || {
            std::hint::black_box(rr::sum_axes(&x, a, m, i, 1.0));
        },
    ));
    let (rows, cols) = (32 * 256, 256);
    let x = b.normal(rows * cols);
    let (xb, yb) = (b.up(&x)?, b.zeros(rows)?);
    v.push(case(
        "row_norm (FMM demod)",
        format!("[{rows}, {cols}]"),
        2.0 * (rows * cols) as f64,
        move |r| kr::row_norm(r, &xb, &yb, rows, cols),
        move || {
            std::hint::black_box(rr::row_norm(&x, rows, cols));
        },
    ));
    Ok(())
}
