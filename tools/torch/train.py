#!/usr/bin/env python3
"""Train an INR-GAN generator at scale with PyTorch DDP; the output opens in the explorer.

    torchrun --standalone --nproc_per_node=N tools/torch/train.py --data emoji:smileys \\
        --preset emoji32-smooth --out RUN --kimg 200     # N GPUs (nccl)
    python3 -m torch.distributed.run --standalone --nproc_per_node=2 tools/torch/train.py \\
        --data emoji:smileys --preset tiny --out RUN --kimg 0.2 --device cpu   # gloo on the CPU
    python3 tools/torch/train.py ... (no launcher: one process, no process group)

The model is the peer's (tools/peer/inrgan_peer.py: our generator, discriminator and both links,
checked against our renderer); the recipe and defaults are `inrgan train`'s: non-saturating
logistic loss, lazy R1 (gamma 1 every 16 D steps, its own D update), Adam (0, 0.99) with the
lazy-regularisation rescaling (G 4, D 16), lr 0.0025, batch 32, EMA half-life 10 kimg with a
0.05 ramp-up, w_avg beta 0.995, G and D phases both on the old parameters, x-flip, DiffAugment
(fixed below 10,000 images, none above; --augment), the data order of our batcher.

Distribution (StyleGAN2-ADA's way): the global batch is split across ranks (per-rank batch =
global / world); G (mapping + synthesis) and D are wrapped in DistributedDataParallel and frozen
phase by phase (requires_grad), the frozen network runs under no_sync; D's fake pass accumulates
under no_sync and the real pass syncs the sum; the R1 pass adds `logits * 0` so every D parameter
takes part. Every random number of a step (latents, augmentation, the batch order) is drawn for
the whole global batch on every rank from (seed, step), and each rank takes its slice, chosen so
that its minibatch-stddev groups are groups of the single-process batch: a run on W ranks
computes the step a 1-process run of the same global batch computes (up to summation order). The
w_avg update uses the all-reduced mean of w; EMA and w_avg are therefore identical on every rank.
Rank 0 writes everything, atomically (see tools/torch/README.md for the run folder).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.distributed as dist  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.parallel import DistributedDataParallel as DDP  # noqa: E402

sys.dont_write_bytecode = True
_HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(_HERE.parent / "peer"))
sys.path.insert(0, str(_HERE))
import inrgan_peer as P  # noqa: E402
import datasets  # noqa: E402
import diffaugment as A  # noqa: E402
import run_io  # noqa: E402

SAMPLE_SEEDS = list(range(16))
KEEP = 3


# --------------------------------------------------------------------------------------------
# distribution
# --------------------------------------------------------------------------------------------


class Dist:
    def __init__(self, device_arg: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        want_cuda = device_arg == "cuda" or (device_arg == "auto" and torch.cuda.is_available())
        if want_cuda:
            torch.cuda.set_device(self.local_rank)
            self.device = torch.device("cuda", self.local_rank)
        else:
            self.device = torch.device("cpu")
        self.on = self.world > 1
        if self.on:
            dist.init_process_group("nccl" if want_cuda else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def all_sum(self, t: torch.Tensor) -> torch.Tensor:
        if self.on:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t

    def barrier(self):
        if self.on:
            dist.barrier()

    def close(self):
        if self.on:
            dist.barrier()
            dist.destroy_process_group()


def rank_slice(n: int, world: int, rank: int, group: int) -> list:
    """Global indices of rank ``rank``'s ``n / world`` images. The minibatch stddev groups a batch
    of m as ``reshape(g, m / g)`` (image i in group i mod m/g): local image l of rank r is global
    image ``(r q + l mod q) + (l div q) Q`` (q = m/g, Q = n/g), so each local group is a group of
    the whole batch. Contiguous slices when the sizes do not divide."""
    m = n // world
    g = max(1, min(group, m))
    if m % g or n % g or max(1, min(group, n)) != g:
        return list(range(rank * m, (rank + 1) * m))
    q, Q = m // g, n // g
    return [(rank * q + l % q) + (l // q) * Q for l in range(m)]


# --------------------------------------------------------------------------------------------
# networks
# --------------------------------------------------------------------------------------------


class GTrain(torch.nn.Module):
    """G's training forward for DDP: z -> (image [b, 3, R, R] on the training plan, w)."""

    def __init__(self, G: P.Generator):
        super().__init__()
        self.G = G

    def forward(self, z):
        w = self.G.map(z)
        img = self.G.synthesize(w, self.G._training_plan())
        R = self.G.cfg["resolution"]
        return img.view(z.shape[0], 3, R, R), w


