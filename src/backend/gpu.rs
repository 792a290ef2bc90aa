//! The GPU backend: each operation records the kernel of the same name on a [`Recorder`];
//! recorded work is submitted by [`Memory::flush`], by a readback, or every
//! [`MAX_PENDING`] operations so that one submission stays short (another user of the device,
//! such as the viewport, still gets its turn).

use super::{
    ActOps, AdamOps, AugmentOps, BResult, Backend, ConvOps, CoordsOps, FmmOps, FusedOps, ImageOps,
    LinearOps, MbstdOps, Memory, ModulateOps, ReduceOps, ResampleOps,
};
use crate::gpu::{GpuBuffer, GpuContext, GpuError, GpuResult, Recorder};
use crate::kernels as k;
use crate::reference::act::ActShape;
use crate::reference::adam::AdamConfig;
use crate::reference::augment::AugShape;
use crate::reference::conv::ConvShape;
use crate::reference::coords::CoordsShape;
use crate::reference::fmm::FmmShape;
use crate::reference::linear::Gemm;
use crate::reference::mbstd::MbstdShape;
use crate::reference::modulate::ModulateShape;
use crate::reference::resample::{ConcatShape, SliceShape, Taps};

/// Operations recorded before an automatic submit.
pub const MAX_PENDING: usize = 256;

pub struct GpuBackend<'a> {
    ctx: &'a GpuContext,
    rec: Recorder<'a>,
    fused: bool,
    /// `--profile`: every operation is submitted and waited for alone, and its wall time
    /// summed per kernel (printed to stderr when the backend is dropped). A developer's tool:
    /// it serialises everything.
    profile: Option<Profile>,
    /// Appended to the next profiled operation's kernel name (its shape).
    detail: String,
    /// Recording costs so far.
    recorded: super::Recording,
}

/// Wall time per `shader::entry`: (dispatches, total).
#[derive(Default)]
struct Profile {
    kernels: std::collections::BTreeMap<String, (usize, std::time::Duration)>,
}

impl Drop for GpuBackend<'_> {
    fn drop(&mut self) {
        let Some(p) = &self.profile else { return };
        let total: std::time::Duration = p.kernels.values().map(|v| v.1).sum();
        let mut rows: Vec<_> = p.kernels.iter().collect();
        rows.sort_by_key(|r| std::cmp::Reverse(r.1.1));
        eprintln!("profile: {:.1} ms in kernels", total.as_secs_f64() * 1e3);
        for (name, (n, t)) in rows {
            eprintln!(
                "  {:>10.2} ms {:>5.1}% {:>6} x  {name}",
                t.as_secs_f64() * 1e3,
                100.0 * t.as_secs_f64() / total.as_secs_f64().max(1e-12),
                n
            );
        }
    }
}

impl<'a> GpuBackend<'a> {
    /// Renders (and training's D-phase G forward) go through the fused block kernel (2.8-3.8x
    /// the unfused kernels' frame on lavapipe, BENCHMARKS.md) unless the program runs with
    /// `--no-fused` (or [`GpuBackend::set_fused`]); the G phase runs the unfused kernels, whose
    /// tape the backward reads.
    pub fn new(ctx: &'a GpuContext) -> Self {
        let switches = super::Switches::current();
        Self {
            ctx,
            rec: Recorder::new(ctx, "backend"),
            fused: switches.fused,
            profile: switches.profile.then(Profile::default),
            detail: String::new(),
            recorded: Default::default(),
        }
    }

    /// Uses (or not) the fused block kernel for renders.
    pub fn set_fused(&mut self, on: bool) {
        self.fused = on;
    }

