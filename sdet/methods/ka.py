"""KA: knowledge adaptation with affinity distillation (He et al., CVPR 2019; torchdistill KTAAD).

The teacher's fused feature F_T is translated into a compact latent space by the encoder E of
an autoencoder; the student's fused feature F_S is adapted into that space and matched there,
and the pairwise structure (which positions look alike) is matched as affinity matrices:

    stage 1, step < ae_steps:  L = L_det + L_ae,  L_ae = mean((D(E(F_T)) - F_T)^2) + ae_l1 * ||E(F_T)||_1
    stage 2, afterwards:       L = L_det + alpha * L_adapt + beta * L_aff,   E frozen (eval mode, no grad)

    L_adapt = mean |n(A(F_S)) - n(E(F_T))|, n = L2 normalisation of each image's flattened map
    L_aff   = (1/N) sum_i ||A_S[i] - A_T[i]||_2 per image, A[i, j] = cosine(f_i, f_j) over the N positions

The paper pre-trains the autoencoder before the student; here it trains in the first steps of
the same run, in the same optimiser, while the student gets only L_det (its adapters are not
used yet), so the schedule keeps its length and resume needs nothing extra. E, the adapters and
the affinities work at 1/16 resolution (two stride-2 3x3 convs each): at 1/4 the affinity matrix
would have 16384^2 entries. Everything here is discarded after training. Every loss key is
present in both stages (exact zeros where inactive). Choices: docs/METHODS.md section 2.3.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdet.errors import UserError
from sdet.methods.base import Method, MethodContext, require_choice, step_at_fraction
from sdet.methods.blocks import conv_bn
from sdet.models.detector import DetectorOutput
from sdet.ops.maps import resize_like

AFFINITY_LOSSES = ("rows", "frobenius")


@dataclass
class KAOptions:
    alpha: float = 50.0  # L_adapt weight [C: torchdistill KTAAD]
    beta: float = 1.0  # L_aff weight [C]
    ae_steps: Optional[int] = None  # stage-1 length in steps; None: round(ae_fraction * train.max_steps)
    ae_fraction: float = 0.03  # [R] the "+~3% of the schedule" autoencoder pre-stage
    ae_l1: float = 1e-7  # L1 weight on the latent code [C]
    latent_channels: int = 0  # E's output channels [R]; 0: half the teacher's fused channels (R50-DB: 128)
    # [R] reading of the paper's (1/|A|) sum ||A_S - A_T||_2: rows = mean over positions of the L2 distance
    # between affinity rows; frobenius = ||A_S - A_T||_F / N (torchdistill's scale, about sqrt(N) smaller)
    affinity_loss: str = "rows"


def to_sixteenth(in_channels: int, out_channels: int) -> nn.Sequential:
    """Two stride-2 conv-BN-ReLU: a stride-4 feature to stride 16 (E and both adapters)."""
    return nn.Sequential(conv_bn(in_channels, out_channels, 3, stride=2), conv_bn(out_channels, out_channels, 3, stride=2))


def decoder(latent_channels: int, out_channels: int) -> nn.Sequential:
    """E mirrored with 3x3 transposed convs; the last is linear, as the fused feature it rebuilds is signed."""
    return nn.Sequential(
        nn.ConvTranspose2d(latent_channels, latent_channels, 3, stride=2, padding=1, output_padding=1, bias=False),
        nn.BatchNorm2d(latent_channels),
        nn.ReLU(inplace=True),
        nn.ConvTranspose2d(latent_channels, out_channels, 3, stride=2, padding=1, output_padding=1),
    )


def adaptation_loss(student: Tensor, target: Tensor) -> Tensor:
    """Mean L1 between per-image L2-normalised flattened maps (only directions are compared)."""
    s = F.normalize(student.flatten(1).float(), dim=1)
    t = F.normalize(target.flatten(1).float(), dim=1)
    return (s - t).abs().mean()


def affinity(feature: Tensor) -> Tensor:
    """(B, C, h, w) -> (B, N, N), N = h w: cosine similarity of every pair of position vectors."""
    f = F.normalize(feature.flatten(2).float(), dim=1)  # unit vectors over channels, (B, C, N)
    return f.transpose(1, 2) @ f


def affinity_distance(student: Tensor, target: Tensor, reduction: str = "rows") -> Tensor:
    """Distance between (B, N, N) affinity matrices, averaged over the batch."""
    diff = student - target
    if reduction == "rows":
        return diff.norm(dim=2).mean()
    return diff.flatten(1).norm(dim=1).mean() / diff.shape[-1]


class KA(Method):
    Options = KAOptions
    needs_teacher = True

    def __init__(self, ctx: MethodContext, options: KAOptions):
        super().__init__(ctx, options)
        require_choice("affinity_loss", options.affinity_loss, AFFINITY_LOSSES)
        teacher_channels = ctx.teacher.neck.inner_channels
        latent = options.latent_channels or max(teacher_channels // 2, 1)
        self.encoder = to_sixteenth(teacher_channels, latent)
        self.decoder = decoder(latent, teacher_channels)
        self.adapter = to_sixteenth(ctx.detector.neck.inner_channels, latent)
        self.affinity_adapter = to_sixteenth(ctx.detector.neck.inner_channels, latent)
        self.ae_steps = (options.ae_steps if options.ae_steps is not None
                         else step_at_fraction(options.ae_fraction, ctx.total_steps))
        if self.ae_steps < 0:
            raise UserError(f"method.options.ae_steps must be >= 0, got {self.ae_steps}", "<config>")

    def autoencoder_loss(self, teacher_fused: Tensor) -> Tensor:
        latent = self.encoder(teacher_fused)
        rebuilt = resize_like(self.decoder(latent), teacher_fused)  # odd sizes: the deconvs overshoot by a pixel
        return F.mse_loss(rebuilt.float(), teacher_fused.float()) + self.options.ae_l1 * latent.float().abs().sum()

    def losses(self, output: DetectorOutput, batch: Dict[str, Tensor], step: int) -> Dict[str, Tensor]:
        opts = self.options
        terms = dict(self.ctx.det_loss(output.logits, batch))
        teacher_fused = self.teacher_output(batch).features.fused
        zero = torch.zeros((), device=teacher_fused.device)
        if step < self.ae_steps:  # stage 1: the autoencoder learns; the student gets L_det only
            terms.update(ka_ae=self.autoencoder_loss(teacher_fused), ka_adapt=zero, ka_aff=zero)
            return terms
        self.encoder.eval()  # stage 2: E frozen, BN statistics included (Method.train() re-enables it)
        with torch.no_grad():
            latent = self.encoder(teacher_fused)
        student = output.features.fused
        adapted = resize_like(self.adapter(student), latent)
        for_affinity = resize_like(self.affinity_adapter(student), latent)
        terms["ka_ae"] = zero
        terms["ka_adapt"] = opts.alpha * adaptation_loss(adapted, latent)
        terms["ka_aff"] = opts.beta * affinity_distance(affinity(for_affinity), affinity(latent), opts.affinity_loss)
        return terms
