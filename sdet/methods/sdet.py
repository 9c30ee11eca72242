"""SDET: self-distillation via entropy transfer (Chen, Yang, Lai, Acta Automatica Sinica 2024).

A training-only auxiliary head on one shallow pyramid level predicts a text logit z_a.
It is supervised by the ground truth (lambda_aux * the detector's own text loss) and made
to reproduce the pixel-wise binary entropy of the deep head's text map:

    L = L_det + lambda_aux * L_text(z_a, GT) + lambda_et * mean[(E(z_a) - sg(E(z_m)))^2]

With the target detached, the entropy term's gradient reaches the auxiliary head and,
through the tapped level, the shallow layers below it, never the main head. The head is
discarded after training, so inference costs nothing extra. The defaults follow the
reconstruction in docs/METHODS.md (section 2.1); every reconstructed choice is an option.

Entropy cannot tell p from 1 - p, so the GT term must set the auxiliary map's polarity before
the entropy term freezes it; every step computes `aux_text_iou` (the auxiliary map, thresholded at
0.5, against the GT text of the batch), logged at each logged step, so a run shows whether it did
(docs/SDET.md, part d).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from sdet.errors import UserError
from sdet.methods.aux_heads import build_aux_head
from sdet.methods.base import Method, MethodContext, require_choice, require_fraction, step_at_fraction
from sdet.models.detector import DetectorOutput
from sdet.ops.entropy import binary_entropy
from sdet.ops.maps import resize_like

LEVELS = ("P0", "P1", "P2", "P3")


@dataclass
class SDETOptions:
    aux_type: str = "A"  # A: 1x1 conv, B: bottleneck + residual, C: copy of the text head
    level: str = "P3"  # P0 (stride 32) ... P3 (stride 4)
    lambda_aux: float = 1.0  # GT text loss on the auxiliary map (pins its polarity)
    lambda_et: float = 1.0  # entropy-transfer weight
    masked: bool = False  # SDET-M: squared error only inside GT text, normalised by the mask sum
    et_start_step: int = 0  # enable the entropy term from this step on
    et_start_fraction: float = 0.0  # ... or from this fraction of train.max_steps (the later of the two)
    detach_target: bool = True  # stop-gradient on the main head's entropy


def text_overlap(logit: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    """[intersection, union] pixel counts of (logit > 0) and the (N, H, W) GT text map inside its mask."""
    gt, mask = gt > 0.5, mask > 0.5
    positive = resize_like(logit, gt)[:, 0] > 0
    return torch.stack([(positive & gt & mask).sum(), ((positive | gt) & mask).sum()]).double()


def entropy_transfer_loss(aux_logit: Tensor, main_logit: Tensor, detach: bool = True, mask: Tensor = None) -> Tensor:
    """Squared difference of binary entropies (bits), mean over pixels or over a mask."""
    target = binary_entropy(main_logit)
    if detach:
        target = target.detach()
    sq = (binary_entropy(aux_logit) - target) ** 2
    if mask is None:
        return sq.mean()
    mask = mask.to(sq.dtype)
    if mask.dim() == 3:
        mask = mask[:, None]
    if mask.shape[-2:] != sq.shape[-2:]:
        mask = F.interpolate(mask, size=sq.shape[-2:], mode="nearest")
    return (sq * mask).sum() / mask.sum().clamp_min(1.0)


class SDET(Method):
    Options = SDETOptions

    def __init__(self, ctx: MethodContext, options: SDETOptions):
        super().__init__(ctx, options)
        require_choice("level", options.level, LEVELS)
        require_choice("aux_type", options.aux_type, ("A", "B", "C"))
        require_fraction("et_start_fraction", options.et_start_fraction)
        if min(options.lambda_aux, options.lambda_et, options.et_start_step) < 0:
            raise UserError("method.options.lambda_aux, lambda_et and et_start_step must be >= 0, got "
                            f"{options.lambda_aux}, {options.lambda_et} and {options.et_start_step}", "<config>")
        self.et_start = max(options.et_start_step, step_at_fraction(options.et_start_fraction, ctx.total_steps))
        if options.lambda_et > 0 and self.et_start >= ctx.total_steps:
            raise UserError(f"the entropy term would start at step {self.et_start} of a {ctx.total_steps}-step "
                            "schedule, so never: lower method.options.et_start_step, or set lambda_et=0", "<config>")
        self.level_index = LEVELS.index(options.level)
        channels = ctx.detector.neck.level_channels
        self.aux_head = build_aux_head(options.aux_type, channels, ctx.detector.head)
        self._overlap: Optional[Tensor] = None  # this step's aux/GT text counts, summed over micro-batches

    def aux_logit(self, output: DetectorOutput) -> Tensor:
        """The auxiliary text logit, upsampled to the main text map's resolution."""
        z_a = self.aux_head(output.features.levels[self.level_index])
        return resize_like(z_a, output.logits[self.detector.text_key])

    def losses(self, output: DetectorOutput, batch: Dict[str, Tensor], step: int) -> Dict[str, Tensor]:
        opts = self.options
        terms = dict(self.ctx.det_loss(output.logits, batch))
        main = output.logits[self.detector.text_key]
        aux = self.aux_logit(output)
        terms["aux_text"] = opts.lambda_aux * self.ctx.det_loss.text_loss(aux, batch)
        with torch.no_grad():
            overlap = text_overlap(aux, *self.ctx.det_loss.text_target(batch))
        self._overlap = overlap if self._overlap is None else self._overlap + overlap
        if opts.lambda_et > 0:
            if step >= self.et_start:
                mask = batch["text_mask"] if opts.masked else None
                terms["entropy_transfer"] = opts.lambda_et * entropy_transfer_loss(aux, main, opts.detach_target, mask)
            else:
                terms["entropy_transfer"] = torch.zeros((), device=main.device)
        return terms

    def after_step(self, step: int) -> Dict[str, float]:
        """Logs how well the auxiliary map matches the GT text (its IoU) over the step's batch."""
        if self._overlap is None:
            return {}
        intersection, union = self._overlap.tolist()
        self._overlap = None
        return {"aux_text_iou": intersection / union if union else 0.0}
