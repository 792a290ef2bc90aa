//! The training panel: a run's settings, its controls (the worker's commands), live curves, a
//! progress bar with ETA and the newest sample grid. The worker owns the networks; this panel
//! only sends commands and draws events.

use std::path::PathBuf;
use std::sync::mpsc::Receiver;

use serde::{Deserialize, Serialize};

use crate::train::augment::AugmentMode;

use crate::backend::BackendKind;
use crate::engine::TrainArgs;
use crate::train::worker::{BatchSource, Command, Event, Metric, RunConfig, Worker};

/// A run's data set and settings, prepared off the UI thread (the data set, and an SWD reference
/// from it, can take seconds to read from a folder or zip): (run, batches, metric, warning).
type Prepared = Result<(RunConfig, BatchSource, Option<Metric>, Option<String>), String>;

/// Points kept per curve: older points are thinned 2:1 when full.
const MAX_POINTS: usize = 1000;

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainSettings {
    pub data: String,
    pub preset: String,
    pub batch: usize,
    pub lr_g: f64,
    pub lr_d: f64,
    pub gamma: f32,
    pub kimg: f64,
    pub out: String,
    pub resume: bool,
    pub sample_every: u64,
    pub checkpoint_kimg: f64,
    /// Show the training generator (EMA) in the viewport.
    pub follow: bool,
    /// Augmentation of D's inputs; `None`: the default for the data set's size.
    pub augment: Option<AugmentMode>,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            data: "emoji".into(),
            preset: "emoji32-smooth".into(),
            batch: 32,
            lr_g: 0.0025,
            lr_d: 0.0025,
            gamma: 1.0,
            kimg: 100.0,
            out: "runs/explorer".into(),
            resume: true,
            sample_every: 50,
            checkpoint_kimg: 10.0,
            follow: true,
            augment: None,
        }
    }
}

/// A curve with a bounded number of points.
#[derive(Default)]
pub struct Series {
    pub points: Vec<[f64; 2]>,
    stride: usize,
    seen: usize,
}

impl Series {
    pub fn push(&mut self, x: f64, y: f64) {
        if self.stride == 0 {
            self.stride = 1;
        }
        if self.seen.is_multiple_of(self.stride) && y.is_finite() {
            self.points.push([x, y]);
            if self.points.len() >= MAX_POINTS {
                let kept: Vec<[f64; 2]> = self.points.iter().step_by(2).copied().collect();
                self.points = kept;
                self.stride *= 2;
            }
        }
        self.seen += 1;
    }
}

#[derive(Default)]
pub struct Status {
    pub running: bool,
    pub paused: bool,
    pub step: u64,
    pub images: u64,
    pub img_per_s: f64,
    pub eta_s: f64,
    pub progress: f64,
    pub backend: String,
    pub d_loss: Series,
    pub g_loss: Series,
    pub swd: Series,
    pub message: Option<String>,
}

pub struct TrainingPanel {
    pub settings: TrainSettings,
    pub backend: BackendKind,
    worker: Option<Worker>,
    /// A run being prepared (its data set loading) on its own thread.
    preparing: Option<Receiver<Prepared>>,
    pub status: Status,
    samples: Option<egui::TextureHandle>,
    dialog: Option<Receiver<Option<PathBuf>>>,
    /// Model config of the running worker (for the viewport's live view).
    pub model: Option<crate::model::config::ModelConfig>,
    /// The worker is a watcher of a run folder that another process writes.
    watching: bool,
}

/// What the panel asks of the app.
pub enum TrainAction {
    /// New EMA weights of the run (when following).
    Weights {
        step: u64,
        images: u64,
        values: Vec<Vec<f32>>,
    },
    Error(String),
}

impl TrainingPanel {
    pub fn new(settings: TrainSettings, backend: BackendKind) -> Self {
        Self {
            settings,
            backend,
            worker: None,
            preparing: None,
            status: Status::default(),
            samples: None,
            dialog: None,
            model: None,
            watching: false,
        }
    }

