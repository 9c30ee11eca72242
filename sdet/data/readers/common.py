"""What every annotation reader shares: problem reporting, text decoding, polygons, pairing.

Readers stay strict by default because a silently dropped box teaches the detector "no text
here"; ``skip_bad`` exists so that one broken line need not kill a long training run, and
``sdet data check`` uses the same channel to list every problem at once.
"""
from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
from shapely.geometry import Polygon
from shapely.validation import explain_validity, make_valid

from sdet.data.sample import Sample, TextInstance
from sdet.errors import UserError

PathLike = Union[str, Path]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
DONT_CARE = "###"
UTF8_BOM = b"\xef\xbb\xbf"
# Codec -> the name users know; gb18030 is a superset of GBK that decodes every GBK file.
ENCODING_NAMES = {"utf-8": "UTF-8", "gb18030": "GBK"}


class BadAnnotationWarning(UserWarning):
    """Issued for each line, image or ground-truth file skipped because of ``skip_bad``."""


class DegenerateGeometryWarning(UserWarning):
    """Issued once per split read for training or evaluation that holds zero-area or self-intersecting polygons."""


@dataclass
class Problems:
    """Where a reader sends what is wrong with a dataset.

    ``bad`` problems (malformed line, image without ground truth, ground truth without
    image) raise at once unless ``skip_bad``; then the line or sample is left out, a
    :class:`BadAnnotationWarning` is issued (unless ``warn`` is off) and the error is kept
    in ``skipped``. ``notes`` are oddities that are kept (a zero-area or self-intersecting
    polygon): training copes with them, ``sdet data check`` lists them.
    """

    skip_bad: bool = False
    warn: bool = True
    skipped: List[UserError] = field(default_factory=list)
    notes: List[UserError] = field(default_factory=list)

    def bad(self, error: UserError) -> None:
        if not self.skip_bad:
            raise error
        self.skipped.append(error)
        if self.warn:
            warnings.warn(f"skipping bad annotation: {error}", BadAnnotationWarning, stacklevel=3)

    def note(self, error: UserError) -> None:
        self.notes.append(error)


# A reader of one ground-truth file; a dataset reader of one split of a dataset.
GtFileReader = Callable[[Path, Problems], List[TextInstance]]
DatasetReader = Callable[[Path, str, Problems], List[Sample]]


# --------------------------------------------------------------------------- text


def read_bytes(path: Path, what: str = "ground-truth file") -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{what} not found", path) from None
    except OSError as exc:
        raise UserError(f"cannot read {what} ({exc.strerror or exc})", path) from exc


def read_lines(path: Path, problems: Problems, encodings: Sequence[str] = ("utf-8",)) -> List[Tuple[int, str]]:
    """Non-blank lines of a text file as ``(1-based line number, line)``.

    A UTF-8 BOM is dropped and LF or CRLF endings are accepted (the competitions' files
    and common re-packs differ). The first of ``encodings`` that decodes the whole file
    wins, so a GBK file is never half-read as UTF-8; when none does, lines are decoded
    one by one so that the error names the offending line.
    """
    raw = read_bytes(path)
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM):]
    for codec in encodings:
        try:
            return _numbered(raw.decode(codec).split("\n"))
        except UnicodeDecodeError:
            continue
    names = " or ".join(ENCODING_NAMES.get(c, c) for c in encodings)
    lines: List[str] = []
    for lineno, chunk in enumerate(raw.split(b"\n"), start=1):
        text = _decode_any(chunk, encodings)
        if text is None:
            problems.bad(UserError(f"not valid {names} text", path, lineno))
            text = ""
        lines.append(text)
    return _numbered(lines)


LineParser = Callable[[str, Path, int, "Problems"], TextInstance]


def parse_lines(path: Path, lines: Sequence[Tuple[int, str]], parse: LineParser, problems: Problems) -> List[TextInstance]:
    """Parse numbered lines one by one; a bad line is reported (or skipped) and the rest are still read."""
    instances = []
    for lineno, line in lines:
        try:
            instances.append(parse(line, path, lineno, problems))
        except UserError as err:
            problems.bad(err)
    return instances


