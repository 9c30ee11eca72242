"""DSN: deeply-supervised nets (Lee et al., AISTATS 2015), adapted to text detection.

Each chosen FPN level gets a training-only companion classifier (a 1x1 conv to a text
logit, upsampled to the main text map) supervised by the detector's own text loss:

    L = L_det + sum_m alpha_m(t) * [L_text(z_m, GT) - gamma]_+

alpha_m(t) = alpha * (1 - t / N) decays linearly to 0 at the end of training, so the
companions shape the early features and leave the final objective to the main head. The
paper's threshold gamma switches a companion off once its loss is below gamma (0 = never).
Defaults follow docs/METHODS.md section 2.8; every reconstructed choice is an option.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

import torch
from torch import Tensor, nn

from sdet.errors import UserError
from sdet.methods.base import Method, MethodContext, require_distinct_choices
from sdet.methods.sdet import LEVELS
from sdet.models.detector import DetectorOutput
from sdet.ops.maps import resize_like


@dataclass
class DSNOptions:
    levels: List[str] = field(default_factory=lambda: list(LEVELS))  # FPN levels with a companion head
    alpha: float = 0.4  # companion weight at step 0 (SKD's CriterionDSN and PSPNet use 0.4)
    decay: bool = True  # alpha_m(t) = alpha * (1 - t / total_steps), the paper's per-epoch decay per step
    gamma: float = 0.0  # hinge threshold: a companion loss below gamma contributes nothing (0 = off)


def companion_weight(alpha: float, step: int, total_steps: int, decay: bool = True) -> float:
    """The linearly decaying companion weight: alpha at step 0, 0 at total_steps and after."""
    if not decay or total_steps <= 0:
        return alpha
    return alpha * max(0.0, 1.0 - step / total_steps)


class DSN(Method):
    Options = DSNOptions

    def __init__(self, ctx: MethodContext, options: DSNOptions):
        super().__init__(ctx, options)
        require_distinct_choices("levels", options.levels, LEVELS)
        if options.alpha < 0 or options.gamma < 0:
            raise UserError(
                f"method.options.alpha and gamma must be >= 0, got {options.alpha} and {options.gamma}", "<config>"
            )
        channels = ctx.detector.neck.level_channels
        self.companions = nn.ModuleDict({name: nn.Conv2d(channels, 1, 1) for name in options.levels})

    def companion_logits(self, output: DetectorOutput) -> Dict[str, Tensor]:
        """Each companion's text logit, upsampled to the main text map's resolution."""
        main = output.logits[self.detector.text_key]
        return {
            name: resize_like(head(output.features.levels[LEVELS.index(name)]), main)
            for name, head in self.companions.items()
        }

    def losses(self, output: DetectorOutput, batch: Dict[str, Tensor], step: int) -> Dict[str, Tensor]:
        opts = self.options
        terms = dict(self.ctx.det_loss(output.logits, batch))
        weight = companion_weight(opts.alpha, step, self.ctx.total_steps, opts.decay)
        for name, logit in self.companion_logits(output).items():
            loss = self.ctx.det_loss.text_loss(logit, batch)
            if opts.gamma > 0:
                loss = torch.clamp_min(loss - opts.gamma, 0.0)
            terms[f"dsn_{name}"] = weight * loss
        return terms
