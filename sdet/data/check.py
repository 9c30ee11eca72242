"""``sdet data check`` and ``sdet data show``: look at a dataset before training on it.

``check`` reads a split the way training does, but collects every problem instead of
stopping at the first, decodes every image, and prints counts and statistics. Problems
(malformed lines, images without ground truth or ground truth without images, images that
cannot be decoded, a polygon lying mostly outside its image, a split without a single
usable instance) make the exit status 2; notes (zero-area or self-intersecting polygons,
vertices a little outside the image, an EXIF orientation tag, which training ignores) are
listed but tolerated, as training tolerates them. Images are checked in their raw pixel
grid, the frame ground truth refers to (see :mod:`sdet.data.images`).
``show`` draws the ground truth on the images: green for care, red for don't care.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

import cv2
import numpy as np
from shapely.geometry import Polygon, box
from shapely.validation import make_valid

from sdet.data.formats import load_dataset
from sdet.data.images import LoadedImage, describe_orientation, open_image, read_image, swaps_axes, write_image
from sdet.data.readers.common import MIN_POLYGON_AREA, Problems, no_usable_instance_error
from sdet.data.sample import Sample, TextInstance
from sdet.errors import UserError

CARE_COLOR = (0, 255, 0)  # BGR green
DONT_CARE_COLOR = (0, 0, 255)  # BGR red
OUTSIDE_TOLERANCE = 1.0  # px; annotators' boxes often touch the border
# A polygon with less than this share of its area inside the image is misplaced, not cut by
# the border (ICDAR 2015 has many boxes a few pixels over the edge): it would train as
# background, or as a box in the wrong place.
MIN_INSIDE_FRACTION = 0.5


@dataclass
class CheckReport:
    spec: str
    split: str
    images: int = 0
    instances: int = 0
    dont_care: int = 0
    vertex_counts: Counter = field(default_factory=Counter)
    widths: List[int] = field(default_factory=list)
    heights: List[int] = field(default_factory=list)
    problems: List[UserError] = field(default_factory=list)
    notes: List[UserError] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "dataset": self.spec,
            "split": self.split,
            "images": self.images,
            "instances": self.instances,
            "dont_care": self.dont_care,
            "vertex_counts": {str(k): v for k, v in sorted(self.vertex_counts.items())},
            "width": _stats(self.widths),
            "height": _stats(self.heights),
            "problems": [str(p) for p in self.problems],
            "notes": [str(n) for n in self.notes],
        }

    def format(self) -> str:
        """The human-readable report, one fact per line."""
        d = self.to_dict()
        lines = [
            f"dataset    {self.spec}  split {self.split}",
            f"images     {self.images}",
            f"instances  {self.instances}  (care {self.instances - self.dont_care}, don't care {self.dont_care})",
            "vertices   " + (", ".join(f"{k}: {v}" for k, v in d["vertex_counts"].items()) or "-"),
        ]
        for axis in ("width", "height"):
            s = d[axis]
            if s:
                lines.append(f"{axis:<10} min {s['min']}  median {s['median']:g}  mean {s['mean']:.1f}  max {s['max']}")
        lines.append(f"notes      {len(self.notes)}")
        lines.extend(f"  note: {n}" for n in self.notes)
        lines.append(f"problems   {len(self.problems)}")
        lines.extend(f"  problem: {p}" for p in self.problems)
        return "\n".join(lines)


def _stats(values: List[int]) -> Optional[Dict[str, float]]:
    if not values:
        return None
    arr = np.asarray(values)
    return {"min": int(arr.min()), "median": float(np.median(arr)), "mean": float(arr.mean()), "max": int(arr.max())}


def _inside_fraction(inst: TextInstance, width: int, height: int) -> Optional[float]:
    """Share of the polygon's area inside the ``width`` x ``height`` frame (plus tolerance); None if degenerate."""
    shape = make_valid(Polygon(inst.polygon))
    if shape.area < MIN_POLYGON_AREA:  # already noted by the reader
        return None
    frame = box(-OUTSIDE_TOLERANCE, -OUTSIDE_TOLERANCE, width + OUTSIDE_TOLERANCE, height + OUTSIDE_TOLERANCE)
    return shape.intersection(frame).area / shape.area


def _vertices_outside(inst: TextInstance, width: int, height: int) -> bool:
    poly = inst.polygon
    return bool((poly.min(axis=0) < -OUTSIDE_TOLERANCE).any() or (poly[:, 0] > width + OUTSIDE_TOLERANCE).any()
                or (poly[:, 1] > height + OUTSIDE_TOLERANCE).any())


