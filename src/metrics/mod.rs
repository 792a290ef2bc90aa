//! Quality metrics that need no pretrained network.
//!
//! - [`swd`](mod@swd): ProGAN's sliced Wasserstein distance between Laplacian-pyramid patches of a real
//!   and a generated image set (Karras et al. 2018).
//! - [`seams`]: how visible a coarse grid's cell boundaries are in a magnified render.

pub mod seams;
pub mod swd;

pub use swd::{SwdError, SwdParams, SwdResult, swd, swd_with, to_u8_range};