    /// Watches the run folder of the settings, written by another process (`inrgan train` in a
    /// terminal, `tools/torch/train.py`): its curves, samples and progress as they grow, and
    /// the viewport following its newest weights.
    pub fn watch(&mut self) -> Result<(), String> {
        if self.is_running() {
            return Err("a run is already going".into());
        }
        let dir = PathBuf::from(&self.settings.out);
        self.status = Status {
            running: true,
            message: Some(format!("watching {}", dir.display())),
            ..Status::default()
        };
        self.samples = None;
        self.model = None;
        self.watching = true;
        self.worker = Some(crate::train::watch::spawn(
            dir,
            std::time::Duration::from_millis(500),
        ));
        Ok(())
    }

    /// A run is going or being prepared.
    pub fn is_running(&self) -> bool {
        self.worker.is_some() || self.preparing.is_some()
    }

    fn args(&self) -> TrainArgs {
        let s = &self.settings;
        TrainArgs {
            data: s.data.clone(),
            preset: s.preset.clone(),
            out: PathBuf::from(&s.out),
            kimg: s.kimg,
            resume: s.resume,
            batch: s.batch,
            lr_g: s.lr_g,
            lr_d: s.lr_d,
            gamma: s.gamma,
            seed: 0,
            backend: self.backend,
            checkpoint_kimg: s.checkpoint_kimg,
            sample_every: s.sample_every,
            no_mirror: false,
            augment: s.augment,
            cutout: None,
        }
    }

    /// Starts a run with the current settings: its data set is read on a thread (the UI stays
    /// live), and [`TrainingPanel::poll`] starts the worker once it is ready.
    pub fn start(&mut self, ctx: &egui::Context) -> Result<(), String> {
        if self.is_running() {
            return Err("a run is already going".into());
        }
        let args = self.args();
        let (tx, rx) = std::sync::mpsc::channel();
        let ctx = ctx.clone();
        std::thread::Builder::new()
            .name("training data".into())
            .spawn(move || {
                let prepared = (|| {
                    let (source, metric, warning, n) = crate::engine::training_data(&args)?;
                    let mut run = crate::engine::run_config(&args, n)?;
                    run.metric_samples = 128;
                    anyhow::Ok((run, source, metric, warning))
                })()
                .map_err(|e| format!("{e:#}"));
                let _ = tx.send(prepared);
                ctx.request_repaint();
            })
            .map_err(|e| format!("cannot start a thread to read the data set: {e}"))?;
        self.preparing = Some(rx);
        self.status = Status {
            message: Some(format!("reading {} ...", self.settings.data)),
            ..Status::default()
        };
        Ok(())
    }

