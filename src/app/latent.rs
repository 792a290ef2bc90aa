//! The latent panel: four anchor seeds at the corners of a square, the point between them,
//! truncation, per-scale style mixing and an animated loop through the anchors.

use serde::{Deserialize, Serialize};

use crate::latent::{Interp, LatentSpec, loop_uv};

pub const ANCHORS: [&str; 4] = ["A", "B", "C", "D"];

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct LatentPanel {
    pub spec: LatentSpec,
    /// Scale levels shown (the per-scale view; `levels` of the model = all).
    pub levels: usize,
    pub animate: bool,
    /// Laps through the four anchors per minute.
    pub speed: f64,
    pub phase: f64,
    /// Seeds drawn by the randomise buttons come from here.
    pub next_random: u64,
    /// The model's starting seeds (its `anchors` fact): where the app opens on a first start and
    /// what "Reset seeds" returns to. Set by the app for each model, not saved.
    #[serde(skip, default = "default_anchors")]
    pub home: [u64; 4],
}

fn default_anchors() -> [u64; 4] {
    crate::engine::DEFAULT_ANCHORS
}

impl Default for LatentPanel {
    fn default() -> Self {
        Self {
            spec: LatentSpec::default(),
            levels: usize::MAX,
            animate: false,
            speed: 6.0,
            phase: 0.0,
            next_random: 0x9e37_79b9,
            home: default_anchors(),
        }
    }
}

impl LatentPanel {
    /// Advances the animation by `dt` seconds (returns true when it moved).
    pub fn tick(&mut self, dt: f64) -> bool {
        if !self.animate {
            return false;
        }
        self.phase = (self.phase + dt * self.speed / 60.0).rem_euclid(1.0);
        self.spec.uv = loop_uv(self.phase);
        true
    }

    fn random_seed(&mut self) -> u64 {
        let mut r = crate::rng::Rng::new(self.next_random);
        self.next_random = self.next_random.wrapping_add(0x9e37_79b9_7f4a_7c15);
        r.below(1 << 31)
    }

    /// The square of anchors: drag the point to move between them.
    fn pad(&mut self, ui: &mut egui::Ui) {
        let side = 120.0;
        let (rect, resp) =
            ui.allocate_exact_size(egui::vec2(side + 24.0, side + 24.0), egui::Sense::drag());
        resp.widget_info(|| {
            egui::WidgetInfo::labeled(egui::Role::Slider, true, "Square of anchors")
        });
        let resp = resp.on_hover_text("Drag the point between the anchors A, B, C, D");
        let sq =
            egui::Rect::from_min_size(rect.min + egui::vec2(12.0, 12.0), egui::vec2(side, side));
        if let Some(p) = resp.interact_pointer_pos()
            && (resp.dragged() || resp.drag_started())
        {
            self.spec.uv = [
                ((p.x - sq.min.x) / side).clamp(0.0, 1.0),
                ((p.y - sq.min.y) / side).clamp(0.0, 1.0),
            ];
            self.animate = false;
        }
        let painter = ui.painter_at(rect);
        let stroke = ui.visuals().widgets.noninteractive.fg_stroke;
        painter.rect_stroke(sq, 2.0, stroke, egui::StrokeKind::Middle);
        let corners = [
            sq.left_top(),
            sq.right_top(),
            sq.left_bottom(),
            sq.right_bottom(),
        ];
        for (c, name) in corners.iter().zip(ANCHORS) {
            let off = egui::vec2(
                if c.x < sq.center().x { -7.0 } else { 7.0 },
                if c.y < sq.center().y { -7.0 } else { 7.0 },
            );
            painter.text(
                *c + off,
                egui::Align2::CENTER_CENTER,
                name,
                egui::FontId::proportional(11.0),
                stroke.color,
            );
        }
        let dot = egui::pos2(
            sq.min.x + self.spec.uv[0] * side,
            sq.min.y + self.spec.uv[1] * side,
        );
        painter.circle_filled(dot, 5.0, ui.visuals().selection.bg_fill);
    }

