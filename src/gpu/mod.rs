//! The GPU layer: adapter and device, shaders, pipelines, typed buffers, dispatch, readback and
//! timing. It knows nothing of the UI (no egui here); the app hands it egui's device through
//! [`GpuContext::from_device`].
//!
//! The workflow, once:
//! 1. [`GpuContext::new`] picks an adapter (a real GPU first, honouring `WGPU_BACKEND` and
//!    `WGPU_ADAPTER_NAME`) and requests a device with the adapter's own limits.
//! 2. Data lives in [`GpuBuffer`]s (typed through bytemuck, storage + copy usage).
//! 3. A [`Recorder`] collects kernel dispatches (`kernels::*` functions add them); each dispatch
//!    binds a small uniform block of parameters at binding 0 and storage buffers at 1, 2, ...
//! 4. [`Recorder::submit`] encodes them into one compute pass and submits it; validation and
//!    out-of-memory errors come back as [`GpuError`] through error scopes.
//! 5. [`GpuBuffer::read`] copies a result to a mappable buffer and waits for it.

mod buffer;
mod context;
mod recorder;
pub mod shaders;

pub use buffer::{GpuBuffer, buffer_bytes, reset_peak_bytes};
pub use context::{
    AdapterSummary, GpuContext, GpuOptions, choose_adapter, device_descriptor, enumerate_adapters,
    strip_rows,
};
pub use recorder::{Kernel, Recorder, groups_1d};
pub use shaders::Shader;

/// Errors of the GPU layer. Every failure that input or the device can cause ends here.
#[derive(Debug, thiserror::Error)]
pub enum GpuError {
    #[error(
        "no GPU adapter found ({detail}).\n\
         INR-GAN Explorer needs a Vulkan, Metal, DX12 or GL driver. On a machine without a GPU, \
         install the Mesa software Vulkan driver: on Debian/Ubuntu `sudo apt-get install \
         mesa-vulkan-drivers libvulkan1` (Fedora: `mesa-vulkan-drivers`, Arch: `vulkan-swrast`). \
         Or run with the CPU backend (`--backend cpu`)."
    )]
    NoAdapter { detail: String },
    #[error("WGPU_ADAPTER_NAME={wanted:?} matches no adapter; available adapters: {available}")]
    AdapterNotFound { wanted: String, available: String },
    #[error("could not create a device on adapter {adapter}: {source}")]
    RequestDevice {
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },
    #[error("shader {file}: {message}")]
    Shader { file: String, message: String },
    #[error("GPU validation error in {context}: {message}")]
    Validation { context: String, message: String },
    #[error("GPU out of memory in {context}")]
    OutOfMemory { context: String },
    #[error("GPU internal error in {context}: {message}")]
    Internal { context: String, message: String },
    #[error("the GPU device was lost ({reason}); restart the renderer or use `--backend cpu`")]
    DeviceLost { reason: String },
    #[error("waiting for the GPU failed: {0}")]
    Poll(String),
    #[error("reading a buffer back from the GPU failed: {0}")]
    Map(String),
    #[error("bad kernel arguments: {0}")]
    Shape(String),
}

impl GpuError {
    pub(crate) fn from_wgpu(context: &str, e: wgpu::Error) -> Self {
        match e {
            wgpu::Error::OutOfMemory { .. } => GpuError::OutOfMemory {
                context: context.to_string(),
            },
            wgpu::Error::Validation { description, .. } => GpuError::Validation {
                context: context.to_string(),
                message: description,
            },
            wgpu::Error::Internal { description, .. } => GpuError::Internal {
                context: context.to_string(),
                message: description,
            },
        }
    }
}

pub type GpuResult<T> = Result<T, GpuError>;
