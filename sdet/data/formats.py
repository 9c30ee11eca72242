"""Annotation readers: turn a dataset folder into ``list[Sample]``.

Every dataset format is one function ``reader(root, split, *, skip_bad=False)``
registered in :data:`DATASET_READERS`; :func:`load_samples` is the single entry
point the rest of the toolkit uses, so adding ICDAR2013, MSRA-TD500 or
Total-Text later means writing one function and one registry line.

Layouts understood by the ``icdar2015`` reader (checked in this order):

* official unpacked ICDAR 2015 Task 4.1 archives::

      root/ch4_training_images/img_N.jpg
      root/ch4_training_localization_transcription_gt/gt_img_N.txt   (split "train")
      root/ch4_test_images/img_N.jpg
      root/Challenge4_Test_Task1_GT/gt_img_N.txt                      (split "test")

* the generic layout (written by :mod:`sdet.data.synth`, handy for own data)::

      root/<split>/images/<stem>.jpg|jpeg|png|bmp
      root/<split>/gt/gt_<stem>.txt                                   (ICDAR 2015 lines)

The ``folder`` reader accepts only the generic layout, for any split name.
"""
from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from typing import Dict, List, Protocol, Tuple, Union

from sdet.data.sample import Sample, TextInstance
from sdet.errors import UserError

PathLike = Union[str, Path]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")
DONT_CARE = "###"

# split -> (image folder, gt folder) of the official ICDAR 2015 archives.
_ICDAR2015_OFFICIAL = {
    "train": ("ch4_training_images", "ch4_training_localization_transcription_gt"),
    "test": ("ch4_test_images", "Challenge4_Test_Task1_GT"),
}


class DatasetReader(Protocol):
    """What every registered reader looks like."""

    def __call__(self, root: str, split: str, *, skip_bad: bool = False) -> List[Sample]: ...


# --------------------------------------------------------------------------- gt files


