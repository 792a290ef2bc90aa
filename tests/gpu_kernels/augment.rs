use inrgan::kernels::augment::{self as k, AUG_PARAMS, AugParams, AugShape};
use inrgan::reference::augment as r;

use crate::common::*;

// Shapes: odd sizes, batch > 1, one and three channels, shifts past the image, cut squares
// partly outside it.
const SHAPES: &[(usize, usize, usize, usize)] =
    &[(1, 3, 1, 1), (3, 3, 7, 5), (2, 1, 9, 13), (4, 3, 16, 16)];

/// Per-image parameters covering the cases: identity, shifts either way (some past the edge),
/// cutouts inside, at the corners and outside.
fn params(g: &mut inrgan::rng::Rng, s: &AugShape) -> Vec<f32> {
    let (h, w) = (s.height as i32, s.width as i32);
    (0..s.batch)
        .flat_map(|b| {
            let (bri, sat, con) = (g.uniform(), g.uniform(), g.uniform());
            let mut u = |lo: i32, hi: i32| lo + (g.next_u64() % (hi - lo + 1) as u64) as i32;
            let a = if b == 0 {
                AugParams::IDENTITY
            } else {
                AugParams {
                    brightness: (bri - 0.5) as f32,
                    saturation: (2.0 * sat) as f32,
                    contrast: (con + 0.5) as f32,
                    tx: u(-w - 1, w + 1),
                    ty: u(-h - 1, h + 1),
                    cut_x: u(-w / 2, w),
                    cut_y: u(-h / 2, h),
                    cut: u(0, h.max(w)),
                }
            };
            a.to_f32s()
        })
        .collect()
}

fn shapes() -> impl Iterator<Item = AugShape> {
    SHAPES
        .iter()
        .map(|&(batch, channels, height, width)| AugShape {
            batch,
            channels,
            height,
            width,
        })
}

#[test]
fn augment_kernels_match_reference() {
    let mut g = rng(120);
    for s in shapes() {
        let x = g.normal_vec(s.len());
        let prm = params(&mut g, &s);
        let mu = g.normal_vec(s.batch);
        let (xb, pb, mb) = (up(&x), up(&prm), up(&mu));
        let tag = format!("{s:?}");
        for brightness in [true, false] {
            let y = zeros(s.len());
            run("aug_color", |rec| {
                k::color(rec, &s, &xb, &pb, &y, brightness).unwrap()
            });
            let want = r::color(&s, &to64(&x), &prm, brightness);
            assert_close(
                &format!("color {brightness} {tag}"),
                &read(&y),
                &want,
                1e-5,
                1e-5,
            );
        }
        let y = zeros(s.len());
        run("aug_blend", |rec| {
            k::blend(rec, &s, &xb, &pb, &mb, &y).unwrap()
        });
        let want = r::blend(&s, &to64(&x), &prm, &to64(&mu));
        assert_close(&format!("blend {tag}"), &read(&y), &want, 1e-5, 1e-5);
        let y = zeros(s.len());
        run("aug_shift", |rec| {
            k::shift_forward(rec, &s, &xb, &pb, &y).unwrap()
        });
        let want = r::shift_forward(&s, &to64(&x), &prm);
        assert_close(&format!("shift {tag}"), &read(&y), &want, 0.0, 0.0);
    }
}

#[test]
fn augment_backward_kernels_match_reference_and_finite_differences() {
    let mut g = rng(121);
    for s in shapes() {
        let x64 = to64(&g.normal_vec(s.len()));
        let prm = params(&mut g, &s);
        let dy = g.normal_vec(s.len());
        let dy64 = to64(&dy);
        let pb = up(&prm);
        let tag = format!("{s:?}");
        // The shift's transpose.
        let dx = zeros(s.len());
        run("aug_shift bwd", |rec| {
            k::shift_backward(rec, &s, &up(&dy), &pb, &dx).unwrap()
        });
        let got = read(&dx);
        let want = r::shift_backward(&s, &dy64, &prm);
        assert_close(&format!("shift bwd {tag}"), &got, &want, 1e-5, 1e-5);
        let loss = |v: &[f64]| dot(&dy64, &r::shift_forward(&s, v, &prm));
        check_fd(
            &format!("shift bwd {tag}"),
            &got,
            loss,
            &x64,
            40,
            1e-3,
            1e-5,
            1e-5,
            &mut g,
        );
        // The colour ops' transposes: saturation without brightness, and the contrast blend
        // toward the gradient's mean, are the gradients of their forwards (the forward's mean
        // depends on x: checked through the whole pipeline below).
        let dxc = zeros(s.len());
        run("aug_color bwd", |rec| {
            k::color(rec, &s, &up(&dy), &pb, &dxc, false).unwrap()
        });
        let loss = |v: &[f64]| dot(&dy64, &r::color(&s, v, &prm, true));
        check_fd(
            &format!("color bwd {tag}"),
            &read(&dxc),
            loss,
            &x64,
            40,
            1e-3,
            1e-5,
            1e-4,
            &mut g,
        );
        // The whole pipeline's reference backward against finite differences of its forward.
        let full = r::augment_backward(&s, &dy64, &prm);
        let full32: Vec<f32> = full.iter().map(|&v| v as f32).collect();
        let loss = |v: &[f64]| dot(&dy64, &r::augment(&s, v, &prm));
        check_fd(
            &format!("augment bwd {tag}"),
            &full32,
            loss,
            &x64,
            40,
            1e-3,
            1e-5,
            1e-4,
            &mut g,
        );
    }
}

#[test]
fn augment_identity_changes_nothing_and_bad_parameters_are_errors() {
    let s = AugShape {
        batch: 2,
        channels: 3,
        height: 5,
        width: 4,
    };
    let mut g = rng(122);
    let x = g.normal_vec(s.len());
    let id: Vec<f32> = (0..s.batch)
        .flat_map(|_| AugParams::IDENTITY.to_f32s())
        .collect();
    let want = to64(&x);
    let got = r::augment(&s, &want, &id);
    assert_close(
        "identity",
        &got.iter().map(|&v| v as f32).collect::<Vec<_>>(),
        &want,
        1e-12,
        1e-12,
    );
    let mut bad = id.clone();
    bad[AUG_PARAMS + 3] = f32::NAN;
    assert!(s.check(&bad).is_err());
    assert!(s.check(&id[..AUG_PARAMS]).is_err());
    assert!(s.check(&id).is_ok());
}
