"""SDET: self-distillation via entropy transfer (Chen, Yang, Lai, Acta Automatica Sinica 2024).

A training-only auxiliary head on one shallow pyramid level predicts a text logit z_a.
It is supervised by the ground truth (lambda_aux * the detector's own text loss) and made
to reproduce the pixel-wise binary entropy of the deep head's text map:

    L = L_det + lambda_aux * L_text(z_a, GT) + lambda_et * mean[(E(z_a) - sg(E(z_m)))^2]

With the target detached, the entropy term's gradient reaches the auxiliary head and,
through the tapped level, the shallow layers below it, never the main head. The head is
discarded after training, so inference costs nothing extra. The defaults follow the
reconstruction in docs/METHODS.md (section 2.1); every reconstructed choice is an option.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch
import torch.nn.functional as F
from torch import Tensor

from sdet.methods.aux_heads import build_aux_head
from sdet.methods.base import Method, MethodContext, require_choice
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
    detach_target: bool = True  # stop-gradient on the main head's entropy


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
        self.level_index = LEVELS.index(options.level)
        channels = ctx.detector.neck.level_channels
        self.aux_head = build_aux_head(options.aux_type, channels, ctx.detector.head)

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
        if opts.lambda_et > 0:
            if step >= opts.et_start_step:
                mask = batch["text_mask"] if opts.masked else None
                terms["entropy_transfer"] = opts.lambda_et * entropy_transfer_loss(aux, main, opts.detach_target, mask)
            else:
                terms["entropy_transfer"] = torch.zeros((), device=main.device)
        return terms
