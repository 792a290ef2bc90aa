//! The export panel: the current view as a PNG of any size (tiled, bounded memory, with a
//! progress bar and Cancel), a grid of seeds, and the frames of a latent walk. Every job runs on
//! its own thread; PNGs carry their recipe so `inrgan render --recipe` makes them again.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;

use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::engine::{LoadedModel, RenderArgs};
use crate::latent::LatentSpec;

/// Square sizes offered (any size can be typed).
pub const SIZES: [usize; 7] = [256, 512, 1024, 2048, 4096, 8192, 16384];

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct ExportSettings {
    pub path: String,
    pub width: usize,
    pub height: usize,
    pub grid_side: usize,
    pub grid_image: usize,
    pub walk_frames: usize,
    pub walk_size: usize,
    pub walk_dir: String,
}

impl Default for ExportSettings {
    fn default() -> Self {
        Self {
            path: "export.png".into(),
            width: 2048,
            height: 2048,
            grid_side: 6,
            grid_image: 64,
            walk_frames: 48,
            walk_size: 256,
            walk_dir: "walk".into(),
        }
    }
}

/// What the export reads of the app's state.
pub struct ExportInput<'a> {
    pub model: &'a Arc<LoadedModel>,
    pub spec: &'a LatentSpec,
    /// x0, y0, x1, y1 of the current view.
    pub window: crate::model::Window,
    pub levels: usize,
    pub backend: BackendKind,
}

struct Job {
    what: String,
    progress: Arc<AtomicU64>,
    cancel: Arc<AtomicBool>,
    done: Receiver<Result<String, String>>,
}

#[derive(Default)]
pub struct ExportPanel {
    pub settings: ExportSettings,
    job: Option<Job>,
    /// The last job's outcome: the message or the error.
    pub last: Option<Result<String, String>>,
    dialog: Option<Receiver<Option<PathBuf>>>,
}

impl ExportPanel {
    pub fn new(settings: ExportSettings) -> Self {
        Self {
            settings,
            ..Self::default()
        }
    }

    pub fn is_busy(&self) -> bool {
        self.job.is_some()
    }

