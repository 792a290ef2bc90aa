//! The benchmark cases: realistic shapes of the emoji presets (training at batch 32 with INR
//! widths 256/128/64 and a discriminator of 32..256 channels; a 256² viewport render).

use inrgan::gpu::{GpuBuffer, GpuResult, Recorder};
use inrgan::kernels as k;
use inrgan::reference as r;

use super::{Bench, Case};

const F: f64 = 4.0; // bytes per f32

#[allow(clippy::too_many_arguments)]
fn case(
    v: &mut Vec<Case>,
    name: &str,
    shape: String,
    flops: f64,
    bytes: f64,
    gpu: impl Fn(&mut Recorder) -> GpuResult<()> + 'static,
    cpu: impl Fn() + 'static,
) {
    v.push(Case {
        name: name.into(),
        shape,
        flops,
        bytes,
        gpu: Box::new(gpu),
        cpu: Box::new(cpu),
    });
}

pub fn all(b: &mut Bench) -> GpuResult<Vec<Case>> {
    let mut v = Vec::new();
    linear(b, &mut v)?;
    fmm(b, &mut v)?;
    coords(b, &mut v)?;
    resample(b, &mut v)?;
    act(b, &mut v)?;
    conv(b, &mut v)?;
    mbstd(b, &mut v)?;
    reduce(b, &mut v)?;
    adam(b, &mut v)?;
    image(b, &mut v)?;
    fused(b, &mut v)?;
    Ok(v)
}

/// The fused block kernel on emoji32's finest block (input: 64 features + 28 frequencies' sin
/// and cos = 120 channels; two 64-wide layers, toRGB after the second) at a 256² render, beside
/// the same block through the unfused kernels' CPU reference.
fn fused(b: &mut Bench, v: &mut Vec<Case>) -> GpuResult<()> {
    let s = r::fused::FusedShape {
        batch: 1,
        pixels: 256 * 256,
        c_in: 120,
        broadcast_input: false,
        layers: vec![(64, false), (64, true)],
        alpha: 0.2,
        gain: std::f32::consts::SQRT_2,
    };
    let (_, wlen) = s.weight_offsets();
    let (_, blen) = s.bias_offsets();
    let (_, rlen) = s.rgb_offsets();
    let macs = s.pixels * (120 * 64 + 64 * 64 + 3 * 64);
    let flops = 2.0 * macs as f64;
    let bytes = F * (s.pixels * (120 + 64 + 3 * 2) + wlen + rlen) as f64;
    let x: Vec<f32> = b.normal(s.c_in * s.pixels);
    let w: Vec<f32> = b.normal(wlen).iter().map(|v| v * 0.1).collect();
    let bias = b.normal(blen);
    let rw = b.normal(rlen);
    let rb = b.normal(3);
    let img = b.normal(3 * s.pixels);
    let (xb, wb, bb, rwb, rbb, ib, ob) = (
        b.up(&x)?,
        b.up(&w)?,
        b.up(&bias)?,
        b.up(&rw)?,
        b.up(&rb)?,
        b.up(&img)?,
        b.zeros(64 * s.pixels)?,
    );
    let s2 = s.clone();
    let (bias2, rw2, rb2, img2) = (bias.clone(), rw.clone(), rb.clone(), img.clone());
    case(
        v,
        "fused block fwd (render)",
        "1x 120->64->64+rgb @ 65536 px".into(),
        flops,
        bytes,
        move |rec| {
            k::fused::level_forward(
                rec,
                &s2,
                r::fused::FusedInput::Dense(&xb),
                &wb,
                &bb,
                &rwb,
                &rbb,
                &ib,
                Some(&ob),
            )
        },
        move || {
            std::hint::black_box(r::fused::level_forward(&s, &x, &w, &bias, &rw, &rb, &img));
        },
    );
    // emoji32's finest block as a frame runs it: the input assembled in the kernel from the
    // previous block's 128 features on a 128² grid and 28 frequencies, no features stored.
    let a = r::fused::Assembly {
        c_prev: 128,
        prev_rows: 128,
        prev_cols: 128,
        rows: 256,
        cols: 256,
        n_freq: 28,
        bilinear: false,
    };
    let s = r::fused::FusedShape {
        c_in: a.c_in(),
        ..s_asm_base()
    };
    let (_, wlen) = s.weight_offsets();
    let macs = s.pixels * (a.c_in() * 64 + 64 * 64 + 3 * 64);
    let bytes = F * (128 * 128 * 128 + 3 * 2 * s.pixels + wlen + rlen) as f64;
    let feat: Vec<f32> = b.normal(128 * 128 * 128);
    let w: Vec<f32> = b.normal(wlen).iter().map(|v| v * 0.1).collect();
    let xs: Vec<f32> = (0..256)
        .map(|i| -1.0 + (2 * i + 1) as f32 / 256.0)
        .collect();
    let freqs: Vec<f32> = b.normal(2 * 28);
    let tab: Vec<u32> = (0..256).map(|i| i / 2).collect();
    let geom = a
        .geometry(&xs, &xs, &freqs, &tab, &tab)
        .map_err(inrgan::gpu::GpuError::Shape)?;
    let (bias, rw, rb, img) = (bias2, rw2, rb2, img2);
    let (fb, gb, wb2, ib2) = (b.up(&feat)?, b.up(&geom)?, b.up(&w)?, b.up(&img)?);
    let (bb2, rwb2, rbb2) = (b.up(&bias)?, b.up(&rw)?, b.up(&rb)?);
    let (s2, a2) = (s.clone(), a.clone());
    case(
        v,
        "fused block fwd (frame)",
        "1x [128 @ 128² | 56 emb] ->64->64+rgb @ 65536 px".into(),
        2.0 * macs as f64,
        bytes,
        move |rec| {
            k::fused::level_forward(
                rec,
                &s2,
                r::fused::FusedInput::Assembled {
                    a: &a2,
                    feat: Some(&fb),
                    geom: &gb,
                },
                &wb2,
                &bb2,
                &rwb2,
                &rbb2,
                &ib2,
                None,
            )
        },
        move || {
            let x = r::fused::assemble_input(&a, 1, &feat, &xs, &xs, &freqs, &tab, &tab, None);
            std::hint::black_box(r::fused::level_forward(&s, &x, &w, &bias, &rw, &rb, &img));
        },
    );
    Ok(())
}

