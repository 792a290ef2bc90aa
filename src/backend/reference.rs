//! The reference backend: the oracle. Every [`Backend`] operation in `f64`, single-threaded, by
//! calling the plain-loop references of [`crate::reference`] with `F = f64`.
//!
//! Values are stored as `f64` ([`RefBuf`]) and converted at [`Memory::upload`] /
//! [`Memory::read`]; [`RefBackend::upload_f64`] and [`RefBackend::read_f64`] move `f64` values
//! in and out unrounded, so that finite-difference tests can run a whole model in `f64` and
//! perturb single values.
//!
//! Arguments are checked exactly as by the GPU kernels' wrappers (the checks are shared with the
//! CPU backend). Workspaces the GPU needs are handled as follows: `fmm_backward`'s `scratch` is
//! left untouched (the reference recomputes what it needs), `norms` is not read (recomputed
//! from `ws` and `styles`), and the mbstd statistics (`stat`, `dstat`) are filled as on the GPU.

use std::cell::{Ref, RefCell, RefMut};

use super::BackendError;
use super::check;
use super::cpu::alloc_zeros;
use super::{
    ActOps, AdamOps, AugmentOps, BResult, Backend, ConvOps, CoordsOps, FmmOps, FusedOps, ImageOps,
    LinearOps, MbstdOps, Memory, ModulateOps, ReduceOps, ResampleOps,
};
use crate::reference as r;
use crate::reference::act::ActShape;
use crate::reference::adam::AdamConfig;
use crate::reference::augment::AugShape;
use crate::reference::conv::{ConvShape, blur_down2x_out};
use crate::reference::coords::CoordsShape;
use crate::reference::fmm::FmmShape;
use crate::reference::fused::{FusedInput, FusedShape};
use crate::reference::linear::{BiasMode, Gemm};
use crate::reference::mbstd::MbstdShape;
use crate::reference::modulate::ModulateShape;
use crate::reference::resample::Taps;
use crate::reference::resample::{ConcatShape, SliceShape};

/// An `f64` buffer of the reference backend (its length never changes).
#[derive(Debug)]
pub struct RefBuf {
    data: RefCell<Vec<f64>>,
    len: usize,
}

impl RefBuf {
    /// Number of values.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the buffer holds no values.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// The single-threaded `f64` oracle backend (see the module doc).
#[derive(Debug, Default)]
pub struct RefBackend;

/// Read access to an input (fails if the same call holds it as an output).
fn rd<'a>(name: &str, b: &'a RefBuf) -> BResult<Ref<'a, Vec<f64>>> {
    b.data.try_borrow().map_err(|_| {
        BackendError::Shape(format!(
            "{name}: this buffer is also an output of the same call"
        ))
    })
}

/// Write access to an output (fails if the same call also passes it as another operand).
fn wr<'a>(name: &str, b: &'a RefBuf) -> BResult<RefMut<'a, Vec<f64>>> {
    b.data.try_borrow_mut().map_err(|_| {
        BackendError::Shape(format!(
            "{name}: this output buffer is also another operand of the same call"
        ))
    })
}

/// Stores `r` into the start of `out`, or adds it with `accumulate`.
fn store(out: &mut [f64], r: &[f64], accumulate: bool) {
    for (o, &v) in out.iter_mut().zip(r) {
        *o = if accumulate { *o + v } else { v };
    }
}

impl RefBackend {
    /// The reference backend.
    pub fn new() -> Self {
        Self
    }

    /// A buffer holding `data` exactly.
    pub fn upload_f64(&mut self, data: &[f64], label: &str) -> BResult<RefBuf> {
        let mut v = alloc_zeros::<f64>(0, label)?;
        v.try_reserve_exact(data.len()).map_err(|_| {
            BackendError::OutOfMemory(format!("host buffer {label} of {} values", data.len()))
        })?;
        v.extend_from_slice(data);
        Ok(RefBuf {
            data: RefCell::new(v),
            len: data.len(),
        })
    }

    /// All values of `buf`, unrounded.
    pub fn read_f64(&mut self, buf: &RefBuf) -> BResult<Vec<f64>> {
        Ok(rd("read", buf)?.clone())
    }

