"""Quadrilateral helpers shared by the detector families' post-processing."""
from __future__ import annotations

import numpy as np


def order_quad(points: np.ndarray) -> np.ndarray:
    """Order 4 corners as PaddleOCR's ``get_mini_boxes`` does: TL, TR, BR, BL.

    Corners are stably sorted by x; of the two left ones the lower-y one comes
    first (ties go to the second), likewise for the right pair. Keeping this exact
    order matters because evaluators and recognisers crop by corner position.
    """
    pts = np.asarray(points).reshape(4, 2)
    pts = pts[np.argsort(pts[:, 0], kind="stable")]
    left = (0, 1) if pts[1, 1] > pts[0, 1] else (1, 0)  # (top, bottom)
    right = (2, 3) if pts[3, 1] > pts[2, 1] else (3, 2)
    return pts[[left[0], right[0], right[1], left[1]]]
