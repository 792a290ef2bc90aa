//! StyleGAN2's residual discriminator, scaled by [`DiscConfig`](crate::model::config::DiscConfig), written once against
//! [`Backend`]. Equalised learning rate everywhere (weights stored N(0, 1) and scaled at run time
//! by `1/sqrt(fan_in)`), leaky ReLU 0.2 with gain √2.
//!
//! ```text
//! x [N, 3, R, R] ─ fromRGB 1x1 + lrelu ─► for r = R, R/2, ..., 8:
//!     main = conv1(blur_down(conv0(x)))        conv0 3x3 C(r)->C(r), conv1 3x3 C(r)->C(r/2), + lrelu
//!     skip = 1x1(blur_down(x))                 C(r)->C(r/2), no bias
//!     x = (main + skip) / √2
//! at 4²: minibatch std ─ conv 3x3 (C+F -> C) + lrelu ─ FC (16C -> C) + lrelu ─ FC (C -> 1) = logit
//! ```
//!
//! One difference from StyleGAN2: the main path downsamples (the `[1,3,3,1]` blur, stride 2) before
//! its second 3x3 convolution, which then runs at half resolution; StyleGAN2 blurs at full
//! resolution and convolves with stride 2. Same receptive field, a quarter of the cost.

use crate::backend::BackendError;
use crate::backend::{BResult, Backend, Memory};
use crate::reference::act::ActShape;
use crate::reference::conv::ConvShape;
use crate::reference::linear::{Gemm, LinearShape};
use crate::reference::mbstd::MbstdShape;

use super::config::ModelConfig;
use super::params::{Init, ParamSet, ParamSpec};

const ALPHA: f32 = 0.2;
const GAIN: f32 = std::f32::consts::SQRT_2;
const HALF_SQRT: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// A convolution followed by bias + leaky ReLU (`w`, `b` index the parameter set).
#[derive(Clone, Debug)]
struct ConvAct {
    c_in: usize,
    c_out: usize,
    res: usize,
    k: usize,
    w: usize,
    b: usize,
}

#[derive(Clone, Debug)]
struct Block {
    res: usize,
    conv0: ConvAct,
    conv1: ConvAct,
    skip: usize,
    c_in: usize,
    c_out: usize,
}

/// The discriminator's structure; parameters live in a [`ParamSet`] from
/// [`Discriminator::specs`].
#[derive(Clone, Debug)]
pub struct Discriminator {
    pub cfg: ModelConfig,
    specs: Vec<ParamSpec>,
    fromrgb: ConvAct,
    blocks: Vec<Block>,
    epi_conv: ConvAct,
    fc_w: usize,
    fc_b: usize,
    out_w: usize,
    out_b: usize,
}

/// Parameter specs of the discriminator of `cfg`.
pub fn param_specs(cfg: &ModelConfig) -> Vec<ParamSpec> {
    Discriminator::new(cfg).specs
}

