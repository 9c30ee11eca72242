"""Segmentation losses more than one detector family uses."""
from __future__ import annotations

from torch import Tensor

EPS = 1e-6


def dice_loss(prob: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    """1 - Dice coefficient of a probability map and a binary GT over the mask's pixels."""
    inter = (prob * gt * mask).sum()
    union = (prob * mask).sum() + (gt * mask).sum() + EPS
    return 1.0 - 2.0 * inter / union
