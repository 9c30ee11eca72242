"""SKD: structured knowledge distillation (Liu et al., CVPR 2019; code: irfanICMLL/structure_knowledge_distillation).

A frozen teacher of the same type (usually R50) is distilled at three levels of structure:

    L = L_det + lambda_pi * mean KLb(sigmoid(z_T) || sigmoid(z_S))       pixel-wise (soft targets, tau = 1)
              + lambda_pa * mean_ij (a^T_ij - a^S_ij)^2                  pair-wise
              - lambda_d * E[D(Q_S)]                                     holistic (adversarial)

a_ij is the cosine similarity of nodes i and j of the fused neck features, max-pooled to about
2x2 nodes (channel counts may differ: only similarities are compared). Q = [1 - t, t], t the text
map, joined with the image resized to the map (the paper's conditioning). D is a small SAGAN-style
WGAN-GP critic that trains against the student with its own SGD, one step after each student step:

    L_D = lambda_d * (E[D(Q_S)] - E[D(Q_T)] + lambda_gp * E[(||grad D(Q_hat)|| - 1)^2])

so D is left out of the trainer's optimiser (`optimized_parameters`), stepped in `after_step` on
the Q_S, Q_T stored (detached) by `losses`, and its optimiser state rides in the training checkpoint
(`extra_state`). The gradient the student term leaves on D is dropped before D's step. The teacher
and D are discarded after training. Choices: docs/METHODS.md, section SKD.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sdet.engine.optim import set_lr
from sdet.errors import UserError
from sdet.methods.base import Method, MethodContext, require_choice
from sdet.methods.fitnets import HINTS, hint_feature
from sdet.methods.ka import affinity
from sdet.methods.soft_target import soft_target_loss
from sdet.models.detector import DetectorOutput


@dataclass
class SKDOptions:
    lambda_pi: float = 10.0  # pixel-wise weight [C]
    lambda_pa: float = 1.0  # pair-wise weight [C]
    lambda_d: float = 0.1  # holistic weight, of the student term and of D's loss [C]
    lambda_gp: float = 10.0  # gradient-penalty weight in D's loss [C]
    pool_scale: float = 0.5  # pair-wise nodes: max-pool kernel = stride = int(scale * size), ceil mode [C]
    pair_feature: str = "fused"  # the pair-wise feature: fused neck output [R], or backbone C4
    condition_on_image: bool = True  # D sees [Q, image] [P]; false: Q only, as the public code [C]
    d_width: int = 64  # D's first conv width, doubled at each strided conv [C: SAGAN conv_dim]
    d_layers: int = 4  # strided 4x4 convs in D [C]; the text map must be at least 2^d_layers pixels
    spectral_norm: bool = True  # on D's strided convs [C]
    d_lr: float = 4e-4  # D's own SGD [C]
    d_momentum: float = 0.9  # [C]
    d_power: float = 0.9  # poly decay of d_lr over train.max_steps [C]


def pool_nodes(feature: Tensor, scale: float) -> Tensor:
    """Max-pool with kernel = stride = int(scale * size), ceil mode: about (1/scale)^2 nodes (2x2 at 0.5)."""
    kernel = (max(int(feature.shape[-2] * scale), 1), max(int(feature.shape[-1] * scale), 1))
    return F.max_pool2d(feature, kernel, stride=kernel, ceil_mode=True)


def pair_wise_loss(student: Tensor, teacher: Tensor, scale: float) -> Tensor:
    """sum_ij (a^T_ij - a^S_ij)^2 / nodes^2 / N, i.e. the mean over the batch's affinity entries."""
    return F.mse_loss(affinity(pool_nodes(student, scale)), affinity(pool_nodes(teacher, scale)))


def two_class_map(logit: Tensor) -> Tensor:
    """The text map as a two-class distribution [1 - t, t], float32: D's input."""
    t = torch.sigmoid(logit.float())
    return torch.cat([1 - t, t], dim=1)


class SelfAttention(nn.Module):
    """SAGAN's self-attention block: each position mixes in the values of all positions.

    gamma starts at 0, so the block starts as the identity and D learns how much global context to use.
    """

    def __init__(self, channels: int):
        super().__init__()
        inner = max(channels // 8, 1)
        self.query = nn.Conv2d(channels, inner, 1)
        self.key = nn.Conv2d(channels, inner, 1)
        self.value = nn.Conv2d(channels, channels, 1)
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        query, key, value = self.query(x).flatten(2), self.key(x).flatten(2), self.value(x).flatten(2)
        attention = torch.softmax(query.transpose(1, 2) @ key, dim=-1)  # (B, N, N): row i, where i looks
        return x + self.gamma * (value @ attention.transpose(1, 2)).reshape(x.shape)


class Discriminator(nn.Module):
    """SAGAN-style critic: strided 4x4 convs (LeakyReLU 0.1), one self-attention block, a 3x3 conv.

    The per-position scores are averaged to one score per image. No BN: WGAN-GP's penalty is per
    sample, and BN would mix the samples of a batch.
    """

    def __init__(self, in_channels: int, width: int, layers: int, spectral_norm: bool):
        super().__init__()
        norm = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda conv: conv)
        blocks = []
        channels = in_channels
        for i in range(layers):
            blocks += [norm(nn.Conv2d(channels, width * 2**i, 4, stride=2, padding=1)), nn.LeakyReLU(0.1)]
            channels = width * 2**i
        self.features = nn.Sequential(*blocks)
        self.attention = SelfAttention(channels)
        self.score = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, q: Tensor, image: Optional[Tensor] = None) -> Tensor:
        x = q if image is None else torch.cat([q, image], dim=1)
        return self.score(self.attention(self.features(x))).mean(dim=(1, 2, 3))