    /// Overwrites the start of `buf` with `data` exactly.
    pub fn write_f64(&mut self, buf: &RefBuf, data: &[f64]) -> BResult<()> {
        check::write(buf.len, data.len())?;
        wr("write", buf)?[..data.len()].copy_from_slice(data);
        Ok(())
    }
}

impl Memory for RefBackend {
    type Buf = RefBuf;

    fn name(&self) -> String {
        "reference: f64, 1 thread".into()
    }

    fn zeros(&mut self, n: usize, label: &str) -> BResult<RefBuf> {
        Ok(RefBuf {
            data: RefCell::new(alloc_zeros(n, label)?),
            len: n,
        })
    }

    fn upload(&mut self, data: &[f32], label: &str) -> BResult<RefBuf> {
        let v: Vec<f64> = data.iter().map(|&x| x as f64).collect();
        self.upload_f64(&v, label)
    }

    fn write(&mut self, buf: &RefBuf, data: &[f32]) -> BResult<()> {
        let v: Vec<f64> = data.iter().map(|&x| x as f64).collect();
        self.write_f64(buf, &v)
    }

    fn read(&mut self, buf: &RefBuf) -> BResult<Vec<f32>> {
        Ok(rd("read", buf)?.iter().map(|&x| x as f32).collect())
    }

    fn len(&self, buf: &RefBuf) -> usize {
        buf.len
    }

    fn flush(&mut self) -> BResult<()> {
        Ok(())
    }
}

impl LinearOps for RefBackend {
    fn gemm(
        &mut self,
        g: &Gemm,
        a: &RefBuf,
        b: &RefBuf,
        bias: Option<&RefBuf>,
        c: &RefBuf,
    ) -> BResult<()> {
        if !check::gemm(g, a.len, b.len, bias.map(|b| b.len), c.len)? {
            return Ok(());
        }
        let (ag, bg) = (rd("gemm A", a)?, rd("gemm B", b)?);
        let biasg = match (g.bias, bias) {
            (BiasMode::None, _) | (_, None) => None,
            (_, Some(bb)) => Some(rd("gemm bias", bb)?),
        };
        let mut cg = wr("gemm C", c)?;
        r::linear::gemm(g, &ag, &bg, biasg.as_deref().map(|v| v.as_slice()), &mut cg);
        Ok(())
    }
}

impl FmmOps for RefBackend {
    fn fmm_forward(
        &mut self,
        s: &FmmShape,
        ws: &RefBuf,
        styles: &RefBuf,
        w_out: &RefBuf,
        norms: &RefBuf,
    ) -> BResult<()> {
        if !check::fmm_forward(s, ws.len, styles.len, w_out.len, norms.len)? {
            return Ok(());
        }
        let (wsg, sg) = (rd("fmm ws", ws)?, rd("fmm styles", styles)?);
        let (w, n) =
            r::fmm::fmm_forward(s, &wsg[..s.c_out * s.c_in], &sg[..s.batch * s.style_dim()]);
        let (mut wg, mut ng) = (wr("fmm w_out", w_out)?, wr("fmm norms", norms)?);
        store(&mut wg, &w, false);
        store(&mut ng, &n, false);
        Ok(())
    }

    fn fmm_backward(
        &mut self,
        s: &FmmShape,
        ws: &RefBuf,
        styles: &RefBuf,
        norms: &RefBuf,
        dw: &RefBuf,
        scratch: &RefBuf,
        dws: &RefBuf,
        dstyles: &RefBuf,
        accumulate_dws: bool,
    ) -> BResult<()> {
        if !check::fmm_backward(
            s,
            ws.len,
            styles.len,
            norms.len,
            dw.len,
            scratch.len,
            dws.len,
            dstyles.len,
        )? {
            return Ok(());
        }
        let (wsg, sg, dwg) = (
            rd("fmm ws", ws)?,
            rd("fmm styles", styles)?,
            rd("fmm dw", dw)?,
        );
        let (gws, gst) = r::fmm::fmm_backward(
            s,
            &wsg[..s.c_out * s.c_in],
            &sg[..s.batch * s.style_dim()],
            &dwg[..s.weight_len()],
        );
        let (mut dwsg, mut dsg) = (wr("fmm dws", dws)?, wr("fmm dstyles", dstyles)?);
        store(&mut dwsg, &gws, accumulate_dws);
        store(&mut dsg, &gst, false);
        Ok(())
    }
}

