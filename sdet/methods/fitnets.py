"""FitNets: hints from a frozen teacher's intermediate feature (Romero et al., ICLR 2015).

A training-only regressor r maps the student's guided layer v_S to the teacher's hint
layer u_T (channel counts differ; spatial sizes are matched by resizing if needed):

    one stage (default):  L = L_det + lambda_hint * mean((u_T - r(v_S))^2)
    paper's two stages:   hint only, mean((u_T - r(v_S))^2), for the first hint_only_fraction
                          of the steps (it trains the student up to the guided layer, and r);
                          then L_det + soft-target KD (section 2.2) with a constant weight.

The default hint is the fused neck feature at stride 4 (what the head sees); `hint: C4`
pairs backbone stage C4 with C4 (stride 16), a middle layer as in the paper. r is a 1x1
(or 3x3) conv + BN followed by the nonlinearity of the teacher's hint layer. r and the
teacher are discarded after training. Defaults and choices: docs/METHODS.md section 2.4.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch
from torch import Tensor

from sdet.methods.base import Method, MethodContext, require_choice, require_fraction, step_at_fraction
from sdet.methods.blocks import conv_bn
from sdet.methods.soft_target import soft_target_loss
from sdet.models.backbones import ResNet
from sdet.models.detector import Detector, DetectorOutput
from sdet.ops.maps import resize_like

HINTS = ("fused", "C4")


@dataclass
class FitNetsOptions:
    hint: str = "fused"  # fused: neck output at stride 4 [R]; C4: backbone stage C4 (stride 16)
    lambda_hint: float = 1.0  # weight of the mean-reduced hint loss [R]; sweep 0.1, 1, 10
    regressor_kernel: int = 1  # 1 or 3 [R]
    # auto: the teacher's hint-layer nonlinearity: none for fused (the FPN's 3x3 convs are linear, so the
    # target has negative values), relu for a ResNet's C4 (stage outputs end in a ReLU); or relu|none
    regressor_act: str = "auto"
    hint_only_fraction: float = 0.0  # > 0: the paper's hint-only warm-up over this fraction of steps [P]
    tau: float = 1.0  # soft-target KD after the warm-up (used only when hint_only_fraction > 0)
    lambda_st: float = 10.0


def hint_feature(output: DetectorOutput, hint: str) -> Tensor:
    return output.features.fused if hint == "fused" else output.features.backbone[2]


def _channels(detector: Detector, hint: str) -> int:
    return detector.neck.inner_channels if hint == "fused" else detector.backbone.out_channels[2]


class FitNets(Method):
    Options = FitNetsOptions
    needs_teacher = True

    def __init__(self, ctx: MethodContext, options: FitNetsOptions):
        super().__init__(ctx, options)
        require_choice("hint", options.hint, HINTS)
        require_choice("regressor_kernel", options.regressor_kernel, (1, 3))
        require_choice("regressor_act", options.regressor_act, ("auto", "relu", "none"))
        require_fraction("hint_only_fraction", options.hint_only_fraction)
        relu = options.regressor_act == "relu" or (
            options.regressor_act == "auto" and options.hint == "C4" and isinstance(ctx.teacher.backbone, ResNet)
        )
        self.regressor = conv_bn(
            _channels(ctx.detector, options.hint), _channels(ctx.teacher, options.hint), options.regressor_kernel, relu=relu
        )
        self.hint_only_steps = step_at_fraction(options.hint_only_fraction, ctx.total_steps)

    def hint_loss(self, output: DetectorOutput, teacher: DetectorOutput) -> Tensor:
        """mean((u_T - r(v_S))^2), with r(v_S) resized to u_T when the strides differ."""
        target = hint_feature(teacher, self.options.hint)
        guess = resize_like(self.regressor(hint_feature(output, self.options.hint)), target)
        return (guess.float() - target.float()).pow(2).mean()

    def losses(self, output: DetectorOutput, batch: Dict[str, Tensor], step: int) -> Dict[str, Tensor]:
        opts = self.options
        teacher = self.teacher_output(batch)
        zero = torch.zeros((), device=output.features.fused.device)
        if opts.hint_only_fraction == 0:  # one stage
            terms = dict(self.ctx.det_loss(output.logits, batch))
            terms["hint"] = opts.lambda_hint * self.hint_loss(output, teacher)
            return terms
        if step < self.hint_only_steps:  # paper stage 1: the hint alone, detector terms logged as exact zeros
            with torch.no_grad():
                terms = {k: zero for k in self.ctx.det_loss(output.logits, batch)}
            terms["hint"] = opts.lambda_hint * self.hint_loss(output, teacher)
            terms["soft_target"] = zero
            return terms
        key = self.detector.text_key  # paper stage 2: task loss + soft targets, the regressor is done
        terms = dict(self.ctx.det_loss(output.logits, batch))
        terms["hint"] = zero
        terms["soft_target"] = opts.lambda_st * soft_target_loss(teacher.logits[key], output.logits[key], opts.tau)
        return terms
