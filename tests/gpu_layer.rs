//! The GPU layer itself: adapter choice and its errors, validation errors reaching the caller,
//! readback, timing, the pipeline cache.

#[path = "common/mod.rs"]
mod common;

use common::*;
use inrgan::gpu::{GpuBuffer, GpuContext, GpuError, GpuOptions, Kernel, Recorder, Shader};

#[test]
fn no_backend_gives_an_error_that_says_what_to_install() {
    let opts = GpuOptions {
        backends: Some(wgpu::Backends::empty()),
        adapter_name: None,
    };
    let Err(err) = GpuContext::with_options(&opts) else {
        panic!("no backends must give no adapter")
    };
    assert!(matches!(err, GpuError::NoAdapter { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("mesa-vulkan-drivers"), "{msg}");
}

#[test]
fn unknown_adapter_name_lists_the_available_ones() {
    let opts = GpuOptions {
        backends: None,
        adapter_name: Some("no-such-adapter-xyz".into()),
    };
    let Err(err) = GpuContext::with_options(&opts) else {
        panic!("an unknown name must not match")
    };
    let msg = err.to_string();
    assert!(msg.contains("no-such-adapter-xyz"), "{msg}");
    assert!(msg.contains(&ctx().summary().name), "{msg}");
}

#[test]
fn adapter_name_selects_the_adapter() {
    let name = ctx().summary().name.clone();
    let word = name.split_whitespace().next().unwrap_or(&name).to_string();
    let opts = GpuOptions {
        backends: None,
        adapter_name: Some(word.to_uppercase()),
    };
    let c = GpuContext::with_options(&opts).expect("case-insensitive match");
    assert!(
        c.summary()
            .name
            .to_lowercase()
            .contains(&word.to_lowercase())
    );
}

#[test]
fn device_has_the_adapters_limits() {
    let c = ctx();
    let a = c.adapter.limits();
    let d = c.limits();
    assert_eq!(
        a.max_storage_buffers_per_shader_stage,
        d.max_storage_buffers_per_shader_stage
    );
    assert_eq!(
        a.max_compute_workgroup_storage_size,
        d.max_compute_workgroup_storage_size
    );
    assert!(
        d.max_storage_buffers_per_shader_stage > 8,
        "more than wgpu's default 8"
    );
}

#[test]
fn a_validation_error_comes_back_as_an_error() {
    // One buffer bound both read-only and read-write in one dispatch: wgpu rejects it.
    let b = zeros(64);
    let mut rec = Recorder::new(ctx(), "conflict");
    #[repr(C)]
    #[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
    struct P([u32; 8]);
    let mut p = P([0; 8]);
    p.0[0] = 4; // n
    let res = rec
        .dispatch(
            Kernel::new(Shader::Reduce, "axpby"),
            &p,
            &[Some(b.raw()), Some(b.raw())],
            [1, 1, 1],
        )
        .and_then(|_| rec.submit());
    let err = res.expect_err("aliasing a read-only and a read-write binding must fail");
    assert!(matches!(err, GpuError::Validation { .. }), "{err}");
    // The device is still usable afterwards.
    let ok = up(&[1.0, 2.0]);
    assert_eq!(read(&ok), vec![1.0, 2.0]);
}

#[test]
fn too_many_workgroups_is_a_shape_error() {
    let mut rec = Recorder::new(ctx(), "big");
    let b = zeros(4);
    let err = rec
        .dispatch(
            Kernel::new(Shader::Reduce, "axpby"),
            &[0u32; 8],
            &[Some(b.raw()), Some(b.raw())],
            [1 << 20, 1, 1],
        )
        .expect_err("over the per-dimension limit");
    assert!(matches!(err, GpuError::Shape(_)), "{err}");
}

#[test]
fn readback_round_trips_typed_buffers() {
    let v: Vec<u32> = (0..1001).map(|i| i * 7 + 3).collect();
    let b = GpuBuffer::from_slice(ctx(), &v, "u32").unwrap();
    assert_eq!(b.read(ctx()).unwrap(), v);
    let e = GpuBuffer::<f32>::zeros(ctx(), 0, "empty").unwrap();
    assert!(e.read(ctx()).unwrap().is_empty());
    let w = GpuBuffer::<f32>::zeros(ctx(), 3, "w").unwrap();
    w.write(ctx(), &[1.0, 2.0]).unwrap();
    assert_eq!(w.read(ctx()).unwrap(), vec![1.0, 2.0, 0.0]);
    assert!(w.write(ctx(), &[0.0; 4]).is_err());
}

#[test]
fn timed_submit_measures_work() {
    let n = 1 << 16;
    let x = up(&vec![1.0; n]);
    let y = zeros(n);
    let mut rec = Recorder::new(ctx(), "timed");
    for _ in 0..4 {
        inrgan::kernels::reduce::axpby(&mut rec, 1.0, &x, 1.0, &y, n).unwrap();
    }
    let t = rec.submit_timed().unwrap();
    assert!(t.as_nanos() > 0);
    assert!(t.as_secs_f64() < 10.0);
    assert_eq!(read(&y)[n - 1], 4.0);
}

#[test]
fn pipelines_are_cached() {
    let a = ctx().pipeline(Shader::Reduce, "axpby", &[]).unwrap();
    let b = ctx().pipeline(Shader::Reduce, "axpby", &[]).unwrap();
    assert!(std::sync::Arc::ptr_eq(&a, &b));
    let Err(err) = ctx().pipeline(Shader::Reduce, "no_such_entry", &[]) else {
        panic!("an unknown entry point must fail")
    };
    assert!(err.to_string().contains("no_such_entry"), "{err}");
}
