"""Our data sources and batch order (``src/data/``), in numpy.

* ``open_dataset(spec, r)`` -- ``Dataset::open``: ``emoji`` / ``emoji:CATEGORY`` (the atlases in
  ``assets/emoji/``, composited over white), a folder (recursive, sorted, hidden entries skipped)
  or a ``.zip`` of png/jpg/jpeg/webp/bmp images; each image centre-cropped to a square and
  resampled to ``r`` (area average down, bilinear up, ``image_io::resample_weights``); planar
  ``[N, 3, r, r]`` float32 in [-1, 1].
* ``Batcher`` -- ``data::batcher``: the epoch order (``epoch_order``: Fisher-Yates from
  ``Rng(mix(seed, epoch))``) and the x-flip coin per position (``flip_coin``), bit for bit, so a
  run sees the images in the order ``inrgan train --seed S`` would; its position after ``images``
  images is ``(images // N, images % N)`` as on ``--resume``.
"""

from __future__ import annotations

import io
import sys
import zipfile
from pathlib import Path

import numpy as np

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "peer"))
import inrgan_peer as P  # noqa: E402

M64 = P.M64
COLUMNS = 48
IMAGE_EXTENSIONS = ("png", "jpg", "jpeg", "webp", "bmp")
MIN_SIDE = 8
MAX_PIXELS = 64_000_000
EMOJI_CATEGORIES = [
    ("smileys", "Smileys & Emotion"), ("people", "People & Body"), ("animals", "Animals & Nature"),
    ("food", "Food & Drink"), ("travel", "Travel & Places"), ("activities", "Activities"),
    ("objects", "Objects"), ("symbols", "Symbols"), ("flags", "Flags"),
]