impl Discriminator {
    pub fn new(cfg: &ModelConfig) -> Self {
        let d = &cfg.discriminator;
        let mut specs = Vec::new();
        let mut add = |name: String, shape: &[usize], init: Init| {
            specs.push(ParamSpec::new(name, shape, init));
            specs.len() - 1
        };
        let mut conv = |name: &str, c_in: usize, c_out: usize, res: usize, k: usize| ConvAct {
            c_in,
            c_out,
            res,
            k,
            w: add(
                format!("{name}.weight"),
                &[c_out, c_in, k, k],
                Init::Normal(1.0),
            ),
            b: add(format!("{name}.bias"), &[c_out], Init::Const(0.0)),
        };
        let r0 = cfg.resolution;
        let fromrgb = conv(&format!("d.b{r0}.fromrgb"), 3, d.channels(r0), r0, 1);
        let mut blocks = Vec::new();
        let mut res = r0;
        while res > 4 {
            let (ci, co) = (d.channels(res), d.channels(res / 2));
            let conv0 = conv(&format!("d.b{res}.conv0"), ci, ci, res, 3);
            let conv1 = conv(&format!("d.b{res}.conv1"), ci, co, res / 2, 3);
            let skip_name = format!("d.b{res}.skip.weight");
            blocks.push((res, conv0, conv1, skip_name, ci, co));
            res /= 2;
        }
        let c4 = d.channels(4);
        let f = d.mbstd_channels;
        let epi_conv = conv("d.b4.conv", c4 + f, c4, 4, 3);
        let blocks = blocks
            .into_iter()
            .map(|(res, conv0, conv1, skip_name, ci, co)| Block {
                res,
                conv0,
                conv1,
                skip: add(skip_name, &[co, ci, 1, 1], Init::Normal(1.0)),
                c_in: ci,
                c_out: co,
            })
            .collect();
        let fc_w = add("d.b4.fc.weight".into(), &[c4, c4 * 16], Init::Normal(1.0));
        let fc_b = add("d.b4.fc.bias".into(), &[c4], Init::Const(0.0));
        let out_w = add("d.b4.out.weight".into(), &[1, c4], Init::Normal(1.0));
        let out_b = add("d.b4.out.bias".into(), &[1], Init::Const(0.0));
        Self {
            cfg: cfg.clone(),
            specs,
            fromrgb,
            blocks,
            epi_conv,
            fc_w,
            fc_b,
            out_w,
            out_b,
        }
    }

    pub fn specs(&self) -> &[ParamSpec] {
        &self.specs
    }

    /// Total parameters.
    pub fn param_count(&self) -> usize {
        self.specs.iter().map(|s| s.len()).sum()
    }

    fn conv_shape(c: &ConvAct, batch: usize) -> ConvShape {
        ConvShape {
            batch,
            c_in: c.c_in,
            c_out: c.c_out,
            height: c.res,
            width: c.res,
            k: c.k,
            stride: 1,
            w_gain: 1.0 / ((c.c_in * c.k * c.k) as f32).sqrt(),
            b_gain: 1.0,
        }
    }

    fn act_shape(channels: usize, batch: usize, pixels: usize) -> ActShape {
        ActShape {
            outer: batch,
            channels,
            inner: pixels,
            alpha: ALPHA,
            gain: GAIN,
            b_gain: 1.0,
        }
    }

    fn mbstd_shape(&self, batch: usize) -> BResult<MbstdShape> {
        let d = &self.cfg.discriminator;
        let group = d.mbstd_group.min(batch).max(1);
        if !batch.is_multiple_of(group) {
            return Err(BackendError::Shape(format!(
                "the minibatch std layer needs a batch divisible by its group {group}, got {batch}"
            )));
        }
        Ok(MbstdShape {
            batch,
            channels: d.channels(4),
            height: 4,
            width: 4,
            group,
            num_channels: d.mbstd_channels,
        })
    }

    fn fc_shape(&self, batch: usize) -> LinearShape {
        let c4 = self.cfg.discriminator.channels(4);
        LinearShape {
            rows: batch,
            d_in: c4 * 16,
            d_out: c4,
            w_gain: 1.0 / ((c4 * 16) as f32).sqrt(),
            b_gain: 1.0,
        }
    }

    fn out_shape(&self, batch: usize) -> LinearShape {
        let c4 = self.cfg.discriminator.channels(4);
        LinearShape {
            rows: batch,
            d_in: c4,
            d_out: 1,
            w_gain: 1.0 / (c4 as f32).sqrt(),
            b_gain: 1.0,
        }
    }

