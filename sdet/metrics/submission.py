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

The other protocols (``deteval``, ``total-text``, ``total-text-iou``, ``td500``, ``td500-iou``)
read one generic region format, since their official inputs (MATLAB ``.mat`` GT, y-first
coordinates, ``.gt`` rotated boxes) are not ICDAR files:

* GT files ``gt_<image>.txt`` and result files ``res_<image>.txt``, matched by ``<image>`` (any
  text: ``gt_img_1.txt`` / ``res_img_1.txt``, ``gt_IMG_0030.txt`` / ``res_IMG_0030.txt``);
* one region per line: ``x1,y1,x2,y2,...,xn,yn[,rest]`` with n >= 4 points in (x, y) order;
  the coordinates are the longest run of leading numeric fields, cut to an even count, so an
  odd extra number is ``rest`` (a confidence, or a numeric transcription); quote a transcription
  that is numbers and commas (``"1,000"``). Results need not be clockwise and are matched in
  file order (a trailing confidence is ignored);
* ``deteval`` also takes ICDAR2013 rectangles ``left,top,right,bottom[,"text"]`` (comma- or
  blank-separated, as in the Challenge 2 GT) and ``left,top,right,bottom[,confidence]``
  results; any polygon is scored as its bounding rectangle;
* don't care: transcription ``###``; for ``total-text`` and ``total-text-iou`` also ``#``
  (the Total-Text mark). For ``td500`` write difficult lines with ``###``;
* which images count is the protocol's business: every GT image, except for ``total-text``,
  which like its official script scores only the images that have a result file.
"""
from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from sdet.errors import UserError
from sdet.metrics.protocols import PROTOCOLS, get_protocol  # noqa: F401  (PROTOCOLS re-exported)
from sdet.metrics.result import GtRegion, MetricResult

PathLike = Union[str, Path]

_NUMBER = re.compile(r"\s*-?\d+(?:\.\d*)?\s*")
_QUOTED = re.compile(r'\s*"(.*)"\s*')
_GT_NAME = re.compile(r"gt_img_(\d+)\.txt")
_RES_NAME = re.compile(r"res_img_(\d+)\.txt")
_ANY_GT_NAME = re.compile(r"gt_(.+)\.txt")
_ANY_RES_NAME = re.compile(r"res_(.+)\.txt")
_NUM = r"-?\d+(?:\.\d*)?"
_SEP = r"\s*[,\s]\s*"
_LTRB = re.compile(rf"\s*({_NUM}){_SEP}({_NUM}){_SEP}({_NUM}){_SEP}({_NUM})(?:\s*[,\s](.*))?")
DONT_CARE = "###"


@dataclass(frozen=True)
class LineFormat:
    """What a protocol's GT and result lines may hold (beyond ``x1,y1,...,xn,yn[,rest]``)."""

    ltrb: bool = False  # ICDAR2013 ``left,top,right,bottom`` boxes accepted too
    dont_care: Tuple[str, ...] = (DONT_CARE,)


# Region-file protocols; icdar2015 keeps the official quad reader (parse_icdar2015_line).
FILE_FORMATS: Dict[str, LineFormat] = {
    "deteval": LineFormat(ltrb=True),
    "total-text": LineFormat(dont_care=("#", DONT_CARE)),
    "total-text-iou": LineFormat(dont_care=("#", DONT_CARE)),
    "td500": LineFormat(),
    "td500-iou": LineFormat(),
}


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
    return quad, _unquote(parts[8])


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


def _unquote(rest: str) -> str:
    """Undo ``"..."`` quoting with ``\\\\`` and ``\\"`` escapes, as the official scripts do."""
    quoted = _QUOTED.fullmatch(rest)
    return quoted.group(1).replace("\\\\", "\\").replace('\\"', '"') if quoted else rest


