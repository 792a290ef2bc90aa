#!/usr/bin/env python3
"""Agreement and speed of the PyTorch peer (inrgan_peer.py) against our `inrgan` binary.

    bench_peer.py check  --weights W.safetensors | --preset tiny   [--seed S --psi P --size N|WxH
                         --window x0,y0,x1,y1 --tile T --f64]: the three DEFAULT_WINDOWS unless
                         --window is given
    bench_peer.py time   --weights W | --preset emoji32            [--sizes 128,256,512,1024
                         --batch 32 --steps 16 --budget 60 --threads N]
    bench_peer.py all    check, then time; --json OUT.json
    bench_peer.py step1  --preset tiny --batch 8: step 1 of our `train` vs the peer (g_loss and
                         d_fake of the initial G and D: checks D and the training forward)
    bench_peer.py render (the peer alone, to a PNG and optionally a raw f32 file)

`--ours` is the inrgan binary (default /tmp/peer-inrgan, a copy of target/release/inrgan).
Run it niced on a shared machine: `nice -n 10 python3 tools/peer/bench_peer.py all ...`.
"""

from __future__ import annotations

import argparse
import statistics
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# On a loaded machine torch's OpenMP workers spin-wait at every barrier and lose their time slices
# to the other load: with 2 threads beside a 2-core job the peer ran 5-10x slower than with 1.
# Passive waiting (set before torch loads OpenMP) removes that; export another value to override.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch  # noqa: E402

sys.dont_write_bytecode = True  # no __pycache__ in the repository
sys.path.insert(0, str(Path(__file__).resolve().parent))
import inrgan_peer as P  # noqa: E402

FLOAT_TOL = 1e-3
# The training square, an extrapolation window and a zoom inside the square.
DEFAULT_WINDOWS = [[-1.0, -1.0, 1.0, 1.0], [-4.0, -4.0, 4.0, 4.0], [0.3, -0.7, 0.55, -0.2]]
STEP = 2.0 / 255.0  # one quantisation step in [-1, 1] units


# --------------------------------------------------------------------------------------------
# models
# --------------------------------------------------------------------------------------------


def peer_model(args, dtype=torch.float32):
    """(cfg, values, description) for --weights or --preset (random weights, seed 0, as our
    `load_model` draws them)."""
    if args.weights or args.preset == "builtin":
        path = args.weights or P.find_repo_root() / "assets" / "model" / "emoji.safetensors"
        cfg, values = P.load_weights(path)
        return cfg, values, f"weights {path}"
    cfg = P.load_preset(args.preset)
    t = time.time()
    values = P.init_values(P.generator_specs(cfg), 0)
    return cfg, values, f"preset {args.preset}, random weights (Rng seed 0, {time.time() - t:.1f} s to draw)"


def ours_render_help(ours: str) -> str:
    try:
        return subprocess.run([ours, "render", "--help"], capture_output=True, text=True, timeout=60).stdout
    except Exception:
        return ""


def ours_model_args(args):
    if args.weights:
        return ["--weights", str(args.weights)]
    if "`builtin`" in ours_render_help(args.ours):  # newer CLI: --preset NAME means random weights
        return ["--preset", args.preset]
    if args.preset == "builtin":
        return []
    builtin = P.find_repo_root() / "assets" / "model" / "emoji.safetensors"
    if builtin.exists():
        sys.exit(f"{builtin} exists: this `inrgan render --preset` would use it instead of random weights; "
                 "pass --weights")
    return ["--preset", args.preset]


def ours_train_help(ours: str) -> str:
    try:
        return subprocess.run([ours, "train", "--help"], capture_output=True, text=True, timeout=60).stdout
    except Exception:
        return ""


def ours_supports_raw(ours: str) -> bool:
    return "--raw" in ours_render_help(ours)


def read_png(path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(path).convert("RGB")).transpose(2, 0, 1).copy()  # [3, H, W] u8


def read_raw(path, width: int, height: int) -> np.ndarray:
    """The float dump `inrgan render --raw PATH` would write: little-endian f32, planar RGB
    [3, H, W], rows top-down, values before quantisation."""
    a = np.fromfile(path, dtype="<f4")
    if a.size != 3 * width * height:
        raise ValueError(f"{path}: {a.size} floats, expected 3 x {height} x {width}")
    return a.reshape(3, height, width)


