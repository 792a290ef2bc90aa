//! Adapter selection, device creation, error scopes, and the pipeline cache.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::shaders::Shader;
use super::{GpuError, GpuResult};

/// How to choose an adapter. [`GpuOptions::from_env`] reads `WGPU_BACKEND`, `WGPU_ADAPTER_NAME`
/// and `WGPU_POWER_PREF`.
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    /// Backends to consider (all by default).
    pub backends: Option<wgpu::Backends>,
    /// A case-insensitive substring of the adapter's name; the first match wins.
    pub adapter_name: Option<String>,
}

impl GpuOptions {
    pub fn from_env() -> Self {
        Self {
            backends: wgpu::Backends::from_env(),
            adapter_name: std::env::var("WGPU_ADAPTER_NAME")
                .ok()
                .filter(|s| !s.trim().is_empty()),
        }
    }
}

/// What the app and the benchmarks print about the adapter in use.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    /// True for software rasterisers such as lavapipe (llvmpipe).
    pub is_cpu: bool,
    pub timestamps: bool,
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}, {}{})",
            self.name,
            self.backend,
            self.device_type,
            if self.driver.is_empty() {
                String::new()
            } else {
                format!(", {}", self.driver)
            }
        )
    }
}

/// A source variant: (line, replacement).
type Patch = Option<(&'static str, &'static str)>;

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct PipelineKey {
    shader: Shader,
    patch: Option<(&'static str, &'static str)>,
    entry: &'static str,
    /// Pipeline-overridable constants as (name, f64 bits).
    constants: Vec<(&'static str, u64)>,
}

/// The device, its queue and everything cached on it. Cheap to share behind an `Arc`; all methods
/// take `&self` and are safe to call from several threads.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub adapter: wgpu::Adapter,
    summary: AdapterSummary,
    timestamps: bool,
    modules: Mutex<HashMap<(Shader, Patch), Arc<wgpu::ShaderModule>>>,
    pipelines: Mutex<HashMap<PipelineKey, Arc<wgpu::ComputePipeline>>>,
    lost: Arc<Mutex<Option<String>>>,
    /// Bound where a kernel's optional input is absent.
    pub(crate) dummy: wgpu::Buffer,
}

fn rank(info: &wgpu::AdapterInfo) -> u32 {
    let ty = match info.device_type {
        wgpu::DeviceType::DiscreteGpu => 50,
        wgpu::DeviceType::IntegratedGpu => 40,
        wgpu::DeviceType::VirtualGpu => 30,
        wgpu::DeviceType::Other => 20,
        wgpu::DeviceType::Cpu => 10,
    };
    let backend = match info.backend {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 2,
        wgpu::Backend::Gl => 1,
        _ => 0,
    };
    ty + backend
}

fn summarize(adapter: &wgpu::Adapter, timestamps: bool) -> AdapterSummary {
    let info = adapter.get_info();
    AdapterSummary {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: [info.driver.as_str(), info.driver_info.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .cloned()
            .collect::<Vec<_>>()
            .join(" "),
        is_cpu: info.device_type == wgpu::DeviceType::Cpu,
        timestamps,
    }
}

/// The device descriptor INR-GAN wants on `adapter`: the adapter's own limits (wgpu's defaults
/// allow only 8 storage buffers per stage) and timestamp queries where present. The app passes
/// this to eframe so that the UI and the compute kernels share one device.
pub fn device_descriptor(adapter: &wgpu::Adapter) -> wgpu::DeviceDescriptor<'static> {
    let wanted = wgpu::Features::TIMESTAMP_QUERY;
    wgpu::DeviceDescriptor {
        label: Some("inrgan device"),
        required_features: adapter.features() & wanted,
        required_limits: adapter.limits(),
        experimental_features: wgpu::ExperimentalFeatures::disabled(),
        memory_hints: wgpu::MemoryHints::Performance,
        trace: wgpu::Trace::Off,
    }
}

/// The instance for `opts` and every adapter it sees, best first (discrete > integrated >
/// virtual > CPU; Vulkan/Metal/DX12 > GL).
fn adapters_ranked(opts: &GpuOptions) -> (wgpu::Backends, Vec<wgpu::Adapter>) {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle().with_env();
    if let Some(b) = opts.backends {
        desc.backends = b;
    }
    let searched = desc.backends;
    let instance = wgpu::Instance::new(desc);
    let mut adapters = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    adapters.sort_by_key(|a| std::cmp::Reverse(rank(&a.get_info())));
    (searched, adapters)
}