impl ModulateOps for RefBackend {
    fn style_modulate_forward(
        &mut self,
        m: &ModulateShape,
        ws: &RefBuf,
        s: &RefBuf,
        w: &RefBuf,
    ) -> BResult<()> {
        if !check::modulate_forward(m, ws.len, s.len, w.len)? {
            return Ok(());
        }
        let g_ws = rd("style_modulate ws", ws)?;
        let g_s = rd("style_modulate s", s)?;
        let out = r::modulate::style_modulate_forward(m, &g_ws, &g_s);
        store(&mut wr("style_modulate w", w)?, &out, false);
        Ok(())
    }

    fn style_modulate_backward(
        &mut self,
        m: &ModulateShape,
        ws: &RefBuf,
        s: &RefBuf,
        dw: &RefBuf,
        dws: &RefBuf,
        ds: &RefBuf,
        accumulate_dws: bool,
    ) -> BResult<()> {
        if !check::modulate_backward(m, ws.len, s.len, dw.len, dws.len, ds.len)? {
            return Ok(());
        }
        let g_ws = rd("style_modulate ws", ws)?;
        let g_s = rd("style_modulate s", s)?;
        let g_dw = rd("style_modulate dw", dw)?;
        let (gws, gs) = r::modulate::style_modulate_backward(m, &g_ws, &g_s, &g_dw);
        let (mut dwsg, mut dsg) = (wr("style_modulate dws", dws)?, wr("style_modulate ds", ds)?);
        store(&mut dwsg, &gws, accumulate_dws);
        store(&mut dsg, &gs, false);
        Ok(())
    }
}

impl CoordsOps for RefBackend {
    fn coords_forward(
        &mut self,
        s: &CoordsShape,
        xs: &RefBuf,
        ys: &RefBuf,
        freqs: &RefBuf,
        emb: &RefBuf,
    ) -> BResult<()> {
        if !check::coords_forward(s, xs.len, ys.len, freqs.len, emb.len)? {
            return Ok(());
        }
        let g_xs = rd("coords xs", xs)?;
        let g_ys = rd("coords ys", ys)?;
        let g_freqs = rd("coords freqs", freqs)?;
        let e = r::coords::coords_forward(s, &g_xs, &g_ys, &g_freqs);
        store(&mut wr("coords emb", emb)?, &e, false);
        Ok(())
    }

    fn coords_backward(
        &mut self,
        s: &CoordsShape,
        xs: &RefBuf,
        ys: &RefBuf,
        freqs: &RefBuf,
        demb: &RefBuf,
        dfreqs: &RefBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::coords_backward(s, xs.len, ys.len, freqs.len, demb.len, dfreqs.len)? {
            return Ok(());
        }
        let g_xs = rd("coords xs", xs)?;
        let g_ys = rd("coords ys", ys)?;
        let g_freqs = rd("coords freqs", freqs)?;
        let g_demb = rd("coords demb", demb)?;
        let df = r::coords::coords_backward(s, &g_xs, &g_ys, &g_freqs, &g_demb);
        store(&mut wr("coords dfreqs", dfreqs)?, &df, accumulate);
        Ok(())
    }
}

impl ActOps for RefBackend {
    fn act_forward(
        &mut self,
        s: &ActShape,
        x: &RefBuf,
        bias: Option<&RefBuf>,
        y: &RefBuf,
    ) -> BResult<()> {
        if !check::act_forward(s, x.len, bias.map(|b| b.len), y.len)? {
            return Ok(());
        }
        let xg = rd("act_forward x", x)?;
        let bg = bias.map(|b| rd("act_forward bias", b)).transpose()?;
        let out = r::act::act_forward(s, &xg[..s.len()], bg.as_deref().map(|v| v.as_slice()));
        store(&mut wr("act_forward y", y)?, &out, false);
        Ok(())
    }