def parse_size(s: str):
    if "x" in s:
        w, h = s.split("x")
        return int(w), int(h)
    return int(s), int(s)


def parse_window(s: str):
    v = [float(t) for t in s.split(",")]
    if len(v) != 4 or v[2] <= v[0] or v[3] <= v[1]:
        raise argparse.ArgumentTypeError("window: x0,y0,x1,y1 with x1 > x0 and y1 > y0")
    return v


# --------------------------------------------------------------------------------------------
# agreement
# --------------------------------------------------------------------------------------------


def check_one(args, cfg, values, window, width, height, f64=False) -> dict:
    """Ours and the peer on one latent/window/size; returns the comparison."""
    win_s = ",".join(repr(float(v)) for v in window)
    with tempfile.TemporaryDirectory() as td:
        png = Path(td) / "ours.png"
        raw = Path(td) / "ours.f32"
        cmd = [args.ours, "render", *ours_model_args(args), "--seed", str(args.seed), "--psi", str(args.psi),
               "--size", f"{width}x{height}", "--window", win_s, "--out", str(png),
               "--backend", args.backend, "--tile", str(args.tile)]
        if args.levels:
            cmd += ["--levels", str(args.levels)]
        has_raw = ours_supports_raw(args.ours)
        if has_raw:
            cmd += ["--raw", str(raw)]
        if "--supersample" in ours_render_help(args.ours):
            # Our render averages n x n samples per pixel when zoomed out past the training
            # density; the peer point-samples, so ask ours to as well.
            cmd += ["--supersample", "1"]
        t = time.time()
        r = subprocess.run(cmd, capture_output=True, text=True)
        t_ours = time.time() - t
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr}")
        ours_u8 = read_png(png)
        ours_f = read_raw(raw, width, height) if has_raw else None

    res = {}
    for name, dt in [("f32", torch.float32)] + ([("f64", torch.float64)] if f64 else []):
        G = P.Generator(cfg, values, dtype=dt)
        w = G.map_truncated(P.latent(cfg, args.seed)[None], args.psi)
        t = time.time()
        img = G.render(w, window, width, height, tile=args.tile, levels=args.levels or None).numpy()
        res[name] = (img, time.time() - t)
    peer, t_peer = res["f32"]
    peer_u8 = P.quantize(peer)
    d8 = np.abs(peer_u8.astype(np.int32) - ours_u8.astype(np.int32))
    # Bin check: our byte b holds x in [(b - 128) / 127.5, (b - 127) / 127.5) (unclamped bytes);
    # how far outside that interval does the peer's float fall?
    b = ours_u8.astype(np.float64)
    lo = np.where(b == 0, -np.inf, (b - 128.0) / 127.5)
    hi = np.where(b == 255, np.inf, (b - 127.0) / 127.5)
    pf = peer.astype(np.float64)
    outside = np.maximum(lo - pf, pf - hi).clip(min=0.0)
    out = dict(
        window=list(window), width=width, height=height, seed=args.seed, psi=args.psi,
        peer_range=[float(peer.min()), float(peer.max())],
        png_max_abs_diff_steps=int(d8.max()),
        png_max_abs_diff=float(d8.max()) * STEP,
        png_differing_values=int((d8 > 0).sum()),
        png_values=int(d8.size),
        unclamped_values=int(((peer > -1.0) & (peer < 1.0)).sum()),
        bin_max_outside=float(outside.max()),
        seconds_ours_render_wall=t_ours, seconds_peer_render=t_peer,
        raw_available=has_raw,
    )
    if "f64" in res:
        out["peer_f32_vs_f64_max_abs"] = float(np.abs(res["f64"][0] - peer).max())
    if ours_f is not None:
        out["float_max_abs_diff"] = float(np.abs(ours_f.astype(np.float64) - pf).max())
        out["agree"] = out["float_max_abs_diff"] <= FLOAT_TOL
        out["verdict"] = f"float max |diff| {out['float_max_abs_diff']:.2e} (tolerance {FLOAT_TOL:g})"
    else:
        out["agree"] = out["png_max_abs_diff_steps"] <= 1 and out["bin_max_outside"] <= FLOAT_TOL
        out["verdict"] = ("8-bit only (no --raw in our CLI): max diff "
                          f"{out['png_max_abs_diff_steps']} step(s), {out['png_differing_values']}/"
                          f"{out['png_values']} values differ ({out['unclamped_values']} unclamped); peer floats at most "
                          f"{out['bin_max_outside']:.1e} outside our byte's bin")
    return out