    fn conv_act<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        c: &ConvAct,
        x: &B::Buf,
        batch: usize,
    ) -> BResult<B::Buf> {
        let s = Self::conv_shape(c, batch);
        let pre = be.output(s.y_len(), "d conv")?;
        be.conv2d_forward(&s, x, &p.bufs[c.w], None, &pre)?;
        let y = be.output(s.y_len(), "d act")?;
        be.act_forward(
            &Self::act_shape(c.c_out, batch, c.res * c.res),
            &pre,
            Some(&p.bufs[c.b]),
            &y,
        )?;
        Ok(y)
    }

    /// Backward of [`Self::conv_act`] given its input `x`, output `y` and `dy`; the input
    /// gradient is added to `dx` when given.
    #[allow(clippy::too_many_arguments)]
    fn conv_act_backward<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        grads: &ParamSet<B>,
        c: &ConvAct,
        x: &B::Buf,
        y: &B::Buf,
        dy: &B::Buf,
        dx: Option<&B::Buf>,
        batch: usize,
    ) -> BResult<()> {
        let s = Self::conv_shape(c, batch);
        let a = Self::act_shape(c.c_out, batch, c.res * c.res);
        let dpre = be.output(s.y_len(), "d dconv")?;
        be.act_backward(&a, y, dy, &dpre, false)?;
        be.sum_axes(
            &dpre,
            &grads.bufs[c.b],
            batch,
            c.c_out,
            c.res * c.res,
            1.0,
            true,
        )?;
        be.conv2d_backward_weight(&s, &dpre, x, &grads.bufs[c.w], true)?;
        if let Some(dx) = dx {
            be.conv2d_backward_input(&s, &dpre, &p.bufs[c.w], dx, true)?;
        }
        Ok(())
    }

    /// Logits `[batch]` of images `x [batch, 3, R, R]`, keeping what the backward needs.
    pub fn forward<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        x: &B::Buf,
        batch: usize,
    ) -> BResult<DTape<B>> {
        let r0 = self.cfg.resolution;
        if be.len(x) < batch * 3 * r0 * r0 {
            return Err(BackendError::Shape(format!(
                "discriminator input holds {} values, {batch} images of 3x{r0}x{r0} need {}",
                be.len(x),
                batch * 3 * r0 * r0
            )));
        }
        let ms = self.mbstd_shape(batch)?;
        let h0 = self.conv_act(be, p, &self.fromrgb, x, batch)?;
        let mut blocks = Vec::new();
        let mut h = h0;
        for b in &self.blocks {
            let (r, h2) = (b.res, b.res / 2);
            let t0 = self.conv_act(be, p, &b.conv0, &h, batch)?;
            let t0d = be.output(batch * b.c_in * h2 * h2, "d blur")?;
            be.blur_down2x_forward(&t0, &t0d, batch * b.c_in, r, r)?;
            let t1 = self.conv_act(be, p, &b.conv1, &t0d, batch)?;
            let hd = be.output(batch * b.c_in * h2 * h2, "d skip blur")?;
            be.blur_down2x_forward(&h, &hd, batch * b.c_in, r, r)?;
            let ks = self.skip_shape(b, batch);
            let out = be.output(ks.y_len(), "d block out")?;
            be.conv2d_forward(&ks, &hd, &p.bufs[b.skip], None, &out)?;
            be.axpby(HALF_SQRT, &t1, HALF_SQRT, &out, ks.y_len())?;
            blocks.push(BlockTape {
                input: h,
                t0,
                t0d,
                t1,
                hd,
            });
            h = out;
        }
        let stat = be.output(ms.stat_len(), "mbstd stat")?;
        let hm = be.output(ms.y_len(), "mbstd out")?;
        be.mbstd_forward(&ms, &h, &stat, &hm)?;
        let he = self.conv_act(be, p, &self.epi_conv, &hm, batch)?;
        let fs = self.fc_shape(batch);
        let fpre = be.output(batch * fs.d_out, "fc pre")?;
        be.gemm(
            &Gemm::linear_forward(&fs, false),
            &p.bufs[self.fc_w],
            &he,
            None,
            &fpre,
        )?;
        let fc = be.output(batch * fs.d_out, "fc act")?;
        be.act_forward(
            &Self::act_shape(fs.d_out, batch, 1),
            &fpre,
            Some(&p.bufs[self.fc_b]),
            &fc,
        )?;
        let os = self.out_shape(batch);
        let logits = be.output(batch, "logits")?;
        be.gemm(
            &Gemm::linear_forward(&os, true),
            &p.bufs[self.out_w],
            &fc,
            Some(&p.bufs[self.out_b]),
            &logits,
        )?;
        Ok(DTape {
            batch,
            h_last: h,
            blocks,
            hm,
            he,
            fc,
            logits,
        })
    }

    /// Gradients of `sum_n dlogits[n] * logit[n]`: parameter gradients are added to `grads`;
    /// the input gradient is written to `dx` when given.
    #[allow(clippy::too_many_arguments)]
    pub fn backward<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        x: &B::Buf,
        tape: &DTape<B>,
        dlogits: &B::Buf,
        grads: &ParamSet<B>,
        dx: Option<&B::Buf>,
    ) -> BResult<()> {
        let batch = tape.batch;
        let ms = self.mbstd_shape(batch)?;
        // Output layer.
        let os = self.out_shape(batch);
        be.gemm(
            &Gemm::linear_backward_weight(&os, true),
            dlogits,
            &tape.fc,
            None,
            &grads.bufs[self.out_w],
        )?;
        be.sum_axes(dlogits, &grads.bufs[self.out_b], batch, 1, 1, 1.0, true)?;
        let dfc = be.output(batch * os.d_in, "dfc")?;
        be.gemm(
            &Gemm::linear_backward_input(&os, false),
            &p.bufs[self.out_w],
            dlogits,
            None,
            &dfc,
        )?;
        // FC.
        let fs = self.fc_shape(batch);
        let dfpre = be.output(batch * fs.d_out, "dfc pre")?;
        be.act_backward(
            &Self::act_shape(fs.d_out, batch, 1),
            &tape.fc,
            &dfc,
            &dfpre,
            false,
        )?;
        be.sum_axes(
            &dfpre,
            &grads.bufs[self.fc_b],
            batch,
            fs.d_out,
            1,
            1.0,
            true,
        )?;
        be.gemm(
            &Gemm::linear_backward_weight(&fs, true),
            &dfpre,
            &tape.he,
            None,
            &grads.bufs[self.fc_w],
        )?;
        let dhe = be.output(batch * fs.d_in, "dhe")?;
        be.gemm(
            &Gemm::linear_backward_input(&fs, false),
            &p.bufs[self.fc_w],
            &dfpre,
            None,
            &dhe,
        )?;
        // Epilogue conv and minibatch std.
        let dhm = be.zeros(ms.y_len(), "dhm")?;
        self.conv_act_backward(
            be,
            p,
            grads,
            &self.epi_conv,
            &tape.hm,
            &tape.he,
            &dhe,
            Some(&dhm),
            batch,
        )?;
        let dstat = be.output(ms.stat_len(), "dstat")?;
        let mut dh = be.output(ms.x_len(), "dh4")?;
        be.mbstd_backward(&ms, &tape.h_last, &dhm, &dstat, &dh)?;
        // Blocks, last first.
        for (b, bt) in self.blocks.iter().zip(&tape.blocks).rev() {
            let (r, h2) = (b.res, b.res / 2);
            let n_out = batch * b.c_out * h2 * h2;
            // out = (t1 + skip) / sqrt 2: both branches receive dh / sqrt 2.
            let dt1 = be.zeros(n_out, "dt1")?;
            be.axpby(HALF_SQRT, &dh, 0.0, &dt1, n_out)?;
            let dskip = &dt1;
            let din = be.output(batch * b.c_in * r * r, "dblock in")?;
            // Skip: 1x1 conv of the blurred input.
            let ks = self.skip_shape(b, batch);
            be.conv2d_backward_weight(&ks, dskip, &bt.hd, &grads.bufs[b.skip], true)?;
            let dhd = be.output(batch * b.c_in * h2 * h2, "dhd")?;
            be.conv2d_backward_input(&ks, dskip, &p.bufs[b.skip], &dhd, false)?;
            be.blur_down2x_backward(&dhd, &din, batch * b.c_in, r, r, false)?;
            // Main path.
            let dt0d = be.zeros(batch * b.c_in * h2 * h2, "dt0d")?;
            self.conv_act_backward(
                be,
                p,
                grads,
                &b.conv1,
                &bt.t0d,
                &bt.t1,
                &dt1,
                Some(&dt0d),
                batch,
            )?;
            let dt0 = be.output(batch * b.c_in * r * r, "dt0")?;
            be.blur_down2x_backward(&dt0d, &dt0, batch * b.c_in, r, r, false)?;
            self.conv_act_backward(
                be,
                p,
                grads,
                &b.conv0,
                &bt.input,
                &bt.t0,
                &dt0,
                Some(&din),
                batch,
            )?;
            dh = din;
        }
        // fromRGB.
        let h0 = match tape.blocks.first() {
            Some(bt) => &bt.input,
            None => &tape.h_last,
        };
        if let Some(dx) = dx {
            let s = Self::conv_shape(&self.fromrgb, batch);
            let zero = vec![0.0; s.x_len()];
            be.write(dx, &zero)?;
        }
        self.conv_act_backward(be, p, grads, &self.fromrgb, x, h0, &dh, dx, batch)
    }
}

