#!/usr/bin/env python3
"""A PyTorch peer of the `inrgan` crate's model, for agreement checks and timing.

Everything here is a port of the Rust sources (paths relative to the repository root):

* ``RonParser``            -- the subset of RON our configs use (``src/model/config.rs``,
                              ``assets/presets/*.ron``, the ``inrgan.config`` metadata of weight files).
* ``Rng``                  -- ``src/rng.rs`` bit for bit (SplitMix64 seeding xoshiro256**, Box-Muller).
* ``level_frequencies``    -- ``src/model/generator.rs`` + ``src/reference/coords.rs::log_basis``.
* ``generator_specs``      -- the parameter names, shapes, init and order of ``Generator::new``.
* ``Generator``            -- ``Generator::map`` / ``map_truncated`` / ``synthesize`` (FMM with demod,
                              modulated toRGB, skip RGB, nearest 2x / gather / bilinear links).
* ``partial_plan``         -- ``Generator::partial_plan`` (the coordinate rule of any window/tile);
                              with ``link: Bilinear`` ``bilinear_plan`` (centres, halo cells, taps).
* ``training_plan``        -- ``Generator::training_plan`` (Bilinear: the window plan of the square).
* ``Discriminator``        -- ``src/model/discriminator.rs`` (residual D, blur-down, mbstd).
* ``Trainer``              -- ``src/train/mod.rs::Trainer::step`` (non-saturating logistic loss, lazy
                              R1 by autograd double backward, Adam with the lazy-reg rescaling, EMA).

Images are planar ``[batch, 3, rows * cols]`` inside the model (as in Rust) and ``[3, H, W]``
out of :func:`Generator.render`, values nominally in ``[-1, 1]``.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ALPHA = 0.2
GAIN = math.sqrt(2.0)
FMM_EPS = 1e-8
MBSTD_EPS = 1e-8

# --------------------------------------------------------------------------------------------
# RON (the subset our config files use: structs, tuples, lists, maps, numbers, bools, strings,
# unit/Some/None, // and /* */ comments)
# --------------------------------------------------------------------------------------------


class RonError(ValueError):
    pass


class RonParser:
    PUNCT = "()[]{}:,"

    def __init__(self, text: str):
        self.toks = list(self._lex(text))
        self.i = 0

    @staticmethod
    def _lex(s: str):
        i, n = 0, len(s)
        while i < n:
            c = s[i]
            if c.isspace():
                i += 1
            elif s.startswith("//", i):
                j = s.find("\n", i)
                i = n if j < 0 else j + 1
            elif s.startswith("/*", i):
                depth, i = 1, i + 2
                while i < n and depth:
                    if s.startswith("/*", i):
                        depth, i = depth + 1, i + 2
                    elif s.startswith("*/", i):
                        depth, i = depth - 1, i + 2
                    else:
                        i += 1
            elif c in RonParser.PUNCT:
                yield ("p", c)
                i += 1
            elif c == '"':
                j, out = i + 1, []
                while j < n and s[j] != '"':
                    if s[j] == "\\":
                        j += 1
                        esc = s[j]
                        out.append({"n": "\n", "t": "\t", "r": "\r", "0": "\0"}.get(esc, esc))
                    else:
                        out.append(s[j])
                    j += 1
                if j >= n:
                    raise RonError("unterminated string")
                yield ("s", "".join(out))
                i = j + 1
            elif c.isdigit() or c in "+-." :
                j = i + 1
                while j < n and (s[j].isalnum() or s[j] in "._+-"):
                    if s[j] in "+-" and s[j - 1] not in "eE":
                        break
                    j += 1
                t = s[i:j].replace("_", "")
                try:
                    v = int(t, 0) if not any(ch in t for ch in ".eE") or t.lower().startswith("0x") else float(t)
                except ValueError:
                    if t in ("inf", "+inf", "-inf", "NaN"):
                        v = float(t)
                    else:
                        raise RonError(f"bad number {t!r}")
                yield ("n", v)
                i = j
            elif c.isalpha() or c == "_":
                j = i + 1
                while j < n and (s[j].isalnum() or s[j] == "_"):
                    j += 1
                yield ("i", s[i:j])
                i = j
            else:
                raise RonError(f"unexpected character {c!r} at {i}")

    def _peek(self, k=0):
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else ("eof", None)

    def _next(self):
        t = self._peek()
        self.i += 1
        return t

    def _expect(self, p):
        t = self._next()
        if t != ("p", p):
            raise RonError(f"expected {p!r}, got {t!r}")

    def parse(self):
        v = self.value()
        if self._peek()[0] != "eof":
            raise RonError(f"trailing tokens from {self._peek()!r}")
        return v

    def value(self):
        kind, v = self._peek()
        if kind in ("n", "s"):
            self.i += 1
            return v
        if kind == "i":
            self.i += 1
            if v == "true":
                return True
            if v == "false":
                return False
            if v == "None":
                return None
            if self._peek() == ("p", "("):
                inner = self.paren()
                if v == "Some":
                    return inner[0] if isinstance(inner, list) and len(inner) == 1 else inner
                return inner
            return v  # a unit variant
        if (kind, v) == ("p", "("):
            return self.paren()
        if (kind, v) == ("p", "["):
            self.i += 1
            out = []
            while self._peek() != ("p", "]"):
                out.append(self.value())
                if self._peek() == ("p", ","):
                    self.i += 1
            self.i += 1
            return out
        if (kind, v) == ("p", "{"):
            self.i += 1
            out = {}
            while self._peek() != ("p", "}"):
                k = self.value()
                self._expect(":")
                out[k] = self.value()
                if self._peek() == ("p", ","):
                    self.i += 1
            self.i += 1
            return out
        raise RonError(f"unexpected token {self._peek()!r}")

    def paren(self):
        """`( field: value, ... )` -> dict, `( value, ... )` -> list, `()` -> {}."""
        self._expect("(")
        if self._peek()[0] == "i" and self._peek(1) == ("p", ":"):
            out = {}
            while self._peek() != ("p", ")"):
                k = self._next()
                if k[0] != "i":
                    raise RonError(f"expected a field name, got {k!r}")
                self._expect(":")
                out[k[1]] = self.value()
                if self._peek() == ("p", ","):
                    self.i += 1
            self.i += 1
            return out
        out = []
        while self._peek() != ("p", ")"):
            out.append(self.value())
            if self._peek() == ("p", ","):
                self.i += 1
        self.i += 1
        return out if out else {}


def parse_ron(text: str):
    return RonParser(text).parse()


def find_repo_root(start: Path | None = None) -> Path:
    p = (start or Path(__file__)).resolve()
    for d in [p] + list(p.parents):
        if (d / "assets" / "presets").is_dir():
            return d
    raise FileNotFoundError("cannot find the repository root (assets/presets) above " + str(p))


def load_preset(name: str) -> dict:
    return parse_ron((find_repo_root() / "assets" / "presets" / f"{name}.ron").read_text())


def disc_channels(cfg: dict, res: int) -> int:
    d = cfg["discriminator"]
    return max(1, min(d["channel_base"] // max(res, 1), d["channel_max"]))


# --------------------------------------------------------------------------------------------
# RNG (src/rng.rs)
# --------------------------------------------------------------------------------------------

M64 = (1 << 64) - 1


def _rotl(x: int, k: int) -> int:
    return ((x << k) | (x >> (64 - k))) & M64


class Rng:
    """SplitMix64-seeded xoshiro256**, exactly as ``src/rng.rs``."""

    def __init__(self, seed: int):
        x = seed & M64
        s = []
        for _ in range(4):
            x = (x + 0x9E3779B97F4A7C15) & M64
            z = x
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
            s.append(z ^ (z >> 31))
        self.s = s

    def next_u64(self) -> int:
        s0, s1, s2, s3 = self.s
        result = (_rotl((s1 * 5) & M64, 7) * 9) & M64
        t = (s1 << 17) & M64
        s2 ^= s0
        s3 ^= s1
        s1 ^= s2
        s0 ^= s3
        s2 ^= t
        s3 = _rotl(s3, 45)
        self.s = [s0, s1, s2, s3]
        return result

    def uniform(self) -> float:
        return (self.next_u64() >> 11) * (1.0 / (1 << 53))

    def below(self, n: int) -> int:
        return 0 if n == 0 else (self.next_u64() * n) >> 64

    def normal(self) -> float:
        u1 = 1.0 - self.uniform()
        u2 = self.uniform()
        return math.sqrt(-2.0 * math.log(u1)) * math.cos(math.tau * u2)

    def normal_vec(self, n: int) -> np.ndarray:
        return np.array([self.normal() for _ in range(n)], dtype=np.float64).astype(np.float32)

    def uniform_vec(self, n: int, lo: float, hi: float) -> np.ndarray:
        lo32, hi32 = np.float32(lo), np.float32(hi)
        u = np.array([self.uniform() for _ in range(n)], dtype=np.float64).astype(np.float32)
        return (lo32 + (hi32 - lo32) * u).astype(np.float32)


def latent(cfg: dict, seed: int) -> np.ndarray:
    """``Generator::latent``: z_dim standard normals from ``Rng::new(seed)``."""
    return Rng(seed).normal_vec(cfg["z_dim"])


def normalize_z(z: np.ndarray) -> np.ndarray:
    """``Generator::normalize_z`` (in f64, as the Rust code)."""
    z64 = z.astype(np.float64)
    ms = float(np.sum(z64 * z64)) / max(len(z64), 1)
    k = 1.0 / math.sqrt(ms + 1e-8)
    return (z64 * k).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Coordinates (src/reference/coords.rs, Generator::partial_plan)
# --------------------------------------------------------------------------------------------


def log_basis_len(res: int) -> int:
    n = 0
    while (1 << n) < res:
        n += 1
    return n


def log_basis(res: int, diagonal: bool) -> list:
    n = log_basis_len(res)
    dirs = [[0.0, 0.5], [0.5, 0.0]] + ([[-0.25, 0.25], [0.25, 0.25]] if diagonal else [])
    out = []
    for d in dirs:
        for k in range(n):
            f = math.pi * float(1 << k)
            out.append([np.float32(d[0] * f), np.float32(d[1] * f)])
    return out


def level_frequencies(level: dict) -> np.ndarray:
    emb = level["emb"]
    f = log_basis(emb["log_res"], emb["diagonal"]) if emb["log_res"] > 0 else []
    rng = Rng(emb["seed"])
    scale = np.float32(emb["random_scale"])
    for _ in range(emb["random"]):
        a = np.float32(rng.normal()) * scale
        b = np.float32(rng.normal()) * scale
        f.append([np.float32(a), np.float32(b)])
    return np.array(f, dtype=np.float32).reshape(-1, 2)


def training_grid(res: int):
    rf = float(res)
    xs = np.array([-1.0 + 2.0 * c / rf for c in range(res)], dtype=np.float64).astype(np.float32)
    ys = np.array([1.0 - 2.0 * (r + 1) / rf for r in range(res)], dtype=np.float64).astype(np.float32)
    return xs, ys


def link_mode(cfg: dict) -> str:
    """The config's ``link`` field (``LinkMode``): ``"Nearest"`` (absent: every model from before
    the field) or ``"Bilinear"``."""
    mode = cfg.get("link", "Nearest") or "Nearest"
    if mode not in ("Nearest", "Bilinear"):
        raise ValueError(f"unknown link mode {mode!r} (Nearest or Bilinear)")
    return mode


def training_plan(cfg: dict) -> list:
    """``Generator::training_plan``: Nearest: every level on its full grid (lower-left corners),
    nearest 2x links; Bilinear: the window plan of the training square at the training size (the
    coarse levels with a ring of halo cells)."""
    if link_mode(cfg) == "Bilinear":
        R = cfg["resolution"]
        return partial_plan(cfg, [-1.0, 1.0, -1.0, 1.0], R, R)
    plan = []
    for k, lv in enumerate(cfg["levels"]):
        xs, ys = training_grid(lv["res"])
        plan.append(dict(cols=lv["res"], rows=lv["res"], xs=xs, ys=ys,
                         link=("none",) if k == 0 else ("up2",)))
    return plan


def partial_plan(cfg: dict, win, width: int, height: int, cols=None, rows=None, n_levels=None) -> list:
    """``Generator::partial_plan``; ``win`` is ``[x0, x1, y0, y1]`` (the Rust internal order)."""
    levels = cfg["levels"]
    n = len(levels) if n_levels is None else n_levels
    cols = range(width) if cols is None else cols
    rows = range(height) if rows is None else rows
    if n == 0 or n > len(levels):
        raise ValueError(f"{n} levels asked of a model with {len(levels)}")
    x0, x1, y0, y1 = (float(v) for v in win)
    if width == 0 or height == 0 or x1 <= x0 or y1 <= y0 or not all(map(math.isfinite, (x0, x1, y0, y1))):
        raise ValueError(f"empty or non-finite window {win} at {width}x{height}")
    if len(cols) == 0 or len(rows) == 0 or cols.stop > width or rows.stop > height:
        raise ValueError("tile outside the image")
    if link_mode(cfg) == "Bilinear":
        return bilinear_plan(cfg, (x0, x1, y0, y1), width, height, cols, rows, n)
    px = [x0 + (x1 - x0) * c / width for c in cols]
    py = [y1 - (y1 - y0) * (r + 1) / height for r in rows]

    def cell(p: float, res: int) -> int:
        return int(math.floor((p + 1.0) * res / 2.0 + 1e-9))

    ranges = [(0, 0, 0, 0)] * n
    if n >= 2:
        r = levels[n - 2]["res"]
        js = [cell(p, r) for p in px]
        vs = [cell(p, r) for p in py]
        ranges[n - 2] = (js[0], js[-1], vs[-1], vs[0])
        for k in range(n - 3, -1, -1):
            j0, j1, v0, v1 = ranges[k + 1]
            ranges[k] = (j0 // 2, j1 // 2, v0 // 2, v1 // 2)
    plan = []
    for k in range(n):
        res = float(levels[k]["res"])
        if k == n - 1:
            if k == 0:
                link = ("none",)
            else:
                rp = levels[k - 1]["res"]
                j0, _, _, v1 = ranges[k - 1]
                link = ("gather",
                        np.array([v1 - cell(p, rp) for p in py], dtype=np.int64),
                        np.array([cell(p, rp) - j0 for p in px], dtype=np.int64))
            plan.append(dict(cols=len(px), rows=len(py),
                             xs=np.array(px, dtype=np.float64).astype(np.float32),
                             ys=np.array(py, dtype=np.float64).astype(np.float32), link=link))
        else:
            j0, j1, v0, v1 = ranges[k]
            ncols, nrows = j1 - j0 + 1, v1 - v0 + 1
            xs = np.array([-1.0 + 2.0 * j / res for j in range(j0, j1 + 1)], dtype=np.float64).astype(np.float32)
            ys = np.array([-1.0 + 2.0 * (v1 - t) / res for t in range(nrows)], dtype=np.float64).astype(np.float32)
            if k == 0:
                link = ("none",)
            else:
                pj0, _, _, pv1 = ranges[k - 1]
                link = ("gather",
                        np.array([pv1 - (v1 - t) // 2 for t in range(nrows)], dtype=np.int64),
                        np.array([j // 2 - pj0 for j in range(j0, j1 + 1)], dtype=np.int64))
            plan.append(dict(cols=ncols, rows=nrows, xs=xs, ys=ys, link=link))
    return plan


def bilinear_plan(cfg: dict, win, width: int, height: int, cols, rows, n: int) -> list:
    """``Generator::bilinear_plan``. Samples sit at centres: pixel (c, r) at
    ``(x0 + (x1 - x0)(c + 1/2) / width, y1 - (y1 - y0)(r + 1/2) / height)``, cell j of level k at
    ``-1 + (2 / R_k)(j + 1/2)``. A sample at p reads the previous level at
    ``u = (p + 1) R / 2 - 1/2``: cells floor(u) and floor(u) + 1 with weights 1 - t and t
    (per axis, in float64; the weights stored as float32 as our ``Taps``). Each coarser level is
    evaluated on exactly the cells the next one reads (no clamping). Storage: columns ascending,
    rows top-down (cell v at index yhi - v), so a row tap is (yhi - v - 1, 1 - t)."""
    x0, x1, y0, y1 = win
    levels = cfg["levels"]
    pos_x = [None] * n
    pos_y = [None] * n
    pos_x[n - 1] = [x0 + (x1 - x0) * (c + 0.5) / width for c in cols]
    pos_y[n - 1] = [y1 - (y1 - y0) * (r + 0.5) / height for r in rows]
    links = [("none",)] * n

    def taps(pos, res):
        out = []
        for p in pos:
            u = (p + 1.0) * res / 2.0 - 0.5
            j = math.floor(u)
            out.append((int(j), u - j))
        return out

    def centre(j, res):
        return -1.0 + 2.0 * (j + 0.5) / res

    for k in range(n - 1, 0, -1):
        res = levels[k - 1]["res"]
        tx, ty = taps(pos_x[k], res), taps(pos_y[k], res)
        xlo, xhi = min(j for j, _ in tx), max(j for j, _ in tx) + 1
        ylo, yhi = min(v for v, _ in ty), max(v for v, _ in ty) + 1
        links[k] = ("bilinear",
                    np.array([yhi - v - 1 for v, _ in ty], dtype=np.int64),
                    np.array([1.0 - t for _, t in ty], dtype=np.float64).astype(np.float32),
                    np.array([j - xlo for j, _ in tx], dtype=np.int64),
                    np.array([t for _, t in tx], dtype=np.float64).astype(np.float32))
        pos_x[k - 1] = [centre(j, res) for j in range(xlo, xhi + 1)]
        pos_y[k - 1] = [centre(v, res) for v in range(yhi, ylo - 1, -1)]
    return [dict(cols=len(pos_x[k]), rows=len(pos_y[k]),
                 xs=np.array(pos_x[k], dtype=np.float64).astype(np.float32),
                 ys=np.array(pos_y[k], dtype=np.float64).astype(np.float32), link=links[k])
            for k in range(n)]


# --------------------------------------------------------------------------------------------
# Parameter specs (names, shapes, init, order) and weight files
# --------------------------------------------------------------------------------------------


def generator_specs(cfg: dict) -> list:
    """``Generator::new``'s specs: (name, shape, ("normal", std) | ("const", v), trainable)."""
    specs = []
    d_in = cfg["z_dim"]
    for i in range(cfg["mapping_layers"]):
        specs.append((f"g.mapping.fc{i}.weight", [cfg["w_dim"], d_in], ("normal", 1.0 / cfg["mapping_lr_mul"]), True))
        specs.append((f"g.mapping.fc{i}.bias", [cfg["w_dim"]], ("const", 0.0), True))
        d_in = cfg["w_dim"]
    specs.append(("g.mapping.w_avg", [cfg["w_dim"]], ("const", 0.0), False))
    prev = 0
    r = cfg["rank"]
    for lv in cfg["levels"]:
        c_in = prev + 2 * len(level_frequencies(lv))
        for j, c_out in enumerate(lv["widths"]):
            base = f"g.b{lv['res']}.fmm{j}"
            specs.append((f"{base}.weight", [c_out, c_in], ("normal", 1.0), True))
            specs.append((f"{base}.bias", [c_out], ("const", 0.0), True))
            specs.append((f"{base}.affine.weight", [(c_in + c_out) * r, cfg["w_dim"]], ("normal", 1.0), True))
            specs.append((f"{base}.affine.bias", [(c_in + c_out) * r], ("const", 0.0), True))
            if j in lv["rgb_after"]:
                rb = f"g.b{lv['res']}.rgb{j}"
                specs.append((f"{rb}.weight", [3, c_out], ("normal", 1.0), True))
                specs.append((f"{rb}.bias", [3], ("const", 0.0), True))
                specs.append((f"{rb}.affine.weight", [c_out, cfg["w_dim"]], ("normal", 1.0), True))
                specs.append((f"{rb}.affine.bias", [c_out], ("const", 1.0), True))
            c_in = c_out
        prev = lv["widths"][-1]
    return specs