def cmd_check(args, windows=None):
    cfg, values, desc = peer_model(args)
    width, height = parse_size(args.size)
    windows = windows or [args.window]
    print(f"model: {cfg['name']} ({desc}); seed {args.seed}, psi {args.psi}, {width}x{height}, tile {args.tile}")
    rows = []
    for win in windows:
        r = check_one(args, cfg, values, win, width, height, f64=args.f64)
        rows.append(r)
        print(f"  window {','.join(f'{v:g}' for v in win):<16} {'AGREE' if r['agree'] else 'DISAGREE'}: "
              f"{r['verdict']}" + (f"; peer f32 vs f64 {r['peer_f32_vs_f64_max_abs']:.1e}"
                                   if 'peer_f32_vs_f64_max_abs' in r else ""))
    return dict(model=cfg["name"], source=desc, checks=rows, agree=all(r["agree"] for r in rows))


# --------------------------------------------------------------------------------------------
# timing
# --------------------------------------------------------------------------------------------


def wall(cmd) -> float:
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{r.stderr}")
    return time.time() - t


def time_forward(args, cfg, values) -> list:
    G = P.Generator(cfg, values)
    w = G.map_truncated(P.latent(cfg, 1)[None], 1.0)
    win = (-1.0, -1.0, 1.0, 1.0)
    G.render(w, win, 32, 32, tile=args.tile)  # warm-up
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as td:
        out = str(Path(td) / "o.png")
        base_cmd = [args.ours, "render", *ours_model_args(args), "--seed", "1", "--backend", args.backend,
                    "--tile", str(args.tile), "--out", out]
        base = min(wall(base_cmd + ["--size", "16"]) for _ in range(args.reps))
        rows, last = [], {}
        for n in sizes:
            row = dict(size=n)
            for who in ("peer", "ours"):
                est = None
                if who in last:
                    s0, t0 = last[who]
                    est = t0 * n * n / (s0 * s0)
                if est is not None and est > args.budget:
                    row[who + "_ms"], row[who + "_estimated"] = est * 1e3, True
                    continue
                reps = args.reps if (est or 0) < args.budget / 4 else 1
                ts = []
                for _ in range(reps):
                    if who == "peer":
                        t = time.time()
                        G.render(w, win, n, n, tile=args.tile)
                        ts.append(time.time() - t)
                    else:
                        ts.append(max(wall(base_cmd + ["--size", str(n)]) - base, 1e-6))
                row[who + "_ms"], row[who + "_estimated"] = min(ts) * 1e3, False
                last[who] = (n, min(ts))
            # Ours is a difference of two process timings: below a millisecond it is the 16²
            # baseline's noise, not a time, and a ratio of it means nothing.
            resolved = row["ours_ms"] >= 1.0
            row["ratio_peer_over_ours"] = row["peer_ms"] / row["ours_ms"] if resolved else None
            rows.append(row)
            ratio = (f"peer/ours {row['ratio_peer_over_ours']:.2f}" if resolved
                     else "ours within the 16² baseline's noise")
            print(f"  forward {n:>5}²  peer {row['peer_ms']:>10.1f} ms{'*' if row['peer_estimated'] else ' '}"
                  f"  ours {row['ours_ms']:>10.1f} ms{'*' if row['ours_estimated'] else ' '}"
                  f"  {ratio}", flush=True)
    return rows, base