def resample_weights(src: int, dst: int) -> np.ndarray:
    """``image_io::resample_weights`` as a ``[dst, src]`` matrix (float64)."""
    m = np.zeros((dst, src))
    if src == dst:
        return np.eye(dst)
    if src > dst:
        for i in range(dst):
            lo, hi = i * src, (i + 1) * src
            for j in range(lo // dst, min(-(-hi // dst), src)):
                a, b = max(lo, j * dst), min(hi, (j + 1) * dst)
                if b > a:
                    m[i, j] = (b - a) / src
        return m
    scale = src / dst
    for i in range(dst):
        c = max((i + 0.5) * scale - 0.5, 0.0)
        j0 = min(int(np.floor(c)), src - 1)
        j1 = min(j0 + 1, src - 1)
        t = c - j0
        if j0 == j1 or t <= 0.0:
            m[i, j0] = 1.0
        else:
            m[i, j0], m[i, j1] = 1.0 - t, t
    return m


def square_to_planar(rgba: np.ndarray, r: int) -> np.ndarray:
    """A square ``[s, s, 4]`` float image in [0, 1] (alpha composited over white) resampled to
    ``[3, r, r]`` in [-1, 1] (``Window::resample``)."""
    a = rgba[..., 3:4]
    rgb = rgba[..., :3] * a + (1.0 - a)
    w = resample_weights(rgba.shape[0], r)
    out = np.einsum("ij,jkc,lk->cil", w, rgb.astype(np.float64), w)
    return np.clip((out * 2.0 - 1.0).astype(np.float32), -1.0, 1.0)


def decode_image(data: bytes, r: int) -> np.ndarray:
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    w, h = img.size
    if w * h > MAX_PIXELS:
        raise ValueError(f"too large: {w}x{h} is over 64 megapixels")
    if min(w, h) < MIN_SIDE:
        raise ValueError(f"too small: {w}x{h} (the shorter side must be at least {MIN_SIDE})")
    img = img.convert("RGBA")
    s = min(w, h)
    x0, y0 = (w - s) // 2, (h - s) // 2
    a = np.asarray(img, dtype=np.float64)[y0:y0 + s, x0:x0 + s] / 255.0
    return square_to_planar(a, r)


def load_emoji(category: str | None, r: int):
    root = P.find_repo_root() / "assets" / "emoji"
    wanted = None
    if category is not None:
        c = category.strip()
        first = lambda s: (s.split() or [""])[0].lower()  # noqa: E731
        hit = [full for sel, full in EMOJI_CATEGORIES if c.lower() == sel or first(full) == first(c)]
        if not c or not hit:
            valid = ", ".join(f"emoji:{s}" for s, _ in EMOJI_CATEGORIES)
            raise ValueError(f"unknown emoji category {c!r} (emoji, {valid})")
        wanted = hit[0]
    cells = []
    for line in (root / "index.tsv").read_text().splitlines()[1:]:
        if not line.strip():
            continue
        f = line.split("\t")
        if wanted is None or f[1] == wanted:
            cells.append((int(f[0]), f[2]))
    from PIL import Image

    cell = 32 if r <= 32 else 64
    atlas = np.asarray(Image.open(root / f"noto-emoji-{cell}.png").convert("RGBA"), dtype=np.float64) / 255.0
    images = np.empty((len(cells), 3, r, r), np.float32)
    for k, (idx, _) in enumerate(cells):
        col, row = idx % COLUMNS, idx // COLUMNS
        images[k] = square_to_planar(atlas[row * cell:(row + 1) * cell, col * cell:(col + 1) * cell], r)
    return images, [n for _, n in cells]


def _is_image_name(name: str) -> bool:
    return "." in name and name.rsplit(".", 1)[1].lower() in IMAGE_EXTENSIONS


def open_dataset(spec: str, r: int):
    """(images ``[N, 3, r, r]``, names, skipped ``[(name, why)]``)."""
    low = spec.lower()
    if low == "emoji" or low.startswith("emoji:"):
        images, names = load_emoji(spec.split(":", 1)[1] if ":" in spec else None, r)
        return images, names, []
    path = Path(spec).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"{spec}: no such file or folder")
    items = []  # (name, bytes-getter)
    if path.is_dir():
        def walk(d: Path):
            for e in sorted(d.iterdir(), key=lambda p: p.name):
                if e.name.startswith("."):
                    continue
                if e.is_dir():
                    yield from walk(e)
                elif _is_image_name(e.name) and e.is_file():
                    yield str(e.relative_to(path)), e.read_bytes
        items = list(walk(path))
    else:
        with open(path, "rb") as f:
            magic = f.read(4)
        if not (path.suffix.lower() == ".zip" or magic == b"PK\x03\x04"):
            raise ValueError(f"{spec}: not a folder or a .zip of images")
        z = zipfile.ZipFile(path)
        names = sorted(n for n in z.namelist() if not n.endswith("/") and _is_image_name(n)
                       and not any(part.startswith(".") for part in n.split("/")))
        items = [(n, (lambda n=n: z.read(n))) for n in names]
    images, names, skipped = [], [], []
    for name, get in items:
        try:
            images.append(decode_image(get(), r))
            names.append(name)
        except Exception as e:  # noqa: BLE001 (a bad file is reported and skipped, as ours)
            skipped.append((name, str(e)))
    if not images:
        first = f" (first: {skipped[0][0]}: {skipped[0][1]})" if skipped else " (no image file found)"
        raise ValueError(f"{spec}: no images{first}")
    return np.stack(images), names, skipped


# --------------------------------------------------------------------------------------------
# batch order (src/data/batcher.rs)
# --------------------------------------------------------------------------------------------


def _rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & M64


def mix(a: int, b: int) -> int:
    z = (a ^ _rotl((b * 0x9E3779B97F4A7C15) & M64, 17)) & M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


def epoch_order(n: int, seed: int, epoch: int) -> list:
    rng = P.Rng(mix(seed, epoch))
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        j = rng.below(i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def flip_coin(seed: int, epoch: int, position: int) -> bool:
    return (P.Rng(mix(mix(seed ^ 0x5851F42D4C957F2D, epoch), position)).next_u64() >> 63) == 1


class Batcher:
    """The global batch order: ``next(batch)`` -> (indices, flips) of the next ``batch`` images;
    every rank runs the same batcher and takes its own slice."""

    def __init__(self, n: int, seed: int, xflip: bool, images_done: int = 0):
        self.n, self.seed, self.xflip = n, seed, xflip
        self.epoch, self.pos = images_done // n, images_done % n
        self._order = None

    def next(self, batch: int):
        idx, flips = [], []
        for _ in range(batch):
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
            if self._order is None or self._order[0] != self.epoch:
                self._order = (self.epoch, epoch_order(self.n, self.seed, self.epoch))
            idx.append(self._order[1][self.pos])
            flips.append(self.xflip and flip_coin(self.seed, self.epoch, self.pos))
            self.pos += 1
        return idx, flips
