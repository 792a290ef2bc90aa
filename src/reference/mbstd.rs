//! Minibatch standard deviation layer (StyleGAN2-ADA `MinibatchStdLayer`): appends, to every
//! sample, `num_channels` constant feature maps holding the average standard deviation of the
//! features across its group of samples.

use super::{Float, c};

/// The `1e-8` added to the variance before the square root.
pub const MBSTD_EPS: f64 = 1e-8;

/// Shape of the layer: `X [batch, channels, height, width]`, groups of `group` samples
/// (`batch % group == 0`; callers pass `min(G, batch)`), `num_channels` statistics (`F`,
/// `channels % F == 0`). Sample `n = g * M + m` with `M = batch / group` (the official
/// `reshape(G, -1, F, c, H, W)`); output `Y [batch, channels + F, height, width]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MbstdShape {
    pub batch: usize,
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub group: usize,
    pub num_channels: usize,
}

impl MbstdShape {
    /// `M = batch / group`: the number of groups, each a set of samples `g * M + m`.
    pub fn groups(&self) -> usize {
        self.batch / self.group
    }

    /// Channels per statistic, `C / F`.
    pub fn channels_per_stat(&self) -> usize {
        self.channels / self.num_channels
    }

    /// `height * width`.
    pub fn pixels(&self) -> usize {
        self.height * self.width
    }

    /// Values in `X`.
    pub fn x_len(&self) -> usize {
        self.batch * self.channels * self.pixels()
    }

    /// Values in `Y`.
    pub fn y_len(&self) -> usize {
        self.batch * (self.channels + self.num_channels) * self.pixels()
    }

    /// Values in the statistics `[M, F]`.
    pub fn stat_len(&self) -> usize {
        self.groups() * self.num_channels
    }

    /// `None` when the shape is usable, else why not.
    pub fn problem(&self) -> Option<String> {
        if self.group == 0 || !self.batch.is_multiple_of(self.group) {
            return Some(format!(
                "mbstd: batch {} is not a multiple of the group size {}",
                self.batch, self.group
            ));
        }
        if self.num_channels == 0 || !self.channels.is_multiple_of(self.num_channels) {
            return Some(format!(
                "mbstd: channels {} are not a multiple of num_channels {}",
                self.channels, self.num_channels
            ));
        }
        if self.channels == 0 || self.pixels() == 0 {
            return Some(format!(
                "mbstd: empty feature map ({} channels, {}x{})",
                self.channels, self.height, self.width
            ));
        }
        None
    }
}

/// Index of `X[n, ch, q]` (`q` a pixel) in a map with `chans` channels.
fn at(s: &MbstdShape, chans: usize, n: usize, ch: usize, q: usize) -> usize {
    (n * chans + ch) * s.pixels() + q
}

/// The group mean and standard deviation of `x` at sample group `m`, channel `ch`, pixel `q`.
fn moments<F: Float>(s: &MbstdShape, x: &[F], m: usize, ch: usize, q: usize) -> (F, F) {
    let mm = s.groups();
    let inv_g = F::one() / c::<F>(s.group as f64);
    let mut mu = F::zero();
    for g in 0..s.group {
        mu = mu + x[at(s, s.channels, g * mm + m, ch, q)];
    }
    mu = mu * inv_g;
    let mut var = F::zero();
    for g in 0..s.group {
        let d = x[at(s, s.channels, g * mm + m, ch, q)] - mu;
        var = var + d * d;
    }
    (mu, (var * inv_g + c::<F>(MBSTD_EPS)).sqrt())
}

/// `stat[m, f]`: the mean over group `f`'s channels and the pixels of the group std.
pub fn mbstd_stat<F: Float>(s: &MbstdShape, x: &[F]) -> Vec<F> {
    let cpf = s.channels_per_stat();
    let mut stat = vec![F::zero(); s.stat_len()];
    for m in 0..s.groups() {
        for f in 0..s.num_channels {
            let mut acc = F::zero();
            for cc in 0..cpf {
                for q in 0..s.pixels() {
                    acc = acc + moments(s, x, m, f * cpf + cc, q).1;
                }
            }
            stat[m * s.num_channels + f] = acc / c::<F>((cpf * s.pixels()) as f64);
        }
    }
    stat
}

/// `Y = concat(X, stat[n mod M, f] broadcast over the pixels)` along the channels.
pub fn mbstd_forward<F: Float>(s: &MbstdShape, x: &[F]) -> Vec<F> {
    let stat = mbstd_stat(s, x);
    let (cy, mm) = (s.channels + s.num_channels, s.groups());
    let mut y = vec![F::zero(); s.y_len()];
    for n in 0..s.batch {
        for ch in 0..cy {
            for q in 0..s.pixels() {
                y[at(s, cy, n, ch, q)] = if ch < s.channels {
                    x[at(s, s.channels, n, ch, q)]
                } else {
                    stat[(n % mm) * s.num_channels + ch - s.channels]
                };
            }
        }
    }
    y
}

