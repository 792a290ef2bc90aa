#!/usr/bin/env python3
"""Plot the SWD curves of training runs (their `metrics.jsonl`), for BENCHMARKS and the README.

    python3 tools/plot_runs.py --out docs/next/swd-runs.png \\
        "third run (emoji32)=runs/emoji32-all/metrics.jsonl" \\
        "fourth run (emoji32-smooth)=runs/emoji32-smooth/metrics.jsonl" \\
        --points "eval, 1,024 samples=eval.csv"

Each RUN is `label=path/to/metrics.jsonl`; its `swd_x1e3` lines (the trainer's SWD on 256
samples at every checkpoint) are drawn against kimg. `--points label=file.csv` adds measured
points (`kimg,swd` lines, e.g. `inrgan eval` of kept checkpoints). Needs matplotlib.
"""

from __future__ import annotations

import argparse
import json
import os
import sys


def swd_curve(path: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                # A run that is still writing may end in a partial line.
                print(f"{path}:{n}: skipped a line that is not JSON", file=sys.stderr)
                continue
            if "swd_x1e3" in rec:
                xs.append(rec["images"] / 1000.0)
                ys.append(rec["swd_x1e3"])
    return xs, ys


def csv_points(path: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    with open(path) as f:
        for line in f:
            line = line.split("#")[0].strip()
            if line:
                k, v = line.split(",")[:2]
                xs.append(float(k))
                ys.append(float(v))
    return xs, ys


def split(spec: str) -> tuple[str, str]:
    if "=" not in spec:
        raise SystemExit(f"{spec!r}: expected label=path")
    label, path = spec.rsplit("=", 1)
    return label, path


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", help="label=metrics.jsonl")
    ap.add_argument("--points", action="append", default=[], help="label=kimg,swd csv")
    ap.add_argument("--floor", type=float, help="a horizontal line: the metric's floor")
    ap.add_argument("--floor-label", default="floor")
    ap.add_argument("--title", default="SWD ×10³ against the training data (lower is better)")
    ap.add_argument("--ymax", type=float)
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=100)
    for spec in a.runs:
        label, path = split(spec)
        xs, ys = swd_curve(path)
        if not xs:
            raise SystemExit(f"{path}: no swd_x1e3 lines")
        ax.plot(xs, ys, label=f"{label}: training SWD (256 samples)", lw=1.5)
    for spec in a.points:
        label, path = split(spec)
        xs, ys = csv_points(path)
        ax.plot(xs, ys, "o-", label=label, ms=4, lw=1)
    if a.floor is not None:
        ax.axhline(a.floor, color="grey", ls="--", lw=1, label=a.floor_label)
    ax.set_xlabel("kimg (thousands of images shown to D)")
    ax.set_ylabel("SWD ×10³")
    ax.set_title(a.title, fontsize=11)
    if a.ymax:
        ax.set_ylim(0, a.ymax)
    else:
        ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    tmp = a.out + ".tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, a.out)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
