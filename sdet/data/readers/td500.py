"""MSRA-TD500, HUST-TR400 and their union TD-TR: rotated text-line boxes.

Each ``IMG_N.gt`` line is ``index difficult x y w h angle``: ``(x, y, w, h)`` is the
axis-aligned box before rotation by ``angle`` radians about its centre, and
``difficult=1`` marks a don't-care line. There are no transcriptions.

Angle convention (checked by drawing real images with ``sdet data show``, e.g.
``train/IMG_0063``, whose "deli" logo falls to the right and has angle +0.098): a corner
offset (dx, dy) from the centre moves to (dx cos a - dy sin a, dx sin a + dy cos a) in
image coordinates (y down), i.e. a positive angle turns the box clockwise on screen.
This is ``cv2.boxPoints`` with the angle in degrees.

Layouts: images and ``.gt`` files side by side, as the archives unpack::

    msra-td500:  root/train/IMG_0030.JPG + root/train/IMG_0030.gt, root/test/...
    hust-tr400:  root/IMG_0001.JPG + root/IMG_0001.gt  (training data only; split "train")
    td-tr:       root/<MSRA-TD500|TD500>/{train,test}/... + root/<HUST-TR400|TR400>/...
                 train = MSRA-TD500 train + HUST-TR400, test = MSRA-TD500 test

or the generic ``root/<split>/images`` + ``root/<split>/gt/<stem>.gt``.
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import numpy as np

from sdet.data.readers.common import Problems, make_instance, paired_samples, parse_number, parse_lines, read_lines, unknown_split
from sdet.data.sample import Sample, TextInstance
from sdet.errors import UserError

GT_NAMES = ("{key}.gt",)
TD500_SPLITS = ("train", "test")
TD500_FOLDERS = ("MSRA-TD500", "TD500")
TR400_FOLDERS = ("HUST-TR400", "TR400")


def rotated_box(x: float, y: float, w: float, h: float, angle: float) -> np.ndarray:
    """Corners (4, 2) of box (x, y, w, h) turned by ``angle`` radians about its centre.

    Returned in the order top-left, top-right, bottom-right, bottom-left of the unrotated
    box, which is clockwise on screen whatever the angle.
    """
    cx, cy = x + w / 2.0, y + h / 2.0
    offsets = np.array([[-w, -h], [w, -h], [w, h], [-w, h]], dtype=np.float64) / 2.0
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.array([[cos, -sin], [sin, cos]])
    return offsets @ rotation.T + (cx, cy)


def parse_line(line: str, path: Path, lineno: int, problems: Problems) -> TextInstance:
    fields = line.split()
    if len(fields) != 7:
        raise UserError(f"expected 7 fields 'index difficult x y w h angle', got {len(fields)}", path, lineno)
    if fields[1] not in ("0", "1"):
        raise UserError(f"difficult flag must be 0 or 1, got {fields[1]!r}", path, lineno)
    names = ("x", "y", "w", "h", "angle")
    x, y, w, h, angle = (parse_number(v, n, path, lineno) for n, v in zip(names, fields[2:]))
    if w < 0 or h < 0:
        raise UserError(f"negative box size w={w:g} h={h:g}", path, lineno)
    return make_instance(rotated_box(x, y, w, h, angle), "", fields[1] == "1", path, lineno, problems)


def read_gt_file(path: Path, problems: Problems) -> List[TextInstance]:
    return parse_lines(path, read_lines(path, problems), parse_line, problems)


def _side_by_side(folder: Path, problems: Problems) -> List[Sample]:
    """Images and .gt files in one folder, or in ``folder/images`` + ``folder/gt``."""
    if (folder / "images").is_dir():
        return paired_samples(folder / "images", folder / "gt", GT_NAMES, read_gt_file, problems)
    return paired_samples(folder, folder, GT_NAMES, read_gt_file, problems)


def read_msra_td500(root: Path, split: str, problems: Problems) -> List[Sample]:
    if not (root / split).is_dir():
        if split not in TD500_SPLITS:
            raise unknown_split(split, TD500_SPLITS, "MSRA-TD500", root)
        raise UserError(f"dataset folder not found (MSRA-TD500 unpacks into {TD500_SPLITS})", root / split)
    return _side_by_side(root / split, problems)


def read_hust_tr400(root: Path, split: str, problems: Problems) -> List[Sample]:
    """HUST-TR400 is one folder of training images; ``root/<split>`` is used when present."""
    if (root / split).is_dir():
        return _side_by_side(root / split, problems)
    if split != "train":
        raise unknown_split(split, ("train",), "HUST-TR400", root)
    return _side_by_side(root, problems)


def _subfolder(root: Path, names: Sequence[str]) -> Path:
    """The first child of ``root`` whose name is one of ``names`` (any case)."""
    wanted = [n.casefold() for n in names]
    children = {p.name.casefold(): p for p in root.iterdir() if p.is_dir()}
    for name in wanted:
        if name in children:
            return children[name]
    raise UserError(f"TD-TR root needs a folder named {' or '.join(names)}", root)


def read_td_tr(root: Path, split: str, problems: Problems) -> List[Sample]:
    """The TD-TR benchmark setting: train on MSRA-TD500 train + HUST-TR400, test on MSRA-TD500 test.

    The training split is the plain union, as the papers train; use ``data.mix`` for other ratios.
    """
    td500 = read_msra_td500(_subfolder(root, TD500_FOLDERS), split, problems)
    if split != "train":
        return td500
    return td500 + read_hust_tr400(_subfolder(root, TR400_FOLDERS), "train", problems)
