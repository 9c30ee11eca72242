"""Held-out folds of a split: evaluate on part of a training split whose test split is absent.

MSRA-TD500's test images (and HUST-TR400) are often not at hand; tuning or comparing methods on
the test split would also leak it. ``SPLIT/holdout-K`` names every K-th image of SPLIT
(positions 0, K, 2K, ... in natural file-name order, so the fold does not depend on the order a
reader lists files in) and ``SPLIT/without-holdout-K`` the others, so that

    data.train_split=train/without-holdout-5 data.val_split=train/holdout-5

trains on 4/5 of the training images and evaluates on the disjoint 1/5 (`sdet eval --split` and
`sdet data check` take the same names).
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import List, Optional, Tuple

from sdet.data.readers.common import natural_key
from sdet.data.sample import Sample
from sdet.errors import UserError

_PATTERN = re.compile(r"^(?P<base>.+)/(?P<without>without-)?holdout-(?P<k>\d+)$")


def parse_holdout(split: str) -> Optional[Tuple[str, int, bool]]:
    """``(base split, K, held-out fold?)`` for a hold-out split name, None for a plain split."""
    match = _PATTERN.match(split)
    if match is None:
        if "holdout" in split:
            raise UserError(f"split {split!r}: expected SPLIT/holdout-K or SPLIT/without-holdout-K (K >= 2)",
                            "<data split>")
        return None
    k = int(match["k"])
    if k < 2:
        raise UserError(f"split {split!r}: K must be at least 2 (1/K of the images are held out)", "<data split>")
    return match["base"], k, match["without"] is None


def select_fold(samples: List[Sample], k: int, held_out: bool) -> List[Sample]:
    """The held-out fold (every K-th image in natural name order) or its complement."""
    ordered = sorted(samples, key=lambda s: natural_key(Path(s.image_path).name))
    return [s for position, s in enumerate(ordered) if (position % k == 0) == held_out]