def time_train(args, cfg) -> dict:
    n, steps = args.batch, args.steps
    R = cfg["resolution"]
    reals = torch.tensor(P.Rng(1).uniform_vec(n * 3 * R * R, -1.0, 1.0).reshape(n, 3, R, R))
    tr = P.Trainer(cfg, batch=n)
    tr.step(reals)  # warm-up (step 1)
    per = []
    for _ in range(steps):
        t = time.time()
        tr.step(reals)
        per.append(time.time() - t)
    peer = n * len(per) / sum(per)
    print(f"  train peer: {peer:.2f} img/s (batch {n}, steps 2..{steps + 1}"
          f"{', incl. one R1 step' if steps + 1 >= 16 else ''}; step times "
          f"{min(per):.2f}-{max(per):.2f} s)", flush=True)
    # Ours: `inrgan train` writes img_per_s smoothed as 0.9 old + 0.1 new; undo it per step.
    with tempfile.TemporaryDirectory() as td:
        run = Path(td) / "run"
        kimg = (steps + 1) * n / 1000.0
        cmd = [args.ours, "train", "--preset", cfg["name"], "--data", "emoji", "--batch", str(n),
               "--kimg", f"{kimg}", "--backend", args.backend, "--out", str(run),
               "--checkpoint-kimg", "1000", "--sample-every", "1000000", "--seed", "0"]
        if "--augment" in ours_train_help(args.ours):
            # The peer's Trainer has no augmentation: time the same work.
            cmd += ["--augment", "none"]
        wall(cmd)  # starts from the preset's fresh weights, as the peer does (any --weights are ignored)
        sp = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
        sp = [(m["step"], m["img_per_s"]) for m in sp if "img_per_s" in m]
    raw, prev = [], None
    for step, v in sp:
        raw.append(v if prev is None else (v - 0.9 * prev) / 0.1)
        prev = v
    secs = [n / r for r in raw[1:]]  # steps 2..
    ours = n * len(secs) / sum(secs)
    print(f"  train ours: {ours:.2f} img/s (batch {n}, steps 2..{len(raw)}; from metrics.jsonl)", flush=True)
    return dict(batch=n, steps_timed=steps, peer_img_per_s=peer, ours_img_per_s=ours,
                ratio_peer_over_ours=peer / ours)


def cmd_time(args):
    cpus = os.cpu_count() or 1
    threads = args.threads or cpus
    if threads < cpus:
        # Pin this process to `threads` cores: our binary inherits the affinity, and its rayon pool
        # (available_parallelism) then has `threads` workers too, so both sides get the same cores.
        os.sched_setaffinity(0, set(range(threads)))
    torch.set_num_threads(threads)
    if args.weights:
        cfg, values = P.load_weights(args.weights)
        desc = f"weights {args.weights}"
    else:
        cfg = P.load_preset(args.preset)
        values = None  # timing only: the peer draws its own random weights (numpy)
        G = P.Generator(cfg)
        values = {s[0]: G.P(s[0]).detach().numpy() for s in G.specs}
        desc = f"preset {args.preset} (random weights; ours: Rng seed 0, peer: numpy)"
    pinned = f"pinned to cores {sorted(os.sched_getaffinity(0))}" if threads < cpus else "unpinned"
    print(f"timing {cfg['name']} ({desc}); torch {torch.__version__}, {torch.get_num_threads()} threads "
          f"(OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}), {cpus} CPUs, {pinned}, nice {os.nice(0)}, ours --backend {args.backend}, tile {args.tile}")
    fwd, base = time_forward(args, cfg, values)
    print(f"  (ours = `inrgan render` wall clock minus a 16² render: {base * 1e3:.0f} ms of process start, "
          "model load and mapping; PNG encoding stays in)")
    train = None
    if args.steps > 0:
        # Each side's speed drifts from run to run on a shared machine (±15 %): time the pair
        # `--repeats` times, alternating, and report the medians beside every run.
        runs = [time_train(args, cfg) for _ in range(max(1, args.repeats))]
        med = lambda k: statistics.median(r[k] for r in runs)  # noqa: E731
        train = dict(batch=runs[0]["batch"], steps_timed=runs[0]["steps_timed"],
                     peer_img_per_s=med("peer_img_per_s"), ours_img_per_s=med("ours_img_per_s"),
                     ratio_peer_over_ours=med("ratio_peer_over_ours"), runs=runs)
        if len(runs) > 1:
            print("  train, each run (peer / ours img/s, ours / peer): " + ", ".join(
                f"{r['peer_img_per_s']:.1f} / {r['ours_img_per_s']:.1f} ({1 / r['ratio_peer_over_ours']:.2f}x)"
                for r in runs), flush=True)
    return dict(model=cfg["name"], source=desc, threads=torch.get_num_threads(), cpus=cpus, pinned=threads < cpus,
                nice=os.nice(0), omp_wait_policy=os.environ.get("OMP_WAIT_POLICY"), backend=args.backend, tile=args.tile, ours_baseline_ms=base * 1e3,
                forward=fwd, train=train)


