"""PP-OCRv3's RSEFPN neck: the FPN of DBNet with a residual squeeze-excitation after every convolution.

Each lateral (1x1, C_i -> out) and each smoothing (3x3, out -> out/4) convolution is an RSE layer,
``y = conv(x); y + se(y)`` with Paddle's SE (squeeze 1/4, gate clip(0.2x + 0.5, 0, 1)). Top-down
nearest upsampling and addition, then the four levels brought to stride 4 and concatenated deepest
first, as PaddleOCR's `RSEFPN` (ppocr/modeling/necks/db_fpn.py) computes them, in the same order,
so an exported graph's convolutions line up with this module's for sdet/deploy/onnx_import.py.
Returns the same :class:`Pyramid` as the FPN, so every training method can tap its levels.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdet.models.backbones.paddle_mobilenetv3 import SEModule
from sdet.models.necks.fpn import Pyramid


class RSELayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, shortcut: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=False)
        self.se = SEModule(out_channels)
        self.shortcut = shortcut

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(x)
        return y + self.se(y) if self.shortcut else self.se(y)


class RSEFPN(nn.Module):
    def __init__(self, in_channels: Sequence[int], inner_channels: int = 96, shortcut: bool = True):
        super().__init__()
        if inner_channels % 4:
            raise ValueError(f"inner_channels must be divisible by 4, got {inner_channels}")
        self.inner_channels = inner_channels
        self.level_channels = inner_channels // 4
        # index i follows the backbone order C2..C5, as in the FPN
        self.ins_conv = nn.ModuleList(RSELayer(c, inner_channels, 1, shortcut) for c in in_channels)
        self.inp_conv = nn.ModuleList(
            RSELayer(inner_channels, self.level_channels, 3, shortcut) for _ in in_channels)

    def forward(self, feats: Sequence[Tensor]) -> Pyramid:
        c2, c3, c4, c5 = feats
        in5, in4, in3, in2 = (self.ins_conv[i](f) for i, f in ((3, c5), (2, c4), (1, c3), (0, c2)))
        out4 = in4 + F.interpolate(in5, size=in4.shape[-2:], mode="nearest")
        out3 = in3 + F.interpolate(out4, size=in3.shape[-2:], mode="nearest")
        out2 = in2 + F.interpolate(out3, size=in2.shape[-2:], mode="nearest")
        p5, p4, p3, p2 = (self.inp_conv[i](f) for i, f in ((3, in5), (2, out4), (1, out3), (0, out2)))
        size = p2.shape[-2:]
        up = [F.interpolate(p, size=size, mode="nearest") for p in (p5, p4, p3)]
        fused = torch.cat(up + [p2], dim=1)
        return Pyramid(backbone=list(feats), levels=[p5, p4, p3, p2], fused=fused)
