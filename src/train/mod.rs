//! The GAN training step (StyleGAN2-ADA's recipe, as the official INR-GAN trains), written once
//! against [`Backend`]:
//!
//! ```text
//! G phase:  z ─ G ─► fake ─ D ─► softplus(-logit) = L_G ;  dL_G/dlogit ─ D backward (dx only)
//!           ─► dfake ─ G backward ─► G grads ─ Adam(G) ─► G ;  EMA(G) ─► G_ema ; w_avg tracked
//! D phase:  z ─ G ─► fake ─ D ─► softplus(logit) ;  real ─ D ─► softplus(-logit) = L_D
//!           ─ D backward (both) ─► D grads ─ Adam(D) ─► D
//! ```
//!
//! Every `r1_interval` steps the R1 penalty `(γ/2)|∇ₓD(x)|²` on the reals (scaled by the interval)
//! is its own D update, through the exact double backward of
//! [`Discriminator::r1_backward`]. Adam uses StyleGAN2's settings (β1 = 0, β2 = 0.99, ε = 1e-8)
//! with the lazy-regularisation rescaling of the learning rate and β2 by
//! `interval / (interval + 1)` (G: 4, D: 16). Every loss and gradient is checked for NaN/Inf
//! before the update; a non-finite G or D phase changes nothing and is reported as
//! [`TrainError::NonFinite`] (an R1 phase that fails comes after the main updates).
//!
//! Checkpoints and resuming are in [`checkpoint`]. Not yet here (the training issue stays open for
//! them): the worker thread, the `train` command, data loading and the SWD metric in the loop.

pub mod augment;
pub mod checkpoint;
pub mod watch;
pub mod worker;

use serde::{Deserialize, Serialize};

use crate::backend::{BResult, Backend};
use crate::model::config::ModelConfig;
use crate::model::discriminator::Discriminator;
use crate::model::generator::Generator;
use crate::model::params::ParamSet;
use crate::reference::adam::AdamConfig;
use crate::reference::augment::AugShape;
use crate::rng::Rng;
use augment::{AugmentConfig, AugmentMode, AugmentState};

/// Hyper-parameters of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub batch: usize,
    pub lr_g: f64,
    pub lr_d: f64,
    /// R1 weight γ (applied lazily every `r1_interval` D steps).
    pub r1_gamma: f32,
    pub r1_interval: u64,
    /// Half-life of the generator's EMA in thousands of images, and its ramp-up.
    pub ema_kimg: f64,
    pub ema_rampup: f64,
    /// β of the tracked average w.
    pub w_avg_beta: f64,
    pub seed: u64,
    /// What D's inputs go through (runs from before it existed: none).
    #[serde(default)]
    pub augment: AugmentConfig,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            batch: 32,
            lr_g: 0.0025,
            lr_d: 0.0025,
            r1_gamma: 1.0,
            r1_interval: 16,
            ema_kimg: 10.0,
            ema_rampup: 0.05,
            w_avg_beta: 0.995,
            seed: 0,
            augment: AugmentConfig::default(),
        }
    }
}

/// Errors of a training step.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Backend(#[from] crate::backend::BackendError),
    #[error("non-finite values at step {step} in {what}; the step was not applied")]
    NonFinite { step: u64, what: String },
    #[error("bad training input: {0}")]
    Input(String),
    #[error("checkpoint: {0}")]
    Checkpoint(String),
}

/// What one step measured.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepStats {
    pub step: u64,
    pub images: u64,
    /// Mean softplus(-D(G(z))).
    pub g_loss: f32,
    /// Mean softplus(D(G(z))) + softplus(-D(x)).
    pub d_loss: f32,
    pub d_real: f32,
    pub d_fake: f32,
    /// Mean |grad_x D|² on the reals, on the steps that apply R1.
    pub r1: Option<f32>,
    /// The probability each augmentation op fired with (0 without augmentation).
    #[serde(default)]
    pub aug_p: f32,
}

/// Optimiser state of one network.
struct Opt<B: Backend> {
    grads: ParamSet<B>,
    m: ParamSet<B>,
    v: ParamSet<B>,
    cfg: AdamConfig,
    /// Adam steps taken (each phase's update is one, as `torch.optim.Adam.step`).
    t: u64,
}

