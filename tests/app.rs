//! The real explorer window driven by egui_kittest on the wgpu test renderer (lavapipe on CI, no
//! X server): start-up, the latent sliders, training controls, export with its recipe, a bad
//! weights file, the GPU texture path, and a snapshot of the main window.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use egui::accesskit::Role;
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use inrgan::app::{AppOptions, ExplorerApp, Tab};
use inrgan::backend::BackendKind;

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("inrgan-app-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn options(dir: &Path, backend: BackendKind) -> AppOptions {
    AppOptions {
        weights: None,
        preset: "tiny".into(),
        backend,
        stable: true,
        persist: false,
        run_dir: Some(dir.join("run")),
    }
}

/// A device with the adapter's own limits (our kernels need more storage buffers than wgpu's
/// defaults), on kittest's choice of adapter (software first).
fn setup() -> eframe::egui_wgpu::WgpuSetup {
    let mut s = egui_kittest::wgpu::default_wgpu_setup();
    if let eframe::egui_wgpu::WgpuSetup::CreateNew(c) = &mut s {
        c.device_descriptor = Arc::new(inrgan::gpu::device_descriptor);
    }
    s
}

fn harness(opts: AppOptions) -> Harness<'static, ExplorerApp> {
    Harness::builder()
        .with_size([1000.0, 700.0])
        .wgpu_setup(setup())
        .build_eframe(move |cc| ExplorerApp::new(cc, opts).expect("the app starts"))
}

