//! The explorer window (eframe/egui): the one module that knows both egui and the GPU layer.
//!
//! eframe creates the wgpu device with [`crate::gpu::device_descriptor`] (the adapter's own
//! limits) on the adapter [`crate::gpu::choose_adapter`] picks; the app wraps that same device in
//! a [`GpuContext`], so the kernels write straight into a texture that egui draws.

use std::sync::Arc;

use anyhow::{Result, anyhow};
use eframe::egui_wgpu;

use crate::demo::{DemoInr, View};
use crate::gpu::{GpuContext, GpuError, GpuOptions, Recorder};

/// Side of the square texture the viewport renders into.
const RENDER_SIZE: u32 = 256;

pub fn run() -> Result<()> {
    let opts = GpuOptions::from_env();
    if crate::gpu::enumerate_adapters(&opts).is_empty() {
        return Err(GpuError::NoAdapter {
            detail: "no adapter for the window".into(),
        }
        .into());
    }
    let mut setup = egui_wgpu::WgpuSetupCreateNew::without_display_handle();
    setup.device_descriptor = Arc::new(crate::gpu::device_descriptor);
    let sel_opts = opts.clone();
    setup.native_adapter_selector = Some(Arc::new(move |adapters, _surface| {
        crate::gpu::choose_adapter(adapters, &sel_opts, wgpu::Backends::all())
            .map_err(|e| e.to_string())
    }));
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("INR-GAN Explorer")
            .with_inner_size([1100.0, 720.0]),
        wgpu_options: egui_wgpu::WgpuConfiguration {
            wgpu_setup: setup.into(),
            ..Default::default()
        },
        ..Default::default()
    };
    eframe::run_native(
        "INR-GAN Explorer",
        options,
        Box::new(|cc| Ok(Box::new(ExplorerApp::new(cc)?))),
    )
    .map_err(|e| anyhow!("the window failed: {e}"))
}

/// The window's state.
pub struct ExplorerApp {
    gpu: Arc<GpuContext>,
    demo: DemoInr,
    texture: wgpu::Texture,
    texture_id: egui::TextureId,
    view: View,
    seed: u64,
    /// The view or seed changed since the texture was last rendered.
    dirty: bool,
    /// Submit-to-completion time of the last render, written by the queue's completion callback
    /// (the UI thread never waits for the GPU).
    last_gpu_ms: Arc<std::sync::Mutex<Option<f64>>>,
    error: Option<String>,
}

