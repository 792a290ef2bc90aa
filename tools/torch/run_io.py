"""The run folder's files, in our formats (what `inrgan train` and `inrgan ship` write).

* ``config_to_ron``       -- ``ModelConfig::to_ron`` (ron's ``to_string_pretty`` with the default
                             ``PrettyConfig``: 4-space indent, one array element a line, trailing
                             commas, f32 in Rust's shortest form with ``.0``).
* ``save_weights``        -- ``weights::save_as``: safetensors with the tensors under their names
                             (F16 by default, as ``inrgan ship``), metadata ``inrgan.config``,
                             ``inrgan.format`` = 1 and ``inrgan.fact.*``, written atomically, and
                             the config beside it as ``.ron``.
* ``append_jsonl``        -- one compact JSON object a line, keys sorted (serde_json's map).
* ``write_grid``          -- ``png_io::grid`` + ``write_rgba``: seeds in rows of ceil(sqrt(n)),
                             white where no image, RGBA PNG, values quantised as ours.

No torch here: the CI-side fixture writer and tests can use it with numpy alone.
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from pathlib import Path

import numpy as np

sys.dont_write_bytecode = True
_PEER = Path(__file__).resolve().parents[1] / "peer"

FORMAT = "1"
CONFIG_KEY = "inrgan.config"
FORMAT_KEY = "inrgan.format"
FACT_PREFIX = "inrgan.fact."

# Field orders of the serde structs (src/model/config.rs) and which fields are f32.
_FIELDS = {
    "model": ["name", "resolution", "z_dim", "w_dim", "mapping_layers", "mapping_lr_mul", "rank",
              "levels", "link", "discriminator"],
    "level": ["res", "widths", "rgb_after", "emb"],
    "emb": ["log_res", "diagonal", "random", "random_scale", "seed"],
    "disc": ["channel_base", "channel_max", "mbstd_group", "mbstd_channels"],
}
_F32 = {"mapping_lr_mul", "random_scale"}
_UNIT = {"link"}  # enum unit variants, written bare


def _f32(v) -> str:
    s = np.format_float_positional(np.float32(v), unique=True, trim="-")
    if s in ("nan", "inf", "-inf"):
        return {"nan": "NaN", "inf": "inf", "-inf": "-inf"}[s]
    return s if ("." in s or "e" in s) else s + ".0"


def _str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def config_to_ron(cfg: dict) -> str:
    """``ModelConfig::to_ron`` of a config dict (as ``inrgan_peer.parse_ron`` reads it)."""
    ind = "    "

    def struct(d: dict, kind: str, depth: int) -> str:
        pad = ind * (depth + 1)
        lines = []
        for k in _FIELDS[kind]:
            if k == "link":
                v = d.get("link") or "Nearest"
            else:
                v = d[k]
            lines.append(f"{pad}{k}: {value(k, v, depth + 1)},")
        return "(\n" + "\n".join(lines) + "\n" + ind * depth + ")"

    def value(k: str, v, depth: int) -> str:
        if k == "levels":
            return seq([struct(lv, "level", depth + 1) for lv in v], depth)
        if k == "emb":
            return struct(v, "emb", depth)
        if k == "discriminator":
            return struct(v, "disc", depth)
        if k in _UNIT:
            return str(v)
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return _str(v)
        if isinstance(v, (list, tuple)):
            return seq([value("", x, depth + 1) for x in v], depth)
        if k in _F32 or isinstance(v, float):
            return _f32(v)
        return str(int(v))

    def seq(items: list, depth: int) -> str:
        if not items:
            return "[]"
        pad = ind * (depth + 1)
        return "[\n" + "\n".join(f"{pad}{x}," for x in items) + "\n" + ind * depth + "]"

    return struct(cfg, "model", 0)


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------


def write_atomic(path, data: bytes) -> None:
    """``weights::write_atomic``: a temporary file in the same folder, flushed and synced, then
    renamed over the target (a reader never sees a partial file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except FileNotFoundError:
            pass
        raise


def safetensors_bytes(tensors: dict, metadata: dict, half: bool = True) -> bytes:
    """A safetensors file: 8-byte LE header length, the JSON header (``__metadata__`` first,
    tensors sorted by name as the safetensors crate orders equal dtypes, padded with spaces to a
    multiple of 8), then the little-endian data."""
    dt, np_dt = ("F16", "<f2") if half else ("F32", "<f4")
    header = {"__metadata__": {k: metadata[k] for k in sorted(metadata)}}
    blobs, off = [], 0
    for name in sorted(tensors):
        a = np.asarray(tensors[name], dtype=np.float32)
        b = a.astype(np_dt).tobytes()
        header[name] = {"dtype": dt, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def save_weights(path, cfg: dict, tensors: dict, facts: list | None = None, half: bool = True) -> None:
    """``weights::save_as`` (what ``inrgan ship`` writes): ``tensors`` by name (float32 arrays in
    the shapes of ``generator_specs``), ``facts`` a list of (name, value) strings."""
    ron = config_to_ron(cfg)
    meta = {CONFIG_KEY: ron, FORMAT_KEY: FORMAT}
    for k, v in facts or []:
        meta[FACT_PREFIX + k] = str(v)
    path = Path(path)
    write_atomic(path, safetensors_bytes(tensors, meta, half))
    write_atomic(path.with_suffix(".ron"), ron.encode())


def ship_facts(images: int, steps: int, data: str, last_metric=None) -> list:
    """``engine::ship``'s facts: images trained, steps, data, and the last metric (``{:.2}``)."""
    facts = [("images trained", str(images)), ("steps", str(steps)), ("data", data)]
    if last_metric is not None:
        name, v = last_metric
        facts.append((name, f"{v:.2f}"))
    return facts


def append_jsonl(path, obj: dict) -> None:
    """One line of ``metrics.jsonl`` (serde_json: compact, keys sorted, f32 values widened)."""
    line = json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)
    with open(path, "a") as f:
        f.write(line + "\n")
        f.flush()


def f32(x) -> float:
    """A value as our f32 stats print it (f32 widened to f64)."""
    return float(np.float32(x))


def quantize(x) -> np.ndarray:
    """``reference::image::quantize``: ``clamp(floor(x * 127.5 + 128), 0, 255)``, NaN -> 0."""
    x = np.asarray(x, dtype=np.float32)
    v = np.nan_to_num(np.floor(x * np.float32(127.5) + np.float32(128.0)), nan=0.0)
    return np.clip(v, 0, 255).astype(np.uint8)


def grid_rgba(planar: np.ndarray, n: int, h: int, w: int, cols: int | None = None) -> np.ndarray:
    """``png_io::grid``: ``planar [n, 3, h, w]`` into an RGBA grid of ``cols`` columns (default
    ceil(sqrt(n)), as the trainer), white where no image."""
    cols = max(1, min(cols or math.ceil(math.sqrt(n)), max(n, 1)))
    rows = -(-n // cols)
    out = np.full((rows * h, cols * w, 4), 255, np.uint8)
    q = quantize(np.asarray(planar, np.float32).reshape(n, 3, h, w))
    for i in range(n):
        cy, cx = (i // cols) * h, (i % cols) * w
        out[cy:cy + h, cx:cx + w, :3] = q[i].transpose(1, 2, 0)
    return out


def write_grid(path, planar: np.ndarray, n: int, h: int, w: int) -> None:
    from PIL import Image
    import io

    buf = io.BytesIO()
    Image.fromarray(grid_rgba(planar, n, h, w), "RGBA").save(buf, format="PNG")
    write_atomic(path, buf.getvalue())