/// Steps the UI until `done` holds (the app's work runs on other threads).
fn wait(
    h: &mut Harness<'_, ExplorerApp>,
    what: &str,
    secs: u64,
    done: impl Fn(&ExplorerApp) -> bool,
) {
    let start = Instant::now();
    loop {
        h.step();
        if done(h.state()) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(secs),
            "timed out waiting for {what}; errors: {:?}; viewport error: {:?}",
            h.state().errors(),
            h.state().viewport().error
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn pixels(h: &Harness<'_, ExplorerApp>) -> Vec<u8> {
    h.state()
        .viewport()
        .pixels()
        .map(|(_, _, p)| p.to_vec())
        .expect("the CPU backend keeps the viewport's pixels")
}

#[test]
fn app_starts_and_renders_the_model() {
    let dir = tmpdir("start");
    let mut h = harness(options(&dir, BackendKind::Cpu));
    wait(&mut h, "the first full render", 120, |a| {
        a.viewport().is_settled()
    });
    let (w, hgt, px) = h.state().viewport().pixels().unwrap();
    assert!(w >= 64 && w == hgt, "{w}x{hgt}");
    // A picture, not a flat fill.
    let first = &px[..4];
    assert!(px.chunks(4).any(|p| p != first), "the viewport is uniform");
    assert!(h.state().errors().is_empty(), "{:?}", h.state().errors());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn moving_an_interpolation_slider_changes_the_viewport() {
    let dir = tmpdir("slider");
    let mut h = harness(options(&dir, BackendKind::Cpu));
    wait(&mut h, "the first full render", 120, |a| {
        a.viewport().is_settled()
    });
    let before = pixels(&h);
    h.get_by_role_and_label(Role::Slider, "u (A to B)")
        .set_value_accesskit(1.0);
    h.step();
    wait(&mut h, "the render after the slider", 120, |a| {
        a.viewport().is_settled()
    });
    let after = pixels(&h);
    assert_eq!(before.len(), after.len());
    let changed = before
        .chunks(4)
        .zip(after.chunks(4))
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        changed > before.len() / 4 / 10,
        "only {changed} pixels changed when the latent moved from anchor A to B"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn start_advances_training_and_pause_stops_it() {
    let dir = tmpdir("train");
    let mut h = harness(options(&dir, BackendKind::Cpu));
    h.state_mut().set_tab(Tab::Training);
    {
        let s = h.state_mut().training_settings_mut();
        s.data = "emoji:smileys".into();
        s.preset = "tiny".into();
        s.batch = 8;
        s.kimg = 5.0;
        s.sample_every = 2;
        s.checkpoint_kimg = 1000.0;
        s.resume = false;
    }
    h.step();
    h.get_by_role_and_label(Role::Button, "Start").click();
    wait(&mut h, "two training steps", 180, |a| {
        a.training_step() >= 2
    });
    h.get_by_role_and_label(Role::Button, "Pause").click();
    wait(&mut h, "the pause", 60, |a| a.training_paused());
    let step = h.state().training_step();
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1500) {
        h.step();
        std::thread::sleep(Duration::from_millis(30));
    }
    assert_eq!(
        h.state().training_step(),
        step,
        "steps went on while paused"
    );
    // The viewport follows the training generator's EMA weights.
    assert!(
        h.state().model_hash().starts_with("training-"),
        "{}",
        h.state().model_hash()
    );
    h.get_by_role_and_label(Role::Button, "Single step").click();
    wait(&mut h, "a single step", 60, |a| {
        a.training_step() == step + 1
    });
    h.get_by_role_and_label(Role::Button, "Stop").click();
    wait(&mut h, "the stop", 60, |a| !a.training_running());
    assert!(
        std::fs::read_dir(dir.join("run"))
            .unwrap()
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("ckpt-")),
        "Stop saves a checkpoint"
    );
    std::fs::remove_dir_all(dir).ok();
}

/// A run folder that another process writes (here: the torch trainer's fixture, then lines
/// and weights added while the panel watches): the panel shows its steps and the viewport
/// follows its weights.
#[test]
fn watch_follows_a_run_folder_that_another_process_writes() {
    let dir = tmpdir("watch");
    let run = dir.join("run");
    std::fs::create_dir_all(&run).unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/torch");
    let metrics = std::fs::read_to_string(fixture.join("metrics.jsonl")).unwrap();
    let mut lines = metrics.lines();
    // The first line only; the rest arrive later, the last one without its newline yet.
    std::fs::write(
        run.join("metrics.jsonl"),
        format!("{}\n", lines.next().unwrap()),
    )
    .unwrap();
    let mut h = harness(options(&dir, BackendKind::Cpu));
    h.state_mut().set_tab(Tab::Training);
    h.step();
    h.get_by_role_and_label(Role::Button, "Watch").click();
    wait(&mut h, "the first step read", 60, |a| {
        a.training_step() == 1
    });
    let rest: Vec<&str> = lines.collect();
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(run.join("metrics.jsonl"))
        .unwrap();
    use std::io::Write;
    write!(f, "{}\n{}", rest[0], rest[1]).unwrap();
    drop(f);
    wait(&mut h, "the complete line", 60, |a| a.training_step() == 2);
    // Weights and samples appear (renamed into place, as both trainers write them).
    std::fs::copy(
        fixture.join("latest.safetensors"),
        run.join("tmp.safetensors"),
    )
    .unwrap();
    std::fs::rename(run.join("tmp.safetensors"), run.join("latest.safetensors")).unwrap();
    std::fs::copy(
        fixture.join("samples-00000004.png"),
        run.join("samples-00000004.png"),
    )
    .unwrap();
    wait(&mut h, "the viewport on the watched weights", 60, |a| {
        a.model_hash().starts_with("training-")
    });
    h.get_by_role_and_label(Role::Button, "Stop watching")
        .click();
    wait(&mut h, "the end of watching", 30, |a| !a.training_running());
    assert!(h.state().errors().is_empty(), "{:?}", h.state().errors());
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn export_writes_a_png_whose_recipe_reproduces_it() {
    let dir = tmpdir("export");
    let mut h = harness(options(&dir, BackendKind::Cpu));
    let out = dir.join("view.png");
    h.step();
    h.get_by_role_and_label(Role::Slider, "u (A to B)")
        .set_value_accesskit(0.4);
    h.step();
    {
        let app = h.state_mut();
        app.set_tab(Tab::Export);
        let s = app.export_settings_mut();
        s.path = out.display().to_string();
        s.width = 48;
        s.height = 40;
    }
    h.step();
    h.get_by_role_and_label(Role::Button, "Export PNG").click();
    wait(&mut h, "the export", 120, |a| a.export_result().is_some());
    let msg = h.state().export_result().unwrap().clone();
    assert!(msg.is_ok(), "{msg:?}");
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&out).unwrap()));
    let mut reader = dec.read_info().unwrap();
    assert_eq!((reader.info().width, reader.info().height), (48, 40));
    let mut first = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut first).unwrap();
    // `inrgan render --recipe` does this.
    let recipe = inrgan::engine::read_recipe(&out).unwrap();
    assert_eq!((recipe.width, recipe.height), (48, 40));
    assert!(recipe.latent.is_some());
    let again = dir.join("again.png");
    let mut args = inrgan::engine::RenderArgs::from_recipe(&recipe, None, again.clone());
    args.preset = "tiny".into();
    args.backend = BackendKind::Cpu;
    inrgan::engine::render(&args, |_| true).unwrap();
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(&again).unwrap(),
    ));
    let mut reader = dec.read_info().unwrap();
    let mut second = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut second).unwrap();
    assert_eq!(first, second, "the recipe does not reproduce the export");
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn export_writes_a_seed_grid_and_walk_frames() {
    let dir = tmpdir("grid");
    let mut h = harness(options(&dir, BackendKind::Cpu));
    {
        let app = h.state_mut();
        app.set_tab(Tab::Export);
        let s = app.export_settings_mut();
        s.path = dir.join("x.png").display().to_string();
        s.grid_side = 3;
        s.grid_image = 16;
        s.walk_frames = 4;
        s.walk_size = 24;
        s.walk_dir = dir.join("walk").display().to_string();
    }
    h.step();
    h.get_by_role_and_label(Role::Button, "Export seed grid")
        .click();
    wait(&mut h, "the grid", 120, |a| a.export_result().is_some());
    assert!(h.state().export_result().unwrap().is_ok());
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(dir.join("x.grid.png")).unwrap(),
    ));
    let reader = dec.read_info().unwrap();
    assert_eq!((reader.info().width, reader.info().height), (48, 48));
    h.get_by_role_and_label(Role::Button, "Export walk frames")
        .click();
    h.step();
    wait(&mut h, "the walk", 120, |a| {
        a.export_result()
            .is_some_and(|r| r.as_ref().is_ok_and(|m| m.contains("frames")))
    });
    let frames = std::fs::read_dir(dir.join("walk"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("frame-"))
        .count();
    assert_eq!(frames, 4);
    // And the walk as one animated PNG of those frames.
    let dec = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(dir.join("walk/walk.png")).unwrap(),
    ));
    let reader = dec.read_info().unwrap();
    assert_eq!(
        reader.info().animation_control.map(|a| a.num_frames),
        Some(4)
    );
    // Each frame is a different point of the loop through the anchors.
    let r0 = inrgan::engine::read_recipe(&dir.join("walk/frame-0000.png")).unwrap();
    let r1 = inrgan::engine::read_recipe(&dir.join("walk/frame-0001.png")).unwrap();
    assert_ne!(r0.latent.unwrap().uv, r1.latent.unwrap().uv);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn an_unreadable_data_set_is_reported_and_training_can_start_again() {
    let dir = tmpdir("baddata");
    let mut h = harness(options(&dir, BackendKind::Cpu));
    h.state_mut().set_tab(Tab::Training);
    let missing = dir.join("no such folder");
    {
        let s = h.state_mut().training_settings_mut();
        s.data = missing.display().to_string();
        s.preset = "tiny".into();
        s.resume = false;
    }
    h.step();
    h.get_by_role_and_label(Role::Button, "Start").click();
    // The data set is read on its own thread; the window keeps drawing meanwhile.
    wait(&mut h, "the data error", 60, |a| !a.errors().is_empty());
    let errors = h.state().errors().join("\n");
    assert!(errors.contains("cannot start training"), "{errors}");
    assert!(errors.contains("no such folder"), "{errors}");
    assert!(!h.state().training_running());
    h.step();
    h.get_by_label_contains("cannot start training");
    // Start is enabled again.
    h.get_by_role_and_label(Role::Button, "Start").click();
    wait(&mut h, "the second error", 60, |a| a.errors().len() >= 2);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn a_bad_weights_file_shows_an_error_and_keeps_the_model() {
    let dir = tmpdir("bad");
    let mut h = harness(options(&dir, BackendKind::Cpu));
    let bad = dir.join("broken.safetensors");
    std::fs::write(&bad, b"this is not a safetensors file").unwrap();
    let hash = h.state().model_hash().to_string();
    {
        let app = h.state_mut();
        app.set_tab(Tab::Model);
        *app.model_open_path_mut() = bad.display().to_string();
    }
    h.step();
    h.get_by_role_and_label(Role::Button, "Open").click();
    h.step();
    h.step();
    assert_eq!(h.state().model_hash(), hash, "the model changed");
    let errors = h.state().errors().join("\n");
    assert!(errors.contains("could not open"), "{errors}");
    // The error is on screen.
    h.get_by_label_contains("could not open");
    std::fs::remove_dir_all(dir).ok();
}

/// A weights file of the tiny preset, with `facts`.
fn tiny_weights(dir: &Path, name: &str, facts: &[(&str, &str)]) -> PathBuf {
    use inrgan::model::{config::ModelConfig, generator::Generator, weights};
    let cfg = ModelConfig::preset("tiny").unwrap();
    let g = Generator::new(&cfg);
    let mut r = inrgan::rng::Rng::new(1);
    let values: Vec<Vec<f32>> = g.specs().iter().map(|s| s.initial(&mut r)).collect();
    let facts: Vec<(String, String)> = facts
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let p = dir.join(name);
    weights::save_with(&p, &cfg, g.specs(), &values, &facts).unwrap();
    p
}

#[test]
fn a_model_opens_on_its_own_anchor_seeds() {
    let dir = tmpdir("anchors");
    let anchored = tiny_weights(&dir, "anchored.safetensors", &[("anchors", "7,11,13,17")]);
    let plain = tiny_weights(&dir, "plain.safetensors", &[("anchors", "7,11")]);
    let mut opts = options(&dir, BackendKind::Cpu);
    opts.weights = Some(anchored);
    let mut h = harness(opts);
    h.step();
    assert_eq!(h.state().latent_seeds(), [7, 11, 13, 17]);
    // "Reset seeds" returns to them.
    *h.state_mut().latent_seeds_mut() = [1, 2, 3, 4];
    h.step();
    h.get_by_role_and_label(Role::Button, "Reset seeds").click();
    h.step();
    h.step();
    assert_eq!(h.state().latent_seeds(), [7, 11, 13, 17]);
    // Another model keeps the seeds on screen; a malformed fact means the default anchors.
    h.state_mut().open_weights(&plain);
    h.step();
    assert!(h.state().errors().is_empty(), "{:?}", h.state().errors());
    assert_eq!(h.state().latent_seeds(), [7, 11, 13, 17]);
    h.get_by_role_and_label(Role::Button, "Reset seeds").click();
    h.step();
    h.step();
    assert_eq!(h.state().latent_seeds(), [0, 1, 2, 3]);
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn the_gpu_backend_draws_the_same_picture_as_the_cpu_backend() {
    let dir = tmpdir("gpu");
    let mut shots = Vec::new();
    for backend in [BackendKind::Cpu, BackendKind::Gpu] {
        let mut h = harness(options(&dir, backend));
        wait(&mut h, "the first full render", 180, |a| {
            a.viewport().is_settled()
        });
        h.step();
        let rect = h.state().viewport().screen_rect().unwrap();
        let img = h.render().expect("a screenshot");
        let ppp = 1.0;
        let crop: Vec<u8> = (rect.min.y as u32 + 2..rect.max.y as u32 - 2)
            .flat_map(|y| {
                let img = &img;
                (rect.min.x as u32 + 2..rect.max.x as u32 - 2).flat_map(move |x| {
                    img.get_pixel((x as f32 * ppp) as u32, (y as f32 * ppp) as u32)
                        .0
                })
            })
            .collect();
        shots.push(crop);
    }
    assert_eq!(shots[0].len(), shots[1].len());
    let n = shots[0].len() as f64;
    let mean = shots[0]
        .iter()
        .zip(&shots[1])
        .map(|(&a, &b)| (a as f64 - b as f64).abs())
        .sum::<f64>()
        / n;
    assert!(
        mean < 1.0,
        "mean difference {mean} levels between the backends"
    );
    std::fs::remove_dir_all(dir).ok();
}

#[test]
fn main_window_snapshot() {
    let dir = tmpdir("snapshot");
    let mut h = harness(options(&dir, BackendKind::Cpu));
    wait(&mut h, "the first full render", 120, |a| {
        a.viewport().is_settled()
    });
    h.step();
    h.snapshot("main_window");
    std::fs::remove_dir_all(dir).ok();
}