def parse_region_line(line: str, ltrb: bool = False) -> Tuple[np.ndarray, Optional[str]]:
    """Parse ``x1,y1,...,xn,yn[,rest]`` (n >= 4) into an (n, 2) float64 polygon and ``rest``.

    The coordinates are the leading numeric fields, cut to an even count; ``rest`` (None when
    absent) is the remaining text, commas kept and ``"..."`` quoting undone. With ``ltrb`` an
    ICDAR2013 line ``left,top,right,bottom[,rest]`` (commas or blanks) becomes the clockwise
    rectangle (l, t), (r, t), (r, b), (l, b). Raises ValueError when malformed.
    """
    line = line.replace("\r", "").replace("\n", "")
    fields = line.split(",")
    n = 0
    while n < len(fields) and _NUMBER.fullmatch(fields[n]):
        n += 1
    if n >= 8:
        k = n - n % 2
        polygon = np.array([float(v) for v in fields[:k]], dtype=np.float64).reshape(-1, 2)
        rest = ",".join(fields[k:]) if len(fields) > k else None
        return polygon, (None if rest is None else _unquote(rest))
    match = _LTRB.fullmatch(line) if ltrb else None
    if match is None:
        shape = "x1,y1,...,xn,yn (n >= 4) or left,top,right,bottom" if ltrb else "x1,y1,...,xn,yn (n >= 4)"
        raise ValueError(f"expected {shape}; found {n} leading number(s)")
    left, top, right, bottom = (float(v) for v in match.groups()[:4])
    if right < left or bottom < top:
        raise ValueError(f"box has right < left or bottom < top: {left:g},{top:g},{right:g},{bottom:g}")
    polygon = np.array([[left, top], [right, top], [right, bottom], [left, bottom]], dtype=np.float64)
    rest = match.group(5)
    return polygon, (None if rest is None else _unquote(rest))


def read_region_gt_file(raw: bytes, path: str, fmt: LineFormat) -> List[GtRegion]:
    """Regions of one ``gt_<image>.txt`` in the generic region format."""
    regions = []
    for lineno, line in _lines(raw):
        try:
            polygon, text = parse_region_line(line, fmt.ltrb)
        except ValueError as exc:
            raise UserError(f"malformed ground-truth line: {exc}", path, lineno) from None
        regions.append(GtRegion(polygon, dont_care=text is not None and text.strip() in fmt.dont_care))
    return regions


def read_region_result_file(raw: bytes, path: str, fmt: LineFormat) -> List[np.ndarray]:
    """Polygons of one ``res_<image>.txt`` in file order (a trailing field is ignored)."""
    polygons = []
    for lineno, line in _lines(raw):
        try:
            polygons.append(parse_region_line(line, fmt.ltrb)[0])
        except ValueError as exc:
            raise UserError(f"malformed result line: {exc}", path, lineno) from None
    return polygons


def read_region_folders(
    gt_dir: PathLike, pred_dir: PathLike, fmt: LineFormat
) -> Tuple[Dict[str, List[GtRegion]], Dict[str, List[np.ndarray]]]:
    """GT and results of a region-format submission, with the same file checks as ICDAR2015's."""
    gt: Dict[str, List[GtRegion]] = {}
    for name, display, raw in _entries(Path(gt_dir)):
        m = _ANY_GT_NAME.fullmatch(name)
        if m:
            gt[m.group(1)] = read_region_gt_file(raw, display, fmt)
    if not gt:
        raise UserError("no gt_<image>.txt files found", gt_dir)
    det: Dict[str, List[np.ndarray]] = {}
    for name, display, raw in _entries(Path(pred_dir)):
        m = _ANY_RES_NAME.fullmatch(name)
        if m is None:
            if name.lower().endswith(".txt"):
                raise UserError("result file is not named res_<image>.txt", display)
            continue
        if m.group(1) not in gt:
            raise UserError(f"no ground truth for image {m.group(1)} (gt_{m.group(1)}.txt)", display)
        det[m.group(1)] = read_region_result_file(raw, display, fmt)
    return gt, det


def score_folders(gt_dir: PathLike, pred_dir: PathLike, protocol: str = "icdar2015") -> MetricResult:
    """Score a result folder (or zip) against a GT folder (or zip) with the named protocol."""
    evaluate = get_protocol(protocol)
    if protocol in FILE_FORMATS:
        gt, det = read_region_folders(gt_dir, pred_dir, FILE_FORMATS[protocol])
    else:
        gt = read_gt_folder(gt_dir)
        det = read_result_folder(pred_dir, set(gt))
    return evaluate(gt, det)