    /// Collects a finished job (call every frame).
    pub fn poll(&mut self, ctx: &egui::Context) {
        if let Some(rx) = &self.dialog
            && let Ok(picked) = rx.try_recv()
        {
            if let Some(p) = picked {
                self.settings.path = p.display().to_string();
            }
            self.dialog = None;
        }
        if let Some(j) = &self.job {
            match j.done.try_recv() {
                Ok(r) => {
                    self.last = Some(r);
                    self.job = None;
                }
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.last = Some(Err("the export thread ended without a result".into()));
                    self.job = None;
                }
                Err(_) => ctx.request_repaint_after(std::time::Duration::from_millis(100)),
            }
        }
    }

    fn spawn(
        &mut self,
        ctx: &egui::Context,
        what: String,
        work: impl FnOnce(&dyn Fn(f64) -> bool) -> Result<String, String> + Send + 'static,
    ) {
        let progress = Arc::new(AtomicU64::new(0));
        let cancel = Arc::new(AtomicBool::new(false));
        let (tx, done) = std::sync::mpsc::channel();
        let (p, c, ctx2) = (progress.clone(), cancel.clone(), ctx.clone());
        std::thread::spawn(move || {
            let report = move |f: f64| {
                p.store(f.to_bits(), Ordering::Relaxed);
                ctx2.request_repaint();
                !c.load(Ordering::Relaxed)
            };
            let r = work(&report);
            let _ = tx.send(r);
        });
        self.job = Some(Job {
            what,
            progress,
            cancel,
            done,
        });
        self.last = None;
    }

    /// Starts the PNG of the current view.
    pub fn export_view(&mut self, ctx: &egui::Context, input: &ExportInput<'_>) {
        let s = &self.settings;
        let levels = input.levels.min(input.model.generator.cfg.levels.len());
        let args = RenderArgs {
            weights: None,
            preset: String::new(),
            seed: input.spec.seeds[0],
            psi: input.spec.psi,
            width: s.width.max(1),
            height: s.height.max(1),
            window: input.window,
            out: PathBuf::from(&s.path),
            backend: input.backend,
            tile: 256,
            latent: Some(input.spec.clone()),
            levels: (levels < input.model.generator.cfg.levels.len()).then_some(levels),
            raw: None,
            supersample: None,
        };
        let model = input.model.clone();
        let what = format!("{} ({}x{})", s.path, args.width, args.height);
        self.spawn(ctx, what, move |report| {
            crate::engine::render_model(&model, &args, report)
                .map(|()| {
                    format!(
                        "wrote {} ({}x{})",
                        args.out.display(),
                        args.width,
                        args.height
                    )
                })
                .map_err(|e| format!("{e:#}"))
        });
    }

    fn export_grid(&mut self, ctx: &egui::Context, input: &ExportInput<'_>) {
        let s = self.settings.clone();
        let model = input.model.clone();
        let spec = input.spec.clone();
        let backend = input.backend;
        let out = PathBuf::from(&s.path).with_extension("grid.png");
        self.spawn(ctx, format!("seed grid {}", out.display()), move |report| {
            let n = s.grid_side.max(1) * s.grid_side.max(1);
            let seeds: Vec<u64> = (0..n as u64).map(|i| spec.seeds[0] + i).collect();
            let size = s.grid_image.max(8);
            let mut planar = Vec::with_capacity(n * 3 * size * size);
            let mut be = make_backend(backend)?;
            for (i, &seed) in seeds.iter().enumerate() {
                let l = LatentSpec {
                    seeds: [seed; 4],
                    mixing: Vec::new(),
                    ..spec.clone()
                };
                planar.extend(be.render(&model, &l, size)?);
                if !report((i + 1) as f64 / n as f64) {
                    return Err("cancelled".into());
                }
            }
            let (w, h, rgba) = crate::png_io::grid(&planar, n, size, size, s.grid_side.max(1));
            let text = vec![(
                "inrgan.grid",
                format!(
                    "model {} seeds {}..{} psi {}",
                    model.hash,
                    seeds[0],
                    seeds[n - 1],
                    spec.psi
                ),
            )];
            crate::png_io::write_rgba(&out, w, h, &rgba, &text).map_err(|e| e.to_string())?;
            Ok(format!("wrote {} ({n} seeds)", out.display()))
        });
    }

    fn export_walk(&mut self, ctx: &egui::Context, input: &ExportInput<'_>) {
        let s = self.settings.clone();
        let model = input.model.clone();
        let spec = input.spec.clone();
        let backend = input.backend;
        let window = input.window;
        self.spawn(
            ctx,
            format!("walk frames and animation in {}", s.walk_dir),
            move |report| {
                let dir = PathBuf::from(&s.walk_dir);
                let size = s.walk_size.max(1);
                let base = RenderArgs {
                    weights: None,
                    preset: String::new(),
                    seed: spec.seeds[0],
                    psi: spec.psi,
                    width: size,
                    height: size,
                    window,
                    out: dir.join("frame.png"),
                    backend,
                    tile: 256,
                    latent: None,
                    levels: None,
                    raw: None,
                    supersample: None,
                };
                // The frames, and the walk as one looping animated PNG beside them.
                let apng = dir.join("walk.png");
                crate::engine::walk(
                    &model,
                    &base,
                    &spec,
                    s.walk_frames.max(1),
                    &dir,
                    Some(&apng),
                    40,
                    report,
                )
                .map_err(|e| format!("{e:#}"))
            },
        );
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, input: &ExportInput<'_>) {
        ui.heading("Export");
        let busy = self.job.is_some();
        let s = &mut self.settings;
        ui.horizontal(|ui| {
            let l = ui.label("PNG path");
            ui.text_edit_singleline(&mut s.path)
                .labelled_by(l.id)
                .on_hover_text("Where the PNG is written (the grid adds .grid.png)");
        });
        if ui
            .add_enabled(self.dialog.is_none(), egui::Button::new("Choose file…"))
            .clicked()
        {
            let (tx, rx) = std::sync::mpsc::channel();
            let ctx = ui.ctx().clone();
            std::thread::spawn(move || {
                let _ = tx.send(
                    rfd::FileDialog::new()
                        .add_filter("PNG", &["png"])
                        .set_file_name("export.png")
                        .save_file(),
                );
                ctx.request_repaint();
            });
            self.dialog = Some(rx);
        }
        let s = &mut self.settings;
        egui::Grid::new("export size")
            .num_columns(2)
            .show(ui, |ui| {
                let l = ui.label("Width");
                ui.add(egui::DragValue::new(&mut s.width).range(1..=65536))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Height");
                ui.add(egui::DragValue::new(&mut s.height).range(1..=65536))
                    .labelled_by(l.id);
                ui.end_row();
            });
        ui.horizontal_wrapped(|ui| {
            for n in SIZES {
                if ui
                    .selectable_label(s.width == n && s.height == n, format!("{n}²"))
                    .on_hover_text(format!("{n} x {n} pixels"))
                    .clicked()
                {
                    s.width = n;
                    s.height = n;
                }
            }
        });
        ui.label(format!(
            "The current view ({:.3}, {:.3}) .. ({:.3}, {:.3}), rendered in 256-pixel tiles.",
            input.window.x0, input.window.y0, input.window.x1, input.window.y1
        ));
        if ui
            .add_enabled(!busy, egui::Button::new("Export PNG"))
            .on_hover_text("Render the current view at the size above")
            .clicked()
        {
            self.export_view(ui.ctx(), input);
        }
        ui.separator();
        let s = &mut self.settings;
        egui::Grid::new("export grid")
            .num_columns(2)
            .show(ui, |ui| {
                let l = ui.label("Grid side");
                ui.add(egui::DragValue::new(&mut s.grid_side).range(1..=32))
                    .labelled_by(l.id)
                    .on_hover_text("Seeds from anchor A's seed on, side x side of them");
                ui.end_row();
                let l = ui.label("Grid image size");
                ui.add(egui::DragValue::new(&mut s.grid_image).range(8..=1024))
                    .labelled_by(l.id);
                ui.end_row();
            });
        if ui
            .add_enabled(!busy, egui::Button::new("Export seed grid"))
            .clicked()
        {
            self.export_grid(ui.ctx(), input);
        }
        ui.separator();
        let s = &mut self.settings;
        egui::Grid::new("export walk")
            .num_columns(2)
            .show(ui, |ui| {
                let l = ui.label("Walk frames");
                ui.add(egui::DragValue::new(&mut s.walk_frames).range(1..=10000))
                    .labelled_by(l.id)
                    .on_hover_text("Frames of one loop through the anchors A, B, D, C");
                ui.end_row();
                let l = ui.label("Frame size");
                ui.add(egui::DragValue::new(&mut s.walk_size).range(8..=8192))
                    .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("Frames folder");
                ui.text_edit_singleline(&mut s.walk_dir).labelled_by(l.id);
                ui.end_row();
            });
        if ui
            .add_enabled(!busy, egui::Button::new("Export walk frames"))
            .clicked()
        {
            self.export_walk(ui.ctx(), input);
        }
        if let Some(j) = &self.job {
            let f = f64::from_bits(j.progress.load(Ordering::Relaxed));
            ui.label(format!("Exporting {}", j.what));
            ui.add(egui::ProgressBar::new(f as f32).show_percentage());
            if ui.button("Cancel").clicked() {
                j.cancel.store(true, Ordering::Relaxed);
            }
        }
        match &self.last {
            Some(Ok(m)) => {
                ui.label(m);
            }
            Some(Err(e)) => {
                ui.colored_label(egui::Color32::from_rgb(220, 60, 60), e);
            }
            None => {}
        }
    }
}

/// One backend for a batch of small renders.
enum AnyBackend {
    Cpu(crate::backend::cpu::CpuBackend),
    Gpu(Box<crate::gpu::GpuContext>),
}

fn make_backend(kind: BackendKind) -> Result<AnyBackend, String> {
    match kind {
        BackendKind::Cpu => crate::backend::cpu::CpuBackend::new()
            .map(AnyBackend::Cpu)
            .map_err(|e| e.to_string()),
        BackendKind::Gpu => crate::gpu::GpuContext::new()
            .map(|c| AnyBackend::Gpu(Box::new(c)))
            .map_err(|e| e.to_string()),
    }
}

impl AnyBackend {
    fn render(&mut self, m: &LoadedModel, l: &LatentSpec, size: usize) -> Result<Vec<f32>, String> {
        let r = match self {
            AnyBackend::Cpu(be) => {
                crate::engine::render_latents(be, m, std::slice::from_ref(l), size)
            }
            AnyBackend::Gpu(ctx) => {
                let mut be = crate::backend::gpu::GpuBackend::new(ctx);
                crate::engine::render_latents(&mut be, m, std::slice::from_ref(l), size)
            }
        };
        r.map_err(|e| format!("{e:#}"))
    }
}