/// The finest block of emoji32 at 256², one image (its input width is set by the caller).
fn s_asm_base() -> r::fused::FusedShape {
    r::fused::FusedShape {
        batch: 1,
        pixels: 256 * 256,
        c_in: 0,
        broadcast_input: false,
        layers: vec![(64, false), (64, true)],
        alpha: 0.2,
        gain: std::f32::consts::SQRT_2,
    }
}

fn linear(b: &mut Bench, v: &mut Vec<Case>) -> GpuResult<()> {
    let s = r::linear::LinearShape {
        rows: 32,
        d_in: 256,
        d_out: 256,
        w_gain: 1.0 / 16.0,
        b_gain: 1.0,
    };
    let shape = format!("{}x{} -> {}", s.rows, s.d_in, s.d_out);
    let flops = 2.0 * (s.rows * s.d_in * s.d_out) as f64;
    let bytes = F * (s.rows * s.d_in + s.d_in * s.d_out + s.rows * s.d_out) as f64;
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
        case(
            v,
            "linear fwd",
            shape.clone(),
            flops,
            bytes,
            move |rec| k::linear::linear_forward(rec, &s, &xb, &wb, Some(&bb), &yb),
            move || {
                std::hint::black_box(r::linear::linear_forward(&s, &x, &w, Some(&bias)));
            },
        );
    }
    {
        let (dyb, wb, xb) = (b.up(&dy)?, b.up(&w)?, b.up(&x)?);
        let (dxb, dwb, dbb) = (b.zeros(x.len())?, b.zeros(w.len())?, b.zeros(s.d_out)?);
        case(
            v,
            "linear bwd (dX + dW + db)",
            shape,
            2.0 * flops,
            2.0 * bytes,
            move |rec| {
                k::linear::linear_backward_input(rec, &s, &dyb, &wb, &dxb, false)?;
                k::linear::linear_backward_weight(rec, &s, &dyb, &xb, &dwb, false)?;
                k::linear::linear_backward_bias(rec, &s, &dyb, &dbb, false)
            },
            move || {
                std::hint::black_box(r::linear::linear_backward(&s, &x, &w, &dy));
            },
        );
    }
    for (label, s) in [
        (
            "modlinear fwd (train)",
            r::linear::ModLinearShape {
                batch: 32,
                c_in: 128,
                c_out: 128,
                pixels: 16 * 16,
            },
        ),
        (
            "modlinear fwd (render)",
            r::linear::ModLinearShape {
                batch: 1,
                c_in: 64,
                c_out: 64,
                pixels: 256 * 256,
            },
        ),
    ] {
        let shape = format!("B{} {}->{} @ {} px", s.batch, s.c_in, s.c_out, s.pixels);
        let flops = 2.0 * (s.batch * s.pixels * s.c_in * s.c_out) as f64;
        let bytes = F * (s.batch * (s.pixels * (s.c_in + s.c_out) + s.c_in * s.c_out)) as f64;
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
            case(
                v,
                label,
                shape.clone(),
                flops,
                bytes,
                move |rec| k::linear::modlinear_forward(rec, &s, &xb, &wb, Some(&bb), &yb, false),
                move || {
                    std::hint::black_box(r::linear::modlinear_forward(&s, &x, &w, Some(&bias)));
                },
            );
        }
        if s.batch > 1 {
            let dy = b.normal(s.batch * s.c_out * s.pixels);
            let (dyb, wb, xb) = (b.up(&dy)?, b.up(&w)?, b.up(&x)?);
            let (dxb, dwb, dbb) = (b.zeros(x.len())?, b.zeros(w.len())?, b.zeros(s.c_out)?);
            case(
                v,
                "modlinear bwd (train)",
                shape,
                2.0 * flops,
                2.0 * bytes,
                move |rec| {
                    k::linear::modlinear_backward_input(rec, &s, &dyb, &wb, &dxb, false, false)?;
                    k::linear::modlinear_backward_weight(rec, &s, &dyb, &xb, &dwb, false)?;
                    k::linear::modlinear_backward_bias(rec, &s, &dyb, &dbb, false)
                },
                move || {
                    std::hint::black_box(r::linear::modlinear_backward(&s, &x, &w, &dy));
                },
            );
        }
    }
    Ok(())
}

