//! The viewport: the generator evaluated over a square window of the plane, panned and zoomed
//! with the pointer. It re-renders only when its inputs change; while they move it shows a
//! low-resolution preview and refines to full resolution once they rest.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::render::{FrameData, Outcome, RenderRequest, RenderService, Rendered};
use crate::latent::LatentSpec;
use crate::model::Window;

/// A square window of the plane: centre and half-width (f64, so deep zooms and far
/// extrapolation keep their precision). y points up.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct View {
    pub cx: f64,
    pub cy: f64,
    pub half: f64,
}

impl Default for View {
    fn default() -> Self {
        Self {
            cx: 0.0,
            cy: 0.0,
            half: 1.25,
        }
    }
}

/// The zoom range: from 1/10000 of the training square to 1000 times its extent.
pub const HALF_RANGE: (f64, f64) = (1e-4, 1e3);

impl View {
    /// The rectangle of the plane in view.
    pub fn window(&self) -> Window {
        Window::new(
            self.cx - self.half,
            self.cy - self.half,
            self.cx + self.half,
            self.cy + self.half,
        )
    }
    /// Moves the window by a fraction of its width (screen right = +x, screen down = -y) so the
    /// picture follows the pointer.
    pub fn pan(&mut self, du: f64, dv: f64) {
        self.cx -= du * 2.0 * self.half;
        self.cy += dv * 2.0 * self.half;
    }
    /// Zooms by `factor` (> 1 magnifies) keeping the point under unit screen position (u, v)
    /// fixed.
    pub fn zoom_about(&mut self, u: f64, v: f64, factor: f64) {
        let Window { x0, y1, .. } = self.window();
        let (px, py) = (x0 + u * 2.0 * self.half, y1 - v * 2.0 * self.half);
        let half = (self.half / factor).clamp(HALF_RANGE.0, HALF_RANGE.1);
        let f = half / self.half;
        self.cx = px + (self.cx - px) * f;
        self.cy = py + (self.cy - py) * f;
        self.half = half;
    }
    /// Unit screen position (0..1, top-left origin) of a plane point.
    pub fn to_unit(&self, x: f64, y: f64) -> (f64, f64) {
        let Window { x0, y1, .. } = self.window();
        ((x - x0) / (2.0 * self.half), (y1 - y) / (2.0 * self.half))
    }
    /// Magnification relative to the training square filling the view (1 = the square fits).
    pub fn zoom(&self) -> f64 {
        1.0 / self.half
    }
}

/// Longest side of the preview shown while the inputs move.
pub const PREVIEW_SIDE: usize = 128;
/// Largest side of a full viewport render (exports go further, in tiles).
pub const MAX_SIDE: usize = 2048;
/// How long the inputs must rest before the full-resolution render.
const SETTLE: Duration = Duration::from_millis(150);

/// Everything that changes the picture.
#[derive(Clone, Debug, PartialEq)]
struct Inputs {
    model_version: u64,
    spec: LatentSpec,
    view: View,
    side: usize,
    levels: usize,
}

pub struct Viewport {
    pub view: View,
    pub show_square: bool,
    service: RenderService,
    next_id: u64,
    inputs: Option<Inputs>,
    changed_at: Instant,
    full_sent: bool,
    /// Id of the newest request sent.
    last_sent: u64,
    shown: Option<Shown>,
    cpu_texture: Option<egui::TextureHandle>,
    gpu_texture: Option<(wgpu::Texture, egui::TextureId)>,
    pub error: Option<String>,
    rect: Option<egui::Rect>,
}

struct Shown {
    id: u64,
    width: usize,
    height: usize,
    preview: bool,
    ms: f64,
    /// RGBA8 of the CPU path (kept for tests and colour picking).
    pixels: Option<Vec<u8>>,
}

impl Viewport {
    pub fn new(service: RenderService, view: View, show_square: bool) -> Self {
        Self {
            view,
            show_square,
            service,
            next_id: 1,
            inputs: None,
            changed_at: Instant::now(),
            full_sent: false,
            last_sent: 0,
            shown: None,
            cpu_texture: None,
            gpu_texture: None,
            error: None,
            rect: None,
        }
    }

    pub fn service(&self) -> &RenderService {
        &self.service
    }

    /// The newest full-resolution request has been shown.
    pub fn is_settled(&self) -> bool {
        self.full_sent
            && self
                .shown
                .as_ref()
                .is_some_and(|s| s.id == self.last_sent && !s.preview)
    }

    /// RGBA8 pixels of the picture on screen (CPU backend), with its size.
    pub fn pixels(&self) -> Option<(usize, usize, &[u8])> {
        let s = self.shown.as_ref()?;
        Some((s.width, s.height, s.pixels.as_deref()?))
    }

    /// Where the picture was last drawn (points).
    pub fn screen_rect(&self) -> Option<egui::Rect> {
        self.rect
    }

    /// Render time of the picture on screen, ms, and whether it is a preview.
    pub fn last_render(&self) -> Option<(f64, bool, usize)> {
        self.shown.as_ref().map(|s| (s.ms, s.preview, s.width))
    }

    /// Collects finished renders (call every frame).
    pub fn poll(&mut self, ctx: &egui::Context, rs: Option<&egui_wgpu::RenderState>) {
        while let Ok(o) = self.service.results.try_recv() {
            match o {
                Outcome::Done(r) => self.show(ctx, rs, r),
                Outcome::Failed { error, .. } => self.error = Some(error),
            }
        }
    }

