"""Training augmentation and test-time resizing that move image and polygons together.

The training recipe follows DBNet / PaddleOCR: horizontal flip, rotation in
[-10, 10] degrees keeping the canvas size (imgaug ``Affine(rotate)``), isotropic
rescale in [0.5, 3] (imgaug ``Resize``), then a text-preserving random crop
padded to a fixed square (``EastRandomCropData``) and a mild colour jitter.

Speed: the geometric steps only compose a 2x3 affine matrix and move the
polygons; the pixels are resampled once, by a single ``cv2.warpAffine`` from the
source image straight to the crop. That is one interpolation instead of three
and never materialises the up-to-3x enlarged intermediate image. The result
equals doing the steps one after another because each step only ever looks at
pixels inside the previous step's canvas (padding is tracked separately).

Coordinates use OpenCV's convention: pixel ``(i, j)`` has its centre at
``x=j, y=i``, the same convention ``cv2.fillPoly`` uses when targets are drawn.
All randomness comes from the ``np.random.Generator`` passed in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, List, Optional, Sequence, Tuple, Union

import cv2
import numpy as np

from sdet.data.sample import TextInstance
from sdet.errors import UserError

if TYPE_CHECKING:  # the YAML-facing config; only its field names are used here
    from sdet.config import AugmentConfig as TrainAugmentConfig

Instances = List[TextInstance]

IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB order, as torchvision
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- config


@dataclass
class PipelineConfig:
    """The resolved augmentation pipeline (each step has an ``*_enabled`` switch).

    Users set ``sdet.config.AugmentConfig`` (the YAML keys); ``augment_config_from`` turns it
    and the crop size into this, which the pipeline steps read.
    """

    flip_enabled: bool = True
    flip_prob: float = 0.5
    rotate_enabled: bool = True
    rotate_degrees: Tuple[float, float] = (-10.0, 10.0)
    scale_enabled: bool = True
    scale_range: Tuple[float, float] = (0.5, 3.0)
    crop_enabled: bool = True
    crop_size: Tuple[int, int] = (640, 640)  # (H, W) of every training image
    crop_max_tries: int = 50
    crop_min_side_ratio: float = 0.1
    crop_keep_ratio: bool = True  # pad instead of stretching the crop
    color_enabled: bool = True
    brightness: float = 0.2  # factors drawn from [1 - x, 1 + x]
    contrast: float = 0.2
    saturation: float = 0.2
    # A polygon cut by the border keeping less than this share of its area
    # becomes a don't-care region: half a word is not a word.
    min_visible_ratio: float = 0.5


# --------------------------------------------------------------------------- state


def _affine(a: float, b: float, c: float, d: float, e: float, f: float) -> np.ndarray:
    return np.array([[a, b, c], [d, e, f], [0.0, 0.0, 1.0]], dtype=np.float64)


def _scale_matrix(sx: float, sy: float) -> np.ndarray:
    """Scaling of pixel centres, the same mapping ``cv2.resize`` uses."""
    return _affine(sx, 0.0, 0.5 * (sx - 1.0), 0.0, sy, 0.5 * (sy - 1.0))


@dataclass
class AugState:
    """An image seen through a pending affine warp, with polygons already moved.

    ``matrix`` maps source pixel coordinates to canvas coordinates; the canvas is
    ``size`` = (H, W). ``valid`` is the top-left (h, w) part of the canvas that
    holds picture (the rest is zero padding) or ``None`` for all of it.
    """

    source: np.ndarray
    instances: Instances
    matrix: np.ndarray = field(default_factory=lambda: np.eye(3))
    size: Tuple[int, int] = (0, 0)
    valid: Optional[Tuple[int, int]] = None

    @classmethod
    def start(cls, image: np.ndarray, instances: Sequence[TextInstance]) -> "AugState":
        copies = [TextInstance(i.polygon.copy(), i.text, i.ignore) for i in instances]
        return cls(source=image, instances=copies, size=(image.shape[0], image.shape[1]))

    def apply(self, matrix: np.ndarray, size: Tuple[int, int], valid: Optional[Tuple[int, int]] = None) -> None:
        """Compose a geometric step: move polygons now, pixels later."""
        if self.valid is not None:  # a warp would pull the padding's hidden pixels back in
            self.materialize()
        self.matrix = matrix @ self.matrix
        self.size = size
        self.valid = valid
        for inst in self.instances:
            inst.polygon = _transform_points(inst.polygon, matrix)

    def render(self) -> np.ndarray:
        """Resample the source once into the current canvas."""
        h, w = self.size
        if np.allclose(self.matrix, np.eye(3)) and self.source.shape[:2] == (h, w):
            image = self.source.copy()
        else:
            image = cv2.warpAffine(
                self.source, self.matrix[:2], (w, h), flags=cv2.INTER_LINEAR,
                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0),
            )
        if self.valid is not None:
            vh, vw = self.valid
            image[vh:] = 0
            image[:, vw:] = 0
        return image

    def materialize(self) -> None:
        """Make the canvas the new source (needed before pixel-level steps)."""
        self.source = self.render()
        self.matrix = np.eye(3)
        self.valid = None


def _transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    pts = points.astype(np.float64) @ matrix[:2, :2].T + matrix[:2, 2]
    return pts.astype(np.float32)


def _polygon_area(points: np.ndarray) -> float:
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def clip_instances(instances: Instances, height: int, width: int, min_visible_ratio: float) -> Instances:
    """Drop polygons fully outside the image; clamp the rest onto it.

    Vertices are clamped to the image like DBNet's ``validate_polygons``; a
    polygon that loses too much area (or is degenerate) becomes ``ignore``.
    """
    kept: Instances = []
    for inst in instances:
        poly = inst.polygon
        if poly[:, 0].max() < 0 or poly[:, 1].max() < 0 or poly[:, 0].min() > width - 1 or poly[:, 1].min() > height - 1:
            continue
        clipped = poly.copy()
        np.clip(clipped[:, 0], 0, width - 1, out=clipped[:, 0])
        np.clip(clipped[:, 1], 0, height - 1, out=clipped[:, 1])
        ignore = inst.ignore
        if not ignore:
            before, after = _polygon_area(poly), _polygon_area(clipped)
            ignore = after < 1.0 or after < min_visible_ratio * before
        kept.append(TextInstance(clipped, inst.text, ignore))
    return kept


# --------------------------------------------------------------------------- steps

Step = Callable[[AugState, np.random.Generator], None]


@dataclass
class RandomFlip:
    """Mirror left-right; vertex order is rotated back to clockwise-from-top-left."""

    prob: float = 0.5

    def __call__(self, state: AugState, rng: np.random.Generator) -> None:
        if rng.random() >= self.prob:
            return
        h, w = state.size
        state.apply(_affine(-1.0, 0.0, w - 1.0, 0.0, 1.0, 0.0), (h, w))
        for inst in state.instances:
            n = len(inst.polygon)
            # Mirroring turns clockwise into counter-clockwise; this reindexing
            # restores it and keeps quads (and 2k-point curves) starting top-left.
            order = (n // 2 - 1 - np.arange(n)) % n if n % 2 == 0 else np.arange(n)[::-1]
            inst.polygon = inst.polygon[order]


@dataclass
class RandomRotate:
    """Rotate about the centre keeping the canvas size (imgaug ``Affine(rotate)``)."""

    degrees: Tuple[float, float] = (-10.0, 10.0)
    min_visible_ratio: float = 0.5

    def __call__(self, state: AugState, rng: np.random.Generator) -> None:
        angle = float(rng.uniform(*self.degrees))
        h, w = state.size
        rot = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
        state.apply(np.vstack([rot, [0.0, 0.0, 1.0]]), (h, w))
        state.instances = clip_instances(state.instances, h, w, self.min_visible_ratio)


@dataclass
class RandomScale:
    """Isotropic rescale by a factor drawn uniformly from ``scale_range``."""

    scale_range: Tuple[float, float] = (0.5, 3.0)

    def __call__(self, state: AugState, rng: np.random.Generator) -> None:
        factor = float(rng.uniform(*self.scale_range))
        h, w = state.size
        new_h, new_w = max(1, int(round(h * factor))), max(1, int(round(w * factor)))
        state.apply(_scale_matrix(new_w / w, new_h / h), (new_h, new_w))


@dataclass
class TextRandomCrop:
    """Crop a region whose borders cut no care text, then fit it to ``size``.

    Follows PaddleOCR's ``EastRandomCropData``: crop edges are drawn from rows /
    columns not covered by any care polygon's bounding box, the crop must keep
    ``min_side_ratio`` of each side and touch at least one care polygon (else
    the whole image is used after ``max_tries``). With ``keep_ratio`` the crop
    is scaled to fit and zero-padded at the bottom/right. Unlike the reference,
    the last free run of rows/columns is also a candidate region.
    """

    size: Tuple[int, int] = (640, 640)  # (H, W)
    max_tries: int = 50
    min_side_ratio: float = 0.1
    keep_ratio: bool = True
    min_visible_ratio: float = 0.5

    def __call__(self, state: AugState, rng: np.random.Generator) -> None:
        h, w = state.size
        care = [i.polygon for i in state.instances if not i.ignore]
        region = choose_crop(care, h, w, self.min_side_ratio, self.max_tries, rng)
        _fit_region(state, region, self.size, self.keep_ratio, self.min_visible_ratio)


@dataclass
class FitToSize:
    """Scale the whole image into ``size`` (keeping its aspect ratio and padding, or stretching)."""

    size: Tuple[int, int] = (640, 640)  # (H, W)
    keep_ratio: bool = True
    min_visible_ratio: float = 0.5

    def __call__(self, state: AugState, rng: np.random.Generator) -> None:
        h, w = state.size
        _fit_region(state, (0, 0, w, h), self.size, self.keep_ratio, self.min_visible_ratio)


def _fit_region(
    state: AugState, region: Tuple[int, int, int, int], size: Tuple[int, int], keep_ratio: bool,
    min_visible_ratio: float,
) -> None:
    """Map canvas ``region`` = (x, y, w, h) onto a ``size`` canvas, padding bottom/right."""
    x0, y0, cw, ch = region
    out_h, out_w = size
    if keep_ratio:
        scale = min(out_w / cw, out_h / ch)
        vh, vw = max(1, int(ch * scale)), max(1, int(cw * scale))
        sx, sy = vw / cw, vh / ch
        valid: Optional[Tuple[int, int]] = (vh, vw) if (vh, vw) != (out_h, out_w) else None
    else:
        sx, sy, vh, vw, valid = out_w / cw, out_h / ch, out_h, out_w, None
    shift = _affine(1.0, 0.0, -float(x0), 0.0, 1.0, -float(y0))
    state.apply(_scale_matrix(sx, sy) @ shift, (out_h, out_w), valid)
    state.instances = clip_instances(state.instances, vh, vw, min_visible_ratio)


def _free_runs(covered: np.ndarray) -> List[np.ndarray]:
    """Runs of consecutive indices where ``covered`` is False."""
    free = np.flatnonzero(~covered)
    if free.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(free) != 1) + 1
    return np.split(free, breaks)


def _pick_span(runs: List[np.ndarray], rng: np.random.Generator) -> Tuple[int, int]:
    """Two cut positions: from two random free runs, or anywhere in the only one."""
    if len(runs) > 1:
        picks = [int(rng.choice(runs[int(k)])) for k in rng.integers(0, len(runs), size=2)]
    else:
        picks = [int(v) for v in rng.choice(runs[0], size=2)]
    return min(picks), max(picks)


def choose_crop(
    care_polys: Sequence[np.ndarray], h: int, w: int, min_side_ratio: float, max_tries: int,
    rng: np.random.Generator,
) -> Tuple[int, int, int, int]:
    """Return ``(x, y, width, height)`` of a crop that cuts no care polygon."""
    if not care_polys:
        return 0, 0, w, h
    cols = np.zeros(w, dtype=bool)
    rows = np.zeros(h, dtype=bool)
    for poly in care_polys:
        pts = np.round(poly).astype(np.int64)
        x_lo, x_hi = np.clip([pts[:, 0].min(), pts[:, 0].max()], 0, w)
        y_lo, y_hi = np.clip([pts[:, 1].min(), pts[:, 1].max()], 0, h)
        cols[x_lo:x_hi] = True
        rows[y_lo:y_hi] = True
    col_runs, row_runs = _free_runs(cols), _free_runs(rows)
    if not col_runs or not row_runs:
        return 0, 0, w, h
    for _ in range(max_tries):
        xmin, xmax = _pick_span(col_runs, rng)
        ymin, ymax = _pick_span(row_runs, rng)
        if xmax - xmin < min_side_ratio * w or ymax - ymin < min_side_ratio * h:
            continue
        for poly in care_polys:
            outside = (
                poly[:, 0].max() < xmin or poly[:, 0].min() > xmax
                or poly[:, 1].max() < ymin or poly[:, 1].min() > ymax
            )
            if not outside:
                return xmin, ymin, xmax - xmin, ymax - ymin
    return 0, 0, w, h


@dataclass
class ColorJitter:
    """Random brightness, contrast and saturation factors in [1 - x, 1 + x]."""

    brightness: float = 0.2
    contrast: float = 0.2
    saturation: float = 0.2

    def __call__(self, state: AugState, rng: np.random.Generator) -> None:
        b, c, s = (float(rng.uniform(1.0 - x, 1.0 + x)) for x in (self.brightness, self.contrast, self.saturation))
        state.materialize()
        image = state.source.astype(np.float32) * b
        gray = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        image = (image - float(gray.mean())) * c + float(gray.mean())
        gray = cv2.cvtColor(np.clip(image, 0, 255), cv2.COLOR_BGR2GRAY)[:, :, None]
        image = gray + (image - gray) * s
        state.source = np.clip(image, 0, 255).astype(np.uint8)


class Compose:
    """Run steps in order on (image, instances) and resample the pixels once."""

    def __init__(self, steps: Sequence[Step]):
        self.steps = list(steps)

    def __call__(
        self, image: np.ndarray, instances: Sequence[TextInstance], rng: np.random.Generator
    ) -> Tuple[np.ndarray, Instances]:
        state = AugState.start(image, instances)
        for step in self.steps:
            step(state, rng)
        return state.render(), state.instances


def build_augmentation(cfg: Optional[PipelineConfig] = None) -> Compose:
    """The DB-style training pipeline described by ``cfg``."""
    cfg = cfg or PipelineConfig()
    steps: List[Step] = []
    if cfg.flip_enabled:
        steps.append(RandomFlip(cfg.flip_prob))
    if cfg.rotate_enabled:
        steps.append(RandomRotate(tuple(cfg.rotate_degrees), cfg.min_visible_ratio))
    if cfg.scale_enabled:
        steps.append(RandomScale(tuple(cfg.scale_range)))
    if cfg.crop_enabled:
        steps.append(TextRandomCrop(
            tuple(cfg.crop_size), cfg.crop_max_tries, cfg.crop_min_side_ratio,
            cfg.crop_keep_ratio, cfg.min_visible_ratio,
        ))
    if cfg.color_enabled:
        steps.append(ColorJitter(cfg.brightness, cfg.contrast, cfg.saturation))
    return Compose(steps)


def augment_config_from(train_cfg: "TrainAugmentConfig", image_size: int) -> PipelineConfig:
    """Translate the user-facing ``sdet.config.AugmentConfig`` (YAML keys) into the pipeline's."""
    degrees = abs(float(train_cfg.rotate_degrees))
    scale_range = (float(train_cfg.scale_min), float(train_cfg.scale_max))
    jitter = float(train_cfg.color_jitter)
    return PipelineConfig(
        flip_enabled=bool(train_cfg.flip),
        rotate_enabled=degrees > 0,
        rotate_degrees=(-degrees, degrees),
        scale_enabled=scale_range != (1.0, 1.0),
        scale_range=scale_range,
        crop_enabled=bool(train_cfg.crop),
        crop_size=(image_size, image_size),
        crop_max_tries=int(train_cfg.crop_max_tries),
        crop_min_side_ratio=float(train_cfg.crop_min_ratio),
        color_enabled=jitter > 0,
        brightness=jitter,
        contrast=jitter,
        saturation=jitter,
    )