fn fmm(b: &mut Bench, v: &mut Vec<Case>) -> GpuResult<()> {
    let s = r::fmm::FmmShape {
        batch: 32,
        c_out: 256,
        c_in: 256,
        rank: 8,
        demod: true,
    };
    let shape = format!("B{} {}x{} rank {}", s.batch, s.c_out, s.c_in, s.rank);
    let n = s.weight_len();
    // A·B (2r per value), modulate and square (4), scale (1).
    let flops = (2 * s.rank + 5) as f64 * n as f64;
    let bytes = F * (2 * n + s.c_out * s.c_in + s.batch * s.style_dim()) as f64;
    let ws = b.normal(s.c_out * s.c_in);
    let styles = b.normal(s.batch * s.style_dim());
    let dw = b.normal(n);
    let (wsb, stb, wb, nb) = (
        b.up(&ws)?,
        b.up(&styles)?,
        b.zeros(n)?,
        b.zeros(s.batch * s.c_out)?,
    );
    {
        let (ws, styles) = (ws.clone(), styles.clone());
        case(
            v,
            "fmm fwd (modulate + demod)",
            shape.clone(),
            flops,
            bytes,
            move |rec| k::fmm::fmm_forward(rec, &s, &wsb, &stb, &wb, &nb),
            move || {
                std::hint::black_box(r::fmm::fmm_forward(&s, &ws, &styles));
            },
        );
    }
    let (wsb, stb, dwb) = (b.up(&ws)?, b.up(&styles)?, b.up(&dw)?);
    let (_, norms) = r::fmm::fmm_forward(&s, &ws, &styles);
    let nb = b.up(&norms)?;
    let (scr, dwsb, dstb) = (
        b.zeros(n)?,
        b.zeros(s.c_out * s.c_in)?,
        b.zeros(s.batch * s.style_dim())?,
    );
    case(
        v,
        "fmm bwd (dWs + dA + dB)",
        shape,
        (6 * s.rank + 12) as f64 * n as f64,
        3.0 * bytes,
        move |rec| k::fmm::fmm_backward(rec, &s, &wsb, &stb, &nb, &dwb, &scr, &dwsb, &dstb, false),
        move || {
            std::hint::black_box(r::fmm::fmm_backward(&s, &ws, &styles, &dw));
        },
    );
    Ok(())
}

