//! Typed storage buffers: upload and readback through bytemuck.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::{GpuContext, GpuError, GpuResult};

/// A storage buffer of `len` values of `T` on the device.
pub struct GpuBuffer<T: Pod> {
    buffer: wgpu::Buffer,
    len: usize,
    _t: PhantomData<T>,
}

const USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

/// Buffers are at least this big: a zero-sized binding is invalid.
const MIN_BYTES: u64 = 16;

/// Bytes held by live `GpuBuffer`s in this process, and the most held at once since the last
/// [`reset_peak_bytes`] (the benchmarks' GPU memory figure).
static LIVE: AtomicU64 = AtomicU64::new(0);
static PEAK: AtomicU64 = AtomicU64::new(0);

fn track(bytes: u64) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

/// (live, peak) bytes of storage buffers.
pub fn buffer_bytes() -> (u64, u64) {
    (LIVE.load(Ordering::Relaxed), PEAK.load(Ordering::Relaxed))
}

/// Starts a new peak from the bytes live now.
pub fn reset_peak_bytes() {
    PEAK.store(LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

impl<T: Pod> Drop for GpuBuffer<T> {
    fn drop(&mut self) {
        LIVE.fetch_sub(Self::byte_size(self.len), Ordering::Relaxed);
    }
}

impl<T: Pod> GpuBuffer<T> {
    fn byte_size(len: usize) -> u64 {
        ((len * std::mem::size_of::<T>()) as u64).max(MIN_BYTES)
    }

    /// A zero-filled buffer of `len` elements.
    pub fn zeros(ctx: &GpuContext, len: usize, label: &str) -> GpuResult<Self> {
        let size = Self::byte_size(len);
        let max = ctx.limits().max_buffer_size;
        if size > max {
            return Err(GpuError::OutOfMemory {
                context: format!("buffer {label}: {size} bytes exceeds the adapter's {max}"),
            });
        }
        let buffer = ctx.scoped(&format!("create buffer {label}"), || {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size,
                usage: USAGE,
                mapped_at_creation: false,
            })
        })?;
        track(size);
        Ok(Self {
            buffer,
            len,
            _t: PhantomData,
        })
    }

    /// A buffer holding a copy of `data`.
    pub fn from_slice(ctx: &GpuContext, data: &[T], label: &str) -> GpuResult<Self> {
        if data.is_empty() {
            return Self::zeros(ctx, 0, label);
        }
        let buffer = ctx.scoped(&format!("create buffer {label}"), || {
            ctx.device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(label),
                    contents: bytemuck::cast_slice(data),
                    usage: USAGE,
                })
        })?;
        track(Self::byte_size(data.len()));
        Ok(Self {
            buffer,
            len: data.len(),
            _t: PhantomData,
        })
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn raw(&self) -> &wgpu::Buffer {
        &self.buffer
    }

    /// Overwrites the start of the buffer with `data` (queued; ordered before later submits).
    pub fn write(&self, ctx: &GpuContext, data: &[T]) -> GpuResult<()> {
        if data.len() > self.len {
            return Err(GpuError::Shape(format!(
                "writing {} values into a buffer of {}",
                data.len(),
                self.len
            )));
        }
        if data.is_empty() {
            return Ok(());
        }
        ctx.scoped("write buffer", || {
            ctx.queue
                .write_buffer(&self.buffer, 0, bytemuck::cast_slice(data))
        })
    }

    /// Copies the whole buffer back to the host, waiting for all queued work.
    pub fn read(&self, ctx: &GpuContext) -> GpuResult<Vec<T>> {
        if self.len == 0 {
            return Ok(Vec::new());
        }
        let bytes = (self.len * std::mem::size_of::<T>()) as u64;
        let size = bytes.div_ceil(4) * 4;
        let staging = ctx.scoped("readback", || {
            let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("inrgan readback staging"),
                size,
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let mut enc = ctx
                .device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("inrgan readback"),
                });
            enc.copy_buffer_to_buffer(&self.buffer, 0, &staging, 0, size);
            ctx.queue.submit([enc.finish()]);
            staging
        })?;
        let (tx, rx) = std::sync::mpsc::channel();
        let slice = staging.slice(..);
        slice.map_async(wgpu::MapMode::Read, move |r| {
            let _ = tx.send(r);
        });
        ctx.wait()?;
        rx.recv()
            .map_err(|e| GpuError::Map(e.to_string()))?
            .map_err(|e| GpuError::Map(e.to_string()))?;
        let view = slice
            .get_mapped_range()
            .map_err(|e| GpuError::Map(e.to_string()))?;
        let out: Vec<T> = bytemuck::pod_collect_to_vec(&view[..bytes as usize]);
        drop(view);
        staging.unmap();
        Ok(out)
    }
}
