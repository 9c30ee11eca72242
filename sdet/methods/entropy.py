"""Binary entropy of a text map, computed from logits.

E(z) = (softplus(z) - z * sigmoid(z)) / ln 2 bits, the entropy of Bernoulli(sigmoid(z)).
Written from the logit it is exact at z = 0 (1 bit), symmetric in z, and its gradient
-z s (1 - s) / ln 2 stays bounded for any |z|, unlike the p log p form.
"""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

LN2 = math.log(2.0)


def binary_entropy(logit: Tensor) -> Tensor:
    """Entropy in bits, elementwise; computed in float32 at least so float16 inputs stay finite."""
    z = logit.float() if logit.dtype in (torch.float16, torch.bfloat16) else logit
    ent = (F.softplus(z) - z * torch.sigmoid(z)) / LN2
    return ent.to(logit.dtype)


def binary_entropy_np(prob: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """The same quantity from probabilities, for maps that are already on the CPU as numpy."""
    p = np.clip(prob.astype(np.float64), eps, 1.0 - eps)
    return (-(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))).astype(np.float32)
