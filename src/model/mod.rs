//! The INR-GAN model: configuration and presets, parameters, the generator (mapping network,
//! FMM hypernetwork, multi-scale INR) and the discriminator, written once against
//! [`crate::backend::Backend`].

pub mod config;
pub mod discriminator;
pub mod generator;
pub mod params;
pub mod weights;
pub mod window;

pub use window::Window;
