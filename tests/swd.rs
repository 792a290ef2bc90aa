//! ProGAN's sliced Wasserstein distance: the pyramid pieces on tiny known examples, and the
//! metric's behaviour on the emoji set (halves vs noise and grey), determinism and zero for
//! identical sets.

use std::sync::OnceLock;

use inrgan::data::Dataset;
use inrgan::metrics::swd::{
    SwdParams, blur5, laplacian_pyramid, level_sizes, pyr_down, pyr_up, reconstruct, reflect101,
    swd, swd_with, to_u8_range,
};
use inrgan::rng::Rng;

/// Element-wise |a - b| <= tol.
fn assert_close(a: &[f64], b: &[f64], tol: f64) {
    assert_eq!(a.len(), b.len());
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!((x - y).abs() <= tol, "[{i}] {x} vs {y} (tol {tol})");
    }
}

#[test]
fn reflect_101_indices() {
    // n = 4: ... 2 1 | 0 1 2 3 | 2 1 0 ...
    let got: Vec<usize> = (-3..=7).map(|i| reflect101(i, 4)).collect();
    assert_eq!(got, [3, 2, 1, 0, 1, 2, 3, 2, 1, 0, 1]);
    assert_eq!(reflect101(-5, 1), 0);
    assert_eq!(reflect101(-2, 2), 0);
    assert_eq!(reflect101(-1, 2), 1);
    assert_eq!(reflect101(3, 2), 1);
}

#[test]
fn binomial_blur_with_reflect_101_borders() {
    // An impulse at the edge of a 1x4 row: taps at -2, -1 mirror to 2, 1, so only the centre
    // tap sees it: [6, 4, 1, 0] / 16.
    let b = blur5(&[1.0, 0.0, 0.0, 0.0], 1, 4, 1.0);
    assert_close(&b, &[6.0 / 16.0, 4.0 / 16.0, 1.0 / 16.0, 0.0], 1e-15);
    // An impulse next to the edge is seen twice from x = 0 (offsets -1 mirrored and +1),
    // x = 1 (offsets -1 mirrored and 0) and x = 3 (offsets -2 and +2 mirrored):
    // [4 + 4, 1 + 6, 4, 1 + 1] / 16.
    let b = blur5(&[0.0, 1.0, 0.0, 0.0], 1, 4, 1.0);
    assert_close(&b, &[0.5, 7.0 / 16.0, 4.0 / 16.0, 2.0 / 16.0], 1e-15);
    // The same down a column.
    let b = blur5(&[0.0, 1.0, 0.0, 0.0], 4, 1, 1.0);
    assert_close(&b, &[0.5, 7.0 / 16.0, 4.0 / 16.0, 2.0 / 16.0], 1e-15);
    // 2-D: the outer product.
    let mut img = vec![0.0; 16];
    img[0] = 1.0;
    let b = blur5(&img, 4, 4, 1.0);
    let k = [6.0, 4.0, 1.0, 0.0];
    let want: Vec<f64> = (0..16).map(|i| k[i / 4] * k[i % 4] / 256.0).collect();
    assert_close(&b, &want, 1e-15);
    // pyrDown keeps the even samples; pyrUp zero-inserts and blurs with 4x the kernel.
    let (d, h, w) = pyr_down(&[0.0, 1.0, 0.0, 0.0], 1, 4);
    assert_eq!((h, w), (1, 2));
    assert_close(&d, &[0.5, 4.0 / 16.0], 1e-15);
    let u = pyr_up(&[1.0, 0.0], 1, 2, 1, 4);
    assert_close(&u, &[1.5, 1.0, 0.25, 0.0], 1e-15);
}

#[test]
fn pyramid_keeps_constants_and_reconstructs() {
    for s in [8usize, 9] {
        let c = vec![3.25; s * s];
        let (d, h, w) = pyr_down(&c, s, s);
        assert_eq!((h, w), (s.div_ceil(2), s.div_ceil(2)));
        assert_close(&d, &vec![3.25; h * w], 1e-12);
        assert_close(&pyr_up(&d, h, w, s, s), &c, 1e-12);
    }
    let mut rng = Rng::new(5);
    for (s, levels) in [(32usize, 2usize), (64, 3), (37, 3)] {
        let img: Vec<f64> = (0..s * s).map(|_| rng.uniform() * 255.0).collect();
        let pyr = laplacian_pyramid(&img, s, s, levels);
        assert_eq!(pyr.len(), levels);
        assert_eq!(pyr[levels - 1].1, level_sizes(s, 1)[levels - 1]);
        // The band-pass levels have (nearly) zero mean; the coarsest is the Gaussian.
        assert_close(&reconstruct(&pyr), &img, 1e-4);
    }
    assert_eq!(level_sizes(64, 16), [64, 32, 16]);
    assert_eq!(level_sizes(32, 16), [32, 16]);
    assert_eq!(level_sizes(16, 16), [16]);
    assert_eq!(level_sizes(1024, 16).len(), 7);
    assert_eq!(level_sizes(8, 16), [8]);
}

