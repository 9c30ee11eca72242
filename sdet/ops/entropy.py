"""Binary entropy of a text map, computed from logits.

E(z) = (softplus(z) - z * sigmoid(z)) / ln 2 bits, the entropy of Bernoulli(sigmoid(z)).
Written from the logit it is exact at z = 0 (1 bit) and its gradient -z s (1 - s) / ln 2 stays
bounded for any |z|, unlike the p log p form. It is evaluated at a = |z| as
softplus(-a) + a * sigmoid(-a) (the same function, E is even): no term cancels against another,
so a confident pixel keeps its small entropy and gradient in float32 on either side (at z = 18
the softplus(z) - z s form rounds both to 0), and E(z) = E(-z) exactly.

`binary_kl_from_logits` is the per-pixel binary KL between two text maps given as logits,
shared by every method that matches one text map to another (BYOT, soft-target KD).
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
    a = z.abs()
    ent = (F.softplus(-a) + a * torch.sigmoid(-a)) / LN2
    return ent.to(logit.dtype)


def binary_kl_from_logits(target_logit: Tensor, logit: Tensor, tau: float = 1.0) -> Tensor:
    """Per-pixel KLb(sigmoid(target_logit / tau) || sigmoid(logit / tau)) in nats, not reduced.

    Written as BCEWithLogits(z_q, target=p) - H(p) (docs: METHODS.md section 0), so it is stable
    for any logits and its gradient in `logit`, (sigmoid(z_q) - p) / tau, stays bounded. The
    tau^2 factor of Hinton-style KD is left to the caller, and so is detaching the target.
    Computed in float32 at least so float16 inputs stay finite.
    """
    z_p = target_logit.float() if target_logit.dtype in (torch.float16, torch.bfloat16) else target_logit
    z_q = logit.float() if logit.dtype in (torch.float16, torch.bfloat16) else logit
    z_p, z_q = z_p / tau, z_q / tau
    p = torch.sigmoid(z_p)
    entropy_nats = F.softplus(z_p) - z_p * p
    return F.binary_cross_entropy_with_logits(z_q, p, reduction="none") - entropy_nats


def binary_entropy_np(prob: np.ndarray, eps: float = 1e-7) -> np.ndarray:
    """The same quantity from probabilities, for maps that are already on the CPU as numpy."""
    p = np.clip(prob.astype(np.float64), eps, 1.0 - eps)
    return (-(p * np.log2(p) + (1.0 - p) * np.log2(1.0 - p))).astype(np.float32)