fn coords(b: &mut Bench, v: &mut Vec<Case>) -> GpuResult<()> {
    let basis = r::coords::log_basis(32, true);
    let s = r::coords::CoordsShape {
        width: 256,
        height: 256,
        n_freq: basis.len(),
        with_cos: true,
    };
    let freqs: Vec<f32> = basis.iter().flatten().copied().collect();
    let (xs, ys) = r::coords::window_grid(-1.0, 1.0, -1.0, 1.0, s.width, s.height);
    let (xb, yb, fb, eb) = (
        b.up(&xs)?,
        b.up(&ys)?,
        b.up(&freqs)?,
        b.zeros(s.channels() * s.pixels())?,
    );
    case(
        v,
        "coords fwd (sin + cos)",
        format!("256x256, {} freqs", s.n_freq),
        // A phase (3) and sin + cos (counted as 2).
        5.0 * (s.n_freq * s.pixels()) as f64,
        F * (s.channels() * s.pixels()) as f64,
        move |rec| k::coords::coords_forward(rec, &s, &xb, &yb, &fb, &eb),
        move || {
            std::hint::black_box(r::coords::coords_forward(&s, &xs, &ys, &freqs));
        },
    );
    Ok(())
}

fn resample(b: &mut Bench, v: &mut Vec<Case>) -> GpuResult<()> {
    let (planes, h, w) = (32 * 128, 16, 16);
    let n_out = planes * 4 * h * w;
    let x = b.normal(planes * h * w);
    let dy = b.normal(n_out);
    let shape = format!("{planes} planes {h}x{w} -> {}x{}", 2 * h, 2 * w);
    let bytes = F * (planes * h * w + n_out) as f64;
    {
        let (xb, yb) = (b.up(&x)?, b.zeros(n_out)?);
        let x = x.clone();
        case(
            v,
            "upsample2x fwd",
            shape.clone(),
            0.0,
            bytes,
            move |rec| k::resample::upsample2x_forward(rec, &xb, &yb, planes, h, w),
            move || {
                std::hint::black_box(r::resample::upsample2x_forward(&x, planes, h, w));
            },
        );
    }
    let (dyb, dxb) = (b.up(&dy)?, b.zeros(x.len())?);
    case(
        v,
        "upsample2x bwd",
        shape,
        (n_out) as f64,
        bytes,
        move |rec| k::resample::upsample2x_backward(rec, &dyb, &dxb, planes, h, w, false),
        move || {
            std::hint::black_box(r::resample::upsample2x_backward(&dy, planes, h, w));
        },
    );
    Ok(())
}

fn act(b: &mut Bench, v: &mut Vec<Case>) -> GpuResult<()> {
    let s = r::act::ActShape::lrelu(32, 128, 32 * 32);
    let n = s.len();
    let shape = format!("[{}, {}, {}]", s.outer, s.channels, s.inner);
    let (x, bias, dy) = (b.normal(n), b.normal(s.channels), b.normal(n));
    let (xb, bb, yb) = (b.up(&x)?, b.up(&bias)?, b.zeros(n)?);
    {
        let (x, bias) = (x.clone(), bias.clone());
        case(
            v,
            "bias + lrelu fwd",
            shape.clone(),
            3.0 * n as f64,
            F * 2.0 * n as f64,
            move |rec| k::act::act_forward(rec, &s, &xb, Some(&bb), &yb),
            move || {
                std::hint::black_box(r::act::act_forward(&s, &x, Some(&bias)));
            },
        );
    }
    let y = r::act::act_forward(&s, &x, Some(&bias));
    let (yb, dyb, dxb, dbb) = (b.up(&y)?, b.up(&dy)?, b.zeros(n)?, b.zeros(s.channels)?);
    case(
        v,
        "bias + lrelu bwd (dX + db)",
        shape,
        3.0 * n as f64,
        F * 3.0 * n as f64,
        move |rec| {
            k::act::act_backward(rec, &s, &yb, &dyb, &dxb, false)?;
            k::act::act_backward_bias(rec, &s, &dxb, &dbb, false)
        },
        move || {
            std::hint::black_box(r::act::act_backward(&s, &y, &dy));
        },
    );
    Ok(())
}

