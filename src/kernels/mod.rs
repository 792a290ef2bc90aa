//! The GPU kernels' Rust side: one module per file in `shaders/`, each function recording one
//! or more dispatches on a [`Recorder`](crate::gpu::Recorder) and checking its arguments'
//! sizes first. The CPU reference of each lives in [`crate::reference`] under the same name.

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

use crate::gpu::{GpuBuffer, GpuError, GpuResult};

/// Fails unless `buf` holds at least `need` values.
pub(crate) fn need<T: bytemuck::Pod>(name: &str, buf: &GpuBuffer<T>, need: usize) -> GpuResult<()> {
    if buf.len() < need {
        return Err(GpuError::Shape(format!(
            "{name}: buffer holds {} values, the shape needs {need}",
            buf.len()
        )));
    }
    Ok(())
}

/// Workgroup size of every elementwise and reduction kernel.
pub const WG: u32 = 64;

pub(crate) fn u32_of(name: &str, v: usize) -> GpuResult<u32> {
    u32::try_from(v).map_err(|_| GpuError::Shape(format!("{name} = {v} exceeds u32")))
}
