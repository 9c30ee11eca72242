"""The evaluation protocols by name: what ``--protocol`` and a dataset's default protocol select.

Every entry has the one signature ``evaluate(gt, det, **params) -> MetricResult`` with
``gt: Dict[str, List[GtRegion]]`` (every image of the set) and ``det: Dict[str, List[ndarray]]``
((N, 2) polygons per image). Adding a protocol = one module with its function + one line here
(+ one line in ``sdet.metrics.submission.FILE_FORMATS`` for ``sdet score``).

=================  =====================================================================
``icdar2015``      RRC Challenge 4 IoU > 0.5, polygons of any vertex count (official numbers)
``deteval``        ICDAR2013 DetEval on bounding rectangles (area recall 0.8, precision 0.4)
``total-text``     Total-Text ``Deteval.py`` on polygons (tr 0.7, tp 0.6, weight 0.8)
``total-text-iou`` IoU > 0.5 on polygons, invalid shapes dropped (DBNet's evaluator)
``td500``          MSRA-TD500 original: rotated rectangles, IoU > 0.5 and angle < pi/8
``td500-iou``      IoU > 0.5 on the polygons as given (what DBNet and most papers report)
=================  =====================================================================
"""
from __future__ import annotations

from typing import Callable, Dict

from sdet.errors import UserError
from sdet.metrics.deteval import evaluate_deteval
from sdet.metrics.iou import evaluate_icdar2015
from sdet.metrics.result import MetricResult
from sdet.metrics.td500 import evaluate_td500, evaluate_td500_iou
from sdet.metrics.totaltext import evaluate_total_text, evaluate_total_text_iou

Protocol = Callable[..., MetricResult]

PROTOCOLS: Dict[str, Protocol] = {
    "icdar2015": evaluate_icdar2015,
    "deteval": evaluate_deteval,
    "total-text": evaluate_total_text,
    "total-text-iou": evaluate_total_text_iou,
    "td500": evaluate_td500,
    "td500-iou": evaluate_td500_iou,
}


def get_protocol(name: str) -> Protocol:
    """The protocol's function, or a UserError that lists the known names."""
    try:
        return PROTOCOLS[name]
    except KeyError:
        raise UserError(f"unknown protocol {name!r}; supported: {', '.join(PROTOCOLS)}") from None