/// Every adapter wgpu can see with `opts.backends`, in the order [`GpuContext::new`] prefers
/// them when `WGPU_ADAPTER_NAME` is unset.
pub fn enumerate_adapters(opts: &GpuOptions) -> Vec<AdapterSummary> {
    adapters_ranked(opts)
        .1
        .iter()
        .map(|a| summarize(a, a.features().contains(wgpu::Features::TIMESTAMP_QUERY)))
        .collect()
}

/// Picks from `adapters` (ranked best first): the first whose name contains
/// `opts.adapter_name` (case-insensitive) if set, else the best.
pub fn choose_adapter(
    adapters: &[wgpu::Adapter],
    opts: &GpuOptions,
    searched: wgpu::Backends,
) -> GpuResult<wgpu::Adapter> {
    let mut ranked = adapters.to_vec();
    ranked.sort_by_key(|a| std::cmp::Reverse(rank(&a.get_info())));
    if let Some(wanted) = &opts.adapter_name {
        let w = wanted.to_lowercase();
        return ranked
            .iter()
            .find(|a| a.get_info().name.to_lowercase().contains(&w))
            .cloned()
            .ok_or_else(|| GpuError::AdapterNotFound {
                wanted: wanted.clone(),
                available: if ranked.is_empty() {
                    "none".into()
                } else {
                    ranked
                        .iter()
                        .map(|a| {
                            let i = a.get_info();
                            format!("{} ({:?})", i.name, i.backend)
                        })
                        .collect::<Vec<_>>()
                        .join(", ")
                },
            });
    }
    ranked.first().cloned().ok_or_else(|| GpuError::NoAdapter {
        detail: format!("backends searched: {searched:?}"),
    })
}

impl GpuContext {
    /// Picks an adapter by [`GpuOptions::from_env`] and creates a device on it.
    pub fn new() -> GpuResult<Self> {
        Self::with_options(&GpuOptions::from_env())
    }

    pub fn with_options(opts: &GpuOptions) -> GpuResult<Self> {
        let (searched, adapters) = adapters_ranked(opts);
        let adapter = choose_adapter(&adapters, opts, searched)?;
        let dd = device_descriptor(&adapter);
        let (device, queue) =
            pollster::block_on(adapter.request_device(&dd)).map_err(|source| {
                GpuError::RequestDevice {
                    adapter: adapter.get_info().name,
                    source,
                }
            })?;
        Ok(Self::from_device(adapter, device, queue))
    }