    pub fn ctx(&self) -> &'a GpuContext {
        self.ctx
    }

    /// Names a convolution's shape for the profile.
    fn conv_detail(&mut self, s: &ConvShape) {
        if self.profile.is_some() {
            self.detail = format!(
                " N{} {}->{} {}x{} k{} s{}",
                s.batch, s.c_in, s.c_out, s.height, s.width, s.k, s.stride
            );
        }
    }

    /// Runs `f` on the recorder, then submits if enough work is pending.
    fn op(&mut self, f: impl FnOnce(&mut Recorder<'a>) -> GpuResult<()>) -> BResult<()> {
        if self.profile.is_some() {
            // Earlier work first, so that only this operation is timed.
            self.flush()?;
            self.ctx.wait()?;
            f(&mut self.rec)?;
            self.recorded.dispatches += self.rec.len() as u64;
            let detail = std::mem::take(&mut self.detail);
            let names: Vec<String> = self.rec.labels().map(|l| format!("{l}{detail}")).collect();
            let t = std::time::Instant::now();
            self.flush()?;
            self.ctx.wait()?;
            let dt = t.elapsed() / names.len().max(1) as u32;
            if let Some(p) = &mut self.profile {
                for n in names {
                    let e = p.kernels.entry(n).or_default();
                    e.0 += 1;
                    e.1 += dt;
                }
            }
            return Ok(());
        }
        let (before, t) = (self.rec.len(), std::time::Instant::now());
        f(&mut self.rec)?;
        self.recorded.host += t.elapsed();
        self.recorded.dispatches += (self.rec.len() - before) as u64;
        if self.rec.len() >= MAX_PENDING {
            self.flush()?;
        }
        Ok(())
    }
}

impl<'a> Memory for GpuBackend<'a> {
    type Buf = GpuBuffer<f32>;

    fn name(&self) -> String {
        format!("gpu: {}", self.ctx.summary())
    }

    fn zeros(&mut self, n: usize, label: &str) -> BResult<Self::Buf> {
        let t = std::time::Instant::now();
        let b = GpuBuffer::zeros(self.ctx, n, label);
        self.recorded.host += t.elapsed();
        self.recorded.buffers += 1;
        Ok(b?)
    }

    fn upload(&mut self, data: &[f32], label: &str) -> BResult<Self::Buf> {
        let t = std::time::Instant::now();
        let b = GpuBuffer::from_slice(self.ctx, data, label);
        self.recorded.host += t.elapsed();
        self.recorded.buffers += 1;
        Ok(b?)
    }

    fn write(&mut self, buf: &Self::Buf, data: &[f32]) -> BResult<()> {
        // Queue writes run before the next submit: submit what is pending first to keep order.
        self.flush()?;
        Ok(buf.write(self.ctx, data)?)
    }

    fn read(&mut self, buf: &Self::Buf) -> BResult<Vec<f32>> {
        self.flush()?;
        Ok(buf.read(self.ctx)?)
    }

    fn len(&self, buf: &Self::Buf) -> usize {
        buf.len()
    }

    fn recording(&self) -> Option<super::Recording> {
        Some(self.recorded)
    }

    fn flush(&mut self) -> BResult<()> {
        let rec = std::mem::replace(&mut self.rec, Recorder::new(self.ctx, "backend"));
        Ok(rec.submit()?)
    }
}

impl<'a> LinearOps for GpuBackend<'a> {
    fn gemm(
        &mut self,
        g: &Gemm,
        a: &Self::Buf,
        b: &Self::Buf,
        bias: Option<&Self::Buf>,
        c: &Self::Buf,
    ) -> BResult<()> {
        if self.profile.is_some() {
            self.detail = format!(" {}x{}x{} batch {}", g.m, g.n, g.k, g.batch);
        }
        self.op(|r| k::linear::gemm(r, g, a, b, bias, c))
    }
}

impl<'a> FmmOps for GpuBackend<'a> {
    fn fmm_forward(
        &mut self,
        s: &FmmShape,
        ws: &Self::Buf,
        styles: &Self::Buf,
        w_out: &Self::Buf,
        norms: &Self::Buf,
    ) -> BResult<()> {
        self.op(|r| k::fmm::fmm_forward(r, s, ws, styles, w_out, norms))
    }

    fn fmm_backward(
        &mut self,
        s: &FmmShape,
        ws: &Self::Buf,
        styles: &Self::Buf,
        norms: &Self::Buf,
        dw: &Self::Buf,
        scratch: &Self::Buf,
        dws: &Self::Buf,
        dstyles: &Self::Buf,
        accumulate_dws: bool,
    ) -> BResult<()> {
        self.op(|r| {
            k::fmm::fmm_backward(
                r,
                s,
                ws,
                styles,
                norms,
                dw,
                scratch,
                dws,
                dstyles,
                accumulate_dws,
            )
        })
    }
}