    /// The prepared run, once its thread is done: starts its worker, or reports why not.
    fn poll_preparing(&mut self, actions: &mut Vec<TrainAction>) {
        let Some(rx) = &self.preparing else {
            return;
        };
        let prepared = match rx.try_recv() {
            Ok(p) => p,
            Err(std::sync::mpsc::TryRecvError::Empty) => return,
            Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                Err("reading the data set failed (its thread ended without an answer)".into())
            }
        };
        self.preparing = None;
        match prepared {
            Ok((run, source, metric, warning)) => {
                self.model = Some(run.model.clone());
                self.status = Status {
                    running: true,
                    message: warning,
                    ..Status::default()
                };
                self.worker = Some(crate::train::worker::spawn(run, source, metric));
            }
            Err(e) => {
                self.status.message = None;
                actions.push(TrainAction::Error(format!("cannot start training: {e}")));
            }
        }
    }

    /// Stops a running worker, waiting for its checkpoint to be written.
    pub fn stop_and_wait(&mut self) {
        if let Some(w) = self.worker.take() {
            let _ = w.commands.send(Command::Stop);
            let _ = w.handle.join();
        }
    }

    pub fn send(&self, c: Command) {
        if let Some(w) = &self.worker {
            let _ = w.commands.send(c);
        }
    }

    /// Drains the worker's events.
    pub fn poll(&mut self, ctx: &egui::Context) -> Vec<TrainAction> {
        let mut actions = Vec::new();
        self.poll_preparing(&mut actions);
        let Some(w) = &self.worker else {
            return actions;
        };
        let mut ended = false;
        while let Ok(ev) = w.events.try_recv() {
            let st = &mut self.status;
            match ev {
                Event::Started {
                    backend,
                    step,
                    images,
                } => {
                    st.backend = backend;
                    st.step = step;
                    st.images = images;
                }
                Event::Step {
                    stats,
                    img_per_s,
                    eta_s,
                    progress,
                } => {
                    st.step = stats.step;
                    st.images = stats.images;
                    st.img_per_s = img_per_s;
                    st.eta_s = eta_s;
                    st.progress = progress;
                    let x = stats.images as f64 / 1000.0;
                    st.d_loss.push(x, stats.d_loss as f64);
                    st.g_loss.push(x, stats.g_loss as f64);
                }
                Event::Samples {
                    width,
                    height,
                    rgba,
                    ..
                } => {
                    let img = egui::ColorImage::from_rgba_unmultiplied([width, height], &rgba);
                    match &mut self.samples {
                        Some(t) => t.set(img, egui::TextureOptions::NEAREST),
                        None => {
                            self.samples = Some(ctx.load_texture(
                                "samples",
                                img,
                                egui::TextureOptions::NEAREST,
                            ))
                        }
                    }
                }
                Event::Weights {
                    step,
                    images,
                    values,
                } => {
                    if self.settings.follow {
                        actions.push(TrainAction::Weights {
                            step,
                            images,
                            values,
                        });
                    }
                }
                Event::Metric { images, value, .. } => {
                    st.swd.push(images as f64 / 1000.0, value);
                }
                Event::Checkpoint { path } => {
                    st.message = Some(format!("checkpoint {}", path.display()));
                }
                Event::Warning(w) => st.message = Some(w),
                Event::Model(cfg) => self.model = Some(*cfg),
                Event::Paused(p) => st.paused = p,
                Event::Finished { step, images } => {
                    st.message = Some(format!("finished at step {step} ({images} images)"));
                    ended = true;
                }
                Event::Failed(e) => {
                    actions.push(TrainAction::Error(format!("training failed: {e}")));
                    ended = true;
                }
            }
        }
        if ended {
            self.status.running = false;
            self.status.paused = false;
            self.watching = false;
            if let Some(w) = self.worker.take() {
                let _ = w.handle.join();
            }
        } else if self.status.running {
            ctx.request_repaint_after(std::time::Duration::from_millis(200));
        }
        actions
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, stable: bool) -> Vec<TrainAction> {
        let mut actions = Vec::new();
        if let Some(rx) = &self.dialog
            && let Ok(picked) = rx.try_recv()
        {
            if let Some(p) = picked {
                self.settings.data = p.display().to_string();
            }
            self.dialog = None;
        }
        ui.heading("Training");
        let running = self.worker.is_some();
        ui.add_enabled_ui(!self.is_running(), |ui| self.settings_ui(ui));
        ui.separator();
        ui.horizontal_wrapped(|ui| {
            if ui
                .add_enabled(!self.is_running(), egui::Button::new("Start"))
                .on_hover_text("Start a run (continues the newest checkpoint in the run folder when Resume is on)")
                .clicked()
                && let Err(e) = self.start(ui.ctx())
            {
                actions.push(TrainAction::Error(e));
            }
            if ui
                .add_enabled(!self.is_running(), egui::Button::new("Watch"))
                .on_hover_text(
                    "Follow the run folder as another process writes it (inrgan train in a \
                     terminal, tools/torch/train.py on a cluster): curves, samples, progress, \
                     and the viewport on its newest weights",
                )
                .clicked()
                && let Err(e) = self.watch()
            {
                actions.push(TrainAction::Error(e));
            }
            if self.preparing.is_some() {
                ui.spinner();
                ui.label("reading the data set");
            }
            let paused = self.status.paused;
            // A watched run belongs to another process: only Stop (watching) applies.
            let running = running && !self.watching;
            if ui
                .add_enabled(running && !paused, egui::Button::new("Pause"))
                .clicked()
            {
                self.send(Command::Pause);
            }
            if ui
                .add_enabled(running && paused, egui::Button::new("Resume"))
                .clicked()
            {
                self.send(Command::Resume);
            }
            if ui
                .add_enabled(running && paused, egui::Button::new("Single step"))
                .on_hover_text("One G and D step while paused")
                .clicked()
            {
                self.send(Command::Step);
            }
            if self.watching {
                if ui.button("Stop watching").clicked() {
                    self.send(Command::Stop);
                }
            } else if ui
                .add_enabled(running, egui::Button::new("Stop"))
                .on_hover_text("Save a checkpoint and end the run")
                .clicked()
            {
                self.send(Command::Stop);
            }
            if ui
                .add_enabled(running, egui::Button::new("Save checkpoint"))
                .clicked()
            {
                self.send(Command::SaveNow);
            }
        });
        ui.checkbox(&mut self.settings.follow, "Show training in the viewport")
            .on_hover_text("The viewport shows the generator's EMA weights as they train");
        let st = &self.status;
        if !stable {
            ui.label(format!(
                "step {} · {:.1} kimg · {:.1} img/s{}",
                st.step,
                st.images as f64 / 1000.0,
                st.img_per_s,
                if st.backend.is_empty() {
                    String::new()
                } else {
                    format!(" · {}", st.backend)
                }
            ));
            let eta = if st.running && st.img_per_s > 0.0 {
                format!("ETA {}", fmt_duration(st.eta_s))
            } else {
                String::new()
            };
            ui.add(
                egui::ProgressBar::new(st.progress as f32)
                    .show_percentage()
                    .text(format!("{:.0}% {eta}", st.progress * 100.0)),
            );
        }
        if st.paused {
            ui.label("paused");
        }
        if let Some(m) = &st.message {
            ui.label(m);
        }
        if !st.d_loss.points.is_empty() {
            egui_plot::Plot::new("losses")
                .height(130.0)
                .legend(egui_plot::Legend::default())
                .x_axis_label("kimg")
                .show(ui, |p| {
                    p.line(egui_plot::Line::new(
                        "D loss",
                        egui_plot::PlotPoints::from(st.d_loss.points.clone()),
                    ));
                    p.line(egui_plot::Line::new(
                        "G loss",
                        egui_plot::PlotPoints::from(st.g_loss.points.clone()),
                    ));
                });
        }
        if !st.swd.points.is_empty() {
            egui_plot::Plot::new("swd")
                .height(100.0)
                .legend(egui_plot::Legend::default())
                .x_axis_label("kimg")
                .show(ui, |p| {
                    p.line(egui_plot::Line::new(
                        "SWD x1e3 (lower is better)",
                        egui_plot::PlotPoints::from(st.swd.points.clone()),
                    ));
                });
        }
        if let Some(t) = &self.samples {
            ui.label("Samples of the EMA generator (fixed seeds):");
            let w = ui.available_width().min(320.0);
            let size = t.size_vec2();
            ui.image(egui::load::SizedTexture::new(
                t.id(),
                egui::vec2(w, w * size.y / size.x.max(1.0)),
            ));
        }
        actions
    }

    fn settings_ui(&mut self, ui: &mut egui::Ui) {
        let s = &mut self.settings;
        ui.horizontal(|ui| {
            let l = ui.label("Data");
            ui.text_edit_singleline(&mut s.data)
                .labelled_by(l.id)
                .on_hover_text(
                    "emoji, emoji:CATEGORY (smileys, people, animals, food, travel, activities, objects, symbols, flags), or a folder or .zip of images (also: drop one on the window)",
                );
        });
        ui.horizontal(|ui| {
            egui::ComboBox::from_label("Built-in set")
                .selected_text(if s.data.starts_with("emoji") {
                    s.data.clone()
                } else {
                    "folder / zip".into()
                })
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut s.data, "emoji".to_string(), "emoji (all)");
                    for (short, full) in crate::data::EMOJI_CATEGORIES {
                        ui.selectable_value(&mut s.data, format!("emoji:{short}"), full);
                    }
                });
            if ui
                .add_enabled(self.dialog.is_none(), egui::Button::new("Folder…"))
                .on_hover_text("Choose a folder of images")
                .clicked()
            {
                let (tx, rx) = std::sync::mpsc::channel();
                let ctx = ui.ctx().clone();
                std::thread::spawn(move || {
                    let _ = tx.send(rfd::FileDialog::new().pick_folder());
                    ctx.request_repaint();
                });
                self.dialog = Some(rx);
            }
        });
        egui::ComboBox::from_label("Preset")
            .selected_text(s.preset.clone())
            .show_ui(ui, |ui| {
                for p in ["tiny", "emoji32", "emoji32-smooth", "emoji64"] {
                    ui.selectable_value(&mut s.preset, p.to_string(), p);
                }
            });
        egui::Grid::new("train settings")
            .num_columns(2)
            .show(ui, |ui| {
                let l = ui.label("Batch");
                ui.add(egui::DragValue::new(&mut s.batch).range(4..=256))
                    .labelled_by(l.id)
                    .on_hover_text("Images per step (a multiple of the minibatch-std group, 4)");
                ui.end_row();
                let l = ui.label("G learning rate");
                ui.add(
                    egui::DragValue::new(&mut s.lr_g)
                        .speed(0.0001)
                        .range(1e-6..=0.1),
                )
                .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("D learning rate");
                ui.add(
                    egui::DragValue::new(&mut s.lr_d)
                        .speed(0.0001)
                        .range(1e-6..=0.1),
                )
                .labelled_by(l.id);
                ui.end_row();
                let l = ui.label("R1 gamma");
                ui.add(
                    egui::DragValue::new(&mut s.gamma)
                        .speed(0.05)
                        .range(0.0..=100.0),
                )
                .labelled_by(l.id)
                .on_hover_text("Weight of the R1 gradient penalty on real images (stabilises D)");
                ui.end_row();
                let l = ui.label("Augmentation");
                let name = |m: Option<AugmentMode>| match m {
                    None => "auto".to_string(),
                    Some(m) => m.to_string(),
                };
                egui::ComboBox::from_id_salt("augment")
                    .selected_text(name(s.augment))
                    .show_ui(ui, |ui| {
                        for m in [
                            None,
                            Some(AugmentMode::None),
                            Some(AugmentMode::Fixed),
                            Some(AugmentMode::Adaptive),
                        ] {
                            ui.selectable_value(&mut s.augment, m, name(m));
                        }
                    })
                    .response
                    .labelled_by(l.id)
                    .on_hover_text(
                        "What D sees goes through colour, translation and cutout (DiffAugment): \
                         fixed on every image, adaptive by ADA's probability, auto: fixed \
                         under 10,000 images",
                    );
                ui.end_row();
                let l = ui.label("Length (kimg)");
                ui.add(
                    egui::DragValue::new(&mut s.kimg)
                        .speed(1.0)
                        .range(0.01..=100000.0),
                )
                .labelled_by(l.id)
                .on_hover_text("Thousands of real images shown to D");
                ui.end_row();
                let l = ui.label("Samples every (steps)");
                ui.add(egui::DragValue::new(&mut s.sample_every).range(1..=100000))
                    .labelled_by(l.id)
                    .on_hover_text("How often the sample grid (and the live viewport) refresh");
                ui.end_row();
                let l = ui.label("Run folder");
                ui.text_edit_singleline(&mut s.out)
                    .labelled_by(l.id)
                    .on_hover_text("Checkpoints, metrics.jsonl and sample grids go here");
                ui.end_row();
            });
        ui.checkbox(&mut s.resume, "Resume from the run folder")
            .on_hover_text("Continue the newest checkpoint in the run folder, if there is one");
    }
}

pub fn fmt_duration(s: f64) -> String {
    if !s.is_finite() {
        return "-".into();
    }
    let s = s.max(0.0) as u64;
    if s >= 3600 {
        format!("{}h{:02}m", s / 3600, (s % 3600) / 60)
    } else if s >= 60 {
        format!("{}m{:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}