impl<B: Backend> Opt<B> {
    fn new(be: &mut B, p: &ParamSet<B>, lr: f64, reg_interval: Option<u64>) -> BResult<Self> {
        let mut cfg = AdamConfig::stylegan2(lr);
        if let Some(i) = reg_interval {
            let r = i as f64 / (i as f64 + 1.0);
            cfg.lr *= r;
            cfg.beta2 = cfg.beta2.powf(r);
        }
        Ok(Self {
            grads: ParamSet::zeros(be, &p.specs)?,
            m: ParamSet::zeros(be, &p.specs)?,
            v: ParamSet::zeros(be, &p.specs)?,
            cfg,
            t: 0,
        })
    }

    fn zero_grads(&self, be: &mut B) -> BResult<()> {
        for (s, b) in self.grads.specs.iter().zip(&self.grads.bufs) {
            be.write(b, &vec![0.0; s.len()])?;
        }
        Ok(())
    }

    /// Number of non-finite gradient values.
    fn nonfinite(&self, be: &mut B) -> BResult<u32> {
        let mut n = 0;
        for (s, b) in self.grads.specs.iter().zip(&self.grads.bufs) {
            n += be.count_nonfinite(b, s.len())?;
        }
        Ok(n)
    }

    fn apply(&mut self, be: &mut B, p: &ParamSet<B>) -> BResult<()> {
        self.t += 1;
        let t = self.t;
        for (i, s) in p.specs.iter().enumerate() {
            if s.trainable {
                be.adam_step(
                    &self.cfg,
                    t,
                    &p.bufs[i],
                    &self.grads.bufs[i],
                    &self.m.bufs[i],
                    &self.v.bufs[i],
                    s.len(),
                )?;
            }
        }
        Ok(())
    }
}

/// Generator, its EMA, discriminator, and their optimisers on one backend.
pub struct Trainer<B: Backend> {
    pub cfg: TrainConfig,
    pub g: Generator,
    pub d: Discriminator,
    pub gp: ParamSet<B>,
    pub g_ema: ParamSet<B>,
    pub dp: ParamSet<B>,
    g_opt: Opt<B>,
    d_opt: Opt<B>,
    /// Discriminator gradients of the G phase (discarded: only D's input gradient is used).
    d_scratch: ParamSet<B>,
    pub rng: Rng,
    /// The adaptive augmentation's probability and statistic.
    pub aug: AugmentState,
    pub step: u64,
    pub images: u64,
    /// Metric values measured so far: (images, name, value).
    pub history: Vec<(u64, String, f64)>,
}

/// Mean of `values`.
fn mean(values: &[f32]) -> f32 {
    values.iter().map(|&v| v as f64).sum::<f64>() as f32 / values.len().max(1) as f32
}

impl<B: Backend> Trainer<B> {
    /// Fresh networks for `model` (G from seed `cfg.seed`, D from `cfg.seed + 1`).
    pub fn new(be: &mut B, model: &ModelConfig, cfg: TrainConfig) -> BResult<Self> {
        let g = Generator::new(model);
        let d = Discriminator::new(model);
        let gp = ParamSet::init(be, g.specs(), cfg.seed)?;
        let host = gp.to_host(be)?;
        let g_ema = ParamSet::from_host(be, g.specs(), &host)?;
        let dp = ParamSet::init(be, d.specs(), cfg.seed.wrapping_add(1))?;
        let g_opt = Opt::new(be, &gp, cfg.lr_g, Some(4))?;
        let d_opt = Opt::new(be, &dp, cfg.lr_d, Some(cfg.r1_interval))?;
        let d_scratch = ParamSet::zeros(be, d.specs())?;
        let rng = Rng::new(cfg.seed.wrapping_add(2));
        cfg.augment
            .validate()
            .map_err(crate::backend::BackendError::Shape)?;
        let aug = AugmentState::new(&cfg.augment);
        Ok(Self {
            aug,
            cfg,
            g,
            d,
            gp,
            g_ema,
            dp,
            g_opt,
            d_opt,
            d_scratch,
            rng,
            step: 0,
            images: 0,
            history: Vec::new(),
        })
    }

    /// Changes the learning rates (keeping the lazy-regularisation rescaling).
    pub fn set_lr(&mut self, lr_g: f64, lr_d: f64) {
        self.cfg.lr_g = lr_g;
        self.cfg.lr_d = lr_d;
        self.g_opt.cfg.lr = lr_g * 4.0 / 5.0;
        let i = self.cfg.r1_interval as f64;
        self.d_opt.cfg.lr = lr_d * i / (i + 1.0);
    }