impl<'a> ModulateOps for GpuBackend<'a> {
    fn style_modulate_forward(
        &mut self,
        m: &ModulateShape,
        ws: &Self::Buf,
        s: &Self::Buf,
        w: &Self::Buf,
    ) -> BResult<()> {
        self.op(|r| k::modulate::style_modulate_forward(r, m, ws, s, w))
    }

    fn style_modulate_backward(
        &mut self,
        m: &ModulateShape,
        ws: &Self::Buf,
        s: &Self::Buf,
        dw: &Self::Buf,
        dws: &Self::Buf,
        ds: &Self::Buf,
        accumulate_dws: bool,
    ) -> BResult<()> {
        self.op(|r| k::modulate::style_modulate_backward(r, m, ws, s, dw, dws, ds, accumulate_dws))
    }
}

impl<'a> CoordsOps for GpuBackend<'a> {
    fn coords_forward(
        &mut self,
        s: &CoordsShape,
        xs: &Self::Buf,
        ys: &Self::Buf,
        freqs: &Self::Buf,
        emb: &Self::Buf,
    ) -> BResult<()> {
        self.op(|r| k::coords::coords_forward(r, s, xs, ys, freqs, emb))
    }

    fn coords_backward(
        &mut self,
        s: &CoordsShape,
        xs: &Self::Buf,
        ys: &Self::Buf,
        freqs: &Self::Buf,
        demb: &Self::Buf,
        dfreqs: &Self::Buf,
        accumulate: bool,
    ) -> BResult<()> {
        self.op(|r| k::coords::coords_backward(r, s, xs, ys, freqs, demb, dfreqs, accumulate))
    }
}

impl<'a> ActOps for GpuBackend<'a> {
    fn act_forward(
        &mut self,
        s: &ActShape,
        x: &Self::Buf,
        bias: Option<&Self::Buf>,
        y: &Self::Buf,
    ) -> BResult<()> {
        self.op(|r| k::act::act_forward(r, s, x, bias, y))
    }

    fn act_backward(
        &mut self,
        s: &ActShape,
        y: &Self::Buf,
        dy: &Self::Buf,
        dx: &Self::Buf,
        accumulate: bool,
    ) -> BResult<()> {
        self.op(|r| k::act::act_backward(r, s, y, dy, dx, accumulate))
    }
}

impl<'a> ResampleOps for GpuBackend<'a> {
    fn upsample2x_forward(
        &mut self,
        x: &Self::Buf,
        y: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
    ) -> BResult<()> {
        self.op(|r| k::resample::upsample2x_forward(r, x, y, planes, h, w))
    }

    fn upsample2x_backward(
        &mut self,
        dy: &Self::Buf,
        dx: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        accumulate: bool,
    ) -> BResult<()> {
        self.op(|r| k::resample::upsample2x_backward(r, dy, dx, planes, h, w, accumulate))
    }

    fn gather(
        &mut self,
        x: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &[u32],
        cols: &[u32],
        y: &Self::Buf,
    ) -> BResult<()> {
        let t = k::resample::GatherTables::new(self.ctx, rows, cols)?;
        self.op(|r| k::resample::gather(r, x, planes, h, w, &t, y))
    }

    fn gather_bilinear(
        &mut self,
        x: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &Taps,
        cols: &Taps,
        y: &Self::Buf,
    ) -> BResult<()> {
        let t = k::resample::BilinearTables::new(self.ctx, h, w, rows, cols)?;
        self.op(|r| k::resample::gather_bilinear(r, x, planes, &t, y))
    }

    fn gather_bilinear_backward(
        &mut self,
        dy: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &Taps,
        cols: &Taps,
        dx: &Self::Buf,
        accumulate: bool,
    ) -> BResult<()> {
        let t = k::resample::BilinearInverse::new(self.ctx, h, w, rows, cols)?;
        self.op(|r| k::resample::gather_bilinear_backward(r, dy, planes, &t, dx, accumulate))
    }

    fn concat_channels(
        &mut self,
        s: &ConcatShape,
        x1: &Self::Buf,
        x2: &Self::Buf,
        y: &Self::Buf,
    ) -> BResult<()> {
        self.op(|r| k::resample::concat_channels(r, s, x1, x2, y))
    }

    fn slice_channels(
        &mut self,
        s: &SliceShape,
        x: &Self::Buf,
        y: &Self::Buf,
        accumulate: bool,
    ) -> BResult<()> {
        self.op(|r| k::resample::slice_channels(r, s, x, y, accumulate))
    }
}