def _decode_any(chunk: bytes, encodings: Sequence[str]) -> Optional[str]:
    for codec in encodings:
        try:
            return chunk.decode(codec)
        except UnicodeDecodeError:
            continue
    return None


def _numbered(lines: Sequence[str]) -> List[Tuple[int, str]]:
    out = []
    for lineno, line in enumerate(lines, start=1):
        line = line.rstrip("\r")
        if line.strip():
            out.append((lineno, line))
    return out


def parse_number(token: str, what: str, path: Path, lineno: int) -> float:
    """A finite float, or a UserError naming the field, file and line."""
    try:
        value = float(token.strip())
    except ValueError:
        raise UserError(f"{what} is not a number: {token.strip()!r}", path, lineno) from None
    if not math.isfinite(value):
        raise UserError(f"{what} is not finite: {token.strip()!r}", path, lineno)
    return value


# --------------------------------------------------------------------------- polygons


MIN_POLYGON_AREA = 1.0  # px^2; below this a polygon has no interior to learn from


def polygon_defect(poly: np.ndarray) -> Optional[str]:
    """Why a polygon cannot be trained as text, or None when it can.

    The area is that of the repaired geometry (``make_valid``): a bow-tie's signed area is
    0, but it is a crossing outline around real pixels, reported as self-intersecting; a
    flat or collinear polygon stays at area 0.
    """
    shape = Polygon(poly)
    area = make_valid(shape).area
    if area < MIN_POLYGON_AREA:
        return f"polygon area {area:.2f} px^2 is below {MIN_POLYGON_AREA:g}"
    if not shape.is_valid:
        return f"polygon self-intersects ({explain_validity(shape)})"
    return None


def is_usable(instance: TextInstance) -> bool:
    """A cared-for instance with trainable geometry: what gives the detector a positive signal."""
    return not instance.ignore and polygon_defect(instance.polygon) is None


def make_instance(points: object, text: str, ignore: bool, path: Path, lineno: int, problems: Problems) -> TextInstance:
    """A TextInstance from N>=3 finite vertices; odd geometry is noted, not rejected.

    Zero-area and self-intersecting polygons occur in real ground truth. They are kept as
    annotated, so that evaluation scores them as the official scripts do, and noted for
    ``sdet data check``; training treats them as don't care (:func:`is_usable`), as
    PaddleOCR's loaders do.
    """
    poly = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(poly) < 3:
        raise UserError(f"a polygon needs at least 3 vertices, got {len(poly)}", path, lineno)
    if not np.all(np.isfinite(poly)):
        raise UserError("polygon has a non-finite coordinate", path, lineno)
    defect = polygon_defect(poly)
    if defect is not None:
        problems.note(UserError(f"{defect} (training treats it as don't care)", path, lineno))
    return TextInstance(polygon=poly, text=text, ignore=ignore)


def no_usable_instance_error(samples: Sequence[Sample], where: str, what: str = "images") -> Optional[UserError]:
    """The error for a split without a single usable instance (it would train on background only), else None."""
    if any(is_usable(inst) for sample in samples for inst in sample.instances):
        return None
    return UserError(
        f"no usable text instance in the {len(samples)} {what} of {where}: every ground-truth file is "
        "empty or holds only don't-care (###) or degenerate polygons, so training would learn background only"
    )


# --------------------------------------------------------------------------- files


