//! The viewport's render thread. The UI sends the newest model and render request; the thread
//! skips requests that a newer one has replaced (stale work is dropped, never queued), renders
//! with its own backend and hands back either pixels (CPU backend) or a texture written on the
//! GPU (no host round trip). The UI thread never waits for it.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Instant;

use crate::backend::gpu::GpuBackend;
use crate::backend::{Backend, BackendKind};
use crate::commands::LoadedModel;
use crate::gpu::{GpuContext, GpuResult, Recorder};
use crate::latent::LatentSpec;
use crate::model::params::ParamSet;
use crate::reference::image::quantize;

/// One picture of the viewport.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderRequest {
    pub id: u64,
    pub model_version: u64,
    pub spec: LatentSpec,
    /// x0, x1, y0, y1 of the plane.
    pub window: [f64; 4],
    pub width: usize,
    pub height: usize,
    /// Scale levels evaluated (the early exit).
    pub levels: usize,
    /// A low-resolution preview while something moves.
    pub preview: bool,
}

/// The pixels of a finished request.
#[derive(Clone)]
pub enum FrameData {
    /// RGBA8, row-major, top row first (CPU backend).
    Pixels(Vec<u8>),
    /// An `Rgba8Unorm` texture written by the GPU backend.
    Texture(wgpu::Texture),
}

/// A finished request.
#[derive(Clone)]
pub struct Rendered {
    pub id: u64,
    pub width: usize,
    pub height: usize,
    pub preview: bool,
    /// Wall time of the render on the render thread, mapping included.
    pub ms: f64,
    pub frame: FrameData,
}

pub enum Outcome {
    Done(Rendered),
    Failed { id: u64, error: String },
}

enum Job {
    Model {
        version: u64,
        model: Arc<LoadedModel>,
    },
    Render(RenderRequest),
}

/// The render thread's handle.
pub struct RenderService {
    jobs: Sender<Job>,
    pub results: Receiver<Outcome>,
    /// "cpu: 2 threads" or "gpu: <adapter>".
    pub backend: String,
}

impl RenderService {
    /// Starts the thread on `kind`; the GPU kind renders on `gpu` (the window's own device).
    /// `wake` is called after each result (to request a repaint).
    pub fn spawn(
        kind: BackendKind,
        gpu: Option<Arc<GpuContext>>,
        wake: impl Fn() + Send + 'static,
    ) -> Self {
        let (jobs, job_rx) = channel();
        let (out, results) = channel();
        let backend = match (kind, &gpu) {
            (BackendKind::Gpu, Some(ctx)) => format!("gpu: {}", ctx.summary().name),
            _ => format!("cpu: {} threads", rayon::current_num_threads()),
        };
        let spawned = std::thread::Builder::new()
            .name("viewport render".into())
            .spawn(move || match (kind, gpu) {
                (BackendKind::Gpu, Some(ctx)) => {
                    let mut be = GpuBackend::new(&ctx);
                    let mut textures: Vec<wgpu::Texture> = Vec::new();
                    serve(&mut be, &job_rx, &out, &wake, false, |be, img, w, h| {
                        gpu_present(be, &ctx, &mut textures, img, w, h)
                    });
                }
                _ => match crate::backend::cpu::CpuBackend::new() {
                    Ok(mut be) => serve(&mut be, &job_rx, &out, &wake, true, |be, img, w, h| {
                        cpu_present(be, img, w, h)
                    }),
                    Err(e) => {
                        let _ = out.send(Outcome::Failed {
                            id: 0,
                            error: format!("the CPU backend did not start: {e}"),
                        });
                    }
                },
            });
        if let Err(e) = spawned {
            log::error!("the render thread did not start: {e}");
        }
        Self {
            jobs,
            results,
            backend,
        }
    }

    pub fn set_model(&self, version: u64, model: Arc<LoadedModel>) {
        let _ = self.jobs.send(Job::Model { version, model });
    }

    pub fn request(&self, r: RenderRequest) {
        let _ = self.jobs.send(Job::Render(r));
    }
}

fn cpu_present<B: Backend>(
    be: &mut B,
    img: &B::Buf,
    w: usize,
    h: usize,
) -> Result<FrameData, String> {
    let rgb = be.read(img).map_err(|e| e.to_string())?;
    Ok(FrameData::Pixels(planar_to_rgba(&rgb, w * h)))
}

/// Planar RGB in [-1, 1] (`[3, n]`) to RGBA8.
pub fn planar_to_rgba(rgb: &[f32], n: usize) -> Vec<u8> {
    let mut out = vec![255u8; n * 4];
    for i in 0..n.min(rgb.len() / 3) {
        for c in 0..3 {
            out[i * 4 + c] = quantize(rgb[c * n + i]);
        }
    }
    out
}

