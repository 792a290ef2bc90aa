//! Recording kernel dispatches and submitting them as one compute pass.

use std::sync::Arc;
use std::time::Duration;

use bytemuck::Pod;
use wgpu::util::DeviceExt;

use super::shaders::Shader;
use super::{GpuBuffer, GpuContext, GpuError, GpuResult};

/// One entry point of one shader file, with its pipeline-overridable constants.
#[derive(Clone, Copy, Debug)]
pub struct Kernel {
    pub shader: Shader,
    pub entry: &'static str,
    pub constants: &'static [(&'static str, f64)],
    /// A variant of the shader's source: (line, replacement). For what pipeline-overridable
    /// constants cannot set, such as the size of a private array.
    pub patch: Option<(&'static str, &'static str)>,
}

impl Kernel {
    pub const fn new(shader: Shader, entry: &'static str) -> Self {
        Self {
            shader,
            entry,
            constants: &[],
            patch: None,
        }
    }

    /// This kernel compiled from its source with `line` replaced by `with`.
    pub const fn patched(self, line: &'static str, with: &'static str) -> Self {
        Self {
            patch: Some((line, with)),
            ..self
        }
    }
}

struct Op {
    label: String,
    pipeline: Arc<wgpu::ComputePipeline>,
    bind_group: wgpu::BindGroup,
    groups: [u32; 3],
}

/// Collects dispatches; nothing reaches the GPU before [`Recorder::submit`].
///
/// Binding convention shared by every shader in `shaders/`: `@group(0) @binding(0)` is a uniform
/// block of parameters (`P`, a `#[repr(C)]` Pod struct padded to 16 bytes) and storage buffers
/// follow at bindings 1, 2, ... in the order the kernel's Rust wrapper passes them.
pub struct Recorder<'a> {
    ctx: &'a GpuContext,
    label: String,
    ops: Vec<Op>,
}

/// Splits `n` invocations into workgroups of `wg` along x, spilling into y past the 65535 limit.
/// Shaders recover the flat index as `gid.x + gid.y * nwg.x * WG`.
pub fn groups_1d(n: usize, wg: u32) -> [u32; 3] {
    let tiles = n.div_ceil(wg as usize).max(1);
    const MAX: usize = 65535;
    if tiles <= MAX {
        [tiles as u32, 1, 1]
    } else {
        [MAX as u32, tiles.div_ceil(MAX) as u32, 1]
    }
}

impl<'a> Recorder<'a> {
    pub fn new(ctx: &'a GpuContext, label: &str) -> Self {
        Self {
            ctx,
            label: label.to_string(),
            ops: Vec::new(),
        }
    }