impl<'a> FusedOps for GpuBackend<'a> {
    fn has_fused(&self) -> bool {
        self.fused
    }

    fn fused_fits(&self, s: &crate::reference::fused::FusedShape) -> bool {
        // Lavapipe cuts loops short past its limit: such blocks take the unfused kernels.
        self.fused
            && s.fits()
            && self
                .ctx
                .loop_limit()
                .is_none_or(|l| s.loop_iterations() <= l)
    }

    fn fused_level_forward(
        &mut self,
        s: &crate::reference::fused::FusedShape,
        input: crate::reference::fused::FusedInput<'_, Self::Buf>,
        w: &Self::Buf,
        bias: &Self::Buf,
        rgbw: &Self::Buf,
        rgbb: &Self::Buf,
        img: &Self::Buf,
        out: Option<&Self::Buf>,
    ) -> BResult<()> {
        self.op(|r| k::fused::level_forward(r, s, input, w, bias, rgbw, rgbb, img, out))
    }
}

impl<'a> ConvOps for GpuBackend<'a> {
    fn conv2d_forward(
        &mut self,
        s: &ConvShape,
        x: &Self::Buf,
        w: &Self::Buf,
        b: Option<&Self::Buf>,
        y: &Self::Buf,
    ) -> BResult<()> {
        self.conv_detail(s);
        self.op(|r| k::conv::conv2d_forward(r, s, x, w, b, y))
    }

    fn conv2d_backward_input(
        &mut self,
        s: &ConvShape,
        dy: &Self::Buf,
        w: &Self::Buf,
        dx: &Self::Buf,
        accumulate: bool,
    ) -> BResult<()> {
        self.conv_detail(s);
        self.op(|r| k::conv::conv2d_backward_input(r, s, dy, w, dx, accumulate))
    }

    fn conv2d_backward_weight(
        &mut self,
        s: &ConvShape,
        dy: &Self::Buf,
        x: &Self::Buf,
        dw: &Self::Buf,
        accumulate: bool,
    ) -> BResult<()> {
        self.conv_detail(s);
        self.op(|r| k::conv::conv2d_backward_weight(r, s, dy, x, dw, accumulate))
    }

    fn blur_down2x_forward(
        &mut self,
        x: &Self::Buf,
        y: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
    ) -> BResult<()> {
        self.op(|r| k::conv::blur_down2x_forward(r, x, y, planes, h, w))
    }

    fn blur_down2x_backward(
        &mut self,
        dy: &Self::Buf,
        dx: &Self::Buf,
        planes: usize,
        h: usize,
        w: usize,
        accumulate: bool,
    ) -> BResult<()> {
        self.op(|r| k::conv::blur_down2x_backward(r, dy, dx, planes, h, w, accumulate))
    }
}

impl<'a> MbstdOps for GpuBackend<'a> {
    fn mbstd_forward(
        &mut self,
        s: &MbstdShape,
        x: &Self::Buf,
        stat: &Self::Buf,
        y: &Self::Buf,
    ) -> BResult<()> {
        self.op(|r| k::mbstd::mbstd_forward(r, s, x, stat, y))
    }

    fn mbstd_backward(
        &mut self,
        s: &MbstdShape,
        x: &Self::Buf,
        dy: &Self::Buf,
        dstat: &Self::Buf,
        dx: &Self::Buf,
    ) -> BResult<()> {
        self.op(|r| k::mbstd::mbstd_backward(r, s, x, dy, dstat, dx))
    }

    fn mbstd_jvp(
        &mut self,
        s: &MbstdShape,
        x: &Self::Buf,
        xdot: &Self::Buf,
        stat: &Self::Buf,
        ydot: &Self::Buf,
    ) -> BResult<()> {
        self.op(|r| k::mbstd::mbstd_jvp(r, s, x, xdot, stat, ydot))
    }

    fn mbstd_backward_jvp(
        &mut self,
        s: &MbstdShape,
        x: &Self::Buf,
        xdot: &Self::Buf,
        dy: &Self::Buf,
        dstat: &Self::Buf,
        dxdot: &Self::Buf,
    ) -> BResult<()> {
        self.op(|r| k::mbstd::mbstd_backward_jvp(r, s, x, xdot, dy, dstat, dxdot))
    }
}

