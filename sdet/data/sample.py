"""The one data model every reader produces and every transform/target consumes."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import numpy as np


@dataclass
class TextInstance:
    """One annotated text region: a polygon of N>=3 (x, y) vertices in pixels."""

    polygon: np.ndarray  # float32 (N, 2)
    text: str = ""
    ignore: bool = False  # don't-care region ('###', difficult, ...)

    def __post_init__(self) -> None:
        self.polygon = np.asarray(self.polygon, dtype=np.float32).reshape(-1, 2)


@dataclass
class Sample:
    """An image on disk and its text instances."""

    image_path: str
    instances: List[TextInstance] = field(default_factory=list)
