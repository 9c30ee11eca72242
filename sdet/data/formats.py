"""The dataset registry: ``NAME:ROOT`` -> ``list[Sample]``, plus each dataset's metric.

Each format is one module in :mod:`sdet.data.readers` whose docstring shows the layouts
it understands; adding a benchmark means one module and one line in each dict below.
:func:`load_samples` is the entry point the rest of the toolkit uses. ``folder`` is the
generic layout ``root/<split>/images`` + ``root/<split>/gt/gt_<stem>.txt`` (ICDAR 2015
lines) written by :mod:`sdet.data.synth`.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Dict, List, Tuple

from sdet.data.holdout import parse_holdout, select_fold
from sdet.data.readers import casia10k, icdar2013, icdar2015, paddle_label, td500, totaltext
from sdet.data.readers.common import (  # noqa: F401  (re-exported: other modules import them from here)
    DONT_CARE,
    IMAGE_EXTENSIONS,
    BadAnnotationWarning,
    DatasetReader,
    DegenerateGeometryWarning,
    PathLike,
    Problems,
    natural_key,
)
from sdet.data.readers.icdar2015 import (  # noqa: F401
    parse_icdar2015_gt,
    read_icdar2015_gt,
    samples_from_folders,
)
from sdet.data.sample import Sample
from sdet.errors import UserError
from sdet.metrics.protocols import PROTOCOLS

DATASET_READERS: Dict[str, DatasetReader] = {
    "icdar2013": icdar2013.read_icdar2013,
    "icdar2015": icdar2015.read_icdar2015,
    "msra-td500": td500.read_msra_td500,
    "hust-tr400": td500.read_hust_tr400,
    "td-tr": td500.read_td_tr,
    "total-text": totaltext.read_total_text,
    "casia-10k": casia10k.read_casia10k,
    "paddle-label": paddle_label.read_paddle_label,
    "folder": icdar2015.read_folder,
}

# The evaluation protocol each benchmark is reported with (names in sdet.metrics.protocols.PROTOCOLS);
# ``data.protocol`` / ``sdet eval --protocol`` override it. MSRA-TD500 and its relatives default to
# ``td500-iou`` (IoU > 0.5 on the polygons), the number DBNet and most later papers report (the
# SDET authors' sibling paper MaskET describes IoU-matched P/R/F); ``td500`` (the dataset's original
# rotated-rectangle rule with the angle test) stays available for comparison with older papers.
DEFAULT_PROTOCOL: Dict[str, str] = {
    "icdar2013": "deteval",
    "icdar2015": "icdar2015",
    "msra-td500": "td500-iou",
    "hust-tr400": "td500-iou",
    "td-tr": "td500-iou",
    "total-text": "total-text",
    "casia-10k": "icdar2015",
    "paddle-label": "icdar2015",
    "folder": "icdar2015",
}


def _reader(name: str) -> DatasetReader:
    reader = DATASET_READERS.get(name)
    if reader is None:
        known = ", ".join(sorted(DATASET_READERS))
        raise UserError(f"unknown dataset format {name!r} (known: {known})")
    return reader


def eval_protocol(name: str, protocol: str = "", source: str = "<config: data.protocol>") -> str:
    """The protocol dataset ``name`` is scored with: ``protocol`` when given, else its default.

    Checked here so that a typo fails before training starts, as one line naming ``source``.
    """
    _reader(name)
    chosen = protocol or DEFAULT_PROTOCOL[name]
    if chosen not in PROTOCOLS:
        raise UserError(f"unknown protocol {chosen!r}; supported: {', '.join(PROTOCOLS)}", source)
    return chosen


def parse_data_spec(spec: str) -> Tuple[str, str]:
    """``NAME:ROOT`` -> (name, root), checking the name (the root may itself hold colons)."""
    if ":" not in spec:
        known = ", ".join(sorted(DATASET_READERS))
        raise UserError(f"expected NAME:ROOT (e.g. icdar2015:/data/icdar2015; names: {known}), got {spec!r}", "<command line>")
    name, root = spec.split(":", 1)
    _reader(name)
    return name, root


def load_dataset(name: str, root: PathLike, split: str, problems: Problems) -> List[Sample]:
    """Read split ``split`` of dataset ``name`` under ``root``, reporting to ``problems``.

    ``SPLIT/holdout-K`` and ``SPLIT/without-holdout-K`` select a fold of SPLIT (sdet.data.holdout).
    """
    reader = _reader(name)
    root_path = Path(root)
    if not str(root) or not root_path.exists():
        raise UserError("dataset root not found", root_path if str(root) else "<empty data root>")
    holdout = parse_holdout(split)
    if holdout is None:
        return reader(root_path, split, problems)
    base, k, held_out = holdout
    return select_fold(reader(root_path, base, problems), k, held_out)


def load_samples(name: str, root: PathLike, split: str, *, skip_bad: bool = False) -> List[Sample]:
    """Read split ``split`` of dataset ``name`` stored under ``root``.

    Strict by default: the first bad line, missing image or missing ground-truth file is
    a :class:`UserError` naming file and line. With ``skip_bad`` each is skipped with a
    :class:`BadAnnotationWarning`, and one more warning gives the total. Zero-area and
    self-intersecting polygons are kept (training treats them as don't care) with one
    :class:`DegenerateGeometryWarning` naming the first.
    """
    problems = Problems(skip_bad=skip_bad)
    samples = load_dataset(name, root, split, problems)
    if problems.skipped:
        warnings.warn(
            f"{name}:{root} split {split!r}: skipped {len(problems.skipped)} bad annotation(s)",
            BadAnnotationWarning,
            stacklevel=2,
        )
    if problems.notes:
        warnings.warn(
            f"{name}:{root} split {split!r}: {len(problems.notes)} degenerate polygon(s), trained as don't care "
            f"(`sdet data check` lists them), first: {problems.notes[0]}",
            DegenerateGeometryWarning,
            stacklevel=2,
        )
    return samples
