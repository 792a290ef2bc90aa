//! Every WGSL file in `shaders/` parses and validates with naga. Needs no GPU.

use inrgan::gpu::Shader;
use inrgan::gpu::shaders::{entry_points, validate_wgsl};

#[test]
fn every_shader_file_validates() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("shaders/ exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    on_disk.sort();
    assert!(!on_disk.is_empty());
    // Every file on disk is validated from disk (after its prelude from shaders/include/, as
    // `Shader::source` composes it), and is what the binary compiled.
    for name in &on_disk {
        let shader = Shader::ALL
            .iter()
            .find(|s| s.file_name() == name)
            .unwrap_or_else(|| panic!("{name} is not in Shader::ALL"));
        let mut src = match shader.prelude() {
            Some(p) => std::fs::read_to_string(dir.join("include").join(p)).expect("readable"),
            None => String::new(),
        };
        src += &std::fs::read_to_string(dir.join(name)).expect("readable");
        if let Err(e) = validate_wgsl(name, &src) {
            panic!("{e}");
        }
        assert_eq!(src, shader.source(), "{name}: the binary is out of date");
    }
    // Every prelude is used.
    for e in std::fs::read_dir(dir.join("include")).expect("shaders/include/ exists") {
        let n = e.expect("entry").file_name().to_string_lossy().into_owned();
        assert!(
            Shader::ALL.iter().any(|s| s.prelude() == Some(n.as_str())),
            "shaders/include/{n} is no shader's prelude"
        );
    }
    let mut compiled: Vec<String> = Shader::ALL
        .iter()
        .map(|s| s.file_name().to_string())
        .collect();
    compiled.sort();
    assert_eq!(on_disk, compiled, "shaders/ and Shader::ALL disagree");
}

#[test]
fn every_compiled_shader_has_compute_entry_points() {
    for &s in Shader::ALL {
        let eps = entry_points(s).unwrap_or_else(|e| panic!("{e}"));
        assert!(!eps.is_empty(), "{} has no entry point", s.file_name());
    }
}

#[test]
fn a_broken_shader_is_reported_with_its_line() {
    let err = validate_wgsl("bad.wgsl", "fn f() -> f32 { let x: u32 = 1u; return x; }")
        .expect_err("must fail");
    assert!(err.contains("bad.wgsl"), "{err}");
}

/// Every width class of the fused kernel (the source with its MAXW line replaced) validates, and
/// each really replaces the line.
#[test]
fn every_fused_width_class_validates() {
    for (w, k) in inrgan::kernels::fused::WIDTH_CLASSES {
        let src = k
            .shader
            .patched_source(k.patch)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            src.contains(&format!("const MAXW: u32 = {w}u;")),
            "class {w}"
        );
        validate_wgsl(&format!("fused.wgsl, {w} wide"), &src).unwrap_or_else(|e| panic!("{e}"));
    }
    assert!(
        Shader::Fused
            .patched_source(Some(("no such line", "x")))
            .is_err()
    );
}
