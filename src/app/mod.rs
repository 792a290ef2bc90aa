//! The explorer window (eframe/egui), the one module that knows both egui and the engine.
//!
//! eframe creates the wgpu device with [`crate::gpu::device_descriptor`] (the adapter's own
//! limits) on the adapter [`crate::gpu::choose_adapter`] picks. On the GPU backend the viewport's
//! render thread wraps that same device, so the kernels write straight into a texture that egui
//! draws; on the CPU backend (the faster one on software adapters such as lavapipe) it hands
//! back pixels. Each panel is a small struct with a `ui` method:
//! - [`viewport`]: pan/zoom, preview while moving, refine when idle ([`render`] is its thread);
//! - [`latent`]: anchors, interpolation, truncation, style mixing, animation;
//! - [`training`]: a training worker's settings, controls, curves and samples;
//! - [`model`]: open/save weights and the model's facts;
//! - [`export`]: PNGs of any size, seed grids, walk frames.

pub mod export;
pub mod latent;
pub mod model;
pub mod render;
pub mod training;
pub mod viewport;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Result, anyhow};
use eframe::egui_wgpu;
use serde::{Deserialize, Serialize};

use crate::backend::BackendKind;
use crate::engine::{BUILTIN, LoadedModel};
use crate::gpu::{AdapterSummary, GpuContext, GpuError, GpuOptions};
use crate::model::generator::Generator;
use export::{ExportInput, ExportPanel, ExportSettings};
use latent::LatentPanel;
use model::{ModelAction, ModelPanel};
use render::RenderService;
use training::{TrainAction, TrainSettings, TrainingPanel};
use viewport::{View, Viewport};

/// How the window starts.
#[derive(Clone, Debug)]
pub struct AppOptions {
    /// Weights to open (default: the last model, else the built-in one).
    pub weights: Option<PathBuf>,
    /// `builtin` or a preset with random weights.
    pub preset: String,
    pub backend: BackendKind,
    /// Hide adapter names, timings and counters (for snapshots).
    pub stable: bool,
    /// Restore and save the UI state between runs.
    pub persist: bool,
    /// Folder for training runs (default `runs/explorer`).
    pub run_dir: Option<PathBuf>,
}

impl Default for AppOptions {
    fn default() -> Self {
        Self {
            weights: None,
            preset: BUILTIN.into(),
            backend: BackendKind::auto(),
            stable: false,
            persist: true,
            run_dir: None,
        }
    }
}

/// Opens the window with the default options.
pub fn run() -> Result<()> {
    run_with(AppOptions::default())
}

pub fn run_with(app_opts: AppOptions) -> Result<()> {
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
            .with_inner_size([1280.0, 820.0]),
        wgpu_options: egui_wgpu::WgpuConfiguration {
            wgpu_setup: setup.into(),
            ..Default::default()
        },
        ..Default::default()
    };
    eframe::run_native(
        "INR-GAN Explorer",
        options,
        Box::new(move |cc| Ok(Box::new(ExplorerApp::new(cc, app_opts)?))),
    )
    .map_err(|e| anyhow!("the window failed: {e}"))
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Tab {
    #[default]
    Latent,
    Training,
    Model,
    Export,
}

/// What persists between runs.
#[derive(Default, Serialize, Deserialize)]
#[serde(default)]
struct Saved {
    view: View,
    hide_square: bool,
    latent: LatentPanel,
    tab: Tab,
    export: ExportSettings,
    train: TrainSettings,
    recent: Vec<String>,
    model_path: Option<String>,
}

pub struct ExplorerApp {
    opts: AppOptions,
    model: Arc<LoadedModel>,
    model_path: Option<String>,
    model_version: u64,
    viewport: Viewport,
    latent: LatentPanel,
    training: TrainingPanel,
    model_panel: ModelPanel,
    export: ExportPanel,
    tab: Tab,
    errors: Vec<String>,
    backend: BackendKind,
    adapter: Option<AdapterSummary>,
    ui_ms: f64,
    last_frame: Instant,
}

