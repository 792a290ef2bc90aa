//! INR-GAN Explorer: a GAN whose images are functions (implicit neural representations), trained
//! and evaluated with hand-written WGSL compute kernels on wgpu, with a CPU reference of every
//! kernel.
//!
//! Layers (see ARCHITECTURE.md):
//! - [`gpu`]: device, shaders, pipelines, buffers, dispatch, readback, timing. No UI.
//! - [`kernels`]: the Rust side of each WGSL kernel family in `shaders/`.
//! - [`reference`](mod@reference): the CPU reference of each kernel, the oracle of the tests.
//! - [`rng`]: a small deterministic random number generator shared by tests, benches and models.

pub mod app;
pub mod assets;
pub mod backend;
pub mod data;
pub mod engine;
pub mod gpu;
pub mod kernels;
pub mod latent;
pub mod metrics;
pub mod model;
pub mod png_io;
pub mod reference;
pub mod rng;
pub mod train;
