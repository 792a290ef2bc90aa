//! The model panel: open and save weights (file dialog off the UI thread, a path field,
//! drag-and-drop, a recent list) and the model's facts.

use std::path::PathBuf;
use std::sync::mpsc::Receiver;

use crate::engine::LoadedModel;

/// Files kept in the recent list.
const RECENT: usize = 8;

#[derive(Default)]
pub struct ModelPanel {
    pub open_path: String,
    pub save_path: String,
    pub recent: Vec<String>,
    dialog: Option<(bool, Receiver<Option<PathBuf>>)>,
}

pub enum ModelAction {
    Open(PathBuf),
    Save(PathBuf),
    Builtin,
}

impl ModelPanel {
    pub fn remember(&mut self, path: &str) {
        self.recent.retain(|p| p != path);
        self.recent.insert(0, path.to_string());
        self.recent.truncate(RECENT);
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, m: &LoadedModel, stable: bool) -> Option<ModelAction> {
        let mut action = None;
        if let Some((save, rx)) = &self.dialog
            && let Ok(picked) = rx.try_recv()
        {
            if let Some(p) = picked {
                action = Some(if *save {
                    ModelAction::Save(p)
                } else {
                    ModelAction::Open(p)
                });
            }
            self.dialog = None;
        }
        ui.heading("Model");
        let g = &m.generator;
        let (map, fmm, rgb) = g.param_counts();
        egui::Grid::new("model facts")
            .num_columns(2)
            .show(ui, |ui| {
                ui.label("Source");
                ui.label(if stable {
                    m.source
                        .rsplit(['/', '\\'])
                        .next()
                        .unwrap_or(&m.source)
                        .to_string()
                } else {
                    m.source.clone()
                });
                ui.end_row();
                ui.label("Preset");
                ui.label(format!(
                    "{} ({} px, {} scales)",
                    g.cfg.name,
                    g.cfg.resolution,
                    g.cfg.levels.len()
                ));
                ui.end_row();
                ui.label("Parameters");
                ui.label(format!(
                    "{:.2} M (mapping {:.2} M, hypernetwork + INR {:.2} M, toRGB {:.2} M)",
                    (map + fmm + rgb) as f64 / 1e6,
                    map as f64 / 1e6,
                    fmm as f64 / 1e6,
                    rgb as f64 / 1e6
                ));
                ui.end_row();
                for (k, v) in &m.facts {
                    ui.label(k);
                    ui.label(v);
                    ui.end_row();
                }
            });
        ui.separator();
        ui.horizontal(|ui| {
            let l = ui.label("Weights file");
            ui.text_edit_singleline(&mut self.open_path)
                .labelled_by(l.id)
                .on_hover_text("A .safetensors file written by this app or `inrgan train`");
        });
        ui.horizontal(|ui| {
            if ui
                .button("Open")
                .on_hover_text("Load the weights file named above")
                .clicked()
                && !self.open_path.trim().is_empty()
            {
                action = Some(ModelAction::Open(PathBuf::from(self.open_path.trim())));
            }
            if ui
                .add_enabled(self.dialog.is_none(), egui::Button::new("Browse…"))
                .on_hover_text("Choose a weights file")
                .clicked()
            {
                self.dialog = Some((false, spawn_dialog(ui.ctx(), false)));
            }
            if ui
                .button("Built-in model")
                .on_hover_text("Back to the model shipped with the app")
                .clicked()
            {
                action = Some(ModelAction::Builtin);
            }
        });
        ui.horizontal(|ui| {
            let l = ui.label("Save as");
            ui.text_edit_singleline(&mut self.save_path)
                .labelled_by(l.id);
        });
        ui.horizontal(|ui| {
            if ui
                .button("Save weights")
                .on_hover_text("Write the current weights (with their config) to the path above")
                .clicked()
                && !self.save_path.trim().is_empty()
            {
                action = Some(ModelAction::Save(PathBuf::from(self.save_path.trim())));
            }
            if ui
                .add_enabled(self.dialog.is_none(), egui::Button::new("Save…"))
                .clicked()
            {
                self.dialog = Some((true, spawn_dialog(ui.ctx(), true)));
            }
        });
        if !self.recent.is_empty() {
            ui.label("Recent:");
            for p in self.recent.clone() {
                if ui.link(&p).on_hover_text("Open this file").clicked() {
                    self.open_path = p.clone();
                    action = Some(ModelAction::Open(PathBuf::from(p)));
                }
            }
        }
        action
    }
}

/// A file dialog on its own thread (rfd blocks); the answer arrives on the receiver.
fn spawn_dialog(ctx: &egui::Context, save: bool) -> Receiver<Option<PathBuf>> {
    let (tx, rx) = std::sync::mpsc::channel();
    let ctx = ctx.clone();
    std::thread::spawn(move || {
        let d = rfd::FileDialog::new().add_filter("weights", &["safetensors"]);
        let picked = if save {
            d.set_file_name("model.safetensors").save_file()
        } else {
            d.pick_file()
        };
        let _ = tx.send(picked);
        ctx.request_repaint();
    });
    rx
}