impl ExplorerApp {
    pub fn new(
        cc: &eframe::CreationContext<'_>,
        opts: AppOptions,
    ) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let stored: Option<Saved> = if opts.persist {
            cc.storage
                .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
        } else {
            None
        };
        let first_start = stored.is_none();
        let saved = stored.unwrap_or_default();
        let mut errors = Vec::new();
        let explicit = opts.weights.clone();
        let remembered = saved.model_path.as_ref().map(PathBuf::from);
        let (model, model_path) = match explicit.or(remembered) {
            Some(p) => match crate::engine::load_model(Some(&p), &opts.preset) {
                Ok(m) => (m, Some(p.display().to_string())),
                Err(e) => {
                    errors.push(format!("{e:#}; opened the built-in model instead"));
                    (crate::engine::load_model(None, &opts.preset)?, None)
                }
            },
            None => (crate::engine::load_model(None, &opts.preset)?, None),
        };
        let model = Arc::new(model);
        let rs = cc.wgpu_render_state.as_ref();
        let gpu = rs.map(|rs| {
            Arc::new(GpuContext::from_device(
                rs.adapter.clone(),
                rs.device.clone(),
                rs.queue.clone(),
            ))
        });
        let adapter = gpu.as_ref().map(|g| g.summary().clone());
        // The viewport's backend: the GPU only with the window's device.
        let backend = match (opts.backend, &gpu) {
            (BackendKind::Gpu, Some(_)) => BackendKind::Gpu,
            _ => BackendKind::Cpu,
        };
        let ctx = cc.egui_ctx.clone();
        let service = RenderService::spawn(backend, gpu, move || ctx.request_repaint());
        service.set_model(1, model.clone());
        let viewport = Viewport::new(service, saved.view, !saved.hide_square);
        let mut train = saved.train;
        if let Some(d) = &opts.run_dir {
            train.out = d.display().to_string();
        }
        let mut latent = saved.latent;
        latent.home = model.anchors();
        if first_start {
            // A first start opens on the model's own good samples.
            latent.spec.seeds = latent.home;
        }
        let mut model_panel = ModelPanel::default();
        model_panel.recent = saved.recent;
        if let Some(p) = &model_path {
            model_panel.open_path = p.clone();
        }
        Ok(Self {
            training: TrainingPanel::new(train, opts.backend),
            export: ExportPanel::new(saved.export),
            latent,
            tab: saved.tab,
            opts,
            model,
            model_path,
            model_version: 1,
            viewport,
            model_panel,
            errors,
            backend,
            adapter,
            ui_ms: 0.0,
            last_frame: Instant::now(),
        })
    }

    // ---- queries (tests and the status line) ----

    /// The hash of the model shown ("random-PRESET" for random weights).
    pub fn model_hash(&self) -> &str {
        &self.model.hash
    }
    pub fn errors(&self) -> &[String] {
        &self.errors
    }
    pub fn viewport(&self) -> &Viewport {
        &self.viewport
    }
    pub fn training_step(&self) -> u64 {
        self.training.status.step
    }
    pub fn training_running(&self) -> bool {
        self.training.is_running()
    }
    pub fn training_paused(&self) -> bool {
        self.training.status.paused
    }
    pub fn export_result(&self) -> Option<&Result<String, String>> {
        self.export.last.as_ref()
    }
    pub fn export_settings_mut(&mut self) -> &mut ExportSettings {
        &mut self.export.settings
    }
    pub fn training_settings_mut(&mut self) -> &mut TrainSettings {
        &mut self.training.settings
    }
    pub fn model_open_path_mut(&mut self) -> &mut String {
        &mut self.model_panel.open_path
    }
    pub fn set_tab(&mut self, tab: Tab) {
        self.tab = tab;
    }

    /// The anchor seeds A–D of the latent panel.
    pub fn latent_seeds(&self) -> [u64; 4] {
        self.latent.spec.seeds
    }
    pub fn latent_seeds_mut(&mut self) -> &mut [u64; 4] {
        &mut self.latent.spec.seeds
    }

    fn set_model(&mut self, m: LoadedModel, path: Option<String>) {
        // The seeds stay (the same latents under another model); "Reset seeds" goes to its own.
        self.latent.home = m.anchors();
        self.model = Arc::new(m);
        self.model_path = path;
        self.model_version += 1;
        self.viewport
            .service()
            .set_model(self.model_version, self.model.clone());
    }

    /// Opens a weights file; on failure the current model stays and the error is shown.
    pub fn open_weights(&mut self, path: &Path) {
        match crate::engine::load_model(Some(path), BUILTIN) {
            Ok(m) => {
                let p = path.display().to_string();
                self.model_panel.remember(&p);
                self.model_panel.open_path = p.clone();
                self.set_model(m, Some(p));
            }
            Err(e) => self.errors.push(format!(
                "could not open {}: {e:#} (the current model stays)",
                path.display()
            )),
        }
    }

    fn model_action(&mut self, a: ModelAction) {
        match a {
            ModelAction::Open(p) => self.open_weights(&p),
            ModelAction::Builtin => match crate::engine::load_model(None, BUILTIN) {
                Ok(m) => self.set_model(m, None),
                Err(e) => self.errors.push(format!("{e:#}")),
            },
            ModelAction::Save(p) => {
                let g = &self.model.generator;
                let mut facts = self.model.facts.clone();
                facts.retain(|(k, _)| k != "source");
                facts.push(("source".into(), self.model.source.clone()));
                match crate::model::weights::save_with(
                    &p,
                    &g.cfg,
                    g.specs(),
                    &self.model.values,
                    &facts,
                ) {
                    Ok(()) => {
                        let s = p.display().to_string();
                        self.model_panel.remember(&s);
                        self.export.last = None;
                        self.errors.retain(|e| !e.starts_with("saving"));
                        log::info!("saved {s}");
                    }
                    Err(e) => self.errors.push(format!("saving {}: {e}", p.display())),
                }
            }
        }
    }

    fn train_actions(&mut self, actions: Vec<TrainAction>) {
        for a in actions {
            match a {
                TrainAction::Error(e) => self.errors.push(e),
                TrainAction::Weights {
                    step,
                    images,
                    values,
                } => {
                    let Some(cfg) = self.training.model.clone() else {
                        continue;
                    };
                    let m = LoadedModel {
                        generator: Generator::new(&cfg),
                        values,
                        source: format!(
                            "training run {} (step {step})",
                            self.training.settings.out
                        ),
                        hash: format!("training-{}-step-{step}", cfg.name),
                        facts: vec![("images trained".into(), images.to_string())],
                    };
                    self.set_model(m, None);
                }
            }
        }
    }

    fn dropped_files(&mut self, ui: &egui::Ui) {
        let dropped = ui.input(|i| i.raw.dropped_files.clone());
        for f in dropped {
            let path = f.path().to_path_buf();
            if path.as_os_str().is_empty() {
                continue;
            }
            let ext = path
                .extension()
                .and_then(|e| e.to_str())
                .unwrap_or("")
                .to_ascii_lowercase();
            if ext == "safetensors" {
                self.open_weights(&path);
                self.tab = Tab::Model;
            } else if path.is_dir() || ext == "zip" {
                self.training.settings.data = path.display().to_string();
                self.tab = Tab::Training;
            } else {
                self.errors.push(format!(
                    "{}: drop a .safetensors model, or a folder or .zip of images",
                    path.display()
                ));
            }
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.strong("INR-GAN Explorer");
            ui.separator();
            let backend = match self.backend {
                BackendKind::Gpu => "GPU backend",
                BackendKind::Cpu => "CPU backend",
            };
            if self.opts.stable {
                ui.label(backend);
            } else {
                let adapter = self
                    .adapter
                    .as_ref()
                    .map_or("no adapter".to_string(), |a| a.to_string());
                ui.label(format!("{backend} · adapter: {adapter}"));
                if self.adapter.as_ref().is_some_and(|a| a.is_cpu) {
                    ui.colored_label(
                        egui::Color32::from_rgb(230, 160, 40),
                        match self.backend {
                            BackendKind::Cpu => {
                                "software adapter: the viewport renders on the CPU backend"
                            }
                            BackendKind::Gpu => {
                                "software adapter: the GPU kernels run on the CPU (slow; --backend cpu is faster)"
                            }
                        },
                    );
                }
                ui.separator();
                let render =
                    self.viewport
                        .last_render()
                        .map_or(String::new(), |(ms, preview, side)| {
                            format!(
                                " · render {ms:.1} ms ({side}² {})",
                                if preview { "preview" } else { "full" }
                            )
                        });
                ui.label(format!("UI {:.1} ms{render}", self.ui_ms));
            }
        });
    }

    fn side_panel(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            for (t, name) in [
                (Tab::Latent, "Latent"),
                (Tab::Training, "Training"),
                (Tab::Model, "Model"),
                (Tab::Export, "Export"),
            ] {
                ui.selectable_value(&mut self.tab, t, name);
            }
        });
        ui.separator();
        egui::ScrollArea::vertical().show(ui, |ui| match self.tab {
            Tab::Latent => {
                let res: Vec<usize> = self
                    .model
                    .generator
                    .cfg
                    .levels
                    .iter()
                    .map(|l| l.res)
                    .collect();
                self.latent.ui(ui, &res);
                ui.separator();
                let mut show = self.viewport.show_square;
                ui.checkbox(&mut show, "Outline the training square")
                    .on_hover_text("The square [-1, 1]² the generator was trained on");
                self.viewport.show_square = show;
                if ui
                    .button("Reset view")
                    .on_hover_text("Back to the training square (also: double-click the image)")
                    .clicked()
                {
                    self.viewport.view = View::default();
                }
                ui.horizontal(|ui| {
                    for (label, half) in [("Zoom out 8x", 8.0), ("Zoom in 8x", 0.125)] {
                        if ui
                            .button(label)
                            .on_hover_text("Extrapolation: zoom out; superresolution: zoom in")
                            .clicked()
                        {
                            self.viewport.view.half = half;
                        }
                    }
                });
            }
            Tab::Training => {
                let a = self.training.ui(ui, self.opts.stable);
                self.train_actions(a);
            }
            Tab::Model => {
                let m = self.model.clone();
                if let Some(a) = self.model_panel.ui(ui, &m, self.opts.stable) {
                    self.model_action(a);
                }
            }
            Tab::Export => {
                let input = ExportInput {
                    model: &self.model,
                    spec: &self.latent.spec,
                    window: self.viewport.view.window(),
                    levels: self.latent.levels,
                    backend: self.backend,
                };
                self.export.ui(ui, &input);
            }
        });
    }

    fn saved(&self) -> Saved {
        Saved {
            view: self.viewport.view,
            hide_square: !self.viewport.show_square,
            latent: self.latent.clone(),
            tab: self.tab,
            export: self.export.settings.clone(),
            train: self.training.settings.clone(),
            recent: self.model_panel.recent.clone(),
            model_path: self.model_path.clone(),
        }
    }
}

