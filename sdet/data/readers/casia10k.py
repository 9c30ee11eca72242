"""CASIA-10K: Chinese scene text as quadrilaterals.

Each ``PAL00001.txt`` holds ICDAR-2015-like lines ``x1,y1,...,x4,y4,transcription``
with ``###`` as don't care, read by the ICDAR 2015 line reader. The released files are
GBK-encoded; re-packs use UTF-8, with or without BOM, so a file is read as UTF-8 when it
decodes as such and as GBK otherwise.

Layouts: images and ``.txt`` files side by side, as the archive unpacks::

    root/train/PAL00003.jpg + root/train/PAL00003.txt, root/test/...

or the generic ``root/<split>/images`` + ``root/<split>/gt/<stem>.txt`` (or ``gt_<stem>.txt``).
"""
from __future__ import annotations

from pathlib import Path
from typing import List

from sdet.data.readers import icdar2015
from sdet.data.readers.common import Problems, paired_samples, unknown_split
from sdet.data.sample import Sample, TextInstance
from sdet.errors import UserError

SPLITS = ("train", "test")
GT_NAMES = ("{key}.txt", "gt_{key}.txt")
ENCODINGS = ("utf-8", "gb18030")  # gb18030 is the superset of GBK


def read_gt_file(path: Path, problems: Problems) -> List[TextInstance]:
    return icdar2015.read_gt_file(path, problems, ENCODINGS)


def read_casia10k(root: Path, split: str, problems: Problems) -> List[Sample]:
    folder = root / split
    if not folder.is_dir():
        if split not in SPLITS:
            raise unknown_split(split, SPLITS, "CASIA-10K", root)
        raise UserError("dataset folder not found (CASIA-10K unpacks into train/ and test/)", folder)
    if (folder / "images").is_dir():
        return paired_samples(folder / "images", folder / "gt", GT_NAMES, read_gt_file, problems)
    return paired_samples(folder, folder, GT_NAMES, read_gt_file, problems)
