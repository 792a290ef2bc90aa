//! The training worker: events, run folder contents, checkpoint rotation, pause/stop commands,
//! NaN rollback and resume.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use inrgan::backend::BackendKind;
use inrgan::model::config::ModelConfig;
use inrgan::train::TrainConfig;
use inrgan::train::worker::{Command, Event, RunConfig, spawn};

fn synthetic(poison_at: Option<usize>) -> inrgan::train::worker::BatchSource {
    let mut calls = 0usize;
    let mut rng = inrgan::rng::Rng::new(3);
    Box::new(move || {
        calls += 1;
        let mut v = rng.uniform_vec(4 * 3 * 16 * 16, -1.0, 1.0);
        if Some(calls) == poison_at {
            v[5] = f32::NAN;
        }
        Ok(v)
    })
}

fn run_cfg(out: std::path::PathBuf, kimg: f64, resume: bool) -> RunConfig {
    RunConfig {
        out,
        model: ModelConfig::preset("tiny").unwrap(),
        train: TrainConfig {
            batch: 4,
            r1_interval: 4,
            ..TrainConfig::default()
        },
        backend: BackendKind::Cpu,
        kimg,
        checkpoint_kimg: 0.02,
        sample_every: 5,
        keep: 2,
        resume,
        sample_seeds: vec![1, 2, 3, 4],
        metric_samples: 0,
        augment: None,
    }
}

fn collect(events: &std::sync::mpsc::Receiver<Event>) -> Vec<Event> {
    let mut v = Vec::new();
    loop {
        match events.recv_timeout(Duration::from_secs(120)) {
            Ok(e) => {
                let end = matches!(e, Event::Finished { .. } | Event::Failed(_));
                v.push(e);
                if end {
                    return v;
                }
            }
            Err(RecvTimeoutError::Timeout) => panic!("worker timed out"),
            Err(RecvTimeoutError::Disconnected) => return v,
        }
    }
}

fn first_warning(ev: &[Event]) -> Option<String> {
    ev.iter().find_map(|e| match e {
        Event::Warning(m) => Some(m.clone()),
        _ => None,
    })
}