/// Gradient of [`mbstd_forward`]: `dX = dY[:, :C] + dstat[m, f] (x - mu) / (G std (C/F) H W)`
/// with `dstat[m, f] = sum_{g, pixels} dY[g M + m, C + f]`.
pub fn mbstd_backward<F: Float>(s: &MbstdShape, x: &[F], dy: &[F]) -> Vec<F> {
    let (cy, mm, cpf) = (
        s.channels + s.num_channels,
        s.groups(),
        s.channels_per_stat(),
    );
    let mut dstat = vec![F::zero(); s.stat_len()];
    for n in 0..s.batch {
        for f in 0..s.num_channels {
            for q in 0..s.pixels() {
                let i = (n % mm) * s.num_channels + f;
                dstat[i] = dstat[i] + dy[at(s, cy, n, s.channels + f, q)];
            }
        }
    }
    let denom = c::<F>((s.group * cpf * s.pixels()) as f64);
    let mut dx = vec![F::zero(); s.x_len()];
    for n in 0..s.batch {
        let m = n % mm;
        for ch in 0..s.channels {
            let ds = dstat[m * s.num_channels + ch / cpf];
            for q in 0..s.pixels() {
                let (mu, sd) = moments(s, x, m, ch, q);
                let xi = at(s, s.channels, n, ch, q);
                dx[xi] = dy[at(s, cy, n, ch, q)] + ds * (x[xi] - mu) / (denom * sd);
            }
        }
    }
    dx
}

/// The tangents `(mu_dot, std_dot)` of the group moments at `(m, ch, q)` along `xdot`:
/// `mu_dot = mean_g xdot`, `std_dot = sum_g (x_g - mu) xdot_g / (G std)`.
fn tangent_moments<F: Float>(
    s: &MbstdShape,
    x: &[F],
    xdot: &[F],
    m: usize,
    ch: usize,
    q: usize,
) -> (F, F) {
    let mm = s.groups();
    let (mu, sd) = moments(s, x, m, ch, q);
    let inv_g = F::one() / c::<F>(s.group as f64);
    let (mut md, mut acc) = (F::zero(), F::zero());
    for g in 0..s.group {
        let i = at(s, s.channels, g * mm + m, ch, q);
        md = md + xdot[i];
        acc = acc + (x[i] - mu) * xdot[i];
    }
    (md * inv_g, acc * inv_g / sd)
}

/// The tangent of [`mbstd_forward`] at `x` along `xdot` (forward-mode derivative): channels
/// below C copy `xdot`, channel C + f carries `stat_dot[m, f]` = the mean of `std_dot`.
pub fn mbstd_jvp<F: Float>(s: &MbstdShape, x: &[F], xdot: &[F]) -> Vec<F> {
    let (cy, mm, cpf) = (
        s.channels + s.num_channels,
        s.groups(),
        s.channels_per_stat(),
    );
    let mut sdot = vec![F::zero(); s.stat_len()];
    for m in 0..mm {
        for f in 0..s.num_channels {
            let mut acc = F::zero();
            for cc in 0..cpf {
                for q in 0..s.pixels() {
                    acc = acc + tangent_moments(s, x, xdot, m, f * cpf + cc, q).1;
                }
            }
            sdot[m * s.num_channels + f] = acc / c::<F>((cpf * s.pixels()) as f64);
        }
    }
    let mut y = vec![F::zero(); s.y_len()];
    for n in 0..s.batch {
        for ch in 0..cy {
            for q in 0..s.pixels() {
                y[at(s, cy, n, ch, q)] = if ch < s.channels {
                    xdot[at(s, s.channels, n, ch, q)]
                } else {
                    sdot[(n % mm) * s.num_channels + ch - s.channels]
                };
            }
        }
    }
    y
}

/// The tangent of [`mbstd_backward`] at `x` along `xdot`, with `dy` held fixed (the R1 double
/// backward): `dX_dot = dstat [(xdot - mu_dot) / std - (x - mu) std_dot / std²] / (G (C/F) H W)`.
pub fn mbstd_backward_jvp<F: Float>(s: &MbstdShape, x: &[F], xdot: &[F], dy: &[F]) -> Vec<F> {
    let (cy, mm, cpf) = (
        s.channels + s.num_channels,
        s.groups(),
        s.channels_per_stat(),
    );
    let mut dstat = vec![F::zero(); s.stat_len()];
    for n in 0..s.batch {
        for f in 0..s.num_channels {
            for q in 0..s.pixels() {
                let i = (n % mm) * s.num_channels + f;
                dstat[i] = dstat[i] + dy[at(s, cy, n, s.channels + f, q)];
            }
        }
    }
    let denom = c::<F>((s.group * cpf * s.pixels()) as f64);
    let mut out = vec![F::zero(); s.x_len()];
    for n in 0..s.batch {
        let m = n % mm;
        for ch in 0..s.channels {
            let ds = dstat[m * s.num_channels + ch / cpf];
            for q in 0..s.pixels() {
                let (mu, sd) = moments(s, x, m, ch, q);
                let (md, sdd) = tangent_moments(s, x, xdot, m, ch, q);
                let i = at(s, s.channels, n, ch, q);
                out[i] = ds * ((xdot[i] - md) / sd - (x[i] - mu) * sdd / (sd * sd)) / denom;
            }
        }
    }
    out
}