    /// `levels`: the model's scale levels with their resolutions.
    pub fn ui(&mut self, ui: &mut egui::Ui, level_res: &[usize]) {
        let n_levels = level_res.len().max(1);
        self.levels = self.levels.clamp(1, n_levels);
        ui.heading("Latent");
        ui.label("Four anchor latents at the corners of a square; the image is the point (u, v) between them.");
        egui::Grid::new("anchors").num_columns(3).show(ui, |ui| {
            for (i, name) in ANCHORS.iter().enumerate() {
                let label = ui.label(format!("Anchor {name} seed"));
                ui.add(egui::DragValue::new(&mut self.spec.seeds[i]).range(0..=u32::MAX as u64))
                    .labelled_by(label.id)
                    .on_hover_text(format!(
                        "Seed of the latent z at corner {name} (u = {}, v = {})",
                        i % 2,
                        i / 2
                    ));
                if ui
                    .button(format!("Randomize {name}"))
                    .on_hover_text("Draw a new seed for this anchor")
                    .clicked()
                {
                    self.spec.seeds[i] = self.random_seed();
                }
                ui.end_row();
            }
        });
        self.pad(ui);
        ui.add(egui::Slider::new(&mut self.spec.uv[0], 0.0..=1.0).text("u (A to B)"))
            .on_hover_text("Horizontal position between the anchors: A, C at 0; B, D at 1");
        ui.add(egui::Slider::new(&mut self.spec.uv[1], 0.0..=1.0).text("v (A to C)"))
            .on_hover_text("Vertical position between the anchors: A, B at 0; C, D at 1");
        ui.horizontal(|ui| {
            ui.label("Interpolation:");
            for m in [Interp::LerpW, Interp::SlerpZ] {
                ui.radio_value(&mut self.spec.interp, m, m.label())
                    .on_hover_text(match m {
                        Interp::LerpW => "Linear interpolation of the mapped latents w",
                        Interp::SlerpZ => {
                            "Spherical interpolation of the Gaussian latents z, then mapping"
                        }
                    });
            }
        });
        ui.add(egui::Slider::new(&mut self.spec.psi, 0.0..=1.5).text("Truncation psi"))
            .on_hover_text(
                "psi < 1 pulls w towards the average w: more typical, less varied images",
            );
        ui.separator();
        ui.strong("Style mixing per scale");
        self.spec.mixing.resize(n_levels, None);
        for (k, res) in level_res.iter().enumerate() {
            let current = self.spec.mixing[k];
            let text = match current {
                None => "interpolated".to_string(),
                Some(i) => format!("anchor {}", ANCHORS[i as usize % 4]),
            };
            egui::ComboBox::from_label(format!("Scale {} ({res} px)", k + 1))
                .selected_text(text)
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.spec.mixing[k], None, "interpolated");
                    for (i, name) in ANCHORS.iter().enumerate() {
                        ui.selectable_value(
                            &mut self.spec.mixing[k],
                            Some(i as u8),
                            format!("anchor {name}"),
                        );
                    }
                })
                .response
                .on_hover_text("Which latent this scale block takes its styles from");
        }
        if self.spec.mixing.iter().all(Option::is_none) {
            self.spec.mixing.clear();
        }
        ui.add(egui::Slider::new(&mut self.levels, 1..=n_levels).text("Scales shown"))
            .on_hover_text(
                "Evaluate only the first scale blocks (the early exit): what each scale adds",
            );
        ui.separator();
        ui.horizontal(|ui| {
            ui.checkbox(&mut self.animate, "Animate")
                .on_hover_text("Loop through the anchors A, B, D, C");
            ui.add(egui::Slider::new(&mut self.speed, 0.5..=60.0).text("laps/min"))
                .on_hover_text("Animation speed");
        });
        ui.horizontal(|ui| {
            if ui
                .button("Reset latent")
                .on_hover_text("Back to the corner A, no truncation, no mixing")
                .clicked()
            {
                let seeds = self.spec.seeds;
                self.spec = LatentSpec {
                    seeds,
                    ..LatentSpec::default()
                };
                self.levels = n_levels;
                self.animate = false;
                self.phase = 0.0;
            }
            let [a, b, c, d] = self.home;
            if ui
                .button("Reset seeds")
                .on_hover_text(format!(
                    "Anchors back to the model's starting seeds {a}, {b}, {c}, {d}"
                ))
                .clicked()
            {
                self.spec.seeds = self.home;
            }
        });
    }
}