def augment_for_training(
    image: np.ndarray,
    polygons: Sequence[np.ndarray],
    ignore: Sequence[bool],
    train_cfg: "TrainAugmentConfig",
    image_size: int,
    rng: np.random.Generator,
) -> Tuple[np.ndarray, List[np.ndarray], List[bool]]:
    """One training example: always ``image_size`` x ``image_size`` so samples batch.

    With cropping switched off the whole augmented image is fitted and padded
    to the square instead.
    """
    cfg = augment_config_from(train_cfg, image_size)
    pipeline = build_augmentation(cfg)
    if not cfg.crop_enabled:
        fit = FitToSize((image_size, image_size), cfg.crop_keep_ratio, cfg.min_visible_ratio)
        at = len(pipeline.steps) - (1 if cfg.color_enabled else 0)
        pipeline.steps.insert(at, fit)
    instances = [TextInstance(p, "", bool(flag)) for p, flag in zip(polygons, ignore)]
    out, kept = pipeline(image, instances, rng)
    return out, [k.polygon for k in kept], [k.ignore for k in kept]


# --------------------------------------------------------------------------- test time


def _round_to_stride(value: float, stride: int) -> int:
    return max(int(round(value / stride) * stride), stride)


def resize_for_test(
    image: np.ndarray,
    mode: str = "short_side",
    side: Union[int, Tuple[int, int], None] = None,
    *,
    stride: int = 32,
    max_side: int = 4000,
) -> Tuple[np.ndarray, Tuple[float, float]]:
    """Deterministic inference resize; returns ``(resized, (ratio_h, ratio_w))``.

    Modes (PaddleOCR ``DetResizeForTest``), ``side`` meaning per mode:

    * ``short_side`` (``side`` default 736): upscale so the short side is at
      least ``side``, never downscale; 1280x720 -> 1312x736.
    * ``long_side`` (``side`` default 960): downscale so the long side is at
      most ``side``, never upscale.
    * ``height`` (``side`` required): height to ``side``, up or down, width by the
      aspect ratio rounded up to a multiple of ``stride`` - DBNet's validation resize
      (``keep_ratio``) for MSRA-TD500 (736) and Total-Text (800); 1296x864 -> 1120x736.
    * ``fixed``: stretch to ``side`` x ``side`` or ``side`` = (H, W).

    ``short_side``/``long_side`` then round each side to a multiple of ``stride`` (ratios
    are per axis, so divide predicted x by ``ratio_w`` and y by ``ratio_h``); a side
    above ``max_side`` is first capped to bound memory.
    """
    h, w = image.shape[:2]
    if mode == "fixed":
        if side is None:
            raise UserError("test resize mode 'fixed' needs a size")
        new_h, new_w = (int(side), int(side)) if isinstance(side, (int, np.integer)) else (int(side[0]), int(side[1]))
    elif mode == "height":
        if side is None or not isinstance(side, (int, np.integer)):
            raise UserError(f"test resize mode 'height' needs an integer height, got {side!r}")
        new_h = _round_to_stride(int(side), stride)
        new_w = max(int(math.ceil(w * new_h / h / stride)) * stride, stride)
    elif mode in ("short_side", "long_side"):
        if side is not None and not isinstance(side, (int, np.integer)):
            raise UserError(f"test resize mode {mode!r} needs an integer side limit, got {side!r}")
        if mode == "short_side":
            limit = 736 if side is None else int(side)
            ratio = limit / min(h, w) if min(h, w) < limit else 1.0
        else:
            limit = 960 if side is None else int(side)
            ratio = limit / max(h, w) if max(h, w) > limit else 1.0
        new_h, new_w = int(h * ratio), int(w * ratio)
        if max(new_h, new_w) > max_side:
            cap = max_side / max(new_h, new_w)
            new_h, new_w = int(new_h * cap), int(new_w * cap)
        new_h, new_w = _round_to_stride(new_h, stride), _round_to_stride(new_w, stride)
    else:
        raise UserError(f"unknown test resize mode {mode!r} (short_side, long_side, height, fixed)")
    resized = image if (new_h, new_w) == (h, w) else cv2.resize(image, (new_w, new_h))
    return resized, (new_h / h, new_w / w)


def normalize(
    image_bgr: np.ndarray,
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
    to_rgb: bool = True,
) -> np.ndarray:
    """uint8 BGR (H, W, 3) -> float32 (3, H, W) scaled to [0, 1] then standardised.

    ``to_rgb=True`` (torchvision / ImageNet-pretrained backbones): channels are
    reordered to RGB and ``mean``/``std`` are read in RGB order.
    ``to_rgb=False`` (PaddleOCR det models): channels stay BGR and ``mean``/``std``
    apply position-wise, i.e. 0.485 to B, as PaddleOCR's ``NormalizeImage`` does
    on its BGR-decoded images; use it for weights trained that way.
    """
    image = image_bgr[:, :, ::-1] if to_rgb else image_bgr
    mean_arr = np.asarray(mean, dtype=np.float32).reshape(3, 1, 1) * 255.0
    inv_std = 1.0 / (np.asarray(std, dtype=np.float32).reshape(3, 1, 1) * 255.0)
    chw = np.ascontiguousarray(image.transpose(2, 0, 1), dtype=np.float32)
    chw -= mean_arr
    chw *= inv_std
    return chw