def gradient_penalty(discriminator: Discriminator, q_s: Tensor, q_t: Tensor, image: Optional[Tensor]) -> Tensor:
    """WGAN-GP: E[(||grad_Q D(Q_hat)|| - 1)^2] at random points Q_hat between Q_S and Q_T.

    The image is the same on both sides: a condition, not part of the point being interpolated.
    The mixing weights come from the CPU generator, whose state the training checkpoint keeps,
    so a resumed run draws the same ones, on any device.
    """
    alpha = torch.rand(q_s.shape[0], 1, 1, 1).to(q_s.device)
    q_hat = (alpha * q_t + (1 - alpha) * q_s).requires_grad_(True)
    (grad,) = torch.autograd.grad(discriminator(q_hat, image).sum(), q_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


def _check_options(options: SKDOptions) -> None:
    def bad(message: str) -> UserError:
        return UserError(f"method.options.{message}", "<config>")

    for name in ("lambda_pi", "lambda_pa", "lambda_d", "lambda_gp", "d_power", "d_momentum"):
        if getattr(options, name) < 0:
            raise bad(f"{name} must be >= 0, got {getattr(options, name)}")
    if not 0 < options.pool_scale <= 1:
        raise bad(f"pool_scale must be in (0, 1], got {options.pool_scale}")
    require_choice("pair_feature", options.pair_feature, HINTS)
    for name in ("d_width", "d_layers"):
        if getattr(options, name) < 1:
            raise bad(f"{name} must be >= 1, got {getattr(options, name)}")
    if options.d_lr <= 0:
        raise bad(f"d_lr must be > 0, got {options.d_lr}")
    if options.d_momentum >= 1:
        raise bad(f"d_momentum must be < 1, got {options.d_momentum}")


class SKD(Method):
    Options = SKDOptions
    needs_teacher = True

    def __init__(self, ctx: MethodContext, options: SKDOptions):
        super().__init__(ctx, options)
        _check_options(options)
        in_channels = 2 + (3 if options.condition_on_image else 0)
        self.discriminator = Discriminator(in_channels, options.d_width, options.d_layers, options.spectral_norm)
        self.d_optimizer = torch.optim.SGD(self.discriminator.parameters(), lr=options.d_lr, momentum=options.d_momentum)
        self._pending: Optional[Tuple[Tensor, Tensor, Optional[Tensor]]] = None  # detached Q_S, Q_T, image

    def optimized_parameters(self) -> Iterator[nn.Parameter]:
        """Nothing: D, the only module, has its own optimiser and learning rate."""
        return iter(())

    def losses(self, output: DetectorOutput, batch: Dict[str, Tensor], step: int) -> Dict[str, Tensor]:
        opts = self.options
        terms = dict(self.ctx.det_loss(output.logits, batch))
        teacher = self.teacher_output(batch)
        key = self.detector.text_key
        z_s, z_t = output.logits[key], teacher.logits[key]
        terms["skd_pi"] = opts.lambda_pi * soft_target_loss(z_t, z_s, tau=1.0)
        pair_s, pair_t = hint_feature(output, opts.pair_feature), hint_feature(teacher, opts.pair_feature)
        terms["skd_pa"] = opts.lambda_pa * pair_wise_loss(pair_s, pair_t, opts.pool_scale)
        image = None
        if opts.condition_on_image:  # EAST's map is at 1/4: average the image down to it
            image = batch["image"].float()
            if image.shape[-2:] != z_s.shape[-2:]:
                image = F.interpolate(image, size=z_s.shape[-2:], mode="area")
        q_s, q_t = two_class_map(z_s), two_class_map(z_t)
        with torch.autocast(device_type=q_s.device.type, enabled=False):  # D works in float32 throughout
            terms["skd_ho"] = -opts.lambda_d * self.discriminator(q_s, image).mean()
        self._pending = (q_s.detach(), q_t, image)
        return terms

    def after_step(self, step: int) -> Dict[str, float]:
        """One D step on this step's maps: poly learning rate, the student's gradient on D dropped first."""
        if self._pending is None:
            return {}
        q_s, q_t, image = self._pending
        self._pending = None
        opts = self.options
        progress = min(step / max(self.ctx.total_steps, 1), 1.0)
        set_lr(self.d_optimizer, opts.d_lr * (1 - progress) ** opts.d_power)
        self.d_optimizer.zero_grad(set_to_none=True)
        gp = gradient_penalty(self.discriminator, q_s, q_t, image)
        wasserstein = self.discriminator(q_s, image).mean() - self.discriminator(q_t, image).mean()
        d_loss = opts.lambda_d * (wasserstein + opts.lambda_gp * gp)
        d_loss.backward()
        self.ctx.average_gradients(self.discriminator.parameters())  # D is outside DDP: synchronised here
        self.d_optimizer.step()
        return {"skd_d": float(d_loss.detach()), "skd_gp": float(gp.detach())}

    def extra_state(self) -> Dict[str, Any]:
        return {"d_optimizer": self.d_optimizer.state_dict()}

    def load_extra_state(self, state: Dict[str, Any]) -> None:
        self.d_optimizer.load_state_dict(state["d_optimizer"])