/// An input gradient and its tangent (each absent where not needed or zero).
type GradAndTangent<B> = (Option<<B as Memory>::Buf>, Option<<B as Memory>::Buf>);

/// Tangents (forward-mode derivatives along the R1 direction) of one layer's input and output.
struct R1Layer<'a, B: Backend> {
    x: &'a B::Buf,
    x_t: &'a B::Buf,
    y: &'a B::Buf,
}

impl Discriminator {
    /// Tangent of a conv + lrelu layer: `y_t = lrelu'(pre) * conv(x_t)` (the slope is fixed by the
    /// forward output `y`).
    fn conv_act_tangent<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        c: &ConvAct,
        y: &B::Buf,
        x_t: &B::Buf,
        batch: usize,
    ) -> BResult<B::Buf> {
        let s = Self::conv_shape(c, batch);
        let pre_t = be.zeros(s.y_len(), "r1 pre tangent")?;
        be.conv2d_forward(&s, x_t, &p.bufs[c.w], None, &pre_t)?;
        let y_t = be.zeros(s.y_len(), "r1 tangent")?;
        be.act_backward(
            &Self::act_shape(c.c_out, batch, c.res * c.res),
            y,
            &pre_t,
            &y_t,
            false,
        )?;
        Ok(y_t)
    }

    /// The double backward through a conv + lrelu layer: given the output gradient `d` and its
    /// tangent `dt` (None where it is zero), adds `conv_w(dpre, x_t) + conv_w(dpre_t, x)` to the
    /// weight gradient and `sum(dpre_t)` to the bias gradient; returns the input gradient and its
    /// tangent when `need_input`.
    #[allow(clippy::too_many_arguments)]
    fn conv_act_r1<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        grads: &ParamSet<B>,
        c: &ConvAct,
        l: R1Layer<'_, B>,
        d: &B::Buf,
        dt: Option<&B::Buf>,
        need_input: bool,
        batch: usize,
    ) -> BResult<GradAndTangent<B>> {
        let s = Self::conv_shape(c, batch);
        let a = Self::act_shape(c.c_out, batch, c.res * c.res);
        let dpre = be.zeros(s.y_len(), "r1 dpre")?;
        be.act_backward(&a, l.y, d, &dpre, false)?;
        be.conv2d_backward_weight(&s, &dpre, l.x_t, &grads.bufs[c.w], true)?;
        let mut dpre_t = None;
        if let Some(dt) = dt {
            let t = be.zeros(s.y_len(), "r1 dpre tangent")?;
            be.act_backward(&a, l.y, dt, &t, false)?;
            be.conv2d_backward_weight(&s, &t, l.x, &grads.bufs[c.w], true)?;
            be.sum_axes(
                &t,
                &grads.bufs[c.b],
                batch,
                c.c_out,
                c.res * c.res,
                1.0,
                true,
            )?;
            dpre_t = Some(t);
        }
        if !need_input {
            return Ok((None, None));
        }
        let dx = be.zeros(s.x_len(), "r1 dx")?;
        be.conv2d_backward_input(&s, &dpre, &p.bufs[c.w], &dx, false)?;
        let dx_t = match dpre_t {
            Some(t) => {
                let o = be.zeros(s.x_len(), "r1 dx tangent")?;
                be.conv2d_backward_input(&s, &t, &p.bufs[c.w], &o, false)?;
                Some(o)
            }
            None => None,
        };
        Ok((Some(dx), dx_t))
    }

    /// The R1 penalty on real images `x`: adds to `grads` the gradient with respect to D's
    /// parameters of `weight * (gamma / 2) * (1/N) * |grad_x sum_n D(x_n)|²` and returns the
    /// penalty's mean `(1/N) |grad_x sum_n D(x_n)|²`.
    ///
    /// The double backward is exact: the parameter gradient of the penalty is the forward-mode
    /// derivative, along `g = grad_x`, of D's ordinary parameter gradient. Leaky ReLU's slopes are
    /// piecewise constant, so every layer's backward is linear with fixed masks; the only layer
    /// whose backward depends on x is the minibatch std, handled by its tangent kernels
    /// (`mbstd_jvp`, `mbstd_backward_jvp`). Each weight gradient becomes
    /// `dpre ⊗ x_t + dpre_t ⊗ x` (tangents `_t`), each bias gradient `sum(dpre_t)`.
    #[allow(clippy::too_many_arguments)]
    pub fn r1_backward<B: Backend>(
        &self,
        be: &mut B,
        p: &ParamSet<B>,
        x: &B::Buf,
        batch: usize,
        gamma: f32,
        weight: f32,
        grads: &ParamSet<B>,
    ) -> BResult<f32> {
        let r0 = self.cfg.resolution;
        let nx = batch * 3 * r0 * r0;
        let ms = self.mbstd_shape(batch)?;
        let tape = self.forward(be, p, x, batch)?;
        // g = grad_x sum_n D(x_n).
        let ones = be.upload(&vec![1.0; batch], "r1 ones")?;
        let scratch = ParamSet::zeros(be, &self.specs)?;
        let g = be.zeros(nx, "r1 g")?;
        self.backward(be, p, x, &tape, &ones, &scratch, Some(&g))?;
        let gh = be.read(&g)?;
        let penalty =
            (gh.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / batch.max(1) as f64) as f32;
        let c = weight * gamma / batch.max(1) as f32;

        // ---- tangents of every layer's output along g ----
        let h0 = match tape.blocks.first() {
            Some(bt) => &bt.input,
            None => &tape.h_last,
        };
        let h0_t = self.conv_act_tangent(be, p, &self.fromrgb, h0, &g, batch)?;
        let mut tangents: Vec<BlockTangents<B>> = Vec::new();
        let mut h_t = h0_t;
        for (b, bt) in self.blocks.iter().zip(&tape.blocks) {
            let (r, h2) = (b.res, b.res / 2);
            let t0_t = self.conv_act_tangent(be, p, &b.conv0, &bt.t0, &h_t, batch)?;
            let t0d_t = be.zeros(batch * b.c_in * h2 * h2, "r1 t0d tangent")?;
            be.blur_down2x_forward(&t0_t, &t0d_t, batch * b.c_in, r, r)?;
            let t1_t = self.conv_act_tangent(be, p, &b.conv1, &bt.t1, &t0d_t, batch)?;
            let hd_t = be.zeros(batch * b.c_in * h2 * h2, "r1 hd tangent")?;
            be.blur_down2x_forward(&h_t, &hd_t, batch * b.c_in, r, r)?;
            let ks = self.skip_shape(b, batch);
            let out_t = be.zeros(ks.y_len(), "r1 block tangent")?;
            be.conv2d_forward(&ks, &hd_t, &p.bufs[b.skip], None, &out_t)?;
            be.axpby(HALF_SQRT, &t1_t, HALF_SQRT, &out_t, ks.y_len())?;
            tangents.push(BlockTangents {
                input: h_t,
                t0d: t0d_t,
                hd: hd_t,
            });
            h_t = out_t;
        }
        let stat_t = be.zeros(ms.stat_len(), "r1 stat tangent")?;
        let hm_t = be.zeros(ms.y_len(), "r1 mbstd tangent")?;
        be.mbstd_jvp(&ms, &tape.h_last, &h_t, &stat_t, &hm_t)?;
        let he_t = self.conv_act_tangent(be, p, &self.epi_conv, &tape.he, &hm_t, batch)?;
        let fs = self.fc_shape(batch);
        let fpre_t = be.zeros(batch * fs.d_out, "r1 fc pre tangent")?;
        be.gemm(
            &Gemm::linear_forward(&fs, false),
            &p.bufs[self.fc_w],
            &he_t,
            None,
            &fpre_t,
        )?;
        let fc_t = be.zeros(batch * fs.d_out, "r1 fc tangent")?;
        be.act_backward(
            &Self::act_shape(fs.d_out, batch, 1),
            &tape.fc,
            &fpre_t,
            &fc_t,
            false,
        )?;

        // ---- the backward with dlogits = c, and its tangent ----
        let dl = be.upload(&vec![c; batch], "r1 dlogits")?;
        let os = self.out_shape(batch);
        // Output layer: dW += dl ⊗ fc_t (its backward signal has no tangent above mbstd).
        be.gemm(
            &Gemm::linear_backward_weight(&os, true),
            &dl,
            &fc_t,
            None,
            &grads.bufs[self.out_w],
        )?;
        let dfc = be.zeros(batch * os.d_in, "r1 dfc")?;
        be.gemm(
            &Gemm::linear_backward_input(&os, false),
            &p.bufs[self.out_w],
            &dl,
            None,
            &dfc,
        )?;
        let dfpre = be.zeros(batch * fs.d_out, "r1 dfc pre")?;
        be.act_backward(
            &Self::act_shape(fs.d_out, batch, 1),
            &tape.fc,
            &dfc,
            &dfpre,
            false,
        )?;
        be.gemm(
            &Gemm::linear_backward_weight(&fs, true),
            &dfpre,
            &he_t,
            None,
            &grads.bufs[self.fc_w],
        )?;
        let dhe = be.zeros(batch * fs.d_in, "r1 dhe")?;
        be.gemm(
            &Gemm::linear_backward_input(&fs, false),
            &p.bufs[self.fc_w],
            &dfpre,
            None,
            &dhe,
        )?;
        let (dhm, _) = self.conv_act_r1(
            be,
            p,
            grads,
            &self.epi_conv,
            R1Layer {
                x: &tape.hm,
                x_t: &hm_t,
                y: &tape.he,
            },
            &dhe,
            None,
            true,
            batch,
        )?;
        let dhm = dhm.ok_or_else(|| BackendError::Shape("r1: missing epilogue gradient".into()))?;
        // Through the minibatch std: the gradient, and its tangent (the one place x enters).
        let dstat = be.zeros(ms.stat_len(), "r1 dstat")?;
        let mut dh = be.zeros(ms.x_len(), "r1 dh")?;
        be.mbstd_backward(&ms, &tape.h_last, &dhm, &dstat, &dh)?;
        let mut dh_t = be.zeros(ms.x_len(), "r1 dh tangent")?;
        be.mbstd_backward_jvp(&ms, &tape.h_last, &h_t, &dhm, &dstat, &dh_t)?;
        for ((b, bt), tt) in self.blocks.iter().zip(&tape.blocks).zip(&tangents).rev() {
            let (r, h2) = (b.res, b.res / 2);
            let n_out = batch * b.c_out * h2 * h2;
            let half = |be: &mut B, v: &B::Buf, label: &str| -> BResult<B::Buf> {
                let o = be.zeros(n_out, label)?;
                be.axpby(HALF_SQRT, v, 0.0, &o, n_out)?;
                Ok(o)
            };
            let (d_branch, d_branch_t) = (
                half(be, &dh, "r1 d branch")?,
                half(be, &dh_t, "r1 dt branch")?,
            );
            let ks = self.skip_shape(b, batch);
            let n_in = batch * b.c_in * r * r;
            let n_mid = batch * b.c_in * h2 * h2;
            // Skip path (no bias): dW += d ⊗ hd_t + d_t ⊗ hd.
            be.conv2d_backward_weight(&ks, &d_branch, &tt.hd, &grads.bufs[b.skip], true)?;
            be.conv2d_backward_weight(&ks, &d_branch_t, &bt.hd, &grads.bufs[b.skip], true)?;
            let din = be.zeros(n_in, "r1 din")?;
            let din_t = be.zeros(n_in, "r1 din tangent")?;
            for (dd, out) in [(&d_branch, &din), (&d_branch_t, &din_t)] {
                let dhd = be.zeros(n_mid, "r1 dhd")?;
                be.conv2d_backward_input(&ks, dd, &p.bufs[b.skip], &dhd, false)?;
                be.blur_down2x_backward(&dhd, out, batch * b.c_in, r, r, true)?;
            }
            // Main path.
            let (dt0d, dt0d_t) = self.conv_act_r1(
                be,
                p,
                grads,
                &b.conv1,
                R1Layer {
                    x: &bt.t0d,
                    x_t: &tt.t0d,
                    y: &bt.t1,
                },
                &d_branch,
                Some(&d_branch_t),
                true,
                batch,
            )?;
            let (dt0d, dt0d_t) = (
                dt0d.ok_or_else(|| BackendError::Shape("r1: missing gradient".into()))?,
                dt0d_t.ok_or_else(|| BackendError::Shape("r1: missing tangent".into()))?,
            );
            let dt0 = be.zeros(n_in, "r1 dt0")?;
            be.blur_down2x_backward(&dt0d, &dt0, batch * b.c_in, r, r, false)?;
            let dt0_t = be.zeros(n_in, "r1 dt0 tangent")?;
            be.blur_down2x_backward(&dt0d_t, &dt0_t, batch * b.c_in, r, r, false)?;
            let (dx0, dx0_t) = self.conv_act_r1(
                be,
                p,
                grads,
                &b.conv0,
                R1Layer {
                    x: &bt.input,
                    x_t: &tt.input,
                    y: &bt.t0,
                },
                &dt0,
                Some(&dt0_t),
                true,
                batch,
            )?;
            let (dx0, dx0_t) = (
                dx0.ok_or_else(|| BackendError::Shape("r1: missing gradient".into()))?,
                dx0_t.ok_or_else(|| BackendError::Shape("r1: missing tangent".into()))?,
            );
            be.axpby(1.0, &dx0, 1.0, &din, n_in)?;
            be.axpby(1.0, &dx0_t, 1.0, &din_t, n_in)?;
            dh = din;
            dh_t = din_t;
        }
        self.conv_act_r1(
            be,
            p,
            grads,
            &self.fromrgb,
            R1Layer { x, x_t: &g, y: h0 },
            &dh,
            Some(&dh_t),
            false,
            batch,
        )?;
        Ok(penalty)
    }

    fn skip_shape(&self, b: &Block, batch: usize) -> ConvShape {
        let h2 = b.res / 2;
        ConvShape {
            batch,
            c_in: b.c_in,
            c_out: b.c_out,
            height: h2,
            width: h2,
            k: 1,
            stride: 1,
            w_gain: 1.0 / (b.c_in as f32).sqrt(),
            b_gain: 1.0,
        }
    }
}

struct BlockTangents<B: Backend> {
    input: B::Buf,
    t0d: B::Buf,
    hd: B::Buf,
}

struct BlockTape<B: Backend> {
    input: B::Buf,
    t0: B::Buf,
    t0d: B::Buf,
    t1: B::Buf,
    hd: B::Buf,
}

/// What the discriminator's backward needs, and the logits.
pub struct DTape<B: Backend> {
    pub batch: usize,
    h_last: B::Buf,
    blocks: Vec<BlockTape<B>>,
    hm: B::Buf,
    he: B::Buf,
    fc: B::Buf,
    logits: B::Buf,
}

impl<B: Backend> DTape<B> {
    /// The logits `[batch]`.
    pub fn logits(&self) -> &B::Buf {
        &self.logits
    }
}
