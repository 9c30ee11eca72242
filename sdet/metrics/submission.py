"""Read ICDAR2015-style GT and result folders (or zips) and score them: the engine of ``sdet score``.

Input rules follow the official RRC Challenge-4 scripts (``rrc_evaluation_funcs.py``):

* GT files ``gt_img_N.txt``: ``x1,y1,...,x4,y4,transcription``; the transcription is everything
  after the eighth comma (it may hold commas); ``"..."`` quoting is undone; exactly ``###`` marks
  a don't-care region. Other file names in the GT folder are ignored.
* Result files ``res_img_N.txt``: ``x1,y1,...,x4,y4`` with an optional trailing field. When every
  line of a file has a numeric trailing field it is a confidence and, as the official script does
  with confidences on, detections are matched in decreasing-confidence order. Quads must be
  clockwise in image coordinates (y down), as the official submission check demands.
* UTF-8 with or without BOM, LF or CRLF; empty lines are skipped. Image ids are the digits of
  the file name, as strings (``res_img_01`` does not match ``gt_img_1``, as officially).
* A result file for an image without GT file is an error; a missing result file means no
  detections. A misnamed ``.txt`` result file is an error rather than silently scoring zero.

sdet is more lenient than the official script in two harmless ways: decimal coordinates are
accepted (and used unrounded), and a GT line without transcription is a care region.
"""
from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from sdet.errors import UserError
from sdet.metrics.iou import GtRegion, MetricResult, evaluate_icdar2015

PathLike = Union[str, Path]

_NUMBER = re.compile(r"\s*-?\d+(?:\.\d*)?\s*")
_QUOTED = re.compile(r'\s*"(.*)"\s*')
_GT_NAME = re.compile(r"gt_img_(\d+)\.txt")
_RES_NAME = re.compile(r"res_img_(\d+)\.txt")
DONT_CARE = "###"
PROTOCOLS = ("icdar2015",)


def parse_icdar2015_line(line: str) -> Tuple[np.ndarray, Optional[str]]:
    """Parse ``x1,y1,...,x4,y4[,rest]`` into a (4, 2) float64 quad and ``rest`` (None if absent).

    ``rest`` keeps its commas; a double-quoted ``rest`` is unquoted with ``\\\\`` and ``\\"``
    unescaped, as the official script does for transcriptions. Raises ValueError when malformed.
    """
    parts = line.replace("\r", "").replace("\n", "").split(",", 8)
    if len(parts) < 8:
        raise ValueError(f"expected 8 comma-separated coordinates x1,y1,...,x4,y4, got {len(parts)} field(s)")
    for value in parts[:8]:
        if not _NUMBER.fullmatch(value):
            raise ValueError(f"coordinate {value.strip()!r} is not a number")
    quad = np.array([float(v) for v in parts[:8]], dtype=np.float64).reshape(4, 2)
    if len(parts) == 8:
        return quad, None
    rest = parts[8]
    quoted = _QUOTED.fullmatch(rest)
    if quoted:
        rest = quoted.group(1).replace("\\\\", "\\").replace('\\"', '"')
    return quad, rest


def is_clockwise(quad: np.ndarray) -> bool:
    """The official orientation test (image coordinates, y down); zero-area quads pass."""
    x, y = quad[:, 0], quad[:, 1]
    return float(np.sum((np.roll(x, -1) - x) * (np.roll(y, -1) + y))) <= 0


def _confidence(field: Optional[str]) -> Optional[float]:
    """A trailing result field read as a confidence, or None when it is absent or not a number."""
    try:
        value = float(field) if field is not None else None
    except ValueError:
        return None
    return value if value is not None and np.isfinite(value) else None


def _decode(raw: bytes) -> str:
    """UTF-8 with undecodable bytes replaced (never fatal, as officially), BOM dropped."""
    text = raw.decode("utf-8", errors="replace")
    return text[1:] if text.startswith("\ufeff") else text