impl eframe::App for ExplorerApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        let t0 = Instant::now();
        let dt = t0.duration_since(self.last_frame).as_secs_f64().min(0.25);
        self.last_frame = t0;
        let ctx = ui.ctx().clone();
        self.viewport.poll(&ctx, frame.wgpu_render_state());
        let actions = self.training.poll(&ctx);
        self.train_actions(actions);
        self.export.poll(&ctx);
        self.dropped_files(ui);
        if self.latent.tick(dt) {
            ctx.request_repaint();
        }

        egui::Panel::top("top").show(ui, |ui| self.top_bar(ui));
        egui::Panel::left("controls")
            .resizable(true)
            .default_size(340.0)
            .show(ui, |ui| self.side_panel(ui));
        egui::Panel::bottom("status").show(ui, |ui| {
            let mut dismiss = None;
            for (i, e) in self.errors.iter().enumerate() {
                ui.horizontal(|ui| {
                    ui.colored_label(egui::Color32::from_rgb(220, 60, 60), format!("Error: {e}"));
                    if ui.small_button("Dismiss").clicked() {
                        dismiss = Some(i);
                    }
                });
            }
            if let Some(i) = dismiss {
                self.errors.remove(i);
            }
            if let Some(e) = &self.viewport.error {
                ui.colored_label(
                    egui::Color32::from_rgb(220, 60, 60),
                    format!("Render error: {e}"),
                );
            }
            let crate::model::Window { x0, y0, x1, y1 } = self.viewport.view.window();
            ui.label(format!(
                "window x {x0:.3} .. {x1:.3}, y {y0:.3} .. {y1:.3} · zoom {:.3}x · {}",
                self.viewport.view.zoom(),
                self.model.source.rsplit(['/', '\\']).next().unwrap_or("")
            ));
        });
        let levels = self
            .latent
            .levels
            .min(self.model.generator.cfg.levels.len());
        let spec = self.latent.spec.clone();
        let version = self.model_version;
        egui::CentralPanel::default().show(ui, |ui| {
            self.viewport.ui(ui, version, &spec, levels);
        });
        self.ui_ms = t0.elapsed().as_secs_f64() * 1e3;
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if self.opts.persist {
            eframe::set_value(storage, eframe::APP_KEY, &self.saved());
        }
    }

    fn on_exit(&mut self) {
        // A running training saves a checkpoint before the window goes.
        self.training.stop_and_wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What eframe stores (RON) comes back as it was: the view, latents, panels and paths.
    #[test]
    fn saved_state_round_trips_through_ron() {
        let mut s = Saved {
            view: View {
                cx: -3.25,
                cy: 0.5,
                half: 0.01,
            },
            tab: Tab::Export,
            recent: vec!["a.safetensors".into()],
            model_path: Some("m.safetensors".into()),
            ..Saved::default()
        };
        s.latent.spec.seeds = [9, 8, 7, 6];
        s.latent.spec.uv = [0.25, 0.75];
        s.latent.spec.mixing = vec![None, Some(2)];
        s.export.width = 16384;
        s.train.data = "emoji:animals".into();
        let text = ron::to_string(&s).unwrap();
        let back: Saved = ron::from_str(&text).unwrap();
        assert_eq!(back.view, s.view);
        assert_eq!(back.tab, Tab::Export);
        assert_eq!(back.latent.spec, s.latent.spec);
        assert_eq!(back.export.width, 16384);
        assert_eq!(back.train.data, "emoji:animals");
        assert_eq!(back.recent, s.recent);
        assert_eq!(back.model_path, s.model_path);
        // A state from an older version (missing fields) still loads.
        let old: Saved = ron::from_str("(view: (cx: 1.0, cy: 2.0, half: 3.0))").unwrap();
        assert_eq!(old.view.half, 3.0);
        assert_eq!(old.tab, Tab::Latent);
    }
}