def discriminator_specs(cfg: dict) -> list:
    """``Discriminator::new``'s specs, in its order."""
    specs = []

    def conv(name, ci, co, k):
        specs.append((f"{name}.weight", [co, ci, k, k], ("normal", 1.0), True))
        specs.append((f"{name}.bias", [co], ("const", 0.0), True))

    r0 = cfg["resolution"]
    conv(f"d.b{r0}.fromrgb", 3, disc_channels(cfg, r0), 1)
    blocks = []
    res = r0
    while res > 4:
        ci, co = disc_channels(cfg, res), disc_channels(cfg, res // 2)
        conv(f"d.b{res}.conv0", ci, ci, 3)
        conv(f"d.b{res}.conv1", ci, co, 3)
        blocks.append((res, ci, co))
        res //= 2
    c4 = disc_channels(cfg, 4)
    conv("d.b4.conv", c4 + cfg["discriminator"]["mbstd_channels"], c4, 3)
    for res, ci, co in blocks:
        specs.append((f"d.b{res}.skip.weight", [co, ci, 1, 1], ("normal", 1.0), True))
    specs.append(("d.b4.fc.weight", [c4, c4 * 16], ("normal", 1.0), True))
    specs.append(("d.b4.fc.bias", [c4], ("const", 0.0), True))
    specs.append(("d.b4.out.weight", [1, c4], ("normal", 1.0), True))
    specs.append(("d.b4.out.bias", [1], ("const", 0.0), True))
    return specs


def init_values(specs: list, seed: int) -> dict:
    """``ParamSet::init``: every spec drawn in order from ``Rng::new(seed)`` (slow in Python for
    big models: about 5 us per value)."""
    rng = Rng(seed)
    out = {}
    for name, shape, (kind, v), _ in specs:
        n = int(np.prod(shape))
        if kind == "normal":
            std = np.float32(v)
            vals = np.array([np.float32(rng.normal()) for _ in range(n)], dtype=np.float32) * std
        else:
            vals = np.full(n, v, dtype=np.float32)
        out[name] = vals.astype(np.float32).reshape(shape)
    return out


def read_safetensors(path) -> tuple:
    """(tensors by name as float32 numpy arrays, metadata dict), parsed by hand (8-byte LE header
    length, JSON header, raw little-endian data)."""
    data = Path(path).read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, t in header.items():
        # F16 files (the shipped model) widen exactly to f32, as our loader does.
        dt = {"F32": "<f4", "F16": "<f2"}.get(t["dtype"])
        if dt is None:
            raise ValueError(f"{name}: dtype {t['dtype']}, expected F32 or F16")
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(data[base + a:base + b], dtype=dt).astype(np.float32).reshape(t["shape"])
    return out, meta


def load_weights(path) -> tuple:
    """(config dict, tensors) of one of our weight files; checks names and shapes like
    ``weights::load``."""
    tensors, meta = read_safetensors(path)
    if "inrgan.config" not in meta:
        raise ValueError(f"{path}: no inrgan.config in the metadata")
    cfg = parse_ron(meta["inrgan.config"])
    want = {n: s for n, s, _, _ in (generator_specs(cfg) if any(k.startswith("g.") for k in tensors)
                                    else discriminator_specs(cfg))}
    problems = [f"missing {n}" for n in want if n not in tensors]
    problems += [f"unexpected {n}" for n in tensors if n not in want]
    problems += [f"{n}: shape {list(tensors[n].shape)} != {want[n]}" for n in want
                 if n in tensors and list(tensors[n].shape) != want[n]]
    if problems:
        raise ValueError(f"{path}: " + "; ".join(sorted(problems)))
    return cfg, tensors


# --------------------------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------------------------


def lrelu(x):
    return F.leaky_relu(x, ALPHA) * GAIN


class Generator(torch.nn.Module):
    def __init__(self, cfg: dict, values: dict | None = None, dtype=torch.float32, device="cpu"):
        super().__init__()
        self.cfg = cfg
        self.specs = generator_specs(cfg)
        if values is None:  # fast random init (numpy), for timing; `init_values` is ours exactly
            values = {n: (np.full(s, v, np.float32) if k == "const"
                          else np.random.randn(*s).astype(np.float32) * np.float32(v))
                      for n, s, (k, v), _ in self.specs}
        self.p = torch.nn.ParameterDict()
        for n, s, _, trainable in self.specs:
            t = torch.tensor(np.asarray(values[n], np.float32).reshape(s), dtype=dtype, device=device)
            self.p[n.replace(".", "__")] = torch.nn.Parameter(t, requires_grad=trainable)
        self.freqs = [torch.tensor(level_frequencies(lv), dtype=dtype, device=device) for lv in cfg["levels"]]
        self.dtype, self.device = dtype, device

    def P(self, name: str) -> torch.Tensor:
        return self.p[name.replace(".", "__")]

    # -- mapping ---------------------------------------------------------------------------

    def map(self, z: torch.Tensor) -> torch.Tensor:
        """z ``[batch, z_dim]`` -> w ``[batch, w_dim]`` (z normalised by its second moment)."""
        c = self.cfg
        x = z * torch.rsqrt(z.square().mean(dim=1, keepdim=True) + 1e-8)
        lr = c["mapping_lr_mul"]
        for i in range(c["mapping_layers"]):
            W, b = self.P(f"g.mapping.fc{i}.weight"), self.P(f"g.mapping.fc{i}.bias")
            x = lrelu(x @ W.t() * (lr / math.sqrt(W.shape[1])) + b * lr)
        return x

    def map_truncated(self, z: np.ndarray, psi: float = 1.0) -> torch.Tensor:
        """``Generator::map_truncated`` for host latents ``[batch, z_dim]`` (normalised in f64)."""
        z = np.atleast_2d(z)
        zn = np.stack([normalize_z(row) for row in z])
        with torch.no_grad():
            x = torch.tensor(zn, dtype=self.dtype, device=self.device)
            c = self.cfg
            lr = c["mapping_lr_mul"]
            for i in range(c["mapping_layers"]):
                W, b = self.P(f"g.mapping.fc{i}.weight"), self.P(f"g.mapping.fc{i}.bias")
                x = lrelu(x @ W.t() * (lr / math.sqrt(W.shape[1])) + b * lr)
            if psi != 1.0:
                a = self.P("g.mapping.w_avg")
                x = a + psi * (x - a)
        return x

    # -- synthesis -------------------------------------------------------------------------

    def _affine(self, name: str, w: torch.Tensor) -> torch.Tensor:
        W, b = self.P(f"{name}.affine.weight"), self.P(f"{name}.affine.bias")
        return w @ W.t() * (1.0 / math.sqrt(self.cfg["w_dim"])) + b

    def embed(self, k: int, grid: dict) -> torch.Tensor:
        """``coords_forward``: ``[1, 2 n_freq, rows * cols]``, all sines then all cosines."""
        xs = torch.tensor(grid["xs"], dtype=self.dtype, device=self.device)
        ys = torch.tensor(grid["ys"], dtype=self.dtype, device=self.device)
        f = self.freqs[k]
        phi = f[:, 0, None, None] * xs[None, None, :] + f[:, 1, None, None] * ys[None, :, None]
        # A level without embeddings (`log_res: 0, random: 0`, the *-smooth presets) has zero rows.
        phi = phi.reshape(f.shape[0], xs.shape[0] * ys.shape[0])
        return torch.cat([torch.sin(phi), torch.cos(phi)], 0)[None]

    @staticmethod
    def _link(link, x: torch.Tensor, prev: dict) -> torch.Tensor:
        b, c, _ = x.shape
        x = x.view(b, c, prev["rows"], prev["cols"])
        if link[0] == "up2":
            y = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
        elif link[0] == "gather":
            rows = torch.as_tensor(link[1], device=x.device)
            cols = torch.as_tensor(link[2], device=x.device)
            y = x.index_select(2, rows).index_select(3, cols)
        elif link[0] == "bilinear":
            # ``gather_bilinear``: (1 - tr)((1 - tc) x00 + tc x01) + tr((1 - tc) x10 + tc x11),
            # the f32 weights widened to the tensor's dtype as our backends do.
            ir = torch.as_tensor(link[1], device=x.device)
            ic = torch.as_tensor(link[3], device=x.device)
            tr = torch.as_tensor(link[2], device=x.device).to(x.dtype)[:, None]
            tc = torch.as_tensor(link[4], device=x.device).to(x.dtype)[None, :]
            r0, r1 = x.index_select(2, ir), x.index_select(2, ir + 1)
            a = (1 - tc) * r0.index_select(3, ic) + tc * r0.index_select(3, ic + 1)
            bb = (1 - tc) * r1.index_select(3, ic) + tc * r1.index_select(3, ic + 1)
            y = (1 - tr) * a + tr * bb
        else:
            raise ValueError("a level after the first needs a link")
        return y.reshape(b, c, -1)

    def synthesize(self, w: torch.Tensor, plan: list, ws_per_level: list | None = None) -> torch.Tensor:
        """``Generator::synthesize``: image ``[batch, 3, rows * cols]`` of the plan's last level."""
        c = self.cfg
        r = c["rank"]
        bsz = w.shape[0]
        feat = img = None
        for k, (lv, grid) in enumerate(zip(c["levels"], plan)):
            wk = w if ws_per_level is None else ws_per_level[min(k, len(ws_per_level) - 1)]
            emb = self.embed(k, grid)
            npx = grid["rows"] * grid["cols"]
            if k == 0:
                x = emb
                img = torch.zeros(bsz, 3, npx, dtype=self.dtype, device=self.device)
            else:
                prev = plan[k - 1]
                up = self._link(grid["link"], feat, prev)
                img = self._link(grid["link"], img, prev)
                x = torch.cat([up, emb.expand(bsz, -1, -1)], 1)
            for j, c_out in enumerate(lv["widths"]):
                base = f"g.b{lv['res']}.fmm{j}"
                W = self.P(f"{base}.weight")
                c_in = W.shape[1]
                styles = self._affine(base, wk)
                A = styles[:, : c_out * r].reshape(bsz, c_out, r)
                B = styles[:, c_out * r:].reshape(bsz, r, c_in)
                M = (A @ B) * (1.0 / math.sqrt(r))
                Mp = W[None] * (1.0 + M)
                Wb = Mp / (Mp.square().sum(dim=2, keepdim=True).sqrt() + FMM_EPS)
                x = lrelu(Wb @ x + self.P(f"{base}.bias")[None, :, None])
                if j in lv["rgb_after"]:
                    rb = f"g.b{lv['res']}.rgb{j}"
                    s = self._affine(rb, wk)
                    Wr = self.P(f"{rb}.weight")[None] * s[:, None, :] * (1.0 / math.sqrt(c_out))
                    img = img + Wr @ x + self.P(f"{rb}.bias")[None, :, None]
            feat = x
        return img

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Training forward: ``[batch, 3, R, R]`` on the training plan."""
        R = self.cfg["resolution"]
        img = self.synthesize(self.map(z), self._training_plan())
        return img.view(z.shape[0], 3, R, R)

    def _training_plan(self):
        if not hasattr(self, "_tplan"):
            self._tplan = training_plan(self.cfg)
        return self._tplan

    @torch.no_grad()
    def render(self, w: torch.Tensor, window, width: int, height: int, tile: int = 256,
               levels: int | None = None) -> torch.Tensor:
        """``inrgan render``'s tiling: ``window`` = (x0, y0, x1, y1) as on the command line;
        ``levels`` < all is the early exit (``partial_plan``); returns planar ``[3, height, width]``."""
        x0, y0, x1, y1 = window
        win = [x0, x1, y0, y1]
        out = torch.empty(3, height, width, dtype=self.dtype, device=self.device)
        tile = max(tile, 1)
        for r0 in range(0, height, tile):
            for c0 in range(0, width, tile):
                c1, r1 = min(c0 + tile, width), min(r0 + tile, height)
                plan = partial_plan(self.cfg, win, width, height, range(c0, c1), range(r0, r1), levels)
                img = self.synthesize(w.reshape(1, -1), plan)
                out[:, r0:r1, c0:c1] = img.view(3, r1 - r0, c1 - c0)
        return out


def quantize(x: np.ndarray) -> np.ndarray:
    """``reference::image::quantize`` in f32: ``clamp(floor(x * 127.5 + 128), 0, 255)``, NaN -> 0."""
    x = np.asarray(x, dtype=np.float32)
    v = np.floor(x * np.float32(127.5) + np.float32(128.0))
    v = np.nan_to_num(v, nan=0.0)
    return np.clip(v, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------------------------
# Discriminator
# --------------------------------------------------------------------------------------------


class Discriminator(torch.nn.Module):
    def __init__(self, cfg: dict, values: dict | None = None, dtype=torch.float32, device="cpu"):
        super().__init__()
        self.cfg = cfg
        self.specs = discriminator_specs(cfg)
        self.p = torch.nn.ParameterDict()
        for n, s, (k, v), _ in self.specs:
            if values is not None:
                a = np.asarray(values[n], np.float32).reshape(s)
            elif k == "normal":
                a = np.random.randn(*s).astype(np.float32) * v
            else:
                a = np.full(s, v, np.float32)
            self.p[n.replace(".", "__")] = torch.nn.Parameter(torch.tensor(a, dtype=dtype, device=device))
        t = torch.tensor([0.125, 0.375, 0.375, 0.125], dtype=dtype, device=device)
        self.register_buffer("blur", (t[:, None] * t[None, :])[None, None], persistent=False)
        self.blocks = []
        res = cfg["resolution"]
        while res > 4:
            self.blocks.append(res)
            res //= 2

    def P(self, name):
        return self.p[name.replace(".", "__")]

    def _conv(self, name, x, act=True, bias=True):
        W = self.P(f"{name}.weight")
        k = W.shape[-1]
        y = F.conv2d(x, W * (1.0 / math.sqrt(W.shape[1] * k * k)), padding=k // 2)
        if bias:
            y = y + self.P(f"{name}.bias")[None, :, None, None]
        return lrelu(y) if act else y

    def _blur_down(self, x):
        b, c, h, w = x.shape
        y = F.conv2d(x.reshape(b * c, 1, h, w), self.blur, stride=2, padding=1)
        return y.view(b, c, y.shape[-2], y.shape[-1])

    def _mbstd(self, x):
        d = self.cfg["discriminator"]
        n, c, h, w = x.shape
        g = max(1, min(d["mbstd_group"], n))
        f = d["mbstd_channels"]
        y = x.reshape(g, -1, f, c // f, h, w)
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + MBSTD_EPS).sqrt()
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)
        y = y.repeat(g, 1, h, w)
        return torch.cat([x, y], 1)

    def forward(self, x):
        """Logits ``[batch]`` of images ``[batch, 3, R, R]``."""
        r0 = self.cfg["resolution"]
        h = self._conv(f"d.b{r0}.fromrgb", x)
        s2 = 1.0 / math.sqrt(2.0)
        for res in self.blocks:
            t0 = self._conv(f"d.b{res}.conv0", h)
            t1 = self._conv(f"d.b{res}.conv1", self._blur_down(t0))
            sk = self._conv(f"d.b{res}.skip", self._blur_down(h), act=False, bias=False)
            h = (t1 + sk) * s2
        h = self._conv("d.b4.conv", self._mbstd(h))
        h = h.flatten(1)
        W, b = self.P("d.b4.fc.weight"), self.P("d.b4.fc.bias")
        h = lrelu(h @ W.t() * (1.0 / math.sqrt(W.shape[1])) + b)
        W, b = self.P("d.b4.out.weight"), self.P("d.b4.out.bias")
        return (h @ W.t() * (1.0 / math.sqrt(W.shape[1])) + b)[:, 0]


# --------------------------------------------------------------------------------------------
# Training step (src/train/mod.rs)
# --------------------------------------------------------------------------------------------


class Trainer:
    """One ``Trainer::step``: G phase and D phase on the old parameters, both Adam updates, lazy
    R1 (every ``r1_interval`` steps, its own D update), w_avg tracking and the G EMA."""

    def __init__(self, cfg: dict, batch=32, lr_g=0.0025, lr_d=0.0025, r1_gamma=1.0, r1_interval=16,
                 ema_kimg=10.0, ema_rampup=0.05, w_avg_beta=0.995, seed=0):
        torch.manual_seed(seed)
        np.random.seed(seed)
        self.cfg, self.batch = cfg, batch
        self.G = Generator(cfg)
        self.D = Discriminator(cfg)
        self.G_ema = Generator(cfg, {n: p.detach().numpy() for n, p in
                                     ((s[0], self.G.P(s[0])) for s in self.G.specs)})
        for p in self.G_ema.parameters():
            p.requires_grad_(False)
        self.r1_gamma, self.r1_interval = r1_gamma, r1_interval
        self.ema_kimg, self.ema_rampup, self.w_avg_beta = ema_kimg, ema_rampup, w_avg_beta

        def adam(params, lr, interval):
            ratio = interval / (interval + 1.0)
            return torch.optim.Adam(params, lr=lr * ratio, betas=(0.0, 0.99 ** ratio), eps=1e-8)

        self.g_params = [p for p in self.G.parameters() if p.requires_grad]
        self.d_params = list(self.D.parameters())
        self.g_opt = adam(self.g_params, lr_g, 4)
        self.d_opt = adam(self.d_params, lr_d, r1_interval)
        self.step_count, self.images = 0, 0

    def _set_grad(self, params, on):
        for p in params:
            p.requires_grad_(on)

    def step(self, reals: torch.Tensor) -> dict:
        n, zd = self.batch, self.cfg["z_dim"]
        nxt = self.step_count + 1
        # G phase: gradients of mean softplus(-D(G(z))) for G only.
        self._set_grad(self.d_params, False)
        self.g_opt.zero_grad(set_to_none=True)
        z = torch.randn(n, zd)
        w = self.G.map(z)
        fake = self.G.synthesize(w, self.G._training_plan()).view(n, 3, self.cfg["resolution"], -1)
        g_loss = F.softplus(-self.D(fake)).mean()
        g_loss.backward()
        self._set_grad(self.d_params, True)
        # D phase (on the old G and D).
        self.d_opt.zero_grad(set_to_none=True)
        with torch.no_grad():
            fake2 = self.G(torch.randn(n, zd))
        lf = F.softplus(self.D(fake2)).mean()
        lr = F.softplus(-self.D(reals)).mean()
        (lf + lr).backward()
        for p in self.g_params + self.d_params:
            if p.grad is not None:
                torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)
        self.g_opt.step()
        self.d_opt.step()
        r1 = None
        if self.r1_gamma > 0 and self.r1_interval > 0 and nxt % self.r1_interval == 0:
            self.d_opt.zero_grad(set_to_none=True)
            x = reals.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.D(x).sum(), x, create_graph=True)
            pen = g.square().sum(dim=[1, 2, 3]).mean()
            (pen * (self.r1_gamma / 2) * self.r1_interval).backward()
            for p in self.d_params:
                if p.grad is not None:  # the output bias has no R1 gradient
                    torch.nan_to_num_(p.grad, nan=0.0, posinf=1e5, neginf=-1e5)
            self.d_opt.step()
            r1 = pen.item()
        with torch.no_grad():
            wa = self.G.P("g.mapping.w_avg")
            wa.copy_(w.detach().mean(0).lerp(wa, self.w_avg_beta))
            self.step_count, self.images = nxt, self.images + n
            ema_nimg = self.ema_kimg * 1000.0
            if self.ema_rampup > 0:
                ema_nimg = min(ema_nimg, self.images * self.ema_rampup)
            beta = 0.5 ** (n / max(ema_nimg, 1e-8))
            for s in self.G.specs:
                src, dst = self.G.P(s[0]), self.G_ema.P(s[0])
                if s[3]:
                    dst.copy_(src.lerp(dst, beta))
                else:
                    dst.copy_(src)
        return dict(step=nxt, g_loss=g_loss.item(), d_loss=(lf + lr).item(), r1=r1)
