"""Seeded synthetic scene-text images for smoke tests, demos and CI training runs.

Each image is a cluttered background (gradient, lines, rectangles, circles,
blurred blobs) with 2-8 non-overlapping rotated words drawn with OpenCV's
Hershey fonts in a colour that contrasts with the local background, plus 0-2
don't-care regions (tiny or heavily blurred words, transcription ``###``).
Ground truth quads are the tight glyph box rotated with the word, clockwise
from the word's top-left corner, like ICDAR 2015.

Output uses the generic layout read by :mod:`sdet.data.formats`::

    out_dir/train/images/img_1.jpg   out_dir/train/gt/gt_img_1.txt
    out_dir/test/images/img_1.jpg    out_dir/test/gt/gt_img_1.txt

Image ``i`` of a split depends only on ``(seed, split, i)``, so changing
``num_train`` never changes the test images and a seed always gives identical
files.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple, Union

import cv2
import numpy as np

from sdet.data.sample import TextInstance
from sdet.errors import UserError

ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnpqrstuvwxyz0123456789"
FONTS = (
    cv2.FONT_HERSHEY_SIMPLEX,
    cv2.FONT_HERSHEY_DUPLEX,
    cv2.FONT_HERSHEY_COMPLEX,
    cv2.FONT_HERSHEY_TRIPLEX,
    cv2.FONT_HERSHEY_SIMPLEX | cv2.FONT_ITALIC,
)
_SPLITS = {"train": 0, "test": 1}
_WORD_GAP = 4  # free pixels kept around every word so words never touch


@dataclass
class SynthImage:
    """One generated image, its pre-text background and its annotations."""

    image: np.ndarray
    background: np.ndarray
    instances: List[TextInstance]


# --------------------------------------------------------------------------- background


def _random_color(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=3).astype(np.float32)


def _luma(color: np.ndarray) -> float:
    b, g, r = (float(c) for c in color)
    return 0.114 * b + 0.587 * g + 0.299 * r


def _draw_background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Gradient plus shape clutter: distractors with edges but no glyphs."""
    angle = rng.uniform(0, 2 * np.pi)
    xs = np.arange(w, dtype=np.float32) * np.float32(np.cos(angle))
    ys = np.arange(h, dtype=np.float32) * np.float32(np.sin(angle))
    t = ys[:, None] + xs[None, :]
    t = (t - t.min()) / max(float(t.max() - t.min()), 1.0)
    c0, c1 = _random_color(rng), _random_color(rng)
    image = c0 + (c1 - c0) * t[:, :, None]

    blobs = np.zeros((h // 4, w // 4, 3), np.float32)
    for _ in range(int(rng.integers(2, 6))):
        center = (int(rng.integers(0, w // 4)), int(rng.integers(0, h // 4)))
        axes = (int(rng.integers(4, w // 6)), int(rng.integers(4, h // 6)))
        cv2.ellipse(blobs, center, axes, float(rng.uniform(0, 180)), 0, 360,
                    (rng.uniform(-80, 80, 3)).tolist(), -1)
    blobs = cv2.GaussianBlur(blobs, (0, 0), 4)
    image += cv2.resize(blobs, (w, h), interpolation=cv2.INTER_LINEAR)
    image = np.clip(image, 0, 255).astype(np.uint8)

    for _ in range(int(rng.integers(3, 9))):
        kind = int(rng.integers(0, 3))
        color = _random_color(rng).tolist()
        p = rng.integers(0, [w, h, w, h])
        if kind == 0:
            cv2.line(image, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), color,
                     int(rng.integers(1, 5)), cv2.LINE_AA)
        elif kind == 1:
            thick = -1 if rng.random() < 0.5 else int(rng.integers(1, 4))
            cv2.rectangle(image, (int(p[0]), int(p[1])), (int(p[2]), int(p[3])), color, thick)
        else:
            thick = -1 if rng.random() < 0.5 else int(rng.integers(1, 4))
            radius = int(rng.integers(5, max(6, min(h, w) // 4)))
            cv2.circle(image, (int(p[0]), int(p[1])), radius, color, thick, cv2.LINE_AA)
    return image


# --------------------------------------------------------------------------- words


def _render_word(
    rng: np.random.Generator, text: str, height: float
) -> Tuple[np.ndarray, np.ndarray]:
    """Draw ``text`` white on black; return (alpha patch, tight glyph quad in it)."""
    font = FONTS[int(rng.integers(0, len(FONTS)))]
    ref_h = cv2.getTextSize("H", font, 1.0, 1)[0][1]
    scale = height / ref_h
    thickness = max(1, int(round(height / float(rng.uniform(8, 14)))))
    (tw, th), base = cv2.getTextSize(text, font, scale, thickness)
    pad = thickness + 3
    patch = np.zeros((th + base + 2 * pad, tw + 2 * pad), np.uint8)
    cv2.putText(patch, text, (pad, pad + th), font, scale, 255, thickness, cv2.LINE_AA)
    rows = np.flatnonzero((patch > 96).any(axis=1))
    cols = np.flatnonzero((patch > 96).any(axis=0))
    x0, x1, y0, y1 = cols[0] - 1.0, cols[-1] + 1.0, rows[0] - 1.0, rows[-1] + 1.0
    quad = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)
    return patch, quad


def _place(
    rng: np.random.Generator, patch: np.ndarray, quad: np.ndarray, angle: float,
    occupied: np.ndarray, tries: int = 30,
) -> Optional[Tuple[np.ndarray, np.ndarray]]:
    """Find a spot where the rotated word fits inside the image and hits no other word."""
    h, w = occupied.shape
    ph, pw = patch.shape
    rot = cv2.getRotationMatrix2D(((pw - 1) / 2.0, (ph - 1) / 2.0), angle, 1.0)
    corners = quad @ rot[:, :2].T + rot[:, 2]
    lo, hi = corners.min(axis=0), corners.max(axis=0)
    margin = _WORD_GAP + 1
    x_range = (margin - lo[0], w - 1 - margin - hi[0])
    y_range = (margin - lo[1], h - 1 - margin - hi[1])
    if x_range[0] > x_range[1] or y_range[0] > y_range[1]:
        return None
    for _ in range(tries):
        dx, dy = rng.uniform(*x_range), rng.uniform(*y_range)
        placed = (corners + [dx, dy]).astype(np.float32)
        candidate = np.zeros_like(occupied)
        cv2.fillPoly(candidate, [np.round(placed).astype(np.int32)], 1)
        if not np.any(candidate & occupied):
            matrix = rot.copy()
            matrix[:, 2] += (dx, dy)
            return matrix, placed
    return None


def _text_color(rng: np.random.Generator, local_bg: np.ndarray) -> np.ndarray:
    """A random colour pushed far enough in luminance from the background."""
    color = _random_color(rng)
    if abs(_luma(color) - _luma(local_bg)) >= 90:
        return color
    if _luma(local_bg) > 127:
        return color * rng.uniform(0.0, 0.3)
    return 255.0 - (255.0 - color) * rng.uniform(0.0, 0.3)


def _random_text(rng: np.random.Generator) -> str:
    length = int(rng.integers(3, 11))
    return "".join(ALPHABET[int(i)] for i in rng.integers(0, len(ALPHABET), size=length))


def _add_word(
    rng: np.random.Generator, image: np.ndarray, occupied: np.ndarray, height: float,
    dont_care: bool,
) -> Optional[TextInstance]:
    h, w = occupied.shape
    text = _random_text(rng)
    angle = float(rng.uniform(-30, 30))
    for _ in range(4):  # shrink until it fits
        patch, quad = _render_word(rng, text, height)
        placed = _place(rng, patch, quad, angle, occupied)
        if placed is not None:
            break
        height *= 0.75
        if height < 5:
            return None
    else:
        return None
    matrix, corners = placed
    blurred = dont_care and height >= 10  # a blurred, faint word: present but unreadable
    sigma = max(2.0, height / 5.0)
    # Work only in the word's bounding box (plus blur reach): far cheaper than full frame.
    reach = int(np.ceil(3 * sigma)) + 2 if blurred else 2
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int) - reach, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + reach + 1, (w, h))
    local = matrix.copy()
    local[:, 2] -= (x0, y0)
    alpha = cv2.warpAffine(patch, local, (int(x1 - x0), int(y1 - y0)), flags=cv2.INTER_LINEAR)
    alpha = alpha.astype(np.float32) / 255.0
    if blurred:
        alpha = cv2.GaussianBlur(alpha, (0, 0), sigma) * rng.uniform(0.4, 0.7)
    region = image[y0:y1, x0:x1]
    ink = alpha > 0.35
    local_bg = region[ink].mean(axis=0) if ink.any() else region.reshape(-1, 3).mean(axis=0)
    color = _text_color(rng, local_bg)
    a = alpha[:, :, None]
    region[:] = np.clip(region * (1.0 - a) + color * a, 0, 255).astype(np.uint8)
    ring = np.round(corners).astype(np.int32)
    cv2.fillPoly(occupied, [ring], 1)
    cv2.polylines(occupied, [ring], True, 1, thickness=2 * _WORD_GAP + 1)
    return TextInstance(corners, "###" if dont_care else text, ignore=dont_care)


def synth_image(rng: np.random.Generator, image_size: Tuple[int, int] = (384, 384)) -> SynthImage:
    """Generate one image with its annotations (all randomness from ``rng``)."""
    h, w = image_size
    background = _draw_background(rng, h, w)
    image = background.copy()
    occupied = np.zeros((h, w), np.uint8)
    instances: List[TextInstance] = []
    for _ in range(int(rng.integers(2, 9))):
        inst = _add_word(rng, image, occupied, float(rng.uniform(12, 48)), dont_care=False)
        if inst is not None:
            instances.append(inst)
    for _ in range(int(rng.integers(0, 3))):
        tiny = rng.random() < 0.5
        height = float(rng.uniform(5, 8)) if tiny else float(rng.uniform(14, 30))
        inst = _add_word(rng, image, occupied, height, dont_care=True)
        if inst is not None:
            instances.append(inst)
    noise = rng.standard_normal(image.shape, dtype=np.float32) * np.float32(rng.uniform(2, 6))
    noisy = image.astype(np.float32) + noise
    image = np.clip(noisy, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        image = cv2.GaussianBlur(image, (3, 3), 0)
    return SynthImage(image=image, background=background, instances=instances)


# --------------------------------------------------------------------------- files


def format_icdar2015_line(inst: TextInstance) -> str:
    """``x1,y1,...,x4,y4,text`` with integer coordinates, as ICDAR 2015 ships them."""
    coords = ",".join(str(int(round(float(v)))) for v in inst.polygon.reshape(-1))
    return f"{coords},{inst.text}"


def _prepare_split(out_dir: Path, split: str) -> Tuple[Path, Path]:
    """Create the split's folders, removing earlier generator output only.

    Stale ``img_N.jpg`` from a bigger earlier run would otherwise be read as
    part of the new dataset; any other file there is refused, never deleted.
    """
    image_dir, gt_dir = out_dir / split / "images", out_dir / split / "gt"
    stale: List[Path] = []
    for folder, pattern in ((image_dir, r"img_\d+\.jpg"), (gt_dir, r"gt_img_\d+\.txt")):
        folder.mkdir(parents=True, exist_ok=True)
        for old in sorted(folder.iterdir()):
            if not re.fullmatch(pattern, old.name):
                raise UserError("folder holds files the synthetic generator did not write", old)
            stale.append(old)
    for old in stale:  # only once nothing foreign was found
        old.unlink()
    return image_dir, gt_dir


def generate_dataset(
    out_dir: Union[str, Path],
    num_train: int = 200,
    num_test: int = 50,
    image_size: Tuple[int, int] = (384, 384),
    seed: int = 0,
) -> Path:
    """Write a synthetic dataset in the generic layout and return ``out_dir``.

    ``image_size`` is (H, W). Re-running into the same folder replaces the
    previous generator output.
    """
    out = Path(out_dir)
    if min(image_size) < 64:
        raise UserError(f"image_size {tuple(image_size)} is too small (min side 64)")
    for split, count in (("train", num_train), ("test", num_test)):
        if count <= 0:
            continue
        image_dir, gt_dir = _prepare_split(out, split)
        for index in range(1, count + 1):
            rng = np.random.default_rng([seed, _SPLITS[split], index])
            sample = synth_image(rng, image_size)
            ok, buf = cv2.imencode(".jpg", sample.image, [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                raise UserError("cannot encode image", image_dir / f"img_{index}.jpg")
            buf.tofile(str(image_dir / f"img_{index}.jpg"))
            lines = "".join(format_icdar2015_line(i) + "\n" for i in sample.instances)
            (gt_dir / f"gt_img_{index}.txt").write_text(lines, encoding="utf-8", newline="\n")
    return out