    fn act_backward(
        &mut self,
        s: &ActShape,
        y: &RefBuf,
        dy: &RefBuf,
        dx: &RefBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::act_backward(s, y.len, dy.len, dx.len)? {
            return Ok(());
        }
        let g_y = rd("act_backward y", y)?;
        let g_dy = rd("act_backward dy", dy)?;
        let (g, _) = r::act::act_backward(s, &g_y[..s.len()], &g_dy[..s.len()]);
        store(&mut wr("act_backward dx", dx)?, &g, accumulate);
        Ok(())
    }
}

impl ResampleOps for RefBackend {
    fn upsample2x_forward(
        &mut self,
        x: &RefBuf,
        y: &RefBuf,
        planes: usize,
        h: usize,
        w: usize,
    ) -> BResult<()> {
        if !check::upsample_forward(x.len, y.len, planes, h, w)? {
            return Ok(());
        }
        let g_x = rd("upsample2x_forward x", x)?;
        let out = r::resample::upsample2x_forward(&g_x, planes, h, w);
        store(&mut wr("upsample2x_forward y", y)?, &out, false);
        Ok(())
    }

    fn upsample2x_backward(
        &mut self,
        dy: &RefBuf,
        dx: &RefBuf,
        planes: usize,
        h: usize,
        w: usize,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::upsample_backward(dy.len, dx.len, planes, h, w)? {
            return Ok(());
        }
        let g_dy = rd("upsample2x_backward dy", dy)?;
        let g = r::resample::upsample2x_backward(&g_dy, planes, h, w);
        store(&mut wr("upsample2x_backward dx", dx)?, &g, accumulate);
        Ok(())
    }

    fn gather(
        &mut self,
        x: &RefBuf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &[u32],
        cols: &[u32],
        y: &RefBuf,
    ) -> BResult<()> {
        if !check::gather(x.len, planes, h, w, rows, cols, y.len)? {
            return Ok(());
        }
        let g_x = rd("gather x", x)?;
        let out = r::resample::gather(&g_x, planes, h, w, rows, cols);
        store(&mut wr("gather y", y)?, &out, false);
        Ok(())
    }

    fn gather_bilinear(
        &mut self,
        x: &RefBuf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &Taps,
        cols: &Taps,
        y: &RefBuf,
    ) -> BResult<()> {
        if !check::gather_bilinear("gather_bilinear", x.len, planes, h, w, rows, cols, y.len)? {
            return Ok(());
        }
        let g_x = rd("gather_bilinear x", x)?;
        let out = r::resample::gather_bilinear(&g_x, planes, h, w, rows, cols);
        store(&mut wr("gather_bilinear y", y)?, &out, false);
        Ok(())
    }

    fn gather_bilinear_backward(
        &mut self,
        dy: &RefBuf,
        planes: usize,
        h: usize,
        w: usize,
        rows: &Taps,
        cols: &Taps,
        dx: &RefBuf,
        accumulate: bool,
    ) -> BResult<()> {
        let what = "gather_bilinear_backward";
        if !check::gather_bilinear(what, dx.len, planes, h, w, rows, cols, dy.len)? {
            return Ok(());
        }
        let g_dy = rd("gather_bilinear_backward dy", dy)?;
        let g = r::resample::gather_bilinear_backward(&g_dy, planes, h, w, rows, cols);
        store(&mut wr("gather_bilinear_backward dx", dx)?, &g, accumulate);
        Ok(())
    }

    fn concat_channels(
        &mut self,
        s: &ConcatShape,
        x1: &RefBuf,
        x2: &RefBuf,
        y: &RefBuf,
    ) -> BResult<()> {
        if !check::concat(s, x1.len, x2.len, y.len)? {
            return Ok(());
        }
        let g_x1 = rd("concat_channels x1", x1)?;
        let g_x2 = rd("concat_channels x2", x2)?;
        let out = r::resample::concat_channels(s, &g_x1, &g_x2);
        store(&mut wr("concat_channels y", y)?, &out, false);
        Ok(())
    }

    fn slice_channels(
        &mut self,
        s: &SliceShape,
        x: &RefBuf,
        y: &RefBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::slice(s, x.len, y.len)? {
            return Ok(());
        }
        let g_x = rd("slice_channels x", x)?;
        let out = r::resample::slice_channels(s, &g_x);
        store(&mut wr("slice_channels y", y)?, &out, accumulate);
        Ok(())
    }
}