def read_icdar2015_gt(path: PathLike, skip_bad: bool = False) -> Tuple[List[TextInstance], int]:
    """Parse one ICDAR 2015 gt file; return ``(instances, number_of_skipped_lines)``.

    Each line is ``x1,y1,...,x4,y4,transcription``. Only the first 8 commas split,
    because transcriptions may contain commas. Accepts UTF-8 with or without a
    BOM and LF or CRLF endings (the competition's files differ from common
    re-packs); blank lines are skipped. A bad line raises :class:`UserError`
    with file and line, or with ``skip_bad`` is reported by ``warnings.warn``
    and counted, so one broken file need not kill a long training run.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise UserError("ground-truth file not found", path) from None
    except OSError as exc:
        raise UserError(f"cannot read ground-truth file ({exc.strerror or exc})", path) from exc
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]

    instances: List[TextInstance] = []
    skipped = 0
    for lineno, raw_line in enumerate(raw.split(b"\n"), start=1):
        if not raw_line.strip():
            continue
        try:
            instances.append(_parse_icdar2015_line(raw_line, path, lineno))
        except UserError as err:
            if not skip_bad:
                raise
            skipped += 1
            warnings.warn(f"skipping bad annotation line: {err}", stacklevel=2)
    return instances, skipped


def parse_icdar2015_gt(path: PathLike, skip_bad: bool = False) -> List[TextInstance]:
    """Like :func:`read_icdar2015_gt` but return only the instances."""
    return read_icdar2015_gt(path, skip_bad=skip_bad)[0]


def _parse_icdar2015_line(raw_line: bytes, path: Path, lineno: int) -> TextInstance:
    try:
        line = raw_line.decode("utf-8").rstrip("\r")
    except UnicodeDecodeError:
        raise UserError("not valid UTF-8 text", path, lineno) from None
    fields = line.split(",", 8)
    if len(fields) < 8:
        raise UserError(
            f"expected 8 coordinates and a transcription, got {len(fields)} field(s)", path, lineno
        )
    coords: List[float] = []
    for index, field in enumerate(fields[:8], start=1):
        try:
            value = float(field.strip())
        except ValueError:
            raise UserError(f"coordinate {index} is not a number: {field.strip()!r}", path, lineno) from None
        if not math.isfinite(value):
            raise UserError(f"coordinate {index} is not finite: {field.strip()!r}", path, lineno)
        coords.append(value)
    text = fields[8] if len(fields) == 9 else ""
    return TextInstance(polygon=coords, text=text, ignore=text.strip() == DONT_CARE)


# --------------------------------------------------------------------------- datasets


def natural_key(name: str) -> Tuple[Tuple[int, object], ...]:
    """Sort key putting ``img_2`` before ``img_10`` (digit runs compare as numbers)."""
    parts = re.split(r"(\d+)", name.casefold())
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def samples_from_folders(image_dir: Path, gt_dir: Path, skip_bad: bool = False) -> List[Sample]:
    """Pair every image in ``image_dir`` with ``gt_dir/gt_<stem>.txt``.

    Images are only listed here, not decoded; a missing gt file is an error
    because silently training on an unlabelled image teaches "no text here".
    """
    for folder in (image_dir, gt_dir):
        if not folder.is_dir():
            raise UserError("dataset folder not found", folder)
    images = [p for p in image_dir.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    images.sort(key=lambda p: natural_key(p.name))
    samples = []
    for image_path in images:
        gt_path = gt_dir / f"gt_{image_path.stem}.txt"
        if not gt_path.is_file():
            raise UserError(f"no ground-truth file {gt_path.name} in {gt_dir}", image_path)
        instances, _ = read_icdar2015_gt(gt_path, skip_bad=skip_bad)
        samples.append(Sample(image_path=str(image_path), instances=instances))
    if not samples:
        raise UserError("empty dataset: no .jpg/.jpeg/.png/.bmp images", image_dir)
    return samples


def _generic_dirs(root: Path, split: str) -> Tuple[Path, Path]:
    return root / split / "images", root / split / "gt"


def folder_samples(root: str, split: str, *, skip_bad: bool = False) -> List[Sample]:
    """Generic layout ``root/<split>/images`` + ``root/<split>/gt``."""
    image_dir, gt_dir = _generic_dirs(Path(root), split)
    return samples_from_folders(image_dir, gt_dir, skip_bad=skip_bad)


def icdar2015_samples(root: str, split: str, *, skip_bad: bool = False) -> List[Sample]:
    """ICDAR 2015 in its official unpacked layout, else in the generic layout."""
    root_path = Path(root)
    if not root_path.is_dir():
        raise UserError("dataset root not found", root_path)
    generic_images, _ = _generic_dirs(root_path, split)
    official = _ICDAR2015_OFFICIAL.get(split)
    if official is not None and (root_path / official[0]).is_dir():
        return samples_from_folders(root_path / official[0], root_path / official[1], skip_bad=skip_bad)
    if generic_images.is_dir():
        return folder_samples(root, split, skip_bad=skip_bad)
    if official is None:
        raise UserError(
            f"unknown split {split!r}: ICDAR 2015 has 'train' and 'test' "
            f"(or use the generic layout <root>/{split}/images)",
            root_path,
        )
    raise UserError(
        f"dataset folder not found (expected the official ICDAR 2015 layout "
        f"or {generic_images})",
        root_path / official[0],
    )


DATASET_READERS: Dict[str, DatasetReader] = {
    "icdar2015": icdar2015_samples,
    "folder": folder_samples,
}


def load_samples(spec_name: str, root: PathLike, split: str, *, skip_bad: bool = False) -> List[Sample]:
    """Read split ``split`` of dataset format ``spec_name`` stored under ``root``."""
    reader = DATASET_READERS.get(spec_name)
    if reader is None:
        known = ", ".join(sorted(DATASET_READERS))
        raise UserError(f"unknown dataset format {spec_name!r} (known: {known})")
    return reader(str(root), split, skip_bad=skip_bad)
