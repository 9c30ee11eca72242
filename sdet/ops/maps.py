"""Bringing prediction maps to the size of the maps they are compared with."""
from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def resize_like(logit: Tensor, like: Tensor) -> Tensor:
    """Bilinearly resize an (N,C,h,w) map to the spatial size of `like` (any shape ending in H,W).

    Logits, not probabilities, are resized, as the official DB and EAST code do for their heads.
    """
    if logit.shape[-2:] == like.shape[-2:]:
        return logit
    return F.interpolate(logit, size=like.shape[-2:], mode="bilinear", align_corners=False)


def match_size(logit: Tensor, target: Tensor) -> Tensor:
    """An (N,1,h,w) logit at the (N,H,W) target map's size, without the channel axis."""
    return resize_like(logit, target)[:, 0]