    /// Planar RGB `[n, 3, R, R]` of the EMA generator for latent seeds `seeds` (truncation ψ).
    pub fn samples(&self, be: &mut B, seeds: &[u64], psi: f32) -> BResult<Vec<f32>> {
        let z: Vec<f32> = seeds.iter().flat_map(|&s| self.g.latent(s)).collect();
        let w = self
            .g
            .map_truncated(be, &self.g_ema, &z, seeds.len(), psi)?;
        self.g
            .render_plan(be, &self.g_ema, &w, seeds.len(), &self.g.training_plan())
    }

    fn latents(&mut self) -> Vec<f32> {
        let n = self.cfg.batch * self.g.cfg.z_dim;
        self.rng.normal_vec(n)
    }

    /// The EMA decay of this step (StyleGAN2-ADA: half-life `ema_kimg`, ramped up).
    fn ema_beta(&self) -> f64 {
        let mut ema_nimg = self.cfg.ema_kimg * 1000.0;
        if self.cfg.ema_rampup > 0.0 {
            ema_nimg = ema_nimg.min(self.images as f64 * self.cfg.ema_rampup);
        }
        0.5f64.powf(self.cfg.batch as f64 / ema_nimg.max(1e-8))
    }

    /// `dlogit = sign * sigmoid(sign * logit) / n` for the loss `mean softplus(sign * logit)`;
    /// returns (the loss values, the gradient buffer).
    fn logistic(be: &mut B, logits: &B::Buf, n: usize, sign: f32) -> BResult<(Vec<f32>, B::Buf)> {
        let loss = be.zeros(n, "loss")?;
        be.softplus_forward(logits, &loss, n, sign)?;
        let d = be.upload(&vec![1.0 / n as f32; n], "dloss")?;
        be.softplus_backward(logits, &d, n, sign)?;
        Ok((be.read(&loss)?, d))
    }