class DOut(torch.nn.Module):
    """D for DDP; with ``r1`` also returns d logits / d x, with the graph kept (the R1 pass)."""

    def __init__(self, D: P.Discriminator):
        super().__init__()
        self.D = D

    def forward(self, x, r1: bool = False):
        if not r1:
            return self.D(x)
        x = x.detach().requires_grad_(True)
        logits = self.D(x)
        (g,) = torch.autograd.grad(logits.sum(), x, create_graph=True)
        return logits, g


def values_of(net) -> dict:
    return {s[0]: net.P(s[0]).detach().cpu().numpy().copy() for s in net.specs}


def state_hash(*nets) -> str:
    h = hashlib.sha256()
    for net in nets:
        for s in net.specs:
            h.update(s[0].encode())
            h.update(net.P(s[0]).detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------


class Run:
    def __init__(self, args, d: Dist):
        self.args, self.d = args, d
        self.out = Path(args.out)
        cfg = P.load_preset(args.preset)
        self.cfg = cfg
        R = cfg["resolution"]
        if args.batch % d.world:
            raise SystemExit(f"--batch {args.batch} does not split over {d.world} ranks")
        self.n, self.m = args.batch, args.batch // d.world
        images, names, skipped = datasets.open_dataset(args.data, R)
        if d.main and skipped:
            print(f"warning: skipped {len(skipped)} file(s) of {args.data} (first: {skipped[0][0]}: {skipped[0][1]})")
        self.images = torch.from_numpy(images)
        self.n_images = len(images)
        dev = d.device
        t = time.time()
        self.G = P.Generator(cfg, P.init_values(P.generator_specs(cfg), args.seed), device=dev)
        self.D = P.Discriminator(cfg, P.init_values(P.discriminator_specs(cfg), args.seed + 1), device=dev)
        self.G_ema = P.Generator(cfg, values_of(self.G), device=dev)
        for p in self.G_ema.parameters():
            p.requires_grad_(False)
        if d.main:
            print(f"{cfg['name']}: initial weights drawn in {time.time() - t:.1f} s")
        self.g_params = [self.G.P(s[0]) for s in self.G.specs if s[3]]
        self.d_params = list(self.D.parameters())

        def adam(params, lr, interval):
            ratio = interval / (interval + 1.0)
            return torch.optim.Adam(params, lr=lr * ratio, betas=(0.0, 0.99 ** ratio), eps=1e-8)

        self.r1_interval = 16
        self.g_opt = adam(self.g_params, args.lr_g, 4)
        self.d_opt = adam(self.d_params, args.lr_d, self.r1_interval)
        self.aug_cfg = (A.AugmentConfig.with_mode(args.augment) if args.augment
                        else A.AugmentConfig.default_for(self.n_images))
        if args.cutout is not None:
            self.aug_cfg.cutout = args.cutout
        self.aug = A.AugmentState.new(self.aug_cfg)
        self.step, self.images_done, self.speed = 0, 0, None
        self.history = []  # (images, name, value)
        if args.resume:
            self._resume()
        # DDP wrappers (StyleGAN2-ADA: requires_grad on while wrapping, then off; phases turn
        # their network on). Single process: the bare modules.
        self.g_train, self.d_run = GTrain(self.G), DOut(self.D)
        if d.on:
            ids = [d.local_rank] if dev.type == "cuda" else None
            self._set(self.g_params, True)
            self._set(self.d_params, True)
            import inspect

            # D's only buffer is the constant blur kernel: no buffer syncing in the forward.
            kw = (dict(forward_sync_buffers=False) if "forward_sync_buffers" in inspect.signature(DDP.__init__).parameters
                  else dict(broadcast_buffers=False))
            self.g_train = DDP(self.g_train, device_ids=ids, **kw)
            self.d_run = DDP(self.d_run, device_ids=ids, **kw)
        self._set(self.g_params, False)
        self._set(self.d_params, False)
        self.slice = rank_slice(self.n, d.world, d.rank, cfg["discriminator"]["mbstd_group"])
        self.batcher = datasets.Batcher(self.n_images, args.seed, not args.no_mirror, self.images_done)

    # -- helpers ---------------------------------------------------------------------------

    @staticmethod
    def _set(params, on):
        for p in params:
            p.requires_grad_(on)

    def _nosync(self, mod):
        import contextlib

        return mod.no_sync() if isinstance(mod, DDP) else contextlib.nullcontext()

    def _draws(self, step: int):
        """Everything random of global step ``step`` (1-based), for the whole global batch."""
        rng = np.random.default_rng([self.args.seed, step, 0x1A2B])
        n, zd, R = self.n, self.cfg["z_dim"], self.cfg["resolution"]
        p = self.aug.prob(self.aug_cfg)
        u = lambda: float(rng.random())  # noqa: E731
        z1 = rng.standard_normal((n, zd), dtype=np.float32)
        prm_g = A.sample(self.aug_cfg, p, n, R, u) if self.aug_cfg.mode != "none" else None
        z2 = rng.standard_normal((n, zd), dtype=np.float32)
        prm_f = A.sample(self.aug_cfg, p, n, R, u) if self.aug_cfg.mode != "none" else None
        prm_r = A.sample(self.aug_cfg, p, n, R, u) if self.aug_cfg.mode != "none" else None
        return z1, prm_g, z2, prm_f, prm_r, p

    def _local(self, a):
        if a is None:
            return None
        return torch.from_numpy(np.ascontiguousarray(a[self.slice])).to(self.d.device)

    def _reals(self):
        idx, flips = self.batcher.next(self.n)
        mine = [(idx[i], flips[i]) for i in self.slice]
        x = self.images[[i for i, _ in mine]].clone()
        f = torch.tensor([fl for _, fl in mine])
        if f.any():
            x[f] = x[f].flip(-1)
        return x.to(self.d.device)

    # -- one step --------------------------------------------------------------------------

    def train_step(self) -> dict:
        d, n, m = self.d, self.n, self.m
        nxt = self.step + 1
        z1, prm_g, z2, prm_f, prm_r, aug_p = self._draws(nxt)
        z1, z2 = self._local(z1), self._local(z2)
        prm_g, prm_f, prm_r = self._local(prm_g), self._local(prm_f), self._local(prm_r)
        aug = (lambda x, prm: A.augment(x, prm)) if self.aug_cfg.mode != "none" else (lambda x, prm: x)
        reals = self._reals()

        # ---- G phase: mean softplus(-D(aug(G(z1)))), gradients for G only ----
        self.g_opt.zero_grad(set_to_none=True)
        self._set(self.g_params, True)
        fake, w = self.g_train(z1)
        with self._nosync(self.d_run):
            logits = self.d_run(aug(fake, prm_g))
        g_loss = F.softplus(-logits).mean()
        g_loss.backward()
        self._set(self.g_params, False)

        # ---- D phase, on the old G and D ----
        self.d_opt.zero_grad(set_to_none=True)
        self._set(self.d_params, True)
        with torch.no_grad():
            fake2, _ = self.g_train(z2)
        with self._nosync(self.d_run):
            lf_logits = self.d_run(aug(fake2, prm_f))
            lf = F.softplus(lf_logits).mean()
            lf.backward()
        xr = aug(reals, prm_r).detach()
        lr_logits = self.d_run(xr)
        lr = F.softplus(-lr_logits).mean()
        lr.backward()  # syncs the accumulated fake + real gradients
        for p in self.g_params + self.d_params:
            if p.grad is not None:
                torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)
        self.g_opt.step()
        self.d_opt.step()

        # ---- lazy R1 on the (augmented) reals, its own D update ----
        r1 = None
        if self.args.gamma > 0 and nxt % self.r1_interval == 0:
            self.d_opt.zero_grad(set_to_none=True)
            r_logits, g = self.d_run(xr, True)
            pen = g.square().sum(dim=[1, 2, 3]).mean()
            (r_logits * 0).sum().add(pen * (self.args.gamma / 2) * self.r1_interval).backward()
            for p in self.d_params:
                if p.grad is not None:
                    torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)
            self.d_opt.step()
            r1 = pen.detach()
        self._set(self.d_params, False)

        # ---- statistics, w_avg, EMA (identical on every rank) ----
        with torch.no_grad():
            stats = torch.stack([g_loss.detach(), (lf + lr).detach(), lr_logits.detach().mean(),
                                 lf_logits.detach().mean(), r1 if r1 is not None else torch.zeros((), device=d.device),
                                 torch.sign(lr_logits.detach()).sum()]).double()
            stats[:5] /= d.world
            wsum = w.detach().double().sum(0)
            d.all_sum(stats)
            d.all_sum(wsum)
            wa = self.G.P("g.mapping.w_avg")
            wa.copy_((wsum / n).to(wa.dtype).lerp(wa, self.args.w_avg_beta))
            self.aug.observe(self.aug_cfg, float(stats[5]), n, n, nxt)
            self.step, self.images_done = nxt, self.images_done + n
            ema_nimg = self.args.ema_kimg * 1000.0
            ema_nimg = min(ema_nimg, self.images_done * 0.05)
            beta = 0.5 ** (n / max(ema_nimg, 1e-8))
            for s in self.G.specs:
                src, dst = self.G.P(s[0]), self.G_ema.P(s[0])
                if s[3]:
                    dst.copy_(src.lerp(dst, beta))
                else:
                    dst.copy_(src)
        st = stats.tolist()
        return dict(step=nxt, images=self.images_done, g_loss=run_io.f32(st[0]), d_loss=run_io.f32(st[1]),
                    d_real=run_io.f32(st[2]), d_fake=run_io.f32(st[3]),
                    r1=run_io.f32(st[4]) if r1 is not None else None, aug_p=run_io.f32(aug_p))

    # -- outputs (rank 0) ------------------------------------------------------------------

    @torch.no_grad()
    def samples(self, seeds) -> np.ndarray:
        G = self.G_ema
        z = np.stack([P.latent(self.cfg, s) for s in seeds])
        w = G.map_truncated(z, 1.0)
        img = G.synthesize(w, G._training_plan())
        R = self.cfg["resolution"]
        return img.view(len(seeds), 3, R, R).cpu().numpy()

    def write_latest(self):
        facts = run_io.ship_facts(self.images_done, self.step, self.args.data,
                                  (self.history[-1][1], self.history[-1][2]) if self.history else None)
        run_io.save_weights(self.out / "latest.safetensors", self.cfg, values_of(self.G_ema), facts,
                            half=not self.args.f32)

    def save_checkpoint(self):
        name = f"ckpt-{self.step:08d}"
        final = self.out / name
        tmp = self.out / f".{name}.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        state = dict(
            step=self.step, images=self.images_done, speed=self.speed, history=self.history,
            G=values_of(self.G), D=values_of(self.D), G_ema=values_of(self.G_ema),
            g_opt=self.g_opt.state_dict(), d_opt=self.d_opt.state_dict(),
            aug_cfg=A.config_dict(self.aug_cfg), aug=vars(self.aug).copy(),
            args=vars(self.args), world=self.d.world, preset=self.cfg["name"],
        )
        torch.save(state, tmp / "state.pt")
        run_io.save_weights(tmp / "g_ema.safetensors", self.cfg, state["G_ema"], half=False)
        (tmp / "g_ema.ron").unlink(missing_ok=True)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        self.write_latest()
        old = sorted(p for p in self.out.glob("ckpt-*") if p.is_dir())
        for p in old[:-KEEP]:
            shutil.rmtree(p, ignore_errors=True)
        return final

    def _resume(self):
        cks = sorted(p for p in self.out.glob("ckpt-*") if (p / "state.pt").exists())
        if not cks:
            if self.d.main:
                print(f"--resume: no checkpoint in {self.out}; starting fresh")
            return
        st = torch.load(cks[-1] / "state.pt", map_location="cpu", weights_only=False)
        if st["preset"] != self.cfg["name"]:
            raise SystemExit(f"{cks[-1]} is a {st['preset']} run, not {self.cfg['name']}")
        with torch.no_grad():
            for net, key in ((self.G, "G"), (self.D, "D"), (self.G_ema, "G_ema")):
                for s in net.specs:
                    net.P(s[0]).copy_(torch.from_numpy(st[key][s[0]]))
        self.g_opt.load_state_dict(st["g_opt"])
        self.d_opt.load_state_dict(st["d_opt"])
        if not self.args.augment and self.args.cutout is None:
            self.aug_cfg = A.AugmentConfig(**st["aug_cfg"])
            self.aug = A.AugmentState(**st["aug"])
        elif self.aug_cfg.mode == "adaptive" and st["aug_cfg"]["mode"] == "adaptive":
            self.aug = A.AugmentState(**st["aug"])
        self.step, self.images_done = st["step"], st["images"]
        self.speed, self.history = st["speed"], [tuple(h) for h in st["history"]]
        if self.d.main:
            print(f"resumed {cks[-1]} (step {self.step}, {self.images_done} images)")

    # -- loop ------------------------------------------------------------------------------

    def loop(self):
        a, d = self.args, self.d
        total = int(a.kimg * 1000)
        every = max(int(a.checkpoint_kimg * 1000), 1)
        next_ckpt = (self.images_done // every + 1) * every
        metrics = self.out / "metrics.jsonl"
        if d.main:
            self.out.mkdir(parents=True, exist_ok=True)
            run_io.write_atomic(self.out / "run.json", json.dumps(dict(
                tool="tools/torch/train.py", args=vars(a), world=d.world, per_rank_batch=self.m,
                device=str(d.device), backend=dist.get_backend() if d.on else None,
                torch=torch.__version__, augment=A.config_dict(self.aug_cfg), images=self.n_images,
                config=run_io.config_to_ron(self.cfg)), indent=2).encode())
            print(f"{self.cfg['name']} on {args_data(a)} ({self.n_images} images), {d.world} rank(s) x "
                  f"batch {self.m} on {d.device}, augment {self.aug_cfg.mode}, to {total} images", flush=True)
        last_ckpt_step = None
        while self.images_done < total:
            t0 = time.time()
            s = self.train_step()
            if d.device.type == "cuda":
                torch.cuda.synchronize()
            ips = self.n / max(time.time() - t0, 1e-9)
            self.speed = ips if self.speed is None else 0.9 * self.speed + 0.1 * ips
            s["img_per_s"] = self.speed
            if d.main:
                run_io.append_jsonl(metrics, s)
                if a.verbose or self.step % 50 == 0 or self.step == 1:
                    print(f"step {self.step} images {self.images_done} g {s['g_loss']:.4f} d {s['d_loss']:.4f} "
                          f"{self.speed:.1f} img/s", flush=True)
                if a.sample_every > 0 and self.step % a.sample_every == 0:
                    R = self.cfg["resolution"]
                    run_io.write_grid(self.out / f"samples-{self.step:08d}.png", self.samples(SAMPLE_SEEDS),
                                      len(SAMPLE_SEEDS), R, R)
            if self.images_done >= next_ckpt:
                next_ckpt += every
                if d.main:
                    self.save_checkpoint()
                    last_ckpt_step = self.step
                d.barrier()
        if d.main:
            if last_ckpt_step != self.step:
                self.save_checkpoint()
            R = self.cfg["resolution"]
            run_io.write_grid(self.out / f"samples-{self.step:08d}.png", self.samples(SAMPLE_SEEDS),
                              len(SAMPLE_SEEDS), R, R)
            print(f"finished: step {self.step}, {self.images_done} images; wrote {self.out / 'latest.safetensors'}",
                  flush=True)
        if a.sync_report:
            self.sync_report()

    def sync_report(self):
        """Every rank's hash of G, D and G_ema (and w_avg): RUN/sync.json (rank 0)."""
        h = state_hash(self.G, self.D, self.G_ema)
        hashes = [None] * self.d.world
        if self.d.on:
            dist.all_gather_object(hashes, h)
        else:
            hashes = [h]
        if self.d.main:
            run_io.write_atomic(self.out / "sync.json", json.dumps(
                dict(step=self.step, hashes=hashes, identical=len(set(hashes)) == 1), indent=2).encode())


def args_data(a):
    return a.data


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="emoji", help="emoji, emoji:CATEGORY, or a folder or .zip of images")
    ap.add_argument("--preset", default="emoji32-smooth")
    ap.add_argument("--out", required=True, help="run folder")
    ap.add_argument("--kimg", type=float, default=100.0, help="length in thousands of images shown to D")
    ap.add_argument("--resume", action="store_true", help="continue the newest ckpt-* in --out")
    ap.add_argument("--batch", type=int, default=32, help="global batch (split across ranks)")
    ap.add_argument("--lr-g", type=float, default=0.0025)
    ap.add_argument("--lr-d", type=float, default=0.0025)
    ap.add_argument("--gamma", type=float, default=1.0, help="R1 weight gamma (every 16 steps)")
    ap.add_argument("--ema-kimg", type=float, default=10.0)
    ap.add_argument("--w-avg-beta", type=float, default=0.995)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    ap.add_argument("--checkpoint-kimg", type=float, default=10.0)
    ap.add_argument("--sample-every", type=int, default=200, help="sample grid interval in steps")
    ap.add_argument("--no-mirror", action="store_true", help="turn off x-flip")
    ap.add_argument("--augment", choices=["none", "fixed", "adaptive"], default=None,
                    help="default: fixed below 10,000 images, none above; on --resume the checkpoint's")
    ap.add_argument("--cutout", type=float, default=None,
                    help="side of the cut square as a fraction of the image side, 0 to leave cutout out "
                         "(DiffAugment's color,translation: the built-in model's recipe); default 0.5; "
                         "with --resume, it and --augment replace the checkpoint's augmentation")
    ap.add_argument("--f32", action="store_true", help="latest.safetensors in f32 (default f16, as `inrgan ship`)")
    ap.add_argument("--threads", type=int, default=0, help="CPU threads per rank (default cores / local ranks)")
    ap.add_argument("--sync-report", action="store_true", help="write RUN/sync.json: every rank's weight hash")
    ap.add_argument("--verbose", action="store_true")
    a = ap.parse_args(argv)
    if a.cutout is not None and not 0.0 <= a.cutout <= 1.0:
        ap.error(f"--cutout {a.cutout}: a fraction of the image side in [0, 1]")
    d = Dist(a.device)
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    torch.set_num_threads(a.threads or max(1, (os.cpu_count() or 1) // local))
    try:
        Run(a, d).loop()
    finally:
        d.close()


if __name__ == "__main__":
    main()