    /// Wraps a device created elsewhere (eframe's). Timestamp queries are used if the device has
    /// them enabled.
    pub fn from_device(adapter: wgpu::Adapter, device: wgpu::Device, queue: wgpu::Queue) -> Self {
        let timestamps = device.features().contains(wgpu::Features::TIMESTAMP_QUERY);
        let lost = Arc::new(Mutex::new(None));
        let lost2 = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            if let Ok(mut l) = lost2.lock() {
                *l = Some(format!("{reason:?}: {msg}"));
            }
        });
        device.on_uncaptured_error(Arc::new(|e| {
            log::error!("uncaptured wgpu error: {e}");
        }));
        let dummy = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("inrgan dummy binding"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        let summary = summarize(&adapter, timestamps);
        Self {
            device,
            queue,
            adapter,
            summary,
            timestamps,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            lost,
            dummy,
        }
    }

    pub fn summary(&self) -> &AdapterSummary {
        &self.summary
    }

    /// The most loop iterations (back-edges, all loops together) one invocation may take, where
    /// the driver cuts loops short silently: Mesa's llvmpipe (lavapipe) stops every loop of an
    /// invocation after 65535. Kernels whose sums would pass it refuse to run there.
    pub fn loop_limit(&self) -> Option<u64> {
        let s = &self.summary;
        let llvmpipe = [&s.name, &s.driver]
            .iter()
            .any(|t| t.to_ascii_lowercase().contains("llvmpipe"));
        llvmpipe.then_some(65_535)
    }

    /// An error when an invocation of `what` would take more than [`GpuContext::loop_limit`]
    /// loop iterations.
    pub fn check_loops(&self, what: &str, iterations: u64) -> GpuResult<()> {
        match self.loop_limit() {
            Some(lim) if iterations > lim => Err(GpuError::Shape(format!(
                "{what}: {iterations} loop iterations in one invocation exceed this adapter's \
                 {lim} ({}): use the CPU backend or a real GPU for this size",
                self.summary.name
            ))),
            _ => Ok(()),
        }
    }

    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// Whether [`super::Recorder::submit_timed`] can measure GPU time.
    pub fn has_timestamps(&self) -> bool {
        self.timestamps
    }

    /// Fails with [`GpuError::DeviceLost`] once the device is gone.
    pub fn check_lost(&self) -> GpuResult<()> {
        match self.lost.lock() {
            Ok(l) => match l.as_ref() {
                Some(reason) => Err(GpuError::DeviceLost {
                    reason: reason.clone(),
                }),
                None => Ok(()),
            },
            Err(_) => Err(GpuError::DeviceLost {
                reason: "device-lost state poisoned".into(),
            }),
        }
    }

    /// Runs `f` inside out-of-memory, validation and internal error scopes and turns what they
    /// caught into a [`GpuError`] that names `context`.
    pub fn scoped<T>(&self, context: &str, f: impl FnOnce() -> T) -> GpuResult<T> {
        self.check_lost()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let int = self.device.push_error_scope(wgpu::ErrorFilter::Internal);
        let out = f();
        let e_int = pollster::block_on(int.pop());
        let e_val = pollster::block_on(val.pop());
        let e_oom = pollster::block_on(oom.pop());
        if let Some(e) = e_oom.or(e_val).or(e_int) {
            self.check_lost()?;
            return Err(GpuError::from_wgpu(context, e));
        }
        Ok(out)
    }

    /// Rows of a `width`-pixel image a strip may hold when its widest buffer has `channels`
    /// floats a pixel, with a tenth of the adapter's storage-binding limit to spare.
    pub fn strip_rows(&self, width: usize, channels: usize) -> usize {
        strip_rows(
            self.limits().max_storage_buffer_binding_size,
            width,
            channels,
        )
    }

    /// Waits until all submitted work is done.
    pub fn wait(&self) -> GpuResult<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GpuError::Poll(e.to_string()))?;
        self.check_lost()
    }

    fn module(
        &self,
        shader: Shader,
        patch: Option<(&'static str, &'static str)>,
    ) -> GpuResult<Arc<wgpu::ShaderModule>> {
        let mut modules = self.modules.lock().map_err(|_| GpuError::Internal {
            context: "shader cache".into(),
            message: "poisoned".into(),
        })?;
        if let Some(m) = modules.get(&(shader, patch)) {
            return Ok(m.clone());
        }
        let source = shader
            .patched_source(patch)
            .map_err(|message| GpuError::Shader {
                file: shader.file_name().into(),
                message,
            })?;
        let module = self
            .scoped(shader.file_name(), || {
                self.device
                    .create_shader_module(wgpu::ShaderModuleDescriptor {
                        label: Some(shader.file_name()),
                        source: wgpu::ShaderSource::Wgsl(source.into()),
                    })
            })
            .map_err(|e| GpuError::Shader {
                file: shader.file_name().into(),
                message: e.to_string(),
            })?;
        let m = Arc::new(module);
        modules.insert((shader, patch), m.clone());
        Ok(m)
    }

    /// The compute pipeline for `entry` in `shader` with the given override constants, created
    /// on first use and cached.
    pub fn pipeline(
        &self,
        shader: Shader,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> GpuResult<Arc<wgpu::ComputePipeline>> {
        self.pipeline_patched(shader, None, entry, constants)
    }

    /// [`GpuContext::pipeline`] of a source variant (see [`crate::gpu::Kernel::patch`]).
    pub fn pipeline_patched(
        &self,
        shader: Shader,
        patch: Option<(&'static str, &'static str)>,
        entry: &'static str,
        constants: &[(&'static str, f64)],
    ) -> GpuResult<Arc<wgpu::ComputePipeline>> {
        let key = PipelineKey {
            shader,
            patch,
            entry,
            constants: constants.iter().map(|(n, v)| (*n, v.to_bits())).collect(),
        };
        if let Some(p) = self
            .pipelines
            .lock()
            .ok()
            .and_then(|p| p.get(&key).cloned())
        {
            return Ok(p);
        }
        let module = self.module(shader, patch)?;
        let label = format!("{}::{}", shader.file_name(), entry);
        let pipeline = self.scoped(&label, || {
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(&label),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants,
                        zero_initialize_workgroup_memory: true,
                    },
                    cache: None,
                })
        })?;
        let p = Arc::new(pipeline);
        if let Ok(mut cache) = self.pipelines.lock() {
            cache.insert(key, p.clone());
        }
        Ok(p)
    }
}

/// Rows of a `width`-pixel strip whose widest buffer (`channels` f32 a pixel) stays within 90 %
/// of `max_bytes`; between 1 and 4096.
pub fn strip_rows(max_bytes: u64, width: usize, channels: usize) -> usize {
    let per_row = (width as u64 * channels.max(3) as u64 * 4).max(1);
    ((max_bytes / per_row) as usize * 9 / 10).clamp(1, 4096)
}