def print_table(t):
    print("\n| what | peer (torch) | ours | peer / ours |\n|---|---:|---:|---:|")
    for r in t["forward"]:
        e = lambda k: " (est.)" if r[k] else ""  # noqa: E731
        q = r['ratio_peer_over_ours']
        print(f"| forward {r['size']}² | {r['peer_ms']:.0f} ms{e('peer_estimated')} | "
              f"{r['ours_ms']:.0f} ms{e('ours_estimated')} | {'–' if q is None else f'{q:.2f}'} |")
    if t["train"]:
        tr = t["train"]
        many = len(tr.get("runs", [])) > 1
        what = f"train batch {tr['batch']}" + (f" (median of {len(tr['runs'])} runs)" if many else "")
        print(f"| {what} | {tr['peer_img_per_s']:.1f} img/s | {tr['ours_img_per_s']:.1f} img/s | "
              f"{tr['ratio_peer_over_ours']:.2f} (ours {1 / tr['ratio_peer_over_ours']:.2f}x) |")


def write_json(path, obj):
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(obj, indent=2))
    print(f"\nwrote {p}")


def cmd_step1(args):
    """Our `train` for one step vs the peer on the same initial weights and latents: step 1's
    g_loss = mean softplus(-D(G(z1))) and d_fake = mean D(G(z2)) do not depend on the data, so
    they check G's training forward, D's forward (mbstd, blur, skips) and the RNG streams
    (G from Rng(seed), D from Rng(seed + 1), latents from Rng(seed + 2))."""
    import torch.nn.functional as F

    cfg = P.load_preset(args.preset)
    n, seed = args.batch, args.seed
    with tempfile.TemporaryDirectory() as td:
        run = Path(td) / "run"
        cmd = [args.ours, "train", "--preset", args.preset, "--data", "emoji", "--batch", str(n),
               "--kimg", f"{n / 1000.0}", "--backend", args.backend, "--out", str(run), "--seed", str(seed),
               "--checkpoint-kimg", "1000", "--sample-every", "1000000"]
        if "--augment" in ours_train_help(args.ours):
            # Augmentation draws its parameters from the latents' RNG stream (between z1 and
            # z2) and changes what D sees: step 1 compares the un-augmented forward.
            cmd += ["--augment", "none"]
        wall(cmd)
        m = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    t = time.time()
    G = P.Generator(cfg, P.init_values(P.generator_specs(cfg), seed), dtype=torch.float64)
    D = P.Discriminator(cfg, P.init_values(P.discriminator_specs(cfg), seed + 1), dtype=torch.float64)
    rng = P.Rng(seed + 2)
    zd = cfg["z_dim"]
    z1 = torch.tensor(rng.normal_vec(n * zd).reshape(n, zd), dtype=torch.float64)
    z2 = torch.tensor(rng.normal_vec(n * zd).reshape(n, zd), dtype=torch.float64)
    with torch.no_grad():
        g_loss = F.softplus(-D(G(z1))).mean().item()
        d_fake = D(G(z2)).mean().item()
    out = dict(preset=args.preset, batch=n, seed=seed, ours_g_loss=m["g_loss"], peer_g_loss=g_loss,
               ours_d_fake=m["d_fake"], peer_d_fake=d_fake,
               max_abs_diff=max(abs(m["g_loss"] - g_loss), abs(m["d_fake"] - d_fake)))
    out["agree"] = out["max_abs_diff"] <= FLOAT_TOL
    print(f"step 1 of {args.preset} (batch {n}, seed {seed}; peer in f64, {time.time() - t:.1f} s): "
          f"g_loss ours {m['g_loss']:.7f} peer {g_loss:.7f}; d_fake ours {m['d_fake']:.7f} peer {d_fake:.7f}; "
          f"{'AGREE' if out['agree'] else 'DISAGREE'} (max |diff| {out['max_abs_diff']:.1e})")
    return out


