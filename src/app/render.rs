//! The viewport's render thread. The UI sends the newest model and render request; the thread
//! skips requests that a newer one has replaced (stale work is dropped, never queued), renders
//! with its own backend and hands back either pixels (CPU backend) or a texture written on the
//! GPU (no host round trip). The UI thread never waits for it.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Instant;

use crate::backend::gpu::GpuBackend;
use crate::backend::{Backend, BackendKind, Memory};
use crate::engine::LoadedModel;
use crate::gpu::{GpuContext, Recorder};
use crate::latent::LatentSpec;
use crate::model::generator::{PlanRequest, VIEWPORT_SUPERSAMPLE, box_average};
use crate::model::params::ParamSet;
use crate::reference::image::quantize;

/// One picture of the viewport.
#[derive(Clone, Debug, PartialEq)]
pub struct RenderRequest {
    pub id: u64,
    pub model_version: u64,
    pub spec: LatentSpec,
    /// The rectangle of the plane to render.
    pub window: crate::model::Window,
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
    /// "cpu: 2 threads" or `"gpu: <adapter>"`.
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
                    let mut p = GpuPresenter {
                        ctx: &ctx,
                        textures: Vec::new(),
                        current: None,
                    };
                    serve(&mut be, &job_rx, &out, &wake, &mut p);
                }
                _ => match crate::backend::cpu::CpuBackend::new() {
                    Ok(mut be) => {
                        let mut p = CpuPresenter { rgba: Vec::new() };
                        serve(&mut be, &job_rx, &out, &wake, &mut p)
                    }
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

/// Where a frame's strips go: rows `row0 .. row0 + rows` of a `width x height` picture, as
/// planar RGB on the backend; `finish` hands the picture over.
trait Present<B: Backend> {
    /// Rows per strip for a picture `width` wide whose finest evaluated level has
    /// `channels` channels (bounded by what one buffer binding may hold).
    fn strip_rows(&self, width: usize, channels: usize) -> usize;
    fn strip(
        &mut self,
        be: &mut B,
        img: &B::Buf,
        width: usize,
        height: usize,
        row0: usize,
        rows: usize,
    ) -> Result<(), String>;
    fn finish(&mut self, be: &mut B) -> Result<FrameData, String>;
}

/// Rows per strip of a full-size CPU render: between strips the thread looks for a newer
/// request and abandons the frame if there is one, so a slow full frame never holds up the
/// preview of the next movement for long.
const STRIP_ROWS: usize = 64;

struct CpuPresenter {
    rgba: Vec<u8>,
}

impl<B: Backend> Present<B> for CpuPresenter {
    fn strip_rows(&self, _: usize, _: usize) -> usize {
        STRIP_ROWS
    }
    fn strip(
        &mut self,
        be: &mut B,
        img: &B::Buf,
        width: usize,
        height: usize,
        row0: usize,
        rows: usize,
    ) -> Result<(), String> {
        if row0 == 0 {
            self.rgba = vec![0u8; width * height * 4];
        }
        let rgb = be.read(img).map_err(|e| e.to_string())?;
        self.rgba[row0 * width * 4..(row0 + rows) * width * 4]
            .copy_from_slice(&planar_to_rgba(&rgb, width * rows));
        Ok(())
    }
    fn finish(&mut self, _: &mut B) -> Result<FrameData, String> {
        Ok(FrameData::Pixels(std::mem::take(&mut self.rgba)))
    }
}

struct GpuPresenter<'c> {
    ctx: &'c GpuContext,
    /// A preview and a full-size texture are kept; older sizes are dropped.
    textures: Vec<wgpu::Texture>,
    current: Option<wgpu::Texture>,
}

impl<'a> Present<GpuBackend<'a>> for GpuPresenter<'_> {
    fn strip_rows(&self, width: usize, channels: usize) -> usize {
        // The largest buffer of a strip is the finest level's input, `channels` floats a pixel.
        self.ctx.strip_rows(width, channels)
    }
    fn strip(
        &mut self,
        be: &mut GpuBackend<'a>,
        img: &crate::gpu::GpuBuffer<f32>,
        width: usize,
        height: usize,
        row0: usize,
        rows: usize,
    ) -> Result<(), String> {
        if row0 == 0 {
            let found = self
                .textures
                .iter()
                .find(|t| t.width() as usize == width && t.height() as usize == height)
                .cloned();
            let tex = match found {
                Some(t) => t,
                None => {
                    let t = self.ctx.device.create_texture(&wgpu::TextureDescriptor {
                        label: Some("viewport image"),
                        size: wgpu::Extent3d {
                            width: width as u32,
                            height: height as u32,
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
                    if self.textures.len() >= 2 {
                        self.textures.remove(0);
                    }
                    self.textures.push(t.clone());
                    t
                }
            };
            self.current = Some(tex);
        }
        let tex = self
            .current
            .as_ref()
            .ok_or_else(|| "a strip before the frame's first".to_string())?;
        be.flush().map_err(|e| e.to_string())?;
        let mut rec = Recorder::new(self.ctx, "viewport to texture");
        crate::kernels::image::to_texture_at(&mut rec, img, 1, 0, width, rows, row0, tex)
            .and_then(|_| rec.submit())
            .map_err(|e| e.to_string())
    }
    fn finish(&mut self, _: &mut GpuBackend<'a>) -> Result<FrameData, String> {
        // Waits on this thread only, so a frame is done before the next one starts.
        self.ctx.wait().map_err(|e| e.to_string())?;
        self.current
            .take()
            .map(FrameData::Texture)
            .ok_or_else(|| "no frame".to_string())
    }
}

fn serve<B: Backend>(
    be: &mut B,
    jobs: &Receiver<Job>,
    out: &Sender<Outcome>,
    wake: &dyn Fn(),
    present: &mut dyn Present<B>,
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
            // The widest per-pixel buffer of the path the backend takes bounds a strip's rows.
            let channels = g.frame_channels_on(be, levels);
            let (w, h) = (r.width, r.height);
            // The full frame of a zoomed-out view averages ss x ss samples a pixel (the
            // preview stays single-sampled).
            let ss = if r.preview {
                1
            } else {
                g.supersampling(r.window, w, h, VIEWPORT_SUPERSAMPLE)
            };
            let step = if r.preview {
                h
            } else {
                present.strip_rows(ss * w, channels) / ss
            }
            .clamp(1, h.max(1));
            for r0 in (0..h).step_by(step) {
                let r1 = (r0 + step).min(h);
                let plan = g
                    .plan(
                        &PlanRequest::new(r.window, ss * w, ss * h)
                            .tile(0..ss * w, ss * r0..ss * r1)
                            .levels(levels),
                    )
                    .map_err(s)?;
                let tape = g.synthesize_fast(be, p, &refs, 1, &plan).map_err(s)?;
                if ss == 1 {
                    present.strip(be, tape.img(), w, h, r0, r1 - r0)?;
                } else {
                    let samples = be.read(tape.img()).map_err(s)?;
                    let avg = box_average(&samples, 3, w, r1 - r0, ss);
                    let buf = be.upload(&avg, "averaged strip").map_err(s)?;
                    present.strip(be, &buf, w, h, r0, r1 - r0)?;
                }
                if r1 < h {
                    while let Ok(j) = jobs.try_recv() {
                        backlog.push_back(j);
                    }
                    if backlog.iter().any(|j| matches!(j, Job::Render(_))) {
                        let _ = present.finish(be);
                        return Ok(None);
                    }
                }
            }
            present.finish(be).map(Some)
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
