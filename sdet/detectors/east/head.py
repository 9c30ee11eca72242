"""EAST head on the FPN's fused stride-4 feature: a score logit and a geometry map.

Shape as the reference code's output layer (argman/EAST): a shared conv3x3 (-> 32)
BN ReLU, then 1x1 convs for the score and for the geometry. Outputs stay at stride 4
(128x128 for a 512x512 input), as in the paper.

* ``score``: the text logit (probabilities and entropies are computed from logits).
* ``geo``, RBOX: distances to the top, right, bottom and left edges of the rotated box
  as ``sigmoid * scale`` input pixels, and the angle as ``(sigmoid - 0.5) * pi / 2``
  radians (channel order of ``sdet.detectors.east.targets``); bounded outputs keep the early
  -log IoU loss finite.
* ``geo``, QUAD: the offsets ``(dx1, dy1, ..., dx4, dy4)`` from the pixel to the four
  corners in input pixels, ``(2 sigmoid - 1) * scale`` so that they can be negative.

Geometry is always computed (post-processing needs it), unlike DB's threshold branch.
"""
from __future__ import annotations

import math
from typing import Dict

import torch
from torch import Tensor, nn

GEOMETRIES = {"rbox": 5, "quad": 8}


def _trunk(in_channels: int, mid_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, mid_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(mid_channels),
        nn.ReLU(inplace=True),
    )


class EASTHead(nn.Module):
    def __init__(self, in_channels: int, geometry: str = "rbox", scale: float = 512.0, mid_channels: int = 32):
        super().__init__()
        if geometry not in GEOMETRIES:
            raise ValueError(f"EAST geometry must be one of {sorted(GEOMETRIES)}, got '{geometry}'")
        self.geometry = geometry
        self.scale = float(scale)
        self.mid_channels = mid_channels
        self.trunk = _trunk(in_channels, mid_channels)
        self.score = nn.Conv2d(mid_channels, 1, 1)
        self.geo = nn.Conv2d(mid_channels, GEOMETRIES[geometry], 1)

    def text_branch_copy(self, in_channels: int) -> nn.Module:
        """An untied copy of the score path (conv3x3-BN-ReLU, 1x1 -> 1) on `in_channels` (SDET type C)."""
        return nn.Sequential(_trunk(in_channels, self.mid_channels), nn.Conv2d(self.mid_channels, 1, 1))

    def forward(self, fused: Tensor) -> Dict[str, Tensor]:
        x = self.trunk(fused)
        raw = torch.sigmoid(self.geo(x))
        if self.geometry == "rbox":
            geo = torch.cat([raw[:, :4] * self.scale, (raw[:, 4:] - 0.5) * (math.pi / 2)], dim=1)
        else:
            geo = (2.0 * raw - 1.0) * self.scale
        return {"score": self.score(x), "geo": geo}