impl FusedOps for RefBackend {
    // `has_fused` stays false: renders on the oracle run the unfused layers; the fused block is
    // here for the parity tests of the other backends' fused paths.
    fn fused_level_forward(
        &mut self,
        s: &FusedShape,
        input: FusedInput<'_, RefBuf>,
        w: &RefBuf,
        bias: &RefBuf,
        rgbw: &RefBuf,
        rgbb: &RefBuf,
        img: &RefBuf,
        out: Option<&RefBuf>,
    ) -> BResult<()> {
        if !check::fused(s, &input, |b: &RefBuf| b.len, w, bias, rgbw, rgbb, img, out)? {
            return Ok(());
        }
        let x = match input {
            FusedInput::Dense(x) => rd("fused x", x)?.clone(),
            FusedInput::Assembled { a, feat, geom } => {
                let g32: Vec<f32> = rd("fused geometry", geom)?
                    .iter()
                    .map(|&v| v as f32)
                    .collect();
                let geo = a.parse(&g32).map_err(BackendError::Shape)?;
                let feat = match feat {
                    Some(f) => rd("fused features", f)?.clone(),
                    None => Vec::new(),
                };
                let f64s = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
                r::fused::assemble_input(
                    a,
                    s.batch,
                    &feat,
                    &f64s(&geo.xs),
                    &f64s(&geo.ys),
                    &f64s(&geo.freqs),
                    &geo.rows,
                    &geo.cols,
                    a.bilinear.then_some((&geo.row_t[..], &geo.col_t[..])),
                )
            }
        };
        let (y_img, y_out) = r::fused::level_forward(
            s,
            &x,
            &rd("fused weights", w)?,
            &rd("fused bias", bias)?,
            &rd("fused rgb weights", rgbw)?,
            &rd("fused rgb bias", rgbb)?,
            &rd("fused img", img)?,
        );
        store(&mut wr("fused img", img)?, &y_img, false);
        if let Some(o) = out {
            store(&mut wr("fused out", o)?, &y_out, false);
        }
        Ok(())
    }
}

impl ConvOps for RefBackend {
    fn conv2d_forward(
        &mut self,
        s: &ConvShape,
        x: &RefBuf,
        w: &RefBuf,
        b: Option<&RefBuf>,
        y: &RefBuf,
    ) -> BResult<()> {
        if !check::conv_forward(s, x.len, w.len, b.map(|b| b.len), y.len)? {
            return Ok(());
        }
        let g_x = rd("conv2d_forward x", x)?;
        let g_w = rd("conv2d_forward w", w)?;
        let bg = b.map(|b| rd("conv2d_forward b", b)).transpose()?;
        let out = r::conv::conv2d_forward(s, &g_x, &g_w, bg.as_deref().map(|v| v.as_slice()));
        store(&mut wr("conv2d_forward y", y)?, &out, false);
        Ok(())
    }

    fn conv2d_backward_input(
        &mut self,
        s: &ConvShape,
        dy: &RefBuf,
        w: &RefBuf,
        dx: &RefBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::conv_backward_input(s, dy.len, w.len, dx.len)? {
            return Ok(());
        }
        let g_w = rd("conv2d_backward_input w", w)?;
        let g_dy = rd("conv2d_backward_input dy", dy)?;
        // The reference backward also needs x (for dW only): any values do for dX.
        let x = vec![0.0; s.x_len()];
        let (g, _, _) = r::conv::conv2d_backward(s, &x, &g_w, &g_dy);
        store(&mut wr("conv2d_backward_input dx", dx)?, &g, accumulate);
        Ok(())
    }

    fn conv2d_backward_weight(
        &mut self,
        s: &ConvShape,
        dy: &RefBuf,
        x: &RefBuf,
        dw: &RefBuf,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::conv_backward_weight(s, dy.len, x.len, dw.len)? {
            return Ok(());
        }
        let g_x = rd("conv2d_backward_weight x", x)?;
        let g_dy = rd("conv2d_backward_weight dy", dy)?;
        // The reference backward also needs w (for dX only): any values do for dW.
        let w = vec![0.0; s.w_len()];
        let (_, g, _) = r::conv::conv2d_backward(s, &g_x, &w, &g_dy);
        store(&mut wr("conv2d_backward_weight dw", dw)?, &g, accumulate);
        Ok(())
    }

