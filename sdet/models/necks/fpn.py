"""DBNet's FPN neck (official DB and PaddleOCR DBFPN share this structure; only widths differ).

It exposes every per-level output because distillation methods tap them:
P0 = stride 32 ... P3 = stride 4 (SDET's naming), each `inner_channels // 4` wide,
and the fused feature (all levels upsampled to stride 4 and concatenated).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class Pyramid:
    """Every feature a training method may tap."""

    backbone: List[Tensor]  # C2..C5 (strides 4, 8, 16, 32)
    levels: List[Tensor]  # P0..P3 (strides 32, 16, 8, 4)
    fused: Tensor  # stride 4, inner_channels wide


class FPN(nn.Module):
    def __init__(self, in_channels: Sequence[int], inner_channels: int = 256):
        super().__init__()
        if inner_channels % 4:
            raise ValueError(f"inner_channels must be divisible by 4, got {inner_channels}")
        self.inner_channels = inner_channels
        self.level_channels = inner_channels // 4
        # Index i follows the backbone order C2..C5.
        self.lateral = nn.ModuleList(nn.Conv2d(c, inner_channels, 1, bias=False) for c in in_channels)
        self.smooth = nn.ModuleList(
            nn.Conv2d(inner_channels, self.level_channels, 3, padding=1, bias=False) for _ in in_channels
        )

    def forward(self, feats: Sequence[Tensor]) -> Pyramid:
        lat = [conv(f) for conv, f in zip(self.lateral, feats)]
        # Top-down: nearest upsampling (to the exact size, so odd sizes work) and add.
        top = lat[3]
        merged = [top]
        for i in (2, 1, 0):
            top = lat[i] + F.interpolate(top, size=lat[i].shape[-2:], mode="nearest")
            merged.append(top)
        merged.reverse()  # back to C2..C5 order
        smoothed = [conv(m) for conv, m in zip(self.smooth, merged)]
        size = smoothed[0].shape[-2:]
        up = [smoothed[0]] + [F.interpolate(s, size=size, mode="nearest") for s in smoothed[1:]]
        fused = torch.cat(up[::-1], dim=1)  # deepest first, as DB and PaddleOCR concatenate
        levels = smoothed[::-1]  # P0 (stride 32) ... P3 (stride 4)
        return Pyramid(backbone=list(feats), levels=levels, fused=fused)