#[test]
fn a_run_writes_its_folder_and_resumes() {
    let dir = std::env::temp_dir().join(format!("inrgan-run-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut cfg = run_cfg(dir.clone(), 0.06, false);
    cfg.metric_samples = 4;
    // A metric that improves, then worsens: the best checkpoint is the second one.
    let mut calls = 0;
    let metric: inrgan::train::worker::Metric = Box::new(move |fakes, n| {
        assert_eq!(fakes.len(), n * 3 * 16 * 16);
        calls += 1;
        Ok(("m".into(), [5.0, 3.0, 4.0][(calls - 1).min(2)]))
    });
    let w = spawn(cfg, synthetic(None), Some(metric));
    let ev = collect(&w.events);
    w.handle.join().unwrap();
    let metrics: Vec<f64> = ev
        .iter()
        .filter_map(|e| match e {
            Event::Metric { value, .. } => Some(*value),
            _ => None,
        })
        .collect();
    assert_eq!(metrics, vec![5.0, 3.0, 4.0]);
    let best = std::fs::read_to_string(dir.join("best/state.ron")).unwrap();
    assert!(
        best.contains("step: 10"),
        "the best checkpoint is the one at step 10: {best}"
    );
    assert!(
        best.contains("3.0"),
        "the metric history is in the checkpoint state: {best}"
    );
    assert!(
        matches!(ev.first(), Some(Event::Started { step: 0, .. })),
        "{:?}",
        ev.first()
    );
    let steps = ev
        .iter()
        .filter(|e| matches!(e, Event::Step { .. }))
        .count();
    assert_eq!(steps, 15, "60 images at batch 4");
    assert!(matches!(
        ev.last(),
        Some(Event::Finished {
            step: 15,
            images: 60
        })
    ));
    let ckpts: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("ckpt-"))
        .collect();
    assert_eq!(ckpts.len(), 2, "only the last 2 checkpoints are kept");
    assert!(dir.join("samples-00000015.png").exists());
    let lines = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().filter(|l| l.contains("g_loss")).count(), 15);
    assert_eq!(lines.lines().filter(|l| l.contains("\"m\"")).count(), 3);
    // Resume: continues from step 15 to the new length.
    let w = spawn(run_cfg(dir.clone(), 0.08, true), synthetic(None), None);
    let ev = collect(&w.events);
    w.handle.join().unwrap();
    assert!(matches!(
        ev.first(),
        Some(Event::Started {
            step: 15,
            images: 60,
            ..
        })
    ));
    assert!(matches!(
        ev.last(),
        Some(Event::Finished {
            step: 20,
            images: 80
        })
    ));
    assert_eq!(first_warning(&ev), None);
    // Resuming with another preset continues the checkpoint's model, and says so.
    let mut other = run_cfg(dir.clone(), 0.088, true);
    other.model = ModelConfig::preset("tiny-smooth").unwrap();
    let w = spawn(other, synthetic(None), None);
    let ev = collect(&w.events);
    w.handle.join().unwrap();
    let warn = first_warning(&ev).expect("a warning that the preset is not used");
    assert!(
        warn.contains("model tiny,") && warn.contains("(tiny-smooth)"),
        "{warn}"
    );
    assert!(matches!(
        ev.last(),
        Some(Event::Finished {
            step: 22,
            images: 88
        })
    ));
    // The same model under another name (an edited preset file) goes on without a warning.
    let mut renamed = run_cfg(dir.clone(), 0.096, true);
    renamed.model.name = "my-tiny".into();
    let w = spawn(renamed, synthetic(None), None);
    let ev = collect(&w.events);
    w.handle.join().unwrap();
    assert_eq!(first_warning(&ev), None);
    assert!(matches!(
        ev.last(),
        Some(Event::Finished {
            step: 24,
            images: 96
        })
    ));
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_nan_rolls_back_to_the_last_checkpoint_with_lower_learning_rates() {
    let dir = std::env::temp_dir().join(format!("inrgan-nan-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // Checkpoints every 20 images (5 steps); the 8th batch holds a NaN.
    let w = spawn(run_cfg(dir.clone(), 0.04, false), synthetic(Some(8)), None);
    let ev = collect(&w.events);
    w.handle.join().unwrap();
    let warn = first_warning(&ev).expect("a rollback warning");
    assert!(
        warn.contains("rolled back") && warn.contains("ckpt-00000005"),
        "{warn}"
    );
    assert!(
        matches!(ev.last(), Some(Event::Finished { images: 40, .. })),
        "{:?}",
        ev.last()
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn pause_and_stop_commands() {
    let dir = std::env::temp_dir().join(format!("inrgan-cmd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let w = spawn(run_cfg(dir.clone(), 100.0, false), synthetic(None), None);
    w.commands.send(Command::Pause).unwrap();
    // Wait for the pause to take effect, then step once and stop.
    loop {
        match w.events.recv_timeout(Duration::from_secs(60)).unwrap() {
            Event::Paused(true) => break,
            Event::Failed(e) => panic!("{e}"),
            _ => {}
        }
    }
    w.commands.send(Command::Step).unwrap();
    w.commands.send(Command::Stop).unwrap();
    let ev = collect(&w.events);
    w.handle.join().unwrap();
    let Some(Event::Finished { step, .. }) = ev.last() else {
        panic!("{:?}", ev.last())
    };
    assert!(*step >= 1, "a single step ran while paused");
    assert!(
        ev.iter().any(|e| matches!(e, Event::Checkpoint { .. })),
        "stop saves"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A checkpoint that cannot be written (here: its temporary folder's name is taken by a file, as
/// a full disk makes the write fail) loses nothing: a warning, the run goes on, no partial folder
/// is left, and the next checkpoint is written. `tools/full-disk-check.sh` does the same on a
/// real full file system (a small tmpfs).
#[test]
fn a_checkpoint_that_cannot_be_written_is_a_warning_and_training_goes_on() {
    let dir = std::env::temp_dir().join(format!("inrgan-full-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    // The first checkpoint (step 5 of 10) writes into this name, which is a file.
    let blocker = dir.join(format!(".ckpt-00000005.tmp{}", std::process::id()));
    std::fs::write(&blocker, b"in the way").unwrap();
    let w = spawn(run_cfg(dir.clone(), 0.04, false), synthetic(None), None);
    let ev = collect(&w.events);
    w.handle.join().unwrap();
    let warned = ev
        .iter()
        .any(|e| matches!(e, Event::Warning(m) if m.contains("checkpoint at step 5 not saved")));
    assert!(warned, "no warning for the failed checkpoint: {ev:?}");
    assert!(
        matches!(ev.last(), Some(Event::Finished { step: 10, .. })),
        "the run did not finish: {:?}",
        ev.last()
    );
    assert!(!dir.join("ckpt-00000005").exists());
    assert!(dir.join("ckpt-00000010/state.ron").exists());
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".tmp") && !n.starts_with(".ckpt-00000005"))
        .collect();
    assert!(leftovers.is_empty(), "partial folders left: {leftovers:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
