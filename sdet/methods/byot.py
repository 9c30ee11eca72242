"""SD: Be Your Own Teacher (Zhang et al., ICCV 2019), adapted to text detection.

Each shallow backbone section (C2, C3, C4) gets a training-only bottleneck that lifts it
to the fused neck feature's width and 1/4 resolution (F_i), and a light text head on F_i
(z_i). The full detector is the teacher of its own shallow sections:

    L = L_det + sum_i [ (1 - alpha) * L_text(z_i, GT)
                        + alpha * tau^2 * mean KLb(sigmoid(z_C / tau) || sigmoid(z_i / tau))
                        + lam * mean (F_i - sg(F_C))^2 ]

z_C is the main text logit and F_C the fused feature; both targets are detached (public
re-implementation), so the deepest classifier gets only the task loss and the distillation
gradient flows into the shallow heads and the backbone sections below them. Defaults
follow docs/METHODS.md section 2.6; every reconstructed choice is an option.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Tuple

from torch import Tensor, nn

from sdet.errors import UserError
from sdet.methods.base import Method, MethodContext, require_distinct_choices
from sdet.methods.blocks import bottleneck, conv_bn
from sdet.models.detector import DetectorOutput
from sdet.ops.entropy import binary_kl_from_logits
from sdet.ops.maps import resize_like

SECTIONS = ("C2", "C3", "C4", "C5")


@dataclass
class BYOTOptions:
    sections: List[str] = field(default_factory=lambda: ["C2", "C3", "C4"])  # shallow backbone sections i = 1..3
    tau: float = 3.0  # distillation temperature
    alpha: float = 0.1  # KL weight; the GT text loss gets 1 - alpha
    lam: float = 0.1  # weight of the mean squared feature hint (summed-L2 1e-6 in the re-implementation)


def shallow_text_head(channels: int) -> nn.Sequential:
    """3x3 conv-BN-ReLU (C -> C/4, as DB's text branch), 1x1 -> 1 text logit."""
    mid = max(channels // 4, 1)
    return nn.Sequential(*conv_bn(channels, mid, 3), nn.Conv2d(mid, 1, 1))


class BYOT(Method):
    Options = BYOTOptions

    def __init__(self, ctx: MethodContext, options: BYOTOptions):
        super().__init__(ctx, options)
        require_distinct_choices("sections", options.sections, SECTIONS)
        if options.tau <= 0 or not 0.0 <= options.alpha <= 1.0 or options.lam < 0:
            raise UserError(
                f"method.options need tau > 0, 0 <= alpha <= 1, lam >= 0; got tau={options.tau}, "
                f"alpha={options.alpha}, lam={options.lam}", "<config>"
            )
        stage_channels = ctx.detector.backbone.out_channels
        fused_channels = ctx.detector.neck.inner_channels
        self.bottlenecks = nn.ModuleDict(
            {name: bottleneck(stage_channels[SECTIONS.index(name)], fused_channels) for name in options.sections}
        )
        self.heads = nn.ModuleDict({name: shallow_text_head(fused_channels) for name in options.sections})

    def shallow_outputs(self, output: DetectorOutput) -> Dict[str, Tuple[Tensor, Tensor]]:
        """Per section: (F_i at the fused feature's size, z_i at the main text logit's size)."""
        fused = output.features.fused
        main = output.logits[self.detector.text_key]
        result = {}
        for name, block in self.bottlenecks.items():
            feature = resize_like(block(output.features.backbone[SECTIONS.index(name)]), fused)
            result[name] = (feature, resize_like(self.heads[name](feature), main))
        return result

    def losses(self, output: DetectorOutput, batch: Dict[str, Tensor], step: int) -> Dict[str, Tensor]:
        opts = self.options
        terms = dict(self.ctx.det_loss(output.logits, batch))
        teacher_logit = output.logits[self.detector.text_key].detach()
        teacher_feature = output.features.fused.detach()
        for name, (feature, logit) in self.shallow_outputs(output).items():
            if opts.alpha < 1:
                terms[f"byot_{name}_text"] = (1 - opts.alpha) * self.ctx.det_loss.text_loss(logit, batch)
            if opts.alpha > 0:
                kl = binary_kl_from_logits(teacher_logit, logit, opts.tau).mean()
                terms[f"byot_{name}_kl"] = opts.alpha * opts.tau**2 * kl
            if opts.lam > 0:
                terms[f"byot_{name}_feat"] = opts.lam * ((feature - teacher_feature) ** 2).mean()
        return terms