    fn blur_down2x_forward(
        &mut self,
        x: &RefBuf,
        y: &RefBuf,
        planes: usize,
        h: usize,
        w: usize,
    ) -> BResult<()> {
        if !check::blur_forward(x.len, y.len, planes, h, w)? {
            return Ok(());
        }
        let g_x = rd("blur_down2x_forward x", x)?;
        let out = r::conv::blur_down2x_forward(&g_x, planes, h, w);
        store(&mut wr("blur_down2x_forward y", y)?, &out, false);
        Ok(())
    }

    fn blur_down2x_backward(
        &mut self,
        dy: &RefBuf,
        dx: &RefBuf,
        planes: usize,
        h: usize,
        w: usize,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::blur_backward(dy.len, dx.len, planes, h, w)? {
            return Ok(());
        }
        let g_dy = rd("blur_down2x_backward dy", dy)?;
        let n = planes * blur_down2x_out(h) * blur_down2x_out(w);
        let g = r::conv::blur_down2x_backward(&g_dy[..n], planes, h, w);
        store(&mut wr("blur_down2x_backward dx", dx)?, &g, accumulate);
        Ok(())
    }
}

impl MbstdOps for RefBackend {
    fn mbstd_forward(
        &mut self,
        s: &MbstdShape,
        x: &RefBuf,
        stat: &RefBuf,
        y: &RefBuf,
    ) -> BResult<()> {
        if !check::mbstd_forward(s, x.len, stat.len, y.len)? {
            return Ok(());
        }
        let xg = rd("mbstd_forward x", x)?;
        let st = r::mbstd::mbstd_stat(s, &xg);
        let out = r::mbstd::mbstd_forward(s, &xg);
        let (mut sg, mut yg) = (
            wr("mbstd_forward stat_scratch", stat)?,
            wr("mbstd_forward y", y)?,
        );
        store(&mut sg, &st, false);
        store(&mut yg, &out, false);
        Ok(())
    }

    fn mbstd_backward(
        &mut self,
        s: &MbstdShape,
        x: &RefBuf,
        dy: &RefBuf,
        dstat: &RefBuf,
        dx: &RefBuf,
    ) -> BResult<()> {
        if !check::mbstd_backward(s, x.len, dy.len, dstat.len, dx.len)? {
            return Ok(());
        }
        let (xg, dyg) = (rd("mbstd_backward x", x)?, rd("mbstd_backward dy", dy)?);
        let g = r::mbstd::mbstd_backward(s, &xg, &dyg);
        // The statistics' gradients, as the kernel leaves them in the scratch.
        let (cy, mm, np) = (s.channels + s.num_channels, s.groups(), s.pixels());
        let mut ds = vec![0.0; s.stat_len()];
        for n in 0..s.batch {
            for f in 0..s.num_channels {
                let o = (n * cy + s.channels + f) * np;
                ds[(n % mm) * s.num_channels + f] += dyg[o..o + np].iter().sum::<f64>();
            }
        }
        let (mut dsg, mut dxg) = (
            wr("mbstd_backward dstat_scratch", dstat)?,
            wr("mbstd_backward dx", dx)?,
        );
        store(&mut dsg, &ds, false);
        store(&mut dxg, &g, false);
        Ok(())
    }

    fn mbstd_jvp(
        &mut self,
        s: &MbstdShape,
        x: &RefBuf,
        xdot: &RefBuf,
        stat: &RefBuf,
        ydot: &RefBuf,
    ) -> BResult<()> {
        if !check::mbstd_forward(s, x.len, stat.len, ydot.len)? {
            return Ok(());
        }
        check::need("mbstd_jvp xdot", xdot.len, s.x_len())?;
        let (xg, xdg) = (rd("mbstd_jvp x", x)?, rd("mbstd_jvp xdot", xdot)?);
        let out = r::mbstd::mbstd_jvp(s, &xg[..s.x_len()], &xdg[..s.x_len()]);
        drop((xg, xdg));
        let mut yg = wr("mbstd_jvp ydot", ydot)?;
        yg[..out.len()].copy_from_slice(&out);
        Ok(())
    }