#[test]
fn u8_range_conversion() {
    assert_eq!(
        to_u8_range(&[-1.0, 1.0, 0.0, 2.0, -3.0, 0.5]),
        [0.0, 255.0, 128.0, 255.0, 0.0, 191.0]
    );
}

/// The emoji set at 32 px in the uint8 range, split into its even and odd images.
fn emoji_halves() -> &'static (Vec<f32>, Vec<f32>, usize) {
    static H: OnceLock<(Vec<f32>, Vec<f32>, usize)> = OnceLock::new();
    H.get_or_init(|| {
        let (ds, _) = Dataset::open("emoji", 32).expect("emoji");
        let n = ds.len() / 2;
        let (mut a, mut b) = (Vec::new(), Vec::new());
        for i in 0..n {
            a.extend(to_u8_range(ds.image(2 * i)));
            b.extend(to_u8_range(ds.image(2 * i + 1)));
        }
        (a, b, n)
    })
}

/// Fewer patches (8, not 128) and directions (4 x 32, not 4 x 128) than ProGAN so the
/// debug-build tests stay quick (matrixmultiply is unoptimised there).
fn test_params() -> SwdParams {
    SwdParams {
        patches_per_image: 8,
        directions: 32,
        ..SwdParams::default()
    }
}

#[test]
fn swd_identical_sets_is_zero_and_deterministic() {
    let (a, _, n) = emoji_halves();
    let n = (*n).min(100);
    let a = &a[..n * 3 * 32 * 32];
    let r = swd_with(&test_params(), a, a, n, 32, 1).unwrap();
    assert_eq!(r.per_level.len(), 2);
    assert_eq!(r.avg, 0.0);
    let mut rng = Rng::new(3);
    let noise: Vec<f32> = (0..a.len()).map(|_| rng.below(256) as f32).collect();
    let x = swd_with(&test_params(), a, &noise, n, 32, 7).unwrap();
    let y = swd_with(&test_params(), a, &noise, n, 32, 7).unwrap();
    let z = swd_with(&test_params(), a, &noise, n, 32, 8).unwrap();
    assert_eq!(x, y);
    assert_ne!(x, z);
    // Another seed moves the value only a little.
    assert!((x.avg - z.avg).abs() < 0.1 * x.avg, "{x} vs {z}");
    // Bad sizes are errors, not panics.
    assert!(swd(a, &noise[1..], n, 32, 0).is_err());
    assert!(swd_with(&test_params(), &a[..3 * 25], &a[..3 * 25], 1, 5, 0).is_err());
}

#[test]
fn swd_emoji_halves_small_noise_and_grey_large() {
    let (a, b, n) = emoji_halves();
    let n = *n;
    let p = test_params();
    let halves = swd_with(&p, a, b, n, 32, 11).unwrap();
    let mut rng = Rng::new(4);
    let noise: Vec<f32> = (0..a.len()).map(|_| rng.below(256) as f32).collect();
    let vs_noise = swd_with(&p, a, &noise, n, 32, 11).unwrap();
    let grey = vec![128.0f32; a.len()];
    let vs_grey = swd_with(&p, a, &grey, n, 32, 11).unwrap();
    eprintln!("emoji halves ({n} vs {n} at 32 px, 8 patches/image, 4x32 dirs): {halves}");
    eprintln!("emoji vs uniform noise: {vs_noise}");
    eprintln!("emoji vs constant grey: {vs_grey}");
    assert!(halves.avg > 0.0);
    for (i, (res, h)) in halves.per_level.iter().enumerate() {
        assert!(*h > 0.0, "{res} px");
        assert!(
            vs_noise.per_level[i].1 > 5.0 * h,
            "{res} px: noise vs halves"
        );
        assert!(vs_grey.per_level[i].1 > 5.0 * h, "{res} px: grey vs halves");
    }
    // Measured: noise about 8x, grey about 35x the halves' value.
    assert!(vs_noise.avg > 5.0 * halves.avg);
    assert!(vs_grey.avg > 20.0 * halves.avg);
}

/// The same comparison with ProGAN's exact parameters (128 patches per image); slow in a
/// debug build: `cargo test --release --test swd -- --ignored --nocapture`.
#[test]
#[ignore]
fn swd_emoji_progan_parameters() {
    let (a, b, n) = emoji_halves();
    let n = *n;
    let halves = swd(a, b, n, 32, 11).unwrap();
    let mut rng = Rng::new(4);
    let noise: Vec<f32> = (0..a.len()).map(|_| rng.below(256) as f32).collect();
    let vs_noise = swd(a, &noise, n, 32, 11).unwrap();
    eprintln!("ProGAN parameters, emoji halves ({n} vs {n} at 32 px): {halves}");
    eprintln!("ProGAN parameters, emoji vs uniform noise: {vs_noise}");
    assert!(vs_noise.avg > 5.0 * halves.avg);
}