fn conv(b: &mut Bench, v: &mut Vec<Case>) -> GpuResult<()> {
    for (stride, c_in, c_out, hw) in [(1, 64, 64, 16), (2, 64, 128, 16)] {
        let s = r::conv::ConvShape {
            batch: 32,
            c_in,
            c_out,
            height: hw,
            width: hw,
            k: 3,
            stride,
            w_gain: 1.0 / ((c_in * 9) as f32).sqrt(),
            b_gain: 1.0,
        };
        let shape = format!("N{} {}->{} {hw}x{hw} s{stride}", s.batch, c_in, c_out);
        let flops = 2.0 * (s.y_len() * c_in * 9) as f64;
        let bytes = F * (s.x_len() + s.w_len() + s.y_len()) as f64;
        let (x, w, bias, dy) = (
            b.normal(s.x_len()),
            b.normal(s.w_len()),
            b.normal(c_out),
            b.normal(s.y_len()),
        );
        {
            let (xb, wb, bb, yb) = (b.up(&x)?, b.up(&w)?, b.up(&bias)?, b.zeros(s.y_len())?);
            let (x, w, bias) = (x.clone(), w.clone(), bias.clone());
            case(
                v,
                "conv3x3 fwd",
                shape.clone(),
                flops,
                bytes,
                move |rec| k::conv::conv2d_forward(rec, &s, &xb, &wb, Some(&bb), &yb),
                move || {
                    std::hint::black_box(r::conv::conv2d_forward(&s, &x, &w, Some(&bias)));
                },
            );
        }
        let (xb, wb, dyb) = (b.up(&x)?, b.up(&w)?, b.up(&dy)?);
        let (dxb, dwb, dbb) = (b.zeros(s.x_len())?, b.zeros(s.w_len())?, b.zeros(c_out)?);
        case(
            v,
            "conv3x3 bwd (dX + dW + db)",
            shape,
            2.0 * flops,
            2.0 * bytes,
            move |rec| {
                k::conv::conv2d_backward_input(rec, &s, &dyb, &wb, &dxb, false)?;
                k::conv::conv2d_backward_weight(rec, &s, &dyb, &xb, &dwb, false)?;
                k::conv::conv2d_backward_bias(rec, &s, &dyb, &dbb, false)
            },
            move || {
                std::hint::black_box(r::conv::conv2d_backward(&s, &x, &w, &dy));
            },
        );
    }
    let (planes, h, w) = (32 * 64, 32, 32);
    let x = b.normal(planes * h * w);
    let (xb, yb) = (b.up(&x)?, b.zeros(planes * h * w / 4)?);
    case(
        v,
        "blur_down2x fwd",
        format!("{planes} planes {h}x{w}"),
        2.0 * 16.0 * (planes * h * w / 4) as f64,
        F * 1.25 * (planes * h * w) as f64,
        move |rec| k::conv::blur_down2x_forward(rec, &xb, &yb, planes, h, w),
        move || {
            std::hint::black_box(r::conv::blur_down2x_forward(&x, planes, h, w));
        },
    );
    Ok(())
}

