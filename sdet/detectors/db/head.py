"""DBNet head: probability and threshold branches, each conv3x3-BN-ReLU-deconv-BN-ReLU-deconv.

Both return logits (probabilities and entropies are computed from logits for numerical
stability). The threshold branch only runs in training, as in the official code.
"""
from __future__ import annotations

from typing import Dict, Optional

import torch
from torch import Tensor, nn


class DBBranch(nn.Sequential):
    """conv3x3 (C -> C/4) BN ReLU, deconv x2, BN ReLU, deconv x2 (-> 1 logit)."""

    def __init__(self, in_channels: int, mid_channels: Optional[int] = None):
        mid = mid_channels or in_channels // 4
        super().__init__(
            nn.Conv2d(in_channels, mid, 3, padding=1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(mid, mid, 2, stride=2),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.ConvTranspose2d(mid, 1, 2, stride=2),
        )


class DBHead(nn.Module):
    def __init__(self, in_channels: int, k: float = 50.0):
        super().__init__()
        self.k = k
        self.prob = DBBranch(in_channels)
        self.thresh = DBBranch(in_channels)

    def text_branch_copy(self, in_channels: int) -> nn.Module:
        """An untied copy of the text (probability) branch taking `in_channels` (SDET type C)."""
        return DBBranch(in_channels, self.prob[0].out_channels)

    def forward(self, fused: Tensor) -> Dict[str, Tensor]:
        prob_logit = self.prob(fused)
        out = {"prob": prob_logit}
        if self.training:
            thresh_logit = self.thresh(fused)
            # Approximate binarisation B = sigmoid(k (P - T)); its logit is k (P - T).
            out["thresh"] = thresh_logit
            out["binary"] = self.k * (torch.sigmoid(prob_logit) - torch.sigmoid(thresh_logit))
        return out
