#!/usr/bin/env python3
"""Writes tests/fixtures/torch/: a small run folder of tools/torch/train.py (tiny preset, one
process, 4 steps of 8 images) that tests/torch_format.rs loads and renders in CI, plus
expected.json: the peer's render of a few pixels of it, which our CPU render must match within
1e-3.

    nice -n 10 python3 tools/torch/make_fixture.py
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.dont_write_bytecode = True
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT / "tools" / "peer"))
import inrgan_peer as P  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "torch"
# (window x0,y0,x1,y1, width, height, seed, psi)
RENDERS = [([-1.0, -1.0, 1.0, 1.0], 4, 4, 0, 1.0), ([-4.0, -4.0, 4.0, 4.0], 3, 2, 1, 0.7)]


def main():
    with tempfile.TemporaryDirectory() as td:
        run = Path(td) / "run"
        subprocess.run([sys.executable, str(HERE / "train.py"), "--data", "emoji:smileys", "--preset", "tiny",
                        "--out", str(run), "--device", "cpu", "--batch", "8", "--kimg", "0.032",
                        "--sample-every", "2", "--checkpoint-kimg", "1000", "--threads", "1"],
                       check=True, cwd=str(ROOT))
        shutil.rmtree(OUT, ignore_errors=True)
        OUT.mkdir(parents=True)
        for name in ("latest.safetensors", "latest.ron", "metrics.jsonl", "samples-00000004.png"):
            shutil.copy(run / name, OUT / name)
        meta = json.loads((run / "run.json").read_text())
        meta["args"]["out"] = "RUN"
        (OUT / "run.json").write_text(json.dumps(meta, indent=2) + "\n")
    cfg, values = P.load_weights(OUT / "latest.safetensors")
    G = P.Generator(cfg, values)
    renders = []
    for win, w, h, seed, psi in RENDERS:
        wv = G.map_truncated(P.latent(cfg, seed)[None], psi)
        img = G.render(wv, win, w, h).numpy()
        renders.append(dict(window=win, width=w, height=h, seed=seed, psi=psi,
                            rgb=[float(v) for v in img.reshape(-1)]))
    (OUT / "expected.json").write_text(json.dumps(dict(
        note="planar RGB [3, H, W], rows top-down, rendered by tools/peer/inrgan_peer.py "
             "(tools/torch/make_fixture.py); our CPU render must agree within 1e-3",
        renders=renders), indent=1) + "\n")
    total = sum(p.stat().st_size for p in OUT.iterdir())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