impl ExplorerApp {
    pub fn new(
        cc: &eframe::CreationContext<'_>,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let rs = cc
            .wgpu_render_state
            .as_ref()
            .ok_or("the window has no wgpu renderer")?;
        let gpu = Arc::new(GpuContext::from_device(
            rs.adapter.clone(),
            rs.device.clone(),
            rs.queue.clone(),
        ));
        let texture = gpu.device.create_texture(&wgpu::TextureDescriptor {
            label: Some("viewport"),
            size: wgpu::Extent3d {
                width: RENDER_SIZE,
                height: RENDER_SIZE,
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
        let view = texture.create_view(&wgpu::TextureViewDescriptor::default());
        let texture_id = rs.renderer.write().register_native_texture(
            &rs.device,
            &view,
            wgpu::FilterMode::Nearest,
        );
        let seed = 1;
        let demo = DemoInr::new(&gpu, seed, RENDER_SIZE as usize)?;
        Ok(Self {
            gpu,
            demo,
            texture,
            texture_id,
            view: View::default(),
            seed,
            dirty: true,
            last_gpu_ms: Arc::new(std::sync::Mutex::new(None)),
            error: None,
        })
    }

    fn render(&mut self) {
        let mut rec = Recorder::new(&self.gpu, "viewport");
        let start = std::time::Instant::now();
        let result = self
            .demo
            .record(&mut rec, &self.view, &self.texture)
            .and_then(|_| rec.submit());
        match result {
            Ok(()) => {
                let slot = self.last_gpu_ms.clone();
                self.gpu.queue.on_submitted_work_done(move || {
                    if let Ok(mut s) = slot.lock() {
                        *s = Some(start.elapsed().as_secs_f64() * 1e3);
                    }
                });
                self.error = None;
            }
            Err(e) => self.error = Some(e.to_string()),
        }
        self.dirty = false;
    }

    fn reseed(&mut self, seed: u64) {
        self.seed = seed;
        match DemoInr::new(&self.gpu, seed, RENDER_SIZE as usize) {
            Ok(d) => self.demo = d,
            Err(e) => self.error = Some(e.to_string()),
        }
        self.dirty = true;
    }

    fn side_panel(&mut self, ui: &mut egui::Ui) {
        ui.heading("Random INR");
        ui.label(
            "An untrained coordinate MLP evaluated by the WGSL kernels: \
             Fourier coordinate embeddings, modulated linear layers, leaky ReLU.",
        );
        ui.separator();
        let mut seed = self.seed;
        ui.horizontal(|ui| {
            ui.label("Seed");
            if ui
                .add(egui::DragValue::new(&mut seed).range(0..=u32::MAX as u64))
                .on_hover_text("Seed of the random weights")
                .changed()
            {
                self.reseed(seed);
            }
            if ui
                .button("Randomize")
                .on_hover_text("Draw new random weights")
                .clicked()
            {
                let s = crate::rng::Rng::new(self.seed ^ 0x5eed).below(1 << 32);
                self.reseed(s);
            }
        });
        if ui
            .button("Reset view")
            .on_hover_text("Back to the square [-1, 1]^2 (also: double-click the image)")
            .clicked()
        {
            self.view = View::default();
            self.dirty = true;
        }
        ui.separator();
        ui.label(format!(
            "window: x {:.3} .. {:.3}, y {:.3} .. {:.3}",
            self.view.x0(),
            self.view.x1(),
            self.view.y0(),
            self.view.y1()
        ));
        ui.label(format!("render: {RENDER_SIZE} x {RENDER_SIZE} px"));
        // Completion callbacks run during a non-blocking poll.
        let _ = self.gpu.device.poll(wgpu::PollType::Poll);
        if let Some(ms) = self.last_gpu_ms.lock().ok().and_then(|s| *s) {
            ui.label(format!(
                "last render: {ms:.1} ms (submit to GPU completion)"
            ));
        }
        ui.label("Drag to pan, scroll to zoom about the cursor.");
    }

    fn viewport(&mut self, ui: &mut egui::Ui) {
        let side = ui.available_width().min(ui.available_height()).max(64.0);
        let (rect, resp) =
            ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::click_and_drag());
        if resp.dragged() {
            let d = resp.drag_delta();
            self.view
                .pan(d.x as f64 / side as f64, d.y as f64 / side as f64);
            self.dirty = true;
        }
        if resp.double_clicked() {
            self.view = View::default();
            self.dirty = true;
        }
        if resp.hovered() {
            let scroll = ui.input(|i| i.smooth_scroll_delta.y);
            let zoom = ui.input(|i| i.zoom_delta());
            let factor = zoom * (1.0 + scroll / 200.0);
            if (factor - 1.0).abs() > 1e-4
                && let Some(pos) = resp.hover_pos()
            {
                let u = ((pos.x - rect.min.x) / side) as f64;
                let v = ((pos.y - rect.min.y) / side) as f64;
                self.view.zoom_about(u, v, factor as f64);
                self.dirty = true;
            }
        }
        if self.dirty {
            self.render();
        }
        ui.painter().image(
            self.texture_id,
            rect,
            egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0)),
            egui::Color32::WHITE,
        );
        // The square [-1, 1)^2 the generator is trained on.
        let to_screen = |x: f64, y: f64| {
            let (u, v) = self.view.to_unit(x, y);
            egui::pos2(rect.min.x + u as f32 * side, rect.min.y + v as f32 * side)
        };
        let frame = egui::Rect::from_two_pos(to_screen(-1.0, 1.0), to_screen(1.0, -1.0));
        ui.painter().with_clip_rect(rect).rect_stroke(
            frame,
            0.0,
            egui::Stroke::new(1.0, egui::Color32::from_rgb(80, 160, 255)),
            egui::StrokeKind::Middle,
        );
    }
}

impl eframe::App for ExplorerApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        egui::Panel::top("top").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.strong("INR-GAN Explorer");
                ui.separator();
                let s = self.gpu.summary();
                ui.label(format!("adapter: {s}"));
                if s.is_cpu {
                    ui.colored_label(
                        egui::Color32::from_rgb(230, 160, 40),
                        "software renderer: kernels run on the CPU",
                    );
                }
            });
        });
        egui::Panel::left("controls")
            .resizable(false)
            .default_size(260.0)
            .show(ui, |ui| self.side_panel(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            if let Some(e) = &self.error {
                ui.colored_label(egui::Color32::from_rgb(220, 60, 60), e);
            }
            self.viewport(ui);
        });
    }
}
