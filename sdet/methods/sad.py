"""SAD: self attention distillation (Hou et al., ICCV 2019).

Each backbone stage A_m (C2..C5) is summarised by an attention map G(A) = sum_c |A_c|^p.
The deeper, smaller map is bilinearly upsampled to the shallower one's size and both go
through a spatial softmax, Psi(A) = softmax_HW(B(G(A))). Each stage then mimics the next:

    L = L_det + gamma * sum_m MSE(Psi(A_m), Psi(A_{m+1}))

so the deeper block's attention, which is more task-focused, teaches the shallower one.
It adds no parameters. The term starts once the model is "trained to a reasonable level"
(2/3 of the schedule, as the ENet-SAD config: 40k of 60k); before that it is logged as an
exact zero so every step has the same terms. Defaults follow docs/METHODS.md section 2.7.

Scale: both maps are distributions over H*W, so one pair's MSE is at most 2 / (H*W) (about
1.2e-4 for C2 of a 512x512 input) and much less once the maps agree: the term is tiny next
to L_det. The paper's gamma = 0.1 is kept as the default; gamma is the knob to raise it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor

from sdet.errors import UserError
from sdet.methods.base import Method, MethodContext, require_fraction, step_at_fraction
from sdet.models.detector import DetectorOutput


@dataclass
class SADOptions:
    gamma: float = 0.1  # weight of the summed attention-mimicking MSE (paper)
    p: float = 2.0  # G(A) = sum_c |A_c|^p (paper: p = 2)
    start_fraction: float = 2.0 / 3.0  # switch the term on at this fraction of train.max_steps
    start_step: int = -1  # explicit start step; -1 uses start_fraction
    detach_target: bool = False  # stop-gradient on the deeper map (public re-implementations don't)


def attention_map(feature: Tensor, p: float = 2.0) -> Tensor:
    """G(A) = sum over channels of |A_c|^p: (N, C, H, W) -> (N, 1, H, W), in float32 at least."""
    feature = feature.float() if feature.dtype in (torch.float16, torch.bfloat16) else feature
    return feature.abs().pow(p).sum(dim=1, keepdim=True)


def spatial_softmax(att: Tensor) -> Tensor:
    """Softmax over all H*W positions of each image's (N, 1, H, W) map."""
    n, _, h, w = att.shape
    return torch.softmax(att.reshape(n, h * w), dim=1).reshape(n, 1, h, w)


def attention_distillation_loss(shallow: Tensor, deep: Tensor, p: float = 2.0, detach_target: bool = False) -> Tensor:
    """MSE(Psi(shallow), Psi(deep)) with the deeper stage as the target, at the shallower size."""
    g_shallow, g_deep = attention_map(shallow, p), attention_map(deep, p)
    if g_deep.shape[-2:] != g_shallow.shape[-2:]:
        g_deep = F.interpolate(g_deep, size=g_shallow.shape[-2:], mode="bilinear", align_corners=False)
    target = spatial_softmax(g_deep)
    if detach_target:
        target = target.detach()
    return F.mse_loss(spatial_softmax(g_shallow), target)


class SAD(Method):
    Options = SADOptions

    def __init__(self, ctx: MethodContext, options: SADOptions):
        super().__init__(ctx, options)
        if options.gamma < 0 or options.p <= 0:
            raise UserError(f"method.options.gamma must be >= 0 and p > 0, got {options.gamma} and {options.p}", "<config>")
        require_fraction("start_fraction", options.start_fraction, include_one=True)
        if options.start_step < -1:
            raise UserError(f"method.options.start_step must be >= 0, or -1 for start_fraction, got {options.start_step}", "<config>")

    @property
    def first_step(self) -> int:
        """The first step with the distillation term on."""
        if self.options.start_step >= 0:
            return self.options.start_step
        return step_at_fraction(self.options.start_fraction, self.ctx.total_steps)

    def distill_loss(self, stages: List[Tensor]) -> Tensor:
        """Sum over consecutive stage pairs (C2->C3, C3->C4, C4->C5) of the attention MSE."""
        opts = self.options
        pairs = zip(stages[:-1], stages[1:])
        return sum(attention_distillation_loss(a, b, opts.p, opts.detach_target) for a, b in pairs)

    def losses(self, output: DetectorOutput, batch: Dict[str, Tensor], step: int) -> Dict[str, Tensor]:
        terms = dict(self.ctx.det_loss(output.logits, batch))
        if step >= self.first_step:
            terms["sad"] = self.options.gamma * self.distill_loss(output.features.backbone)
        else:
            terms["sad"] = torch.zeros((), device=output.features.fused.device)
        return terms
