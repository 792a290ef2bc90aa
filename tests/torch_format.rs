//! The PyTorch tools (tools/peer, tools/torch) in CI, where torch itself is too large to install:
//! their Python files compile, and a run folder written by tools/torch/train.py's format
//! (tests/fixtures/torch/, made by tools/torch/make_fixture.py) loads as our weights and renders
//! on the CPU backend as the peer rendered it.

use std::path::{Path, PathBuf};
use std::process::Command;

use inrgan::backend::cpu::CpuBackend;
use inrgan::model::config::ModelConfig;
use inrgan::model::params::ParamSet;
use inrgan::model::weights;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture() -> PathBuf {
    root().join("tests/fixtures/torch")
}

fn python_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "py"))
        .collect();
    v.sort();
    v
}

#[test]
fn python_tools_compile() {
    let has_python = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_python {
        println!("note: no python3 on this machine; the Python tools were not compiled");
        return;
    }
    let files: Vec<PathBuf> = ["tools/torch", "tools/peer"]
        .iter()
        .flat_map(|d| python_files(&root().join(d)))
        .collect();
    assert!(
        files.iter().any(|p| p.ends_with("tools/torch/train.py")),
        "tools/torch/train.py is missing"
    );
    let tmp = std::env::temp_dir().join(format!("inrgan-pycompile-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    for (i, f) in files.iter().enumerate() {
        // Compile to a temporary file: no __pycache__ in the repository.
        let out = Command::new("python3")
            .args([
                "-c",
                "import py_compile, sys; py_compile.compile(sys.argv[1], cfile=sys.argv[2], doraise=True)",
            ])
            .arg(f)
            .arg(tmp.join(format!("{i}.pyc")))
            .output()
            .expect("running python3");
        assert!(
            out.status.success(),
            "{} does not compile:\n{}",
            f.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let _ = std::fs::remove_dir_all(&tmp);
}

#[test]
fn torch_run_folder_loads() {
    let dir = fixture();
    let path = dir.join("latest.safetensors");
    let m = inrgan::engine::load_model(Some(&path), "builtin").expect("latest.safetensors loads");
    let cfg = &m.generator.cfg;
    assert_eq!(cfg.name, "tiny");
    assert_eq!(*cfg, ModelConfig::preset("tiny").unwrap());
    // The config beside it, as `weights::save_as` writes it.
    let ron = std::fs::read_to_string(dir.join("latest.ron")).unwrap();
    assert_eq!(ModelConfig::from_ron(&ron).unwrap(), *cfg);
    assert_eq!(ron, cfg.to_ron(), "latest.ron is ModelConfig::to_ron");
    assert_eq!(weights::read_config(&path).unwrap(), *cfg);
    // The facts of `inrgan ship`.
    let fact = |k: &str| {
        m.facts
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no fact {k:?} in {:?}", m.facts))
    };
    assert_eq!(fact("data"), "emoji:smileys");
    let images: u64 = fact("images trained").parse().unwrap();
    let steps: u64 = fact("steps").parse().unwrap();
    assert!(images > 0 && steps > 0);

    // metrics.jsonl: one object a step, our keys, steps counting up to the weights' step.
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).unwrap();
    let mut last = (0u64, 0u64);
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let o = v.as_object().expect("an object a line");
        if o.contains_key("g_loss") {
            for k in [
                "step",
                "images",
                "g_loss",
                "d_loss",
                "d_real",
                "d_fake",
                "r1",
                "img_per_s",
                "aug_p",
            ] {
                assert!(o.contains_key(k), "{k} missing in {line}");
            }
            for k in ["g_loss", "d_loss", "img_per_s"] {
                assert!(o[k].as_f64().is_some_and(f64::is_finite), "{k} in {line}");
            }
        }
        let step = o["step"].as_u64().unwrap();
        assert!(step > last.0 || (step == last.0 && !o.contains_key("g_loss")));
        last = (step, o["images"].as_u64().unwrap());
    }
    assert_eq!(
        last,
        (steps, images),
        "the last metrics line is the weights' step"
    );
    assert!(dir.join(format!("samples-{steps:08}.png")).exists());
}

#[test]
fn torch_run_folder_renders_as_the_peer() {
    let dir = fixture();
    let m = inrgan::engine::load_model(Some(&dir.join("latest.safetensors")), "builtin").unwrap();
    let g = &m.generator;
    let mut be = CpuBackend::new().unwrap();
    let p = ParamSet::from_host(&mut be, g.specs(), &m.values).unwrap();
    let text = std::fs::read_to_string(dir.join("expected.json")).unwrap();
    let exp: serde_json::Value = serde_json::from_str(&text).unwrap();
    let renders = exp["renders"].as_array().unwrap();
    assert!(!renders.is_empty());
    for r in renders {
        let win: Vec<f64> = r["window"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let (width, height) = (
            r["width"].as_u64().unwrap() as usize,
            r["height"].as_u64().unwrap() as usize,
        );
        let z = g.latent(r["seed"].as_u64().unwrap());
        let psi = r["psi"].as_f64().unwrap() as f32;
        let w = g.map_truncated(&mut be, &p, &z, 1, psi).unwrap();
        // Written as the command line's x0,y0,x1,y1.
        let win = inrgan::model::Window::new(win[0], win[1], win[2], win[3]);
        let rgb = g.render(&mut be, &p, &w, win, width, height).unwrap();
        let want: Vec<f64> = r["rgb"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(rgb.len(), want.len());
        let worst = rgb
            .iter()
            .zip(&want)
            .map(|(a, b)| (*a as f64 - b).abs())
            .fold(0.0, f64::max);
        assert!(
            worst <= 1e-3,
            "window {win:?} {width}x{height}: max |ours - peer| = {worst:.2e}"
        );
    }
}