    pub fn ctx(&self) -> &'a GpuContext {
        self.ctx
    }

    /// Number of dispatches recorded so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The `shader::entry` names of the dispatches recorded so far, in order.
    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.ops.iter().map(|o| o.label.as_str())
    }

    /// Adds one dispatch of `kernel` over `groups` workgroups with `params` at binding 0 and
    /// `buffers` at bindings 1.. . `None` binds a small dummy buffer (for an absent optional
    /// input whose use the parameters switch off).
    pub fn dispatch<P: Pod>(
        &mut self,
        kernel: Kernel,
        params: &P,
        buffers: &[Option<&wgpu::Buffer>],
        groups: [u32; 3],
    ) -> GpuResult<()> {
        let dummy = &self.ctx.dummy;
        let resources: Vec<wgpu::BindingResource> = buffers
            .iter()
            .map(|b| b.unwrap_or(dummy).as_entire_binding())
            .collect();
        self.dispatch_resources(kernel, params, &resources, groups)
    }

    /// Like [`Recorder::dispatch`] with arbitrary resources (storage textures, buffer ranges) at
    /// bindings 1.. .
    pub fn dispatch_resources<P: Pod>(
        &mut self,
        kernel: Kernel,
        params: &P,
        resources: &[wgpu::BindingResource],
        groups: [u32; 3],
    ) -> GpuResult<()> {
        if groups.contains(&0) {
            return Ok(());
        }
        let lim = self.ctx.limits().max_compute_workgroups_per_dimension;
        if groups.iter().any(|&g| g > lim) {
            return Err(GpuError::Shape(format!(
                "{}::{}: {groups:?} workgroups exceed the adapter's {lim} per dimension",
                kernel.shader.file_name(),
                kernel.entry
            )));
        }
        let pipeline = self.ctx.pipeline_patched(
            kernel.shader,
            kernel.patch,
            kernel.entry,
            kernel.constants,
        )?;
        let label = format!("{}::{}", kernel.shader.file_name(), kernel.entry);
        let ctx = self.ctx;
        let bind_group = ctx.scoped(&label, || {
            let mut bytes = bytemuck::bytes_of(params).to_vec();
            bytes.resize(bytes.len().div_ceil(16).max(1) * 16, 0);
            let ubuf = ctx
                .device
                .create_buffer_init(&wgpu::util::BufferInitDescriptor {
                    label: Some(&label),
                    contents: &bytes,
                    usage: wgpu::BufferUsages::UNIFORM,
                });
            let mut entries = vec![wgpu::BindGroupEntry {
                binding: 0,
                resource: ubuf.as_entire_binding(),
            }];
            for (i, r) in resources.iter().enumerate() {
                entries.push(wgpu::BindGroupEntry {
                    binding: i as u32 + 1,
                    resource: r.clone(),
                });
            }
            ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(&label),
                layout: &pipeline.get_bind_group_layout(0),
                entries: &entries,
            })
        })?;
        self.ops.push(Op {
            label,
            pipeline,
            bind_group,
            groups,
        });
        Ok(())
    }

    fn encode(&self, timestamps: Option<&wgpu::QuerySet>) -> wgpu::CommandEncoder {
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some(&self.label),
            });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&self.label),
                timestamp_writes: timestamps.map(|q| wgpu::ComputePassTimestampWrites {
                    query_set: q,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                }),
            });
            for op in &self.ops {
                pass.set_pipeline(&op.pipeline);
                pass.set_bind_group(0, &op.bind_group, &[]);
                pass.dispatch_workgroups(op.groups[0], op.groups[1], op.groups[2]);
            }
        }
        enc
    }

    /// Submits everything recorded, in order, without waiting.
    pub fn submit(self) -> GpuResult<()> {
        if self.ops.is_empty() {
            return Ok(());
        }
        let ctx = self.ctx;
        ctx.scoped(&self.label, || {
            let enc = self.encode(None);
            ctx.queue.submit([enc.finish()]);
        })
    }

    /// Submits, waits, and returns the GPU time of the pass from timestamp queries, or the wall
    /// time from submit to completion where the adapter has no timestamps.
    pub fn submit_timed(self) -> GpuResult<Duration> {
        let ctx = self.ctx;
        if !ctx.has_timestamps() {
            let t = std::time::Instant::now();
            self.submit()?;
            ctx.wait()?;
            return Ok(t.elapsed());
        }
        let query = ctx.scoped("timestamp query set", || {
            ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("inrgan timestamps"),
                ty: wgpu::QueryType::Timestamp,
                count: 2,
            })
        })?;
        let resolve = GpuBuffer::<u64>::zeros(ctx, 2, "inrgan timestamp resolve")?;
        let resolve_raw = ctx.scoped("timestamp resolve buffer", || {
            ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("inrgan timestamp resolve"),
                size: 16,
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            })
        })?;
        ctx.scoped(&self.label, || {
            let mut enc = self.encode(Some(&query));
            enc.resolve_query_set(&query, 0..2, &resolve_raw, 0);
            enc.copy_buffer_to_buffer(&resolve_raw, 0, resolve.raw(), 0, 16);
            ctx.queue.submit([enc.finish()]);
        })?;
        let ts = resolve.read(ctx)?;
        let period = ctx.queue.get_timestamp_period() as f64;
        let ns = ts[1].saturating_sub(ts[0]) as f64 * period;
        Ok(Duration::from_nanos(ns as u64))
    }
}