    fn show(&mut self, ctx: &egui::Context, rs: Option<&egui_wgpu::RenderState>, r: Rendered) {
        let mut pixels = None;
        match r.frame {
            FrameData::Pixels(px) => {
                let img = egui::ColorImage::from_rgba_unmultiplied([r.width, r.height], &px);
                match &mut self.cpu_texture {
                    Some(t) => t.set(img, egui::TextureOptions::NEAREST),
                    None => {
                        self.cpu_texture =
                            Some(ctx.load_texture("viewport", img, egui::TextureOptions::NEAREST))
                    }
                }
                self.gpu_texture = None;
                pixels = Some(px);
            }
            FrameData::Texture(tex) => {
                let Some(rs) = rs else {
                    self.error = Some("a GPU frame without a wgpu renderer".into());
                    return;
                };
                let view = tex.create_view(&wgpu::TextureViewDescriptor::default());
                let mut renderer = rs.renderer.write();
                let id = match &self.gpu_texture {
                    Some((_, id)) => {
                        renderer.update_egui_texture_from_wgpu_texture(
                            &rs.device,
                            &view,
                            wgpu::FilterMode::Nearest,
                            *id,
                        );
                        *id
                    }
                    None => renderer.register_native_texture(
                        &rs.device,
                        &view,
                        wgpu::FilterMode::Nearest,
                    ),
                };
                self.gpu_texture = Some((tex, id));
                self.cpu_texture = None;
            }
        }
        self.error = None;
        self.shown = Some(Shown {
            id: r.id,
            width: r.width,
            height: r.height,
            preview: r.preview,
            ms: r.ms,
            pixels,
        });
    }

    /// Draws the viewport and handles pan and zoom. Returns true while the view moves.
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        model_version: u64,
        spec: &LatentSpec,
        levels: usize,
    ) -> bool {
        let avail = ui.available_size();
        let side = avail.x.min(avail.y).max(64.0);
        let (rect, resp) =
            ui.allocate_exact_size(egui::vec2(side, side), egui::Sense::click_and_drag());
        let resp = resp.on_hover_text(
            "Drag to pan, scroll or pinch to zoom about the pointer, double-click to reset",
        );
        let mut moved = false;
        if resp.dragged() {
            let mut d = resp.drag_delta();
            if ui.input(|i| i.modifiers.shift) {
                d *= 0.1;
            }
            self.view
                .pan(d.x as f64 / side as f64, d.y as f64 / side as f64);
            moved = d != egui::Vec2::ZERO;
        }
        if resp.double_clicked() {
            self.view = View::default();
            moved = true;
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
                moved = true;
            }
        }
        self.rect = Some(rect);
        let ppp = ui.pixels_per_point();
        let px_side = ((side * ppp).round() as usize).clamp(16, MAX_SIDE);
        self.schedule(ui.ctx(), model_version, spec, px_side, levels);

        // The picture (what is on screen may be a preview, stretched to the rect).
        let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
        let painter = ui.painter_at(rect);
        painter.rect_filled(rect, 0.0, egui::Color32::from_gray(24));
        if let Some(t) = &self.cpu_texture {
            painter.image(t.id(), rect, uv, egui::Color32::WHITE);
        } else if let Some((_, id)) = &self.gpu_texture {
            painter.image(*id, rect, uv, egui::Color32::WHITE);
        }
        if self.show_square {
            let to_screen = |x: f64, y: f64| {
                let (u, v) = self.view.to_unit(x, y);
                egui::pos2(rect.min.x + u as f32 * side, rect.min.y + v as f32 * side)
            };
            let frame = egui::Rect::from_two_pos(to_screen(-1.0, 1.0), to_screen(1.0, -1.0));
            painter.rect_stroke(
                frame,
                0.0,
                egui::Stroke::new(1.0, egui::Color32::from_rgb(80, 160, 255)),
                egui::StrokeKind::Middle,
            );
        }
        moved
    }

    /// Sends a preview when the inputs change and the full picture once they rest.
    fn schedule(
        &mut self,
        ctx: &egui::Context,
        model_version: u64,
        spec: &LatentSpec,
        side: usize,
        levels: usize,
    ) {
        let inputs = Inputs {
            model_version,
            spec: spec.clone(),
            view: self.view,
            side,
            levels,
        };
        let now = Instant::now();
        if self.inputs.as_ref() != Some(&inputs) {
            let first = self.inputs.is_none();
            self.inputs = Some(inputs);
            self.changed_at = now;
            self.full_sent = false;
            if side > PREVIEW_SIDE && !first {
                self.send(PREVIEW_SIDE, true);
            }
        }
        if !self.full_sent {
            if now.duration_since(self.changed_at) >= SETTLE || side <= PREVIEW_SIDE {
                self.send(side, false);
                self.full_sent = true;
            } else {
                ctx.request_repaint_after(SETTLE);
            }
        }
    }

    fn send(&mut self, side: usize, preview: bool) {
        let Some(i) = &self.inputs else { return };
        let id = self.next_id;
        self.next_id += 1;
        self.last_sent = id;
        self.service.request(RenderRequest {
            id,
            model_version: i.model_version,
            spec: i.spec.clone(),
            window: i.view.window(),
            width: side,
            height: side,
            levels: i.levels,
            preview,
        });
    }
}