def _misplaced(k: int, inst: TextInstance, fraction: float, image: LoadedImage, path: str) -> UserError:
    """The problem for a polygon mostly outside the raw frame, saying if it fits the EXIF-rotated one."""
    height, width = image.pixels.shape[:2]
    message = f"instance {k} lies outside the {width}x{height} image ({fraction:.0%} of its area inside)"
    rotated = _inside_fraction(inst, height, width)
    if swaps_axes(image.exif_orientation) and rotated is not None and rotated >= MIN_INSIDE_FRACTION:
        message += (f"; it fits the {height}x{width} EXIF-rotated frame (orientation {image.exif_orientation}): "
                    "this ground truth seems to refer to the rotated photo, but sdet reads datasets' raw pixels")
    return UserError(message, path)


def _placement(sample: Sample, image: LoadedImage) -> Tuple[List[UserError], List[UserError]]:
    """``(problems, notes)`` about where the polygons lie in the raw frame of ``image``."""
    height, width = image.pixels.shape[:2]
    problems, notes = [], []
    for k, inst in enumerate(sample.instances, start=1):
        fraction = _inside_fraction(inst, width, height)
        if fraction is not None and fraction < MIN_INSIDE_FRACTION:
            problems.append(_misplaced(k, inst, fraction, image, sample.image_path))
        elif _vertices_outside(inst, width, height):
            notes.append(UserError(f"instance {k} has vertices outside the {width}x{height} image", sample.image_path))
    return problems, notes


def _orientation_note(image: LoadedImage, path: str) -> List[UserError]:
    if image.exif_orientation == 1:
        return []
    height, width = image.pixels.shape[:2]
    return [UserError(
        f"EXIF orientation {image.exif_orientation} ({describe_orientation(image.exif_orientation)}) is ignored: "
        f"ground truth, training and evaluation use the raw {width}x{height} pixels (sdet predict applies it)",
        path,
    )]


def _check_image(sample: Sample, report: CheckReport) -> None:
    """Decode the raw pixels and add the image's size, orientation note and placement findings."""
    try:
        image = open_image(sample.image_path, orientation="raw")
    except UserError as err:
        report.problems.append(err)
        return
    height, width = image.pixels.shape[:2]
    report.heights.append(height)
    report.widths.append(width)
    report.notes.extend(_orientation_note(image, sample.image_path))
    problems, notes = _placement(sample, image)
    report.problems.extend(problems)
    report.notes.extend(notes)


def check_dataset(name: str, root: str, split: str, decode_images: bool = True) -> CheckReport:
    """Read ``name:root`` split ``split``, collecting every problem; decode every image.

    A dataset that cannot be read at all (unknown name, missing folders, no images) still
    raises :class:`UserError`.
    """
    problems = Problems(skip_bad=True, warn=False)
    samples = load_dataset(name, root, split, problems)
    report = CheckReport(spec=f"{name}:{root}", split=split, problems=list(problems.skipped), notes=list(problems.notes))
    for sample in samples:
        report.images += 1
        report.instances += len(sample.instances)
        report.dont_care += sum(inst.ignore for inst in sample.instances)
        report.vertex_counts.update(len(inst.polygon) for inst in sample.instances)
        if decode_images:
            _check_image(sample, report)
    empty = no_usable_instance_error(samples, f"{name}:{root} split {split!r}")
    if empty is not None:
        report.problems.append(empty)
    return report


def draw_ground_truth(image: np.ndarray, sample: Sample) -> np.ndarray:
    """Polygons on a copy of ``image``: care green, don't care red, lines scaled to the image."""
    out = image.copy()
    thickness = max(1, round(max(image.shape[:2]) / 500))
    for inst in sample.instances:
        pts = np.round(inst.polygon).astype(np.int32).reshape(-1, 1, 2)
        color = DONT_CARE_COLOR if inst.ignore else CARE_COLOR
        cv2.polylines(out, [pts], isClosed=True, color=color, thickness=thickness)
    return out


def show_dataset(name: str, root: str, split: str, out_dir: Path, limit: int = 20, ext: str = "jpg") -> List[Path]:
    """Write the first ``limit`` images (0 = all) with their ground truth drawn into ``out_dir``."""
    if ext not in ("jpg", "png"):
        raise UserError(f"image format must be jpg or png, got {ext!r}")
    samples = load_dataset(name, root, split, Problems())
    if limit > 0:
        samples = samples[:limit]
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, sample in enumerate(samples):
        drawn = draw_ground_truth(read_image(sample.image_path, orientation="raw"), sample)
        written.append(write_image(out_dir / f"{i:05d}_{Path(sample.image_path).stem}.{ext}", drawn))
    return written
