//! Every GPU kernel against its CPU reference on the adapter (lavapipe in CI), at small odd shapes
//! that are not multiples of the workgroup or tile sizes, batch > 1 included; every backward
//! kernel against central finite differences of the f64 CPU forward.

#[path = "../common/mod.rs"]
mod common;

mod act;
mod adam;
mod augment;
mod conv;
mod coords;
mod fmm;
mod fused;
mod image;
mod linear;
mod mbstd;
mod modulate;
mod reduce;
mod resample;
