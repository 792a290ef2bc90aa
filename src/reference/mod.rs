//! CPU references of every GPU kernel, in plain Rust, generic over `f32`/`f64`.
//!
//! These are the oracles: the GPU kernels are tested against them at odd shapes, and their
//! backward functions against central finite differences of their forward functions in `f64`.
//! They favour obviously-correct loops over speed. Layouts match the kernels exactly: row-major,
//! `[batch, channels, pixels]` ("planar") for images and feature maps.

pub mod act;
pub mod adam;
pub mod augment;
pub mod conv;
pub mod coords;
pub mod fmm;
pub mod fused;
pub mod image;
pub mod linear;
pub mod mbstd;
pub mod modulate;
pub mod reduce;
pub mod resample;

pub use num_traits::Float;

/// `f64` → `F` for constants.
#[inline]
pub fn c<F: Float>(v: f64) -> F {
    F::from(v).unwrap_or_else(F::nan)
}
