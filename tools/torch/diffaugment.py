"""DiffAugment as our trainer does it (``src/train/augment.rs``, ``src/reference/augment.rs``),
in torch (autograd gives the backward that ours writes by hand; the pipeline is affine in x).

Per image, three ops each fire with probability p:
- colour: brightness U(-1/2, 1/2), saturation U(0, 2), contrast U(1/2, 3/2):
  ``z1 = s (x - mean_c x) + mean_c x + b``; ``z2 = k (z1 - mean_chw z1) + mean_chw z1``;
- translation: integer shifts in [-R/8, R/8] per axis with edge-replicate padding:
  ``z3[i, j] = z2[clamp(i - ty), clamp(j - tx)]``;
- cutout: a square of side R/2 set to 0, its centre uniform over [0, R].
``sample`` draws the parameters exactly as ``augment::sample`` (10 uniforms per image, all drawn
whether or not an op fires) from any ``uniform()`` source; the adaptive probability follows ADA's
heuristic (``AugmentState::observe``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, asdict

import numpy as np
import torch

AUG_PARAMS = 8  # brightness, saturation, contrast, tx, ty, cut_x, cut_y, cut


@dataclass
class AugmentConfig:
    mode: str = "none"  # none | fixed | adaptive
    p: float = 1.0
    color: bool = True
    translation: float = 0.125
    cutout: float = 0.5
    target: float = 0.6
    interval: int = 4
    speed_kimg: float = 500.0

    @staticmethod
    def with_mode(mode: str) -> "AugmentConfig":
        mode = {"off": "none", "on": "fixed", "diffaugment": "fixed", "ada": "adaptive"}.get(mode.lower(), mode.lower())
        if mode not in ("none", "fixed", "adaptive"):
            raise ValueError(f"unknown augmentation {mode!r} (none, fixed or adaptive)")
        return AugmentConfig(mode=mode, p=0.0 if mode == "adaptive" else 1.0)

    @staticmethod
    def default_for(n: int) -> "AugmentConfig":
        """DiffAugment below 10,000 images, none above (``AugmentConfig::default_for``)."""
        return AugmentConfig.with_mode("fixed" if n < 10_000 else "none")


@dataclass
class AugmentState:
    p: float = 0.0
    sign_sum: float = 0.0
    sign_count: int = 0

    @staticmethod
    def new(cfg: AugmentConfig) -> "AugmentState":
        return AugmentState(p=cfg.p)

    def prob(self, cfg: AugmentConfig) -> float:
        return {"none": 0.0, "fixed": cfg.p, "adaptive": self.p}[cfg.mode]

    def observe(self, cfg: AugmentConfig, sign_sum: float, count: int, batch: int, step: int) -> None:
        """``AugmentState::observe`` given the sum of sign(D(real)) over the global batch."""
        if cfg.mode != "adaptive":
            return
        self.sign_sum += sign_sum
        self.sign_count += count
        if cfg.interval > 0 and step % cfg.interval == 0 and self.sign_count > 0:
            r = self.sign_sum / self.sign_count
            adjust = math.copysign(1.0, r - cfg.target) * (batch * cfg.interval) / (cfg.speed_kimg * 1000.0)
            if r == cfg.target:
                adjust = 0.0
            self.p = min(max(self.p + adjust, 0.0), 1.0)
            self.sign_sum, self.sign_count = 0.0, 0


def sample(cfg: AugmentConfig, p: float, batch: int, res: int, uniform) -> np.ndarray:
    """``augment::sample``: ``[batch, AUG_PARAMS]`` float32; ``uniform()`` returns U[0, 1)."""
    out = np.zeros((batch, AUG_PARAMS), np.float32)
    shift = int(round(res * cfg.translation))
    side = int(round(res * cfg.cutout))
    for b in range(batch):
        a = [0.0, 1.0, 1.0, 0, 0, 0, 0, 0]
        fire = [uniform(), uniform(), uniform()]
        bri, sat, con = uniform(), uniform(), uniform()
        tx, ty = uniform(), uniform()
        cx, cy = uniform(), uniform()
        if cfg.color and fire[0] < p:
            a[0], a[1], a[2] = bri - 0.5, 2.0 * sat, con + 0.5
        if shift > 0 and fire[1] < p:
            pick = lambda u: int(math.floor(u * (2 * shift + 1))) - shift  # noqa: E731
            a[3], a[4] = pick(tx), pick(ty)
        if side > 0 and fire[2] < p:
            pick = lambda u: int(math.floor(u * (res + 1.0))) - side // 2  # noqa: E731
            a[5], a[6], a[7] = pick(cx), pick(cy), side
        out[b] = np.array(a, np.float32)
    return out


def augment(x: torch.Tensor, prm: torch.Tensor) -> torch.Tensor:
    """``x [batch, C, H, W]`` augmented by ``prm [batch, AUG_PARAMS]`` (differentiable in x)."""
    b, c, h, w = x.shape
    prm = prm.to(device=x.device, dtype=x.dtype)
    bri, sat, con = (prm[:, i].view(b, 1, 1, 1) for i in range(3))
    m = x.mean(dim=1, keepdim=True)
    z1 = sat * (x - m) + m + bri
    mu = z1.mean(dim=(1, 2, 3), keepdim=True)
    z2 = con * (z1 - mu) + mu
    ip = prm[:, 3:].round().long()
    tx, ty, cx, cy, n = (ip[:, i] for i in range(5))
    rows = torch.arange(h, device=x.device)
    cols = torch.arange(w, device=x.device)
    ri = (rows[None, :] - ty[:, None]).clamp(0, h - 1)  # [b, h]
    ci = (cols[None, :] - tx[:, None]).clamp(0, w - 1)  # [b, w]
    bi = torch.arange(b, device=x.device)[:, None, None]
    z3 = z2.permute(0, 2, 3, 1)[bi, ri[:, :, None], ci[:, None, :]].permute(0, 3, 1, 2)  # [b, c, h, w]
    inside_r = (rows[None, :] >= cy[:, None]) & (rows[None, :] < (cy + n)[:, None])
    inside_c = (cols[None, :] >= cx[:, None]) & (cols[None, :] < (cx + n)[:, None])
    cut = (inside_r[:, :, None] & inside_c[:, None, :] & (n > 0)[:, None, None])[:, None]
    return z3.masked_fill(cut, 0.0)


def config_dict(cfg: AugmentConfig) -> dict:
    return asdict(cfg)