def _lines(raw: bytes) -> Iterator[Tuple[int, str]]:
    """Non-empty lines with their 1-based line numbers; CR anywhere is dropped."""
    for lineno, line in enumerate(_decode(raw).split("\n"), start=1):
        line = line.replace("\r", "")
        if line.strip():
            yield lineno, line


def read_gt_file(raw: bytes, path: str) -> List[GtRegion]:
    """Regions of one ``gt_img_N.txt``; ``path`` names the file in errors."""
    regions = []
    for lineno, line in _lines(raw):
        try:
            quad, text = parse_icdar2015_line(line)
        except ValueError as exc:
            raise UserError(f"malformed ground-truth line: {exc}", path, lineno) from None
        regions.append(GtRegion(quad, dont_care=text == DONT_CARE))
    return regions


def read_result_file(raw: bytes, path: str) -> List[np.ndarray]:
    """Quads of one ``res_img_N.txt`` in the order the official script would match them."""
    quads: List[np.ndarray] = []
    scores: List[Optional[float]] = []
    for lineno, line in _lines(raw):
        try:
            quad, rest = parse_icdar2015_line(line)
        except ValueError as exc:
            raise UserError(f"malformed result line: {exc}", path, lineno) from None
        if not is_clockwise(quad):
            raise UserError(
                "quad is counter-clockwise; the official script rejects it "
                "(give x1,y1,...,x4,y4 clockwise with y pointing down)", path, lineno)
        quads.append(quad)
        scores.append(_confidence(rest))
    if quads and all(s is not None for s in scores):
        # Official order with confidences: sorted(zip(conf, points), reverse=True).
        order = sorted(range(len(quads)), key=lambda i: (scores[i], tuple(quads[i].ravel())), reverse=True)
        quads = [quads[i] for i in order]
    return quads


def _entries(source: Path) -> Iterator[Tuple[str, str, bytes]]:
    """(file name, display path, contents) of the files in a folder or a zip."""
    if source.is_dir():
        for path in sorted(source.iterdir()):
            if path.is_file():
                yield path.name, str(path), path.read_bytes()
    elif source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as archive:
            for info in archive.infolist():
                if not info.is_dir():
                    yield info.filename, f"{source}/{info.filename}", archive.read(info)
    else:
        raise UserError("not a folder or a zip file", source)


def read_gt_folder(gt_dir: PathLike) -> Dict[str, List[GtRegion]]:
    """Image id -> GT regions for every ``gt_img_N.txt`` in a folder or zip."""
    gt: Dict[str, List[GtRegion]] = {}
    for name, display, raw in _entries(Path(gt_dir)):
        m = _GT_NAME.fullmatch(name)
        if m:
            gt[m.group(1)] = read_gt_file(raw, display)
    if not gt:
        raise UserError("no gt_img_N.txt files found", gt_dir)
    return gt


def read_result_folder(pred_dir: PathLike, image_ids: Optional[set] = None) -> Dict[str, List[np.ndarray]]:
    """Image id -> detected quads for every ``res_img_N.txt``; checks ids against ``image_ids``."""
    det: Dict[str, List[np.ndarray]] = {}
    for name, display, raw in _entries(Path(pred_dir)):
        m = _RES_NAME.fullmatch(name)
        if not m:
            if name.lower().endswith(".txt"):
                raise UserError("result file is not named res_img_N.txt", display)
            continue
        if image_ids is not None and m.group(1) not in image_ids:
            raise UserError(f"no ground truth for image {m.group(1)} (gt_img_{m.group(1)}.txt)", display)
        det[m.group(1)] = read_result_file(raw, display)
    return det


def score_folders(gt_dir: PathLike, pred_dir: PathLike, protocol: str = "icdar2015") -> MetricResult:
    """Score a result folder (or zip) against a GT folder (or zip) with the named protocol."""
    if protocol not in PROTOCOLS:
        raise UserError(f"unknown protocol {protocol!r}; supported: {', '.join(PROTOCOLS)}")
    gt = read_gt_folder(gt_dir)
    det = read_result_folder(pred_dir, set(gt))
    return evaluate_icdar2015(gt, det)
