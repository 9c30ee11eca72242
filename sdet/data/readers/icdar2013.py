"""ICDAR 2013 Focused Scene Text (Challenge 2, Task 1): axis-aligned boxes.

Lines are ``left top right bottom "transcription"``: space-separated in the training
ground truth (``gt_100.txt``), comma-separated in the test ground truth
(``gt_img_1.txt``: ``38, 43, 920, 215, "Tiredness"``). Transcriptions are quoted and may
hold escaped quotes (``\\"``) and backslashes (``\\\\``). A box becomes the clockwise
polygon (l, t), (r, t), (r, b), (l, b).

Layouts: the official archives as they unpack::

    root/Challenge2_Training_Task12_Images/100.jpg    root/Challenge2_Training_Task1_GT/gt_100.txt
    root/Challenge2_Test_Task12_Images/img_1.jpg      root/Challenge2_Test_Task1_GT/gt_img_1.txt

or the generic ``root/<split>/images`` + ``root/<split>/gt/gt_<stem>.txt``.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List

from sdet.data.readers.common import DONT_CARE, Problems, make_instance, paired_samples, parse_lines, read_lines, unknown_split
from sdet.data.sample import Sample, TextInstance
from sdet.errors import UserError

OFFICIAL = {
    "train": ("Challenge2_Training_Task12_Images", "Challenge2_Training_Task1_GT"),
    "test": ("Challenge2_Test_Task12_Images", "Challenge2_Test_Task1_GT"),
}
GT_NAMES = ("gt_{key}.txt",)

_NUM = r"(-?\d+(?:\.\d*)?)"
_SEP = r"\s*[,\s]\s*"  # one comma or blank run, with optional blanks around a comma
_QUOTED = r'("(?:[^"\\]|\\.)*")'  # a double-quoted string in which \ escapes the next character
_LINE = re.compile(rf"\s*{_NUM}{_SEP}{_NUM}{_SEP}{_NUM}{_SEP}{_NUM}(?:{_SEP}{_QUOTED})?\s*")
_ESCAPE = re.compile(r"\\(.)")


def unquote(text: str) -> str:
    """``"a \\"b\\""`` -> ``a "b"``."""
    return _ESCAPE.sub(r"\1", text[1:-1]) if len(text) >= 2 else text


def parse_line(line: str, path: Path, lineno: int, problems: Problems) -> TextInstance:
    match = _LINE.fullmatch(line)
    if match is None:
        raise UserError('expected left top right bottom "transcription" (blank- or comma-separated)', path, lineno)
    left, top, right, bottom = (float(v) for v in match.groups()[:4])
    if right < left or bottom < top:
        raise UserError(f"box has right < left or bottom < top: {left:g} {top:g} {right:g} {bottom:g}", path, lineno)
    text = unquote(match.group(5) or "")
    polygon = [(left, top), (right, top), (right, bottom), (left, bottom)]
    return make_instance(polygon, text, text == DONT_CARE, path, lineno, problems)


def read_gt_file(path: Path, problems: Problems) -> List[TextInstance]:
    return parse_lines(path, read_lines(path, problems), parse_line, problems)


def read_icdar2013(root: Path, split: str, problems: Problems) -> List[Sample]:
    official = OFFICIAL.get(split)
    if official is not None and (root / official[0]).is_dir():
        return paired_samples(root / official[0], root / official[1], GT_NAMES, read_gt_file, problems)
    if (root / split / "images").is_dir():
        return paired_samples(root / split / "images", root / split / "gt", GT_NAMES, read_gt_file, problems)
    if official is None:
        raise unknown_split(split, list(OFFICIAL), "ICDAR 2013", root)
    raise UserError(
        f"dataset folder not found (expected the official ICDAR 2013 layout or {root / split / 'images'})",
        root / official[0],
    )
