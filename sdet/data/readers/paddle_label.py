"""PaddleOCR detection label files: one image per line, its annotations as JSON.

Each line is ``image_path<TAB>[{"transcription": "...", "points": [[x, y], ...]}, ...]``;
``###`` or ``*`` as transcription marks a don't-care region (PaddleOCR's ``DetLabelEncode``
convention). Polygons may have any vertex count. Image paths are taken relative to the
label file's folder (PaddleOCR's ``data_dir`` is usually that folder) unless absolute.

Layouts: ``paddle-label:ROOT`` where ROOT is the label file itself (then every split reads
it), or a folder holding ``<split>_label.txt``, ``<split>.txt``, ``<split>/label.txt`` or a
single ``<split>_*.txt`` (e.g. ``train_icdar2015_label.txt``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, List

from sdet.data.readers.common import Problems, make_instance, read_lines
from sdet.data.sample import Sample, TextInstance
from sdet.errors import UserError

IGNORE_TEXTS = ("###", "*")


def find_label_file(root: Path, split: str) -> Path:
    if root.is_file():
        return root
    for name in (f"{split}_label.txt", f"{split}.txt", f"{split}/label.txt"):
        if (root / name).is_file():
            return root / name
    matches = sorted(root.glob(f"{split}_*.txt"))
    if len(matches) == 1:
        return matches[0]
    found = f"; several candidates: {', '.join(p.name for p in matches)}" if matches else ""
    raise UserError(
        f"no PaddleOCR label file for split {split!r} (expected {split}_label.txt, {split}.txt, "
        f"{split}/label.txt or one {split}_*.txt){found}",
        root,
    )


def _annotation(item: Any, path: Path, lineno: int, problems: Problems) -> TextInstance:
    if not isinstance(item, dict) or "points" not in item:
        raise UserError('each annotation must be an object with "points" (and "transcription")', path, lineno)
    text = item.get("transcription", "")
    if not isinstance(text, str):
        raise UserError(f'"transcription" must be a string, got {text!r}', path, lineno)
    try:
        points = [(float(x), float(y)) for x, y in item["points"]]
    except (TypeError, ValueError):
        raise UserError(f'"points" must be a list of [x, y] numbers, got {item["points"]!r}', path, lineno) from None
    return make_instance(points, text, text in IGNORE_TEXTS, path, lineno, problems)


def parse_line(line: str, label_file: Path, lineno: int, problems: Problems) -> Sample:
    if "\t" not in line:
        raise UserError("expected image_path<TAB>[annotations as JSON]", label_file, lineno)
    image_name, payload = line.split("\t", 1)
    try:
        items = json.loads(payload)
    except json.JSONDecodeError as exc:
        raise UserError(f"annotations are not valid JSON ({exc.msg} at column {exc.colno})", label_file, lineno) from None
    if not isinstance(items, list):
        raise UserError("annotations must be a JSON list", label_file, lineno)
    instances = [_annotation(item, label_file, lineno, problems) for item in items]
    image = Path(image_name)
    if not image.is_absolute():
        image = label_file.parent / image
    if not image.is_file():
        raise UserError(f"image not found: {image}", label_file, lineno)
    return Sample(image_path=str(image), instances=instances)


def read_paddle_label(root: Path, split: str, problems: Problems) -> List[Sample]:
    label_file = find_label_file(root, split)
    samples = []
    for lineno, line in read_lines(label_file, problems):
        try:
            samples.append(parse_line(line, label_file, lineno, problems))
        except UserError as err:
            problems.bad(err)
    if not samples:
        raise UserError("empty dataset: the label file lists no images", label_file)
    return samples
