//! `shaders/adam.wgsl`: the Adam step (PyTorch semantics) and the weight EMA.

use bytemuck::{Pod, Zeroable};

use super::{WG, need, u32_of};
use crate::gpu::{GpuBuffer, GpuError, GpuResult, Kernel, Recorder, Shader, groups_1d};
pub use crate::reference::adam::AdamConfig;

#[repr(C)]
#[derive(Clone, Copy, Pod, Zeroable, Debug, Default)]
struct Params {
    n: u32,
    nan_to_num: u32,
    _pad0: [u32; 2],
    step_size: f32,
    bc2_sqrt: f32,
    eps: f32,
    grad_scale: f32,
    beta1: f32,
    one_minus_beta1: f32,
    beta2: f32,
    one_minus_beta2: f32,
    ema_beta: f32,
    one_minus_ema_beta: f32,
    _pad1: [f32; 2],
}

/// One Adam step number `t >= 1` on `n` values: updates `param`, `m` and `v` in place from `grad`.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    rec: &mut Recorder,
    cfg: &AdamConfig,
    t: u64,
    param: &GpuBuffer<f32>,
    grad: &GpuBuffer<f32>,
    m: &GpuBuffer<f32>,
    v: &GpuBuffer<f32>,
    n: usize,
) -> GpuResult<()> {
    if t == 0 {
        return Err(GpuError::Shape(
            "adam_step: the step count t starts at 1".into(),
        ));
    }
    if n == 0 {
        return Ok(());
    }
    need("adam_step param", param, n)?;
    need("adam_step grad", grad, n)?;
    need("adam_step m", m, n)?;
    need("adam_step v", v, n)?;
    let (step_size, bc2_sqrt) = cfg.corrections(t);
    let p = Params {
        n: u32_of("adam values", n)?,
        nan_to_num: cfg.nan_to_num as u32,
        step_size: step_size as f32,
        bc2_sqrt: bc2_sqrt as f32,
        eps: cfg.eps as f32,
        grad_scale: cfg.grad_scale as f32,
        beta1: cfg.beta1 as f32,
        one_minus_beta1: (1.0 - cfg.beta1) as f32,
        beta2: cfg.beta2 as f32,
        one_minus_beta2: (1.0 - cfg.beta2) as f32,
        ..Default::default()
    };
    rec.dispatch(
        Kernel::new(Shader::Adam, "adam_step"),
        &p,
        &[
            Some(param.raw()),
            Some(grad.raw()),
            Some(m.raw()),
            Some(v.raw()),
        ],
        groups_1d(n, WG),
    )
}

/// `ema = lerp(param, ema, beta) = param + beta * (ema - param)` on `n` values (torch.lerp's form).
pub fn ema_update(
    rec: &mut Recorder,
    param: &GpuBuffer<f32>,
    ema: &GpuBuffer<f32>,
    beta: f64,
    n: usize,
) -> GpuResult<()> {
    if n == 0 {
        return Ok(());
    }
    need("ema_update param", param, n)?;
    need("ema_update ema", ema, n)?;
    let p = Params {
        n: u32_of("ema values", n)?,
        ema_beta: beta as f32,
        one_minus_ema_beta: (1.0 - beta) as f32,
        ..Default::default()
    };
    rec.dispatch(
        Kernel::new(Shader::Adam, "ema_update"),
        &p,
        &[Some(param.raw()), Some(ema.raw())],
        groups_1d(n, WG),
    )
}
