"""The types every evaluation protocol shares: one GT region in, one result out.

Every protocol is a pure function ``evaluate_X(gt, det, **params) -> MetricResult`` (see
:mod:`sdet.metrics.protocols`), so the CLI, the trainer's evaluator and the tests read the
same fields whatever the rule. Protocols with fractional credit (DetEval's 0.8 for a split
or merged match) keep the credit in ``precision``/``recall``; ``num_matched`` then counts
the care GT regions that took part in any match.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Dict, Iterable

import numpy as np


@dataclass(frozen=True)
class GtRegion:
    """One ground-truth region; ``dont_care`` regions (``###``) neither count nor penalise."""

    polygon: np.ndarray  # (N, 2) vertices, N >= 3
    dont_care: bool = False


@dataclass(frozen=True)
class ImageResult:
    """Per-image counts, with the per-image P/R/H the official script reports for the sample."""

    num_gt: int
    num_det: int
    num_matched: int
    num_gt_dont_care: int
    num_det_dont_care: int
    precision: float
    recall: float
    hmean: float


@dataclass(frozen=True)
class MetricResult:
    """Set-level precision/recall/hmean; counts are of care regions only."""

    precision: float
    recall: float
    hmean: float
    num_gt: int
    num_det: int
    num_matched: int
    num_gt_dont_care: int = 0
    num_det_dont_care: int = 0
    per_image: Dict[str, ImageResult] = field(default_factory=dict)

    def to_dict(self, per_image: bool = False) -> dict:
        """JSON-ready summary; per-image entries only on request (they are long)."""
        out = {k: v for k, v in asdict(self).items() if k != "per_image"}
        if per_image:
            out["per_image"] = {k: asdict(v) for k, v in self.per_image.items()}
        return out


def hmean(precision: float, recall: float) -> float:
    """Harmonic mean, 0 when both are 0 (every official script's convention)."""
    total = precision + recall
    return 0.0 if total == 0 else 2.0 * precision * recall / total


def credit_result(per_image: Dict[str, ImageResult], recall_credit: float, precision_credit: float) -> MetricResult:
    """Set-level result from summed match credits: P = credit / care detections, R = credit / care GT.

    Every protocol here accumulates over the whole set (not a mean of per-image values);
    a ratio with nothing to count is 0, as the official scripts print it.
    """
    images: Iterable[ImageResult] = per_image.values()
    num_gt = sum(r.num_gt for r in images)
    num_det = sum(r.num_det for r in images)
    precision = precision_credit / num_det if num_det else 0.0
    recall = recall_credit / num_gt if num_gt else 0.0
    return MetricResult(
        precision=precision, recall=recall, hmean=hmean(precision, recall),
        num_gt=num_gt, num_det=num_det, num_matched=sum(r.num_matched for r in images),
        num_gt_dont_care=sum(r.num_gt_dont_care for r in images),
        num_det_dont_care=sum(r.num_det_dont_care for r in images),
        per_image=per_image,
    )
