"""ST: soft-target knowledge distillation (Hinton et al. 2015), applied per pixel to the text map.

A frozen teacher of the same type (usually R50) gives a text logit z_T at the student's
resolution; the student's text map is pulled towards the teacher's softened probabilities:

    L = L_det + lambda_st * tau^2 * mean KLb(sigmoid(z_T / tau) || sigmoid(z_S / tau))

The tau^2 factor keeps the gradient's scale independent of tau, as in Hinton's KD. DB
distils its probability map P, EAST its score map; EAST geometry is not distilled. For DB
the approximate binary map B = sigmoid(k (P - T)) can be distilled too (its logit k (P - T)
is what the head returns in training); the teacher's threshold branch, skipped in eval
mode, is run for it. Defaults and choices: docs/METHODS.md section 2.2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict

import torch
from torch import Tensor

from sdet.errors import UserError
from sdet.methods.base import Method, MethodContext
from sdet.models.detector import Detector, DetectorOutput
from sdet.ops.entropy import binary_kl_from_logits


@dataclass
class SoftTargetOptions:
    tau: float = 1.0  # temperature [R]; sweep 1, 2, 4 (the tau^2 factor stays)
    lambda_st: float = 10.0  # weight [R], as SKD's pixel-wise term
    distil_binary: bool = False  # DB only: also distil B = sigmoid(k (P - T)) [R, optional in the spec]
    # its weight: with k = 50 both binary maps are nearly hard, so this KL starts ~10-50x the P term's
    lambda_binary: float = 10.0


def soft_target_loss(teacher_logit: Tensor, student_logit: Tensor, tau: float = 1.0) -> Tensor:
    """tau^2 * mean binary KL between the softened teacher and student maps (unweighted)."""
    return tau**2 * binary_kl_from_logits(teacher_logit, student_logit, tau).mean()


def teacher_binary_logit(teacher: Detector, output: DetectorOutput) -> Tensor:
    """The teacher's DB binary logit k (sigmoid(P) - sigmoid(T)); eval mode skips the threshold branch."""
    head = teacher.head
    with torch.no_grad():
        thresh = head.thresh(output.features.fused)
        return head.k * (torch.sigmoid(output.logits["prob"]) - torch.sigmoid(thresh))


class SoftTarget(Method):
    Options = SoftTargetOptions
    needs_teacher = True

    def __init__(self, ctx: MethodContext, options: SoftTargetOptions):
        super().__init__(ctx, options)
        if options.tau <= 0:
            raise UserError(f"method.options.tau must be > 0, got {options.tau}", "<config>")
        if options.distil_binary and not hasattr(ctx.detector.head, "thresh"):
            raise UserError("method.options.distil_binary needs a DB detector (EAST has no binary map)", "<config>")

    def losses(self, output: DetectorOutput, batch: Dict[str, Tensor], step: int) -> Dict[str, Tensor]:
        opts = self.options
        terms = dict(self.ctx.det_loss(output.logits, batch))
        teacher = self.teacher_output(batch)
        key = self.detector.text_key
        terms["soft_target"] = opts.lambda_st * soft_target_loss(teacher.logits[key], output.logits[key], opts.tau)
        if opts.distil_binary:
            target = teacher_binary_logit(self.teacher, teacher)
            terms["soft_target_binary"] = opts.lambda_binary * soft_target_loss(target, output.logits["binary"], opts.tau)
        return terms