def natural_key(name: str) -> Tuple[Tuple[int, object], ...]:
    """Sort key putting ``img_2`` before ``img_10`` (digit runs compare as numbers)."""
    parts = re.split(r"(\d+)", name.casefold())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def list_images(folder: Path) -> List[Path]:
    """Image files of a folder (any case of extension: MSRA-TD500 uses ``.JPG``), naturally sorted."""
    images = [p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    return sorted(images, key=lambda p: natural_key(p.name))


def require_dir(folder: Path, what: str = "dataset folder not found") -> Path:
    if not folder.is_dir():
        raise UserError(what, folder)
    return folder


def _gt_keys(name: str, patterns: Sequence[str]) -> List[str]:
    """The image keys a ground-truth file name can encode, one per matching pattern."""
    folded = name.casefold()
    keys = []
    for pattern in patterns:
        prefix, suffix = (s.casefold() for s in pattern.split("{key}"))
        if folded.startswith(prefix) and folded.endswith(suffix) and len(folded) > len(prefix) + len(suffix):
            keys.append(folded[len(prefix): len(folded) - len(suffix)])
    return keys


def pair_files(image_dir: Path, gt_dir: Path, patterns: Sequence[str], problems: Problems) -> List[Tuple[Path, Path]]:
    """``(image, ground-truth file)`` pairs, naturally sorted by image name.

    ``patterns`` name a ground-truth file from an image key, e.g. ``gt_{key}.txt``; the key
    is the image's stem or its full name (``img11.jpg.txt``), compared case-insensitively.
    An image without ground truth and a ground-truth file without image are both problems:
    training on an unlabelled image teaches "no text here", and a lone ground-truth file
    usually means a missing or misnamed image.
    """
    require_dir(image_dir)
    require_dir(gt_dir)
    images = list_images(image_dir)
    by_key: Dict[str, Path] = {}
    for image in images:
        by_key.setdefault(image.name.casefold(), image)
        by_key.setdefault(image.stem.casefold(), image)
    gt_of: Dict[Path, Path] = {}
    orphans = []
    for path in sorted(gt_dir.iterdir(), key=lambda p: natural_key(p.name)):
        if not path.is_file() or path.suffix.lower() in IMAGE_EXTENSIONS:
            continue
        keys = _gt_keys(path.name, patterns)
        image = next((by_key[k] for k in keys if k in by_key), None)
        if image is None:
            if keys:
                orphans.append(path)
        elif image in gt_of:
            problems.bad(UserError(f"second ground-truth file for {image.name} (first: {gt_of[image].name})", path))
        else:
            gt_of[image] = path
    pairs = []
    for image in images:
        if image not in gt_of:
            expected = patterns[0].format(key=image.stem)
            problems.bad(UserError(f"no ground-truth file {expected} in {gt_dir}", image))
            continue
        pairs.append((image, gt_of[image]))
    for gt in orphans:
        problems.bad(UserError(f"image not found for this ground-truth file (looked in {image_dir})", gt))
    return pairs


def samples_from_pairs(pairs: Sequence[Tuple[Path, Path]], read_gt: GtFileReader, problems: Problems, where: Path) -> List[Sample]:
    samples = [Sample(image_path=str(image), instances=read_gt(gt, problems)) for image, gt in pairs]
    if not samples:
        extensions = "/".join(IMAGE_EXTENSIONS)
        raise UserError(f"empty dataset: no {extensions} images with ground truth", where)
    return samples


def paired_samples(image_dir: Path, gt_dir: Path, patterns: Sequence[str], read_gt: GtFileReader, problems: Problems) -> List[Sample]:
    """Samples of a folder of images and a folder (possibly the same) of per-image gt files."""
    return samples_from_pairs(pair_files(image_dir, gt_dir, patterns, problems), read_gt, problems, image_dir)


def first_dir(root: Path, candidates: Sequence[str]) -> Optional[Path]:
    """The first of ``root/candidate`` folders that exists."""
    for candidate in candidates:
        if (root / candidate).is_dir():
            return root / candidate
    return None


def unknown_split(split: str, known: Sequence[str], dataset: str, root: Path) -> UserError:
    return UserError(
        f"unknown split {split!r}: {dataset} has {' and '.join(repr(s) for s in known)} "
        f"(or use the generic layout <root>/{split}/images + <root>/{split}/gt)",
        root,
    )