    /// One iteration: a G step, then a D step against `reals` (`[batch, 3, R, R]` in [-1, 1]).
    pub fn step(&mut self, be: &mut B, reals: &[f32]) -> Result<StepStats, TrainError> {
        let n = self.cfg.batch;
        let r = self.g.cfg.resolution;
        if reals.len() != n * 3 * r * r {
            return Err(TrainError::Input(format!(
                "{} real values for a batch of {n} images of 3x{r}x{r}",
                reals.len()
            )));
        }
        let next = self.step + 1;
        let plan = self.g.training_plan();
        // Augmentation of what D sees: parameters drawn per use from the run's RNG.
        let aug_cfg = self.cfg.augment.clone();
        let aug_p = self.aug.p(&aug_cfg);
        let shape = AugShape {
            batch: n,
            channels: 3,
            height: r,
            width: r,
        };
        let draw = |be: &mut B, rng: &mut Rng| -> BResult<Option<B::Buf>> {
            if aug_cfg.mode == AugmentMode::None {
                return Ok(None);
            }
            let prm = augment::sample(&aug_cfg, aug_p, n, r, rng);
            be.upload(&prm, "augment params").map(Some)
        };
        let augmented = |be: &mut B, x: &B::Buf, prm: &Option<B::Buf>| -> BResult<Option<B::Buf>> {
            match prm {
                Some(p) => augment::forward(be, &shape, x, p).map(Some),
                None => Ok(None),
            }
        };

        // ---- G phase ----
        self.g_opt.zero_grads(be)?;
        let z = self.latents();
        let mt = self.g.map(be, &self.gp, &z, n)?;
        let tape = self.g.synthesize(be, &self.gp, mt.w(), n, &plan)?;
        let prm_g = draw(be, &mut self.rng)?;
        let fake_g = augmented(be, tape.img(), &prm_g)?;
        let d_in = fake_g.as_ref().unwrap_or(tape.img());
        let dt = self.d.forward(be, &self.dp, d_in, n)?;
        let (g_losses, dlogit) = Self::logistic(be, dt.logits(), n, -1.0)?;
        let dimg = be.zeros(n * 3 * r * r, "dimg")?;
        for (sp, b) in self.d_scratch.specs.iter().zip(&self.d_scratch.bufs) {
            be.write(b, &vec![0.0; sp.len()])?;
        }
        self.d.backward(
            be,
            &self.dp,
            d_in,
            &dt,
            &dlogit,
            &self.d_scratch,
            Some(&dimg),
        )?;
        // Through the augmentation back to G's image.
        let dimg = match &prm_g {
            Some(p) => augment::backward(be, &shape, &dimg, p)?,
            None => dimg,
        };
        let dw = self.g.synthesize_backward(
            be,
            &self.gp,
            mt.w(),
            &plan,
            &tape,
            &dimg,
            &self.g_opt.grads,
        )?;
        self.g
            .map_backward(be, &self.gp, &mt, &dw, &self.g_opt.grads)?;
        let g_loss = mean(&g_losses);
        if !g_loss.is_finite() || self.g_opt.nonfinite(be)? > 0 {
            return Err(TrainError::NonFinite {
                step: next,
                what: "the generator's loss or gradients".into(),
            });
        }

        // ---- D phase (computed before either update is applied) ----
        self.d_opt.zero_grads(be)?;
        let z = self.latents();
        let mt2 = self.g.map(be, &self.gp, &z, n)?;
        // No backward runs through G here: its forward keeps nothing, so it takes the fused
        // blocks where the backend has them (the same function, another summation order).
        let fake = self.g.synthesize_fast(be, &self.gp, &[mt2.w()], n, &plan)?;
        let prm_f = draw(be, &mut self.rng)?;
        let fake_d = augmented(be, fake.img(), &prm_f)?;
        let fake_in = fake_d.as_ref().unwrap_or(fake.img());
        let dt_fake = self.d.forward(be, &self.dp, fake_in, n)?;
        let (fake_losses, dl_fake) = Self::logistic(be, dt_fake.logits(), n, 1.0)?;
        self.d.backward(
            be,
            &self.dp,
            fake_in,
            &dt_fake,
            &dl_fake,
            &self.d_opt.grads,
            None,
        )?;
        let xr = be.upload(reals, "reals")?;
        // The reals augmented as the fakes are; the R1 step below takes these too.
        let prm_r = draw(be, &mut self.rng)?;
        let xr = augmented(be, &xr, &prm_r)?.unwrap_or(xr);
        let dt_real = self.d.forward(be, &self.dp, &xr, n)?;
        let (real_losses, dl_real) = Self::logistic(be, dt_real.logits(), n, -1.0)?;
        self.d.backward(
            be,
            &self.dp,
            &xr,
            &dt_real,
            &dl_real,
            &self.d_opt.grads,
            None,
        )?;
        let (lf, lr) = (mean(&fake_losses), mean(&real_losses));
        if !(lf + lr).is_finite() || self.d_opt.nonfinite(be)? > 0 {
            return Err(TrainError::NonFinite {
                step: next,
                what: "the discriminator's loss or gradients".into(),
            });
        }
        let d_fake = mean(&be.read(dt_fake.logits())?);
        let real_logits = be.read(dt_real.logits())?;
        let d_real = mean(&real_logits);

        // ---- updates ----
        self.g_opt.apply(be, &self.gp)?;
        self.d_opt.apply(be, &self.dp)?;

        // ---- lazy R1 on the reals, every r1_interval steps, as its own D update ----
        let mut r1 = None;
        if self.cfg.r1_gamma > 0.0
            && self.cfg.r1_interval > 0
            && next.is_multiple_of(self.cfg.r1_interval)
        {
            self.d_opt.zero_grads(be)?;
            let pen = self.d.r1_backward(
                be,
                &self.dp,
                &xr,
                n,
                self.cfg.r1_gamma,
                self.cfg.r1_interval as f32,
                &self.d_opt.grads,
            )?;
            if !pen.is_finite() || self.d_opt.nonfinite(be)? > 0 {
                return Err(TrainError::NonFinite {
                    step: next,
                    what: "the R1 penalty or its gradients".into(),
                });
            }
            self.d_opt.apply(be, &self.dp)?;
            r1 = Some(pen);
        }
        self.g
            .update_w_avg(be, &self.gp, mt.w(), n, self.cfg.w_avg_beta)?;
        self.aug.observe(&aug_cfg, &real_logits, n, next);
        self.step = next;
        self.images += n as u64;
        let beta = self.ema_beta();
        for (i, s) in self.gp.specs.iter().enumerate() {
            if s.trainable {
                be.ema_update(&self.gp.bufs[i], &self.g_ema.bufs[i], beta, s.len())?;
            } else {
                be.copy(&self.gp.bufs[i], &self.g_ema.bufs[i], s.len())?;
            }
        }
        be.flush()?;
        Ok(StepStats {
            step: self.step,
            images: self.images,
            g_loss,
            d_loss: lf + lr,
            d_real,
            d_fake,
            r1,
            aug_p: aug_p as f32,
        })
    }
}