impl<'a> AugmentOps for GpuBackend<'a> {
    fn aug_color(
        &mut self,
        s: &AugShape,
        x: &Self::Buf,
        prm: &Self::Buf,
        y: &Self::Buf,
        brightness: bool,
    ) -> BResult<()> {
        self.op(|r| k::augment::color(r, s, x, prm, y, brightness))
    }

    fn aug_blend(
        &mut self,
        s: &AugShape,
        x: &Self::Buf,
        prm: &Self::Buf,
        mu: &Self::Buf,
        y: &Self::Buf,
    ) -> BResult<()> {
        self.op(|r| k::augment::blend(r, s, x, prm, mu, y))
    }

    fn aug_shift_forward(
        &mut self,
        s: &AugShape,
        x: &Self::Buf,
        prm: &Self::Buf,
        y: &Self::Buf,
    ) -> BResult<()> {
        self.op(|r| k::augment::shift_forward(r, s, x, prm, y))
    }

    fn aug_shift_backward(
        &mut self,
        s: &AugShape,
        dy: &Self::Buf,
        prm: &Self::Buf,
        dx: &Self::Buf,
    ) -> BResult<()> {
        self.op(|r| k::augment::shift_backward(r, s, dy, prm, dx))
    }
}

impl<'a> ReduceOps for GpuBackend<'a> {
    fn sum_axes(
        &mut self,
        x: &Self::Buf,
        y: &Self::Buf,
        outer: usize,
        mid: usize,
        inner: usize,
        scale: f32,
        accumulate: bool,
    ) -> BResult<()> {
        self.op(|r| k::reduce::sum_axes(r, x, y, outer, mid, inner, scale, accumulate))
    }

    fn row_norm(&mut self, x: &Self::Buf, y: &Self::Buf, rows: usize, cols: usize) -> BResult<()> {
        self.op(|r| k::reduce::row_norm(r, x, y, rows, cols))
    }

    fn softplus_forward(
        &mut self,
        x: &Self::Buf,
        y: &Self::Buf,
        n: usize,
        sign: f32,
    ) -> BResult<()> {
        self.op(|r| k::reduce::softplus_forward(r, x, y, n, sign))
    }

    fn softplus_backward(
        &mut self,
        x: &Self::Buf,
        dy: &Self::Buf,
        n: usize,
        sign: f32,
    ) -> BResult<()> {
        self.op(|r| k::reduce::softplus_backward(r, x, dy, n, sign))
    }

    fn axpby(&mut self, a: f32, x: &Self::Buf, b: f32, y: &Self::Buf, n: usize) -> BResult<()> {
        self.op(|r| k::reduce::axpby(r, a, x, b, y, n))
    }

    fn count_nonfinite(&mut self, x: &Self::Buf, n: usize) -> BResult<u32> {
        let count = GpuBuffer::<u32>::zeros(self.ctx, 1, "nonfinite count")?;
        k::reduce::count_nonfinite(&mut self.rec, x, n, &count)?;
        self.flush()?;
        let v = count.read(self.ctx)?;
        Ok(v.first()
            .copied()
            .ok_or_else(|| GpuError::Map("empty count readback".into()))?)
    }
}

impl<'a> AdamOps for GpuBackend<'a> {
    fn adam_step(
        &mut self,
        cfg: &AdamConfig,
        t: u64,
        p: &Self::Buf,
        g: &Self::Buf,
        m: &Self::Buf,
        v: &Self::Buf,
        n: usize,
    ) -> BResult<()> {
        self.op(|r| k::adam::adam_step(r, cfg, t, p, g, m, v, n))
    }

    fn ema_update(&mut self, p: &Self::Buf, e: &Self::Buf, beta: f64, n: usize) -> BResult<()> {
        self.op(|r| k::adam::ema_update(r, p, e, beta, n))
    }
}

impl<'a> ImageOps for GpuBackend<'a> {
    fn to_rgba8(&mut self, x: &Self::Buf, batch: usize, pixels: usize) -> BResult<Vec<u32>> {
        let out = GpuBuffer::<u32>::zeros(self.ctx, batch * pixels, "rgba8")?;
        k::image::to_rgba8(&mut self.rec, x, &out, batch, pixels)?;
        self.flush()?;
        Ok(out.read(self.ctx)?)
    }
}

impl<'a> Backend for GpuBackend<'a> {}
