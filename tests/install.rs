//! Installed like a Rust app: a copy of the `inrgan` binary in another folder, run from yet
//! another, opens the same built-in model (same hash) and reads the built-in emoji set, from the
//! bytes embedded in it.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn a_copied_binary_opens_the_embedded_built_in_model_and_emoji() {
    let dir = std::env::temp_dir().join(format!("inrgan-install-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (bin_dir, cwd) = (dir.join("bin"), dir.join("elsewhere"));
    std::fs::create_dir_all(&bin_dir).unwrap();
    std::fs::create_dir_all(&cwd).unwrap();
    let exe = bin_dir.join("inrgan");
    std::fs::copy(env!("CARGO_BIN_EXE_inrgan"), &exe).unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(&exe)
            .args(args)
            .current_dir(&cwd)
            .output()
            .expect("runs");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {text}");
        text
    };
    let info = run(&["info"]);
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/model/emoji.safetensors");
    let hash = inrgan::model::weights::file_hash(&source).unwrap();
    assert!(info.contains("the built-in model (embedded)"), "{info}");
    assert!(info.contains(&hash), "hash {hash} not in {info}");
    let halves = run(&["eval-halves", "--data", "emoji:smileys", "--n", "8"]);
    assert!(halves.contains("8 vs 8"), "{halves}");
    std::fs::remove_dir_all(&dir).ok();
}

/// `render --grid` with an option only a single render honours is refused with a message,
/// not silently ignored, and writes nothing.
#[test]
fn a_grid_with_single_render_options_is_refused() {
    let dir = std::env::temp_dir().join(format!("inrgan-grid-opts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("grid.png");
    let out = Command::new(env!("CARGO_BIN_EXE_inrgan"))
        .args([
            "render", "--grid", "2", "--size", "8", "--levels", "1", "--out",
        ])
        .arg(&png)
        .output()
        .expect("runs");
    let text = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success());
    assert!(text.contains("--levels"), "{text}");
    assert!(!png.exists());
    std::fs::remove_dir_all(&dir).ok();
}
