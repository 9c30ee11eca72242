"""What every post-processor returns: pure data, no torch."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass
class Detection:
    """One detected text region in original-image pixel coordinates."""

    polygon: np.ndarray  # float32 (N, 2), N=4 for quads
    score: float
    entropy: Optional[float] = None  # mean binary entropy (bits) inside the region, when requested
