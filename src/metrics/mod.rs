//! Quality metrics that need no pretrained network.
//!
//! - [`swd`]: ProGAN's sliced Wasserstein distance between Laplacian-pyramid patches of a real
//!   and a generated image set (Karras et al. 2018).

pub mod swd;

pub use swd::{SwdError, SwdParams, SwdResult, swd, swd_with, to_u8_range};