fn mbstd(b: &mut Bench, v: &mut Vec<Case>) -> GpuResult<()> {
    let s = r::mbstd::MbstdShape {
        batch: 32,
        channels: 256,
        height: 4,
        width: 4,
        group: 4,
        num_channels: 1,
    };
    let x = b.normal(s.x_len());
    let (xb, sb, yb) = (b.up(&x)?, b.zeros(s.stat_len())?, b.zeros(s.y_len())?);
    case(
        v,
        "mbstd fwd",
        format!("N{} C{} 4x4 G4", s.batch, s.channels),
        4.0 * s.x_len() as f64,
        F * (s.x_len() + s.y_len()) as f64,
        move |rec| k::mbstd::mbstd_forward(rec, &s, &xb, &sb, &yb),
        move || {
            std::hint::black_box(r::mbstd::mbstd_forward(&s, &x));
        },
    );
    Ok(())
}

fn reduce(b: &mut Bench, v: &mut Vec<Case>) -> GpuResult<()> {
    let (a, m, i) = (32, 128, 1024);
    let x = b.normal(a * m * i);
    let (xb, yb) = (b.up(&x)?, b.zeros(m)?);
    case(
        v,
        "sum_axes (bias grad)",
        format!("[{a}, {m}, {i}] -> [{m}]"),
        (a * m * i) as f64,
        F * (a * m * i) as f64,
        move |rec| k::reduce::sum_axes(rec, &xb, &yb, a, m, i, 1.0, false),
        move || {
            std::hint::black_box(r::reduce::sum_axes(&x, a, m, i, 1.0));
        },
    );
    let (rows, cols) = (32 * 256, 256);
    let x = b.normal(rows * cols);
    let (xb, yb) = (b.up(&x)?, b.zeros(rows)?);
    case(
        v,
        "row_norm",
        format!("[{rows}, {cols}]"),
        2.0 * (rows * cols) as f64,
        F * (rows * cols) as f64,
        move |rec| k::reduce::row_norm(rec, &xb, &yb, rows, cols),
        move || {
            std::hint::black_box(r::reduce::row_norm(&x, rows, cols));
        },
    );
    Ok(())
}

fn adam(b: &mut Bench, v: &mut Vec<Case>) -> GpuResult<()> {
    // About the generator of the emoji32 preset.
    let n = 5_000_000;
    let cfg = r::adam::AdamConfig::stylegan2(0.002);
    let (p, g) = (b.normal(n), b.normal(n));
    let (pb, gb, mb, vb) = (b.up(&p)?, b.up(&g)?, b.zeros(n)?, b.zeros(n)?);
    {
        let (p, g) = (p.clone(), g.clone());
        case(
            v,
            "adam step",
            format!("{n} params"),
            12.0 * n as f64,
            F * 7.0 * n as f64,
            move |rec| k::adam::adam_step(rec, &cfg, 1, &pb, &gb, &mb, &vb, n),
            move || {
                let (mut p, mut m, mut vv) = (p.clone(), vec![0.0f32; n], vec![0.0f32; n]);
                r::adam::adam_step(&cfg, 1, &mut p, &g, &mut m, &mut vv);
                std::hint::black_box(p);
            },
        );
    }
    let (pb, eb) = (b.up(&p)?, b.up(&g)?);
    case(
        v,
        "weight EMA",
        format!("{n} params"),
        3.0 * n as f64,
        F * 3.0 * n as f64,
        move |rec| k::adam::ema_update(rec, &pb, &eb, 0.999, n),
        move || {
            let mut e = g.clone();
            r::adam::ema_update(&p, &mut e, 0.999);
            std::hint::black_box(e);
        },
    );
    Ok(())
}

fn image(b: &mut Bench, v: &mut Vec<Case>) -> GpuResult<()> {
    let pixels = 256 * 256;
    let x = b.normal(3 * pixels);
    let xb = b.up(&x)?;
    let out = GpuBuffer::<u32>::zeros(b.ctx, pixels, "bench rgba")?;
    case(
        v,
        "to_rgba8",
        "256x256".into(),
        6.0 * pixels as f64,
        F * 4.0 * pixels as f64,
        move |rec| k::image::to_rgba8(rec, &xb, &out, 1, pixels),
        move || {
            std::hint::black_box(r::image::to_rgba8(&x, 1, pixels));
        },
    );
    Ok(())
}