def cmd_render(args):
    cfg, values, desc = peer_model(args, torch.float32)
    width, height = parse_size(args.size)
    G = P.Generator(cfg, values)
    w = G.map_truncated(P.latent(cfg, args.seed)[None], args.psi)
    img = G.render(w, args.window or [-1.0, -1.0, 1.0, 1.0], width, height, tile=args.tile).numpy()
    from PIL import Image

    Image.fromarray(P.quantize(img).transpose(1, 2, 0)).save(args.out)
    if args.raw:
        img.astype("<f4").tofile(args.raw)
    print(f"{desc}: wrote {args.out}" + (f" and {args.raw}" if args.raw else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("check", "time", "all", "render", "step1"):
        s = sub.add_parser(name)
        s.add_argument("--weights", help="one of our *.safetensors weight files")
        s.add_argument("--preset", default="tiny",
                       help="preset with random weights (Rng seed 0) when no --weights; `builtin`: "
                            "assets/model/emoji.safetensors")
        s.add_argument("--ours", default="/tmp/peer-inrgan", help="our inrgan binary")
        s.add_argument("--backend", default="cpu", help="our backend (cpu, gpu, auto)")
        s.add_argument("--seed", type=int, default=0)
        s.add_argument("--psi", type=float, default=1.0)
        s.add_argument("--size", default="64")
        s.add_argument("--window", type=parse_window, default=None,
                       help="x0,y0,x1,y1 (check/all: default the three DEFAULT_WINDOWS; render: -1,-1,1,1)")
        s.add_argument("--tile", type=int, default=256)
        s.add_argument("--levels", type=int, default=0,
                       help="check: scale levels evaluated (the early exit; needs a CLI with render --levels)")
        s.add_argument("--f64", action="store_true", help="also run the peer in float64 (self-check)")
        s.add_argument("--sizes", default="128,256,512,1024")
        s.add_argument("--reps", type=int, default=2)
        s.add_argument("--budget", type=float, default=60.0, help="seconds; larger sizes are estimated")
        s.add_argument("--batch", type=int, default=32)
        s.add_argument("--threads", type=int, default=0,
                       help="time: threads for both sides (default all cores; fewer pins both to cores 0..N-1)")
        s.add_argument("--steps", type=int, default=16, help="timed training steps after one warm-up")
        s.add_argument("--repeats", type=int, default=1,
                       help="time: run the peer's and our training this many times, alternating; report medians")
        s.add_argument("--json", default="/tmp/inrgan-peer/bench-peer.json")
        s.add_argument("--out", default="/tmp/inrgan-peer/peer.png")
        s.add_argument("--raw", help="render: also write little-endian f32 planar [3, H, W]")
    args = ap.parse_args()
    if not (args.cmd == "render" or shutil.which(args.ours) or Path(args.ours).exists()):
        sys.exit(f"{args.ours}: no such binary (cp target/release/inrgan {args.ours})")
    if args.cmd == "render":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        return cmd_render(args)
    report = {"host": os.uname().nodename, "torch": torch.__version__}
    ok = True
    if args.cmd == "step1":
        report["step1"] = cmd_step1(args)
        write_json(args.json, report)
        sys.exit(0 if report["step1"]["agree"] else 1)
    if args.cmd in ("check", "all"):
        windows = [args.window] if args.window else DEFAULT_WINDOWS
        report["agreement"] = cmd_check(args, windows)
        ok = report["agreement"]["agree"]
    if args.cmd in ("time", "all"):
        report["timing"] = cmd_time(args)
        print_table(report["timing"])
    write_json(args.json, report)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