    fn mbstd_backward_jvp(
        &mut self,
        s: &MbstdShape,
        x: &RefBuf,
        xdot: &RefBuf,
        dy: &RefBuf,
        dstat: &RefBuf,
        dxdot: &RefBuf,
    ) -> BResult<()> {
        if !check::mbstd_backward(s, x.len, dy.len, dstat.len, dxdot.len)? {
            return Ok(());
        }
        check::need("mbstd_backward_jvp xdot", xdot.len, s.x_len())?;
        let (xg, xdg, dyg) = (
            rd("mbstd_backward_jvp x", x)?,
            rd("mbstd_backward_jvp xdot", xdot)?,
            rd("mbstd_backward_jvp dy", dy)?,
        );
        let out =
            r::mbstd::mbstd_backward_jvp(s, &xg[..s.x_len()], &xdg[..s.x_len()], &dyg[..s.y_len()]);
        drop((xg, xdg, dyg));
        let mut og = wr("mbstd_backward_jvp dxdot", dxdot)?;
        og[..out.len()].copy_from_slice(&out);
        Ok(())
    }
}

impl AugmentOps for RefBackend {
    fn aug_color(
        &mut self,
        s: &AugShape,
        x: &RefBuf,
        prm: &RefBuf,
        y: &RefBuf,
        brightness: bool,
    ) -> BResult<()> {
        let Some(pv) = check::augment(s, "aug_color", x.len, y.len, || {
            Ok(rd("aug_color params", prm)?
                .iter()
                .map(|&v| v as f32)
                .collect())
        })?
        else {
            return Ok(());
        };
        let out = r::augment::color(s, &rd("aug_color x", x)?, &pv, brightness);
        store(&mut wr("aug_color y", y)?, &out, false);
        Ok(())
    }

    fn aug_blend(
        &mut self,
        s: &AugShape,
        x: &RefBuf,
        prm: &RefBuf,
        mu: &RefBuf,
        y: &RefBuf,
    ) -> BResult<()> {
        let Some(pv) = check::augment(s, "aug_blend", x.len, y.len, || {
            Ok(rd("aug_blend params", prm)?
                .iter()
                .map(|&v| v as f32)
                .collect())
        })?
        else {
            return Ok(());
        };
        check::need("aug_blend mu", mu.len, s.batch)?;
        let m = rd("aug_blend mu", mu)?.clone();
        let out = r::augment::blend(s, &rd("aug_blend x", x)?, &pv, &m);
        store(&mut wr("aug_blend y", y)?, &out, false);
        Ok(())
    }

    fn aug_shift_forward(
        &mut self,
        s: &AugShape,
        x: &RefBuf,
        prm: &RefBuf,
        y: &RefBuf,
    ) -> BResult<()> {
        let Some(pv) = check::augment(s, "aug_shift_forward", x.len, y.len, || {
            Ok(rd("aug_shift_forward params", prm)?
                .iter()
                .map(|&v| v as f32)
                .collect())
        })?
        else {
            return Ok(());
        };
        let out = r::augment::shift_forward(s, &rd("aug_shift_forward x", x)?, &pv);
        store(&mut wr("aug_shift_forward y", y)?, &out, false);
        Ok(())
    }

    fn aug_shift_backward(
        &mut self,
        s: &AugShape,
        dy: &RefBuf,
        prm: &RefBuf,
        dx: &RefBuf,
    ) -> BResult<()> {
        let Some(pv) = check::augment(s, "aug_shift_backward", dy.len, dx.len, || {
            Ok(rd("aug_shift_backward params", prm)?
                .iter()
                .map(|&v| v as f32)
                .collect())
        })?
        else {
            return Ok(());
        };
        let out = r::augment::shift_backward(s, &rd("aug_shift_backward dy", dy)?, &pv);
        store(&mut wr("aug_shift_backward dx", dx)?, &out, false);
        Ok(())
    }
}

