#!/usr/bin/env python3
"""Checks of the DDP trainer that a person runs (torch is too large for CI), on the CPU with gloo:

1. sync:    a 2-process run of 17 steps (one of them an R1 step) ends with the same G, D and G-EMA
            weights on both ranks (bitwise: a hash of every tensor, RUN/sync.json).
2. step 1:  a 2-process run and a 1-process run with the same global batch take the same first
            step: max |difference| of every G and D weight after step 1 (tolerance 1e-5; they differ
            only in summation order), and of the step's losses.
3. render:  `inrgan render --weights RUN/latest.safetensors` opens the output, and
            `bench_peer.py check` agrees with it within 1e-3 on its three windows.

    nice -n 10 python3 tools/torch/check_ddp.py [--presets tiny,tiny-bilinear] [--ours /tmp/peer-inrgan]
        [--work /tmp/inrgan-ddp] [--json OUT.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.dont_write_bytecode = True
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TRAIN = HERE / "train.py"
TOL_STEP = 1e-5


def run(cmd, **kw):
    t = time.time()
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r, time.time() - t


def train(out: Path, preset: str, nproc: int, batch: int, steps: int, extra=()):
    shutil.rmtree(out, ignore_errors=True)
    args = [str(TRAIN), "--data", "emoji:smileys", "--preset", preset, "--out", str(out), "--device", "cpu",
            "--batch", str(batch), "--kimg", f"{steps * batch / 1000.0}", "--sample-every", "1000000",
            "--checkpoint-kimg", "1000", "--threads", "1", *extra]
    if nproc == 1:
        cmd = [sys.executable, *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}", *args]
    _, secs = run(cmd, cwd=str(ROOT))
    return secs


def load_state(out: Path):
    import torch

    ck = sorted(out.glob("ckpt-*"))[-1]
    return torch.load(ck / "state.pt", map_location="cpu", weights_only=False)


def max_diff(a: dict, b: dict) -> float:
    return max(float(np.abs(a[k].astype(np.float64) - b[k].astype(np.float64)).max()) for k in a)


def check_preset(args, preset: str) -> dict:
    work = Path(args.work) / preset
    res = dict(preset=preset)
    # 1. ranks stay identical (17 steps: step 16 applies R1; augmentation on, x-flip on).
    out = work / "sync"
    secs = train(out, preset, 2, args.batch, 17, ["--sync-report"])
    sync = json.loads((out / "sync.json").read_text())
    res["sync"] = dict(steps=sync["step"], identical=sync["identical"], hashes=sync["hashes"], seconds=secs,
                       r1_steps=[json.loads(l)["step"] for l in (out / "metrics.jsonl").read_text().splitlines()
                                 if json.loads(l).get("r1") is not None])
    print(f"[{preset}] sync: 2 ranks after {sync['step']} steps (R1 at steps {res['sync']['r1_steps']}): "
          f"{'IDENTICAL' if sync['identical'] else 'DIFFERENT'} weights ({secs:.1f} s)", flush=True)
    # 2. 1 process vs 2 processes, same global batch: step 1 (and step 17, for information).
    for steps in (1, 17):
        o1, o2 = work / f"one-{steps}", work / f"two-{steps}"
        train(o1, preset, 1, args.batch, steps)
        train(o2, preset, 2, args.batch, steps)
        s1, s2 = load_state(o1), load_state(o2)
        m1 = [json.loads(l) for l in (o1 / "metrics.jsonl").read_text().splitlines()]
        m2 = [json.loads(l) for l in (o2 / "metrics.jsonl").read_text().splitlines()]
        loss_keys = ("g_loss", "d_loss", "d_real", "d_fake")
        r = dict(steps=steps, g_max_abs=max_diff(s1["G"], s2["G"]), d_max_abs=max_diff(s1["D"], s2["D"]),
                 g_ema_max_abs=max_diff(s1["G_ema"], s2["G_ema"]),
                 loss_max_abs=max(abs(a[k] - b[k]) for a, b in zip(m1, m2) for k in loss_keys))
        if steps == 1:
            r["agree"] = max(r["g_max_abs"], r["d_max_abs"], r["loss_max_abs"]) <= TOL_STEP
        res[f"one_vs_two_step{steps}"] = r
        print(f"[{preset}] 1 vs 2 processes, global batch {args.batch}, after {steps} step(s): "
              f"G {r['g_max_abs']:.2e}, D {r['d_max_abs']:.2e}, G_ema {r['g_ema_max_abs']:.2e}, "
              f"losses {r['loss_max_abs']:.2e}" + (f" -> {'AGREE' if r['agree'] else 'DISAGREE'} "
                                                   f"(tolerance {TOL_STEP:g})" if steps == 1 else ""), flush=True)
    # 3. our renderer opens the output, and the peer agrees with it.
    latest = work / "sync" / "latest.safetensors"
    png = work / "render.png"
    r, _ = run([args.ours, "render", "--weights", str(latest), "--size", "64", "--backend", "cpu",
                "--out", str(png)])
    res["render"] = dict(ok=png.exists(), stdout=r.stdout.strip())
    j = work / "bench.json"
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "peer" / "bench_peer.py"), "check", "--weights",
                        str(latest), "--ours", args.ours, "--json", str(j)], capture_output=True, text=True)
    rep = json.loads(j.read_text())["agreement"] if j.exists() else None
    res["bench_check"] = dict(agree=bool(rep and rep["agree"]),
                              max_abs=[c.get("float_max_abs_diff") for c in rep["checks"]] if rep else None)
    print(f"[{preset}] inrgan render --weights {latest}: {'ok' if res['render']['ok'] else 'FAILED'}; "
          f"bench_peer check: {'AGREE' if res['bench_check']['agree'] else 'DISAGREE'} "
          f"{res['bench_check']['max_abs']}", flush=True)
    res["ok"] = (res["sync"]["identical"] and res["one_vs_two_step1"]["agree"] and res["render"]["ok"]
                 and res["bench_check"]["agree"])
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--presets", default="tiny,tiny-bilinear")
    ap.add_argument("--batch", type=int, default=8, help="global batch (4 per rank)")
    ap.add_argument("--ours", default="/tmp/peer-inrgan", help="our inrgan binary")
    ap.add_argument("--work", default="/tmp/inrgan-ddp")
    ap.add_argument("--json", default="/tmp/inrgan-ddp/check-ddp.json")
    args = ap.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    results = [check_preset(args, p) for p in args.presets.split(",")]
    ok = all(r["ok"] for r in results)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(dict(results=results, ok=ok), indent=2))
    print(f"{'ALL PASS' if ok else 'FAILED'}; wrote {args.json}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
