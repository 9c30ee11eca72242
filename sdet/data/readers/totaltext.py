"""Total-Text: curved text as polygons of any vertex count.

Two ground-truth forms, told apart per file by whether it starts with ``x:``:

* the legacy text form of the official release (``poly_gt_img11.txt``)::

      x: [[115 503 494 115]], y: [[322 346 426 404]], ornt: [u'm'], transcriptions: [u'nauGHTY']

  one record per polygon, which long polygons wrap over several lines; ``#`` as
  transcription or orientation marks a don't-care region.
* the polygon CSV form of DBNet-style re-packs (``img11.jpg.txt``)::

      x1,y1,x2,y2,...,xn,yn,transcription

  with ``###`` (or ``#``) as don't care.

Layouts for split ``train``/``test`` (``Train``/``Test`` in the official names)::

    root/Images/Train/img11.jpg + root/Groundtruth/{Text,Polygon}/Train/poly_gt_img11.txt
    root/train_images/img11.jpg + root/train_gts/img11.jpg.txt
    root/<split>/images/img11.jpg + root/<split>/gt/(poly_gt_|gt_)img11.txt
"""
from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from sdet.data.readers.common import DONT_CARE, Problems, make_instance, paired_samples, parse_number, parse_lines, read_lines, unknown_split
from sdet.data.sample import Sample, TextInstance
from sdet.errors import UserError

SPLITS = ("train", "test")
GT_NAMES = ("poly_gt_{key}.txt", "gt_{key}.txt", "{key}.txt")
IGNORE_TEXTS = ("#", DONT_CARE)
_RECORD = re.compile(
    r"x:\s*\[\[(?P<x>[^\]]*)\]\],\s*y:\s*\[\[(?P<y>[^\]]*)\]\],\s*"
    r"ornt:\s*\[(?P<ornt>[^\]]*)\],\s*transcriptions:\s*\[(?P<text>.*)\]\s*",
    re.DOTALL,
)
_NUMBER = re.compile(r"\s*-?\d+(?:\.\d*)?\s*")


def _literal(token: str, what: str, path: Path, lineno: int) -> str:
    """``u'abc'`` / ``'abc'`` / ``u"Joe's"`` -> the string (the files hold Python 2 reprs)."""
    try:
        value = ast.literal_eval(token.strip())
    except (ValueError, SyntaxError):
        raise UserError(f"{what} is not a quoted string: {token.strip()!r}", path, lineno) from None
    if not isinstance(value, str):
        raise UserError(f"{what} is not a quoted string: {token.strip()!r}", path, lineno)
    return value


def parse_legacy_record(record: str, path: Path, lineno: int, problems: Problems) -> TextInstance:
    match = _RECORD.fullmatch(record.strip())
    if match is None:
        raise UserError("expected x: [[...]], y: [[...]], ornt: [...], transcriptions: [...]", path, lineno)
    xs = [parse_number(v, "x", path, lineno) for v in match["x"].split()]
    ys = [parse_number(v, "y", path, lineno) for v in match["y"].split()]
    if len(xs) != len(ys):
        raise UserError(f"{len(xs)} x but {len(ys)} y coordinates", path, lineno)
    ornt = _literal(match["ornt"], "ornt", path, lineno)
    text = _literal(match["text"], "transcription", path, lineno)
    ignore = text in IGNORE_TEXTS or ornt == "#"
    return make_instance(list(zip(xs, ys)), text, ignore, path, lineno, problems)


def legacy_records(lines: Sequence[Tuple[int, str]]) -> List[Tuple[int, str]]:
    """Join wrapped lines: a record starts at a line beginning with ``x:``."""
    records: List[Tuple[int, str]] = []
    for lineno, line in lines:
        if line.lstrip().startswith("x:") or not records:
            records.append((lineno, line))
        else:
            start, text = records[-1]
            records[-1] = (start, text + " " + line)
    return records


def split_csv_polygon(line: str) -> Tuple[List[str], str]:
    """``x1,y1,...,xn,yn,text`` -> (coordinate fields, text).

    The coordinates are the longest even run of leading numbers; an all-numeric line
    with an odd count ends in a numeric transcription (``...,2019``). The text keeps its
    commas.
    """
    fields = line.split(",")
    count = 0
    while count < len(fields) and _NUMBER.fullmatch(fields[count]):
        count += 1
    n = count - (count % 2)
    return fields[:n], ",".join(fields[n:])


def parse_csv_line(line: str, path: Path, lineno: int, problems: Problems) -> TextInstance:
    coords, text = split_csv_polygon(line)
    if len(coords) < 6:
        raise UserError(f"expected x1,y1,...,xn,yn,transcription with n >= 3, got {len(coords)} coordinates", path, lineno)
    values = [float(v) for v in coords]
    points = list(zip(values[0::2], values[1::2]))
    return make_instance(points, text, text.strip() in IGNORE_TEXTS, path, lineno, problems)


def read_gt_file(path: Path, problems: Problems) -> List[TextInstance]:
    lines = read_lines(path, problems)
    legacy = bool(lines) and lines[0][1].lstrip().startswith("x:")
    units = legacy_records(lines) if legacy else lines
    parse = parse_legacy_record if legacy else parse_csv_line
    return parse_lines(path, units, parse, problems)


def _layout(root: Path, split: str) -> Optional[Tuple[Path, Path]]:
    """(image folder, gt folder) of the first known layout present for ``split``."""
    for name in (split.capitalize(), split):
        images = root / "Images" / name
        if images.is_dir():
            for gt_base in ("Groundtruth/Text", "Groundtruth/Polygon", "Groundtruth", "gt"):
                for gt_name in (split.capitalize(), split):
                    if (root / gt_base / gt_name).is_dir():
                        return images, root / gt_base / gt_name
            return images, root / "Groundtruth" / "Text" / split.capitalize()
    if (root / f"{split}_images").is_dir():
        return root / f"{split}_images", root / f"{split}_gts"
    if (root / split / "images").is_dir():
        return root / split / "images", root / split / "gt"
    return None


def read_total_text(root: Path, split: str, problems: Problems) -> List[Sample]:
    layout = _layout(root, split)
    if layout is None:
        if split not in SPLITS:
            raise unknown_split(split, SPLITS, "Total-Text", root)
        raise UserError(
            f"dataset folder not found (expected Images/{split.capitalize()}, {split}_images or {split}/images)", root
        )
    return paired_samples(layout[0], layout[1], GT_NAMES, read_gt_file, problems)