fn gpu_present(
    be: &mut GpuBackend<'_>,
    ctx: &GpuContext,
    textures: &mut Vec<wgpu::Texture>,
    img: &crate::gpu::GpuBuffer<f32>,
    w: usize,
    h: usize,
) -> Result<FrameData, String> {
    let s = |e: crate::gpu::GpuError| e.to_string();
    be.flush().map_err(|e| e.to_string())?;
    let tex = match textures
        .iter()
        .find(|t| t.width() as usize == w && t.height() as usize == h)
    {
        Some(t) => t.clone(),
        None => {
            let t = ctx.device.create_texture(&wgpu::TextureDescriptor {
                label: Some("viewport image"),
                size: wgpu::Extent3d {
                    width: w as u32,
                    height: h as u32,
                    depth_or_array_layers: 1,
                },
                mip_level_count: 1,
                sample_count: 1,
                dimension: wgpu::TextureDimension::D2,
                format: wgpu::TextureFormat::Rgba8Unorm,
                usage: wgpu::TextureUsages::STORAGE_BINDING
                    | wgpu::TextureUsages::TEXTURE_BINDING
                    | wgpu::TextureUsages::COPY_SRC,
                view_formats: &[],
            });
            // A preview and a full-size texture are enough; drop older sizes.
            if textures.len() >= 2 {
                textures.remove(0);
            }
            textures.push(t.clone());
            t
        }
    };
    let submit = || -> GpuResult<()> {
        let mut rec = Recorder::new(ctx, "viewport to texture");
        crate::kernels::image::to_texture(&mut rec, img, 1, 0, w, h, &tex)?;
        rec.submit()?;
        // Waits on this thread only, so a frame is done before the next one starts.
        ctx.wait()
    };
    submit().map_err(s)?;
    Ok(FrameData::Texture(tex))
}

/// Rows per strip of a full-size CPU render: between strips the thread looks for a newer
/// request and abandons the frame if there is one, so a slow full frame never holds up the
/// preview of the next movement for long.
const STRIP_ROWS: usize = 64;

fn serve<B: Backend>(
    be: &mut B,
    jobs: &Receiver<Job>,
    out: &Sender<Outcome>,
    wake: &dyn Fn(),
    strips: bool,
    mut present: impl FnMut(&mut B, &B::Buf, usize, usize) -> Result<FrameData, String>,
) {
    let mut model: Option<(u64, Arc<LoadedModel>, ParamSet<B>)> = None;
    // The last latent mapped: mapping is skipped while only the view moves.
    let mut ws_cache: Option<(u64, LatentSpec, Vec<Vec<f32>>)> = None;
    // Jobs that arrived during an abandoned frame.
    let mut backlog: std::collections::VecDeque<Job> = std::collections::VecDeque::new();
    loop {
        let first = match backlog.pop_front() {
            Some(j) => j,
            None => match jobs.recv() {
                Ok(j) => j,
                Err(_) => return,
            },
        };
        let mut pending = vec![first];
        pending.extend(backlog.drain(..));
        while let Ok(j) = jobs.try_recv() {
            pending.push(j);
        }
        let mut request = None;
        for job in pending {
            match job {
                Job::Model { version, model: m } => {
                    match ParamSet::from_host(be, m.generator.specs(), &m.values) {
                        Ok(p) => model = Some((version, m, p)),
                        Err(e) => {
                            let _ = out.send(Outcome::Failed {
                                id: 0,
                                error: format!("uploading the model: {e}"),
                            });
                        }
                    }
                    ws_cache = None;
                }
                // Only the newest request matters.
                Job::Render(r) => request = Some(r),
            }
        }
        let Some(r) = request else { continue };
        let Some((version, m, p)) = model.as_ref() else {
            continue;
        };
        if *version != r.model_version {
            continue;
        }
        let t0 = Instant::now();
        let g = &m.generator;
        let result = (|| -> Result<Option<FrameData>, String> {
            let s = |e: crate::backend::BackendError| e.to_string();
            let ws = match &ws_cache {
                Some((v, spec, ws)) if *v == r.model_version && *spec == r.spec => ws.clone(),
                _ => {
                    let ws = r.spec.level_ws(g, be, p).map_err(s)?;
                    ws_cache = Some((r.model_version, r.spec.clone(), ws.clone()));
                    ws
                }
            };
            let levels = r.levels.clamp(1, g.cfg.levels.len());
            let bufs = ws
                .iter()
                .map(|w| be.upload(w, "w"))
                .collect::<Result<Vec<_>, _>>()
                .map_err(s)?;
            let refs: Vec<&B::Buf> = bufs.iter().collect();
            if strips && !r.preview && r.height > STRIP_ROWS {
                let (w, h) = (r.width, r.height);
                let mut rgba = vec![0u8; w * h * 4];
                for r0 in (0..h).step_by(STRIP_ROWS) {
                    let r1 = (r0 + STRIP_ROWS).min(h);
                    let plan = g
                        .partial_tile_plan(r.window, w, h, 0..w, r0..r1, levels)
                        .map_err(s)?;
                    let tape = g.synthesize_fast(be, p, &refs, 1, &plan).map_err(s)?;
                    let rgb = be.read(tape.img()).map_err(s)?;
                    let n = w * (r1 - r0);
                    rgba[r0 * w * 4..r1 * w * 4].copy_from_slice(&planar_to_rgba(&rgb, n));
                    while let Ok(j) = jobs.try_recv() {
                        backlog.push_back(j);
                    }
                    if backlog.iter().any(|j| matches!(j, Job::Render(_))) {
                        return Ok(None);
                    }
                }
                return Ok(Some(FrameData::Pixels(rgba)));
            }
            let plan = g
                .preview_plan(r.window, r.width, r.height, levels)
                .map_err(s)?;
            let tape = g.synthesize_fast(be, p, &refs, 1, &plan).map_err(s)?;
            present(be, tape.img(), r.width, r.height).map(Some)
        })();
        let outcome = match result {
            // Abandoned for a newer request.
            Ok(None) => continue,
            Ok(Some(frame)) => Outcome::Done(Rendered {
                id: r.id,
                width: r.width,
                height: r.height,
                preview: r.preview,
                ms: t0.elapsed().as_secs_f64() * 1e3,
                frame,
            }),
            Err(error) => Outcome::Failed { id: r.id, error },
        };
        if out.send(outcome).is_err() {
            return;
        }
        wake();
    }
}
