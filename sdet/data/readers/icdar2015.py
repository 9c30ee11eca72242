"""ICDAR 2015 Incidental Scene Text (Task 4.1) and the generic ``folder`` layout.

Lines are ``x1,y1,...,x4,y4,transcription``; ``###`` marks a don't-care region. The line
itself is parsed by :func:`sdet.metrics.submission.parse_icdar2015_line`, the scorer's
parser, so training and scoring can never disagree on a ground-truth file.

Layouts, checked in this order:

* the official unpacked archives::

      root/ch4_training_images/img_N.jpg
      root/ch4_training_localization_transcription_gt/gt_img_N.txt   (split "train")
      root/ch4_test_images/img_N.jpg
      root/Challenge4_Test_Task1_GT/gt_img_N.txt                      (split "test")

* the generic layout (written by :mod:`sdet.data.synth`, handy for own data; the only
  layout of the ``folder`` format, for any split name)::

      root/<split>/images/<stem>.jpg|jpeg|png|bmp
      root/<split>/gt/gt_<stem>.txt
"""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence, Tuple

from sdet.data.readers.common import (
    DONT_CARE,
    PathLike,
    Problems,
    make_instance,
    paired_samples,
    read_lines,
    unknown_split,
)
from sdet.data.sample import Sample, TextInstance
from sdet.errors import UserError
from sdet.metrics.submission import parse_icdar2015_line

OFFICIAL = {
    "train": ("ch4_training_images", "ch4_training_localization_transcription_gt"),
    "test": ("ch4_test_images", "Challenge4_Test_Task1_GT"),
}
GT_NAMES = ("gt_{key}.txt",)


def read_gt_file(path: Path, problems: Problems, encodings: Sequence[str] = ("utf-8",)) -> List[TextInstance]:
    """Instances of one ``gt_img_N.txt`` (strict UTF-8 by default, with or without BOM, LF or CRLF)."""
    instances = []
    for lineno, line in read_lines(path, problems, encodings):
        try:
            quad, text = parse_icdar2015_line(line)
            text = text or ""
            instances.append(make_instance(quad, text, text.strip() == DONT_CARE, path, lineno, problems))
        except ValueError as exc:
            problems.bad(UserError(f"malformed line: {exc}", path, lineno))
        except UserError as err:
            problems.bad(err)
    return instances


def read_icdar2015_gt(path: PathLike, skip_bad: bool = False) -> Tuple[List[TextInstance], int]:
    """Parse one ICDAR 2015 gt file; return ``(instances, number_of_skipped_lines)``."""
    problems = Problems(skip_bad=skip_bad)
    instances = read_gt_file(Path(path), problems)
    return instances, len(problems.skipped)


def parse_icdar2015_gt(path: PathLike, skip_bad: bool = False) -> List[TextInstance]:
    """Like :func:`read_icdar2015_gt` but return only the instances."""
    return read_icdar2015_gt(path, skip_bad=skip_bad)[0]


def samples_from_folders(image_dir: Path, gt_dir: Path, skip_bad: bool = False) -> List[Sample]:
    """Pair every image in ``image_dir`` with ``gt_dir/gt_<stem>.txt`` (ICDAR 2015 lines)."""
    return paired_samples(Path(image_dir), Path(gt_dir), GT_NAMES, read_gt_file, Problems(skip_bad=skip_bad))


def generic_dirs(root: Path, split: str) -> Tuple[Path, Path]:
    return root / split / "images", root / split / "gt"


def read_folder(root: Path, split: str, problems: Problems) -> List[Sample]:
    """The generic layout ``root/<split>/images`` + ``root/<split>/gt/gt_<stem>.txt``."""
    image_dir, gt_dir = generic_dirs(root, split)
    return paired_samples(image_dir, gt_dir, GT_NAMES, read_gt_file, problems)


def read_icdar2015(root: Path, split: str, problems: Problems) -> List[Sample]:
    """ICDAR 2015 in its official unpacked layout, else in the generic layout."""
    official = OFFICIAL.get(split)
    if official is not None and (root / official[0]).is_dir():
        return paired_samples(root / official[0], root / official[1], GT_NAMES, read_gt_file, problems)
    if generic_dirs(root, split)[0].is_dir():
        return read_folder(root, split, problems)
    if official is None:
        raise unknown_split(split, list(OFFICIAL), "ICDAR 2015", root)
    raise UserError(
        f"dataset folder not found (expected the official ICDAR 2015 layout or {generic_dirs(root, split)[0]})",
        root / official[0],
    )
