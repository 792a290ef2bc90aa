use inrgan::kernels::modulate as k;
use inrgan::reference::modulate::{self as r, ModulateShape};

use crate::common::*;

fn shapes() -> Vec<ModulateShape> {
    vec![
        ModulateShape {
            batch: 1,
            c_out: 1,
            c_in: 1,
            gain: 1.0,
        },
        ModulateShape {
            batch: 3,
            c_out: 3,
            c_in: 7,
            gain: 0.37,
        },
        ModulateShape {
            batch: 2,
            c_out: 3,
            c_in: 65,
            gain: 1.0 / 65f32.sqrt(),
        },
        ModulateShape {
            batch: 5,
            c_out: 4,
            c_in: 33,
            gain: 2.0,
        },
    ]
}

#[test]
fn style_modulate_forward_matches_reference() {
    let mut g = rng(40);
    for m in shapes() {
        let (ws, s) = (
            g.normal_vec(m.c_out * m.c_in),
            g.normal_vec(m.batch * m.c_in),
        );
        let wb = zeros(m.batch * m.c_out * m.c_in);
        run("modulate", |rec| {
            k::style_modulate_forward(rec, &m, &up(&ws), &up(&s), &wb).unwrap()
        });
        let want = r::style_modulate_forward(&m, &to64(&ws), &to64(&s));
        assert_close(&format!("modulate {m:?}"), &read(&wb), &want, 1e-6, 1e-5);
    }
}

#[test]
fn style_modulate_backward_matches_reference_and_finite_differences() {
    let mut g = rng(41);
    for m in shapes() {
        let (ws, s) = (
            g.normal_vec(m.c_out * m.c_in),
            g.normal_vec(m.batch * m.c_in),
        );
        let dw = g.normal_vec(m.batch * m.c_out * m.c_in);
        let prior = g.normal_vec(m.c_out * m.c_in);
        let (dwsb, dsb) = (up(&prior), zeros(m.batch * m.c_in));
        run("modulate bwd", |rec| {
            k::style_modulate_backward(rec, &m, &up(&ws), &up(&s), &up(&dw), &dwsb, &dsb, true)
                .unwrap()
        });
        let (ws64, s64, dw64) = (to64(&ws), to64(&s), to64(&dw));
        let (dws, ds) = r::style_modulate_backward(&m, &ws64, &s64, &dw64);
        let dws_acc: Vec<f64> = dws.iter().zip(&prior).map(|(a, &b)| a + b as f64).collect();
        let tag = format!("{m:?}");
        assert_close(
            &format!("dws (accumulated) {tag}"),
            &read(&dwsb),
            &dws_acc,
            1e-5,
            1e-5,
        );
        let gds = read(&dsb);
        assert_close(&format!("ds {tag}"), &gds, &ds, 1e-5, 1e-5);
        let loss_s = |v: &[f64]| dot(&dw64, &r::style_modulate_forward(&m, &ws64, v));
        let loss_w = |v: &[f64]| dot(&dw64, &r::style_modulate_forward(&m, v, &s64));
        check_fd(
            &format!("ds {tag}"),
            &gds,
            loss_s,
            &s64,
            30,
            1e-4,
            1e-4,
            1e-4,
            &mut g,
        );
        let dws32: Vec<f32> = dws.iter().map(|&v| v as f32).collect();
        check_fd(
            &format!("reference dws {tag}"),
            &dws32,
            loss_w,
            &ws64,
            30,
            1e-4,
            1e-4,
            1e-4,
            &mut g,
        );
    }
}