impl ReduceOps for RefBackend {
    fn sum_axes(
        &mut self,
        x: &RefBuf,
        y: &RefBuf,
        outer: usize,
        mid: usize,
        inner: usize,
        scale: f32,
        accumulate: bool,
    ) -> BResult<()> {
        if !check::sum_axes(x.len, y.len, outer, mid, inner)? {
            return Ok(());
        }
        let g_x = rd("sum_axes x", x)?;
        let out = r::reduce::sum_axes(&g_x, outer, mid, inner, scale as f64);
        store(&mut wr("sum_axes y", y)?, &out, accumulate);
        Ok(())
    }

    fn row_norm(&mut self, x: &RefBuf, y: &RefBuf, rows: usize, cols: usize) -> BResult<()> {
        if !check::row_norm(x.len, y.len, rows, cols)? {
            return Ok(());
        }
        let g_x = rd("row_norm x", x)?;
        let out = r::reduce::row_norm(&g_x, rows, cols);
        store(&mut wr("row_norm y", y)?, &out, false);
        Ok(())
    }

    fn softplus_forward(&mut self, x: &RefBuf, y: &RefBuf, n: usize, sign: f32) -> BResult<()> {
        if !check::elementwise("softplus_forward", x.len, y.len, n)? {
            return Ok(());
        }
        let g_x = rd("softplus_forward x", x)?;
        let out = r::reduce::softplus_forward(&g_x[..n], sign as f64);
        store(&mut wr("softplus_forward y", y)?, &out, false);
        Ok(())
    }

    fn softplus_backward(&mut self, x: &RefBuf, dy: &RefBuf, n: usize, sign: f32) -> BResult<()> {
        if !check::elementwise("softplus_backward", x.len, dy.len, n)? {
            return Ok(());
        }
        let xg = rd("softplus_backward x", x)?;
        let mut dyg = wr("softplus_backward dy", dy)?;
        let g = r::reduce::softplus_backward(&xg[..n], &dyg[..n], sign as f64);
        store(&mut dyg, &g, false);
        Ok(())
    }

    fn axpby(&mut self, a: f32, x: &RefBuf, b: f32, y: &RefBuf, n: usize) -> BResult<()> {
        if !check::elementwise("axpby", x.len, y.len, n)? {
            return Ok(());
        }
        let xg = rd("axpby x", x)?;
        let mut yg = wr("axpby y", y)?;
        r::reduce::axpby(a as f64, &xg[..n], b as f64, &mut yg[..n]);
        Ok(())
    }

    fn count_nonfinite(&mut self, x: &RefBuf, n: usize) -> BResult<u32> {
        check::need("count_nonfinite x", x.len, n)?;
        let g_x = rd("count_nonfinite x", x)?;
        Ok(r::reduce::count_nonfinite(&g_x[..n]))
    }
}

impl AdamOps for RefBackend {
    fn adam_step(
        &mut self,
        cfg: &AdamConfig,
        t: u64,
        p: &RefBuf,
        g: &RefBuf,
        m: &RefBuf,
        v: &RefBuf,
        n: usize,
    ) -> BResult<()> {
        if !check::adam(t, p.len, g.len, m.len, v.len, n)? {
            return Ok(());
        }
        let gg = rd("adam_step grad", g)?;
        let (mut pg, mut mg, mut vg) = (
            wr("adam_step param", p)?,
            wr("adam_step m", m)?,
            wr("adam_step v", v)?,
        );
        r::adam::adam_step(cfg, t, &mut pg[..n], &gg[..n], &mut mg[..n], &mut vg[..n]);
        Ok(())
    }

    fn ema_update(&mut self, p: &RefBuf, e: &RefBuf, beta: f64, n: usize) -> BResult<()> {
        if !check::ema(p.len, e.len, n)? {
            return Ok(());
        }
        let pg = rd("ema_update param", p)?;
        r::adam::ema_update(&pg[..n], &mut wr("ema_update ema", e)?[..n], beta);
        Ok(())
    }
}

impl ImageOps for RefBackend {
    fn to_rgba8(&mut self, x: &RefBuf, batch: usize, pixels: usize) -> BResult<Vec<u32>> {
        if !check::to_rgba8(x.len, batch, pixels)? {
            return Ok(Vec::new());
        }
        Ok(r::image::to_rgba8(&rd("to_rgba8 x", x)?, batch, pixels))
    }
}

impl Backend for RefBackend {}
