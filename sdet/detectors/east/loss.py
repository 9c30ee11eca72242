"""EAST loss, L = w_s * L_score + lambda_g * L_geo, from the head's logits and raw geometry.

Score loss (``loss.east_score_loss``):

* ``balanced_bce`` (paper, project default): class-balanced cross-entropy
  -beta y log p - (1 - beta)(1 - y) log(1 - p), beta = 1 - sum(y) / |Y|, over the
  training mask. beta is taken over the whole batch, so an image without text still
  teaches background; the mean is over masked pixels. Computed from logits.
* ``dice`` (reference code, argman/EAST): 1 - 2 sum(p y m) / (sum(p m) + sum(y m)),
  which the reference scales by 0.01 (``loss.east_score_weight``).

Geometry loss, averaged over positive pixels (score_map * training_mask) only:

* RBOX: -log IoU of the axis-aligned boxes given by the four edge distances (in the
  rectangle's own frame) + lambda_theta * (1 - cos(angle error)); lambda_theta 10 in the
  paper, 20 in the reference code. (The reference averages over all pixels instead.)
* QUAD: smoothed-L1 over the 8 corner coordinates divided by 8 * the quad's shortest edge,
  the minimum over the 4 cyclic vertex orders of the target, as the paper.

Everything is computed in float32: under AMP the box areas (up to 1024^2) overflow float16.
``text_loss`` is the score loss of any text logit (resized to the score map): SDET and the
other methods supervise their auxiliary text maps with exactly the detector's own loss.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from sdet.config import LossConfig
from sdet.errors import UserError
from sdet.ops.losses import dice_loss
from sdet.ops.maps import match_size

SCORE_LOSSES = ("balanced_bce", "dice")
GEO_CHANNELS = {5: "rbox", 8: "quad"}


def balanced_bce_with_logits(logit: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    """EAST's class-balanced cross-entropy over masked pixels, beta from the whole batch."""
    valid = mask.sum()
    if valid.item() == 0:
        return (logit * 0).sum()
    beta = 1.0 - (gt * mask).sum() / valid
    weight = (beta * gt + (1.0 - beta) * (1.0 - gt)) * mask
    return F.binary_cross_entropy_with_logits(logit, gt, weight=weight, reduction="sum") / valid


def rbox_geometry_loss(pred: Tensor, gt: Tensor, positive: Tensor, lambda_theta: float) -> Dict[str, Tensor]:
    """-log IoU of the distance boxes and lambda_theta * (1 - cos dtheta), averaged over positives."""
    d_top, d_right, d_bottom, d_left, angle = pred.unbind(1)
    g_top, g_right, g_bottom, g_left, g_angle = gt.unbind(1)
    area_pred = (d_top + d_bottom) * (d_right + d_left)
    area_gt = (g_top + g_bottom) * (g_right + g_left)
    inter_w = torch.minimum(d_right, g_right) + torch.minimum(d_left, g_left)
    inter_h = torch.minimum(d_top, g_top) + torch.minimum(d_bottom, g_bottom)
    inter = inter_w * inter_h
    union = area_pred + area_gt - inter
    aabb = -torch.log((inter + 1.0) / (union + 1.0))
    theta = 1.0 - torch.cos(angle - g_angle)
    count = positive.sum().clamp_min(1.0)
    return {"geo_aabb": (aabb * positive).sum() / count, "geo_theta": lambda_theta * (theta * positive).sum() / count}


def quad_geometry_loss(pred: Tensor, gt: Tensor, positive: Tensor) -> Tensor:
    """Smoothed-L1 / (8 * shortest edge), best cyclic vertex order of the target, over positives."""
    n, _, h, w = gt.shape
    corners = gt.reshape(n, 4, 2, h, w)
    edges = (corners - corners.roll(-1, dims=1)).norm(dim=2)  # offsets share the pixel: their differences are edges
    norm = 8.0 * edges.min(dim=1).values.clamp_min(1.0)
    per_order = []
    for shift in range(4):
        target = corners.roll(shift, dims=1).reshape(n, 8, h, w)
        per_order.append(F.smooth_l1_loss(pred, target, reduction="none").sum(dim=1))
    best = torch.stack(per_order).min(dim=0).values / norm
    return (best * positive).sum() / positive.sum().clamp_min(1.0)


class EASTLoss:
    def __init__(self, cfg: LossConfig):
        if cfg.east_score_loss not in SCORE_LOSSES:
            raise UserError(f"loss.east_score_loss must be one of {SCORE_LOSSES}, got '{cfg.east_score_loss}'", "<config>")
        self.cfg = cfg

    @staticmethod
    def text_target(batch: Dict[str, Tensor]) -> Tuple[Tensor, Tensor]:
        """The GT text map a text logit is trained on, and where it counts: (N, H, W) each."""
        return batch["score_map"].float(), batch["training_mask"].float()

    def text_loss(self, logit: Tensor, batch: Dict[str, Tensor]) -> Tensor:
        """Score-map loss of a text logit (N, 1, h, w) at any resolution (brought to the score map's)."""
        gt, mask = self.text_target(batch)
        logit = match_size(logit.float(), gt)
        if self.cfg.east_score_loss == "dice":
            return dice_loss(torch.sigmoid(logit), gt, mask)
        return balanced_bce_with_logits(logit, gt, mask)

    def __call__(self, logits: Dict[str, Tensor], batch: Dict[str, Tensor]) -> Dict[str, Tensor]:
        cfg = self.cfg
        terms = {f"score_{cfg.east_score_loss}": cfg.east_score_weight * self.text_loss(logits["score"], batch)}
        pred, gt = logits["geo"].float(), batch["geo_map"].float()
        if pred.shape[1] != gt.shape[1] or pred.shape[1] not in GEO_CHANNELS:
            raise UserError(
                f"EAST head predicts {pred.shape[1]} geometry channels but the targets have {gt.shape[1]}: "
                "set data.east_geometry to model.head.east_geometry", "<config>"
            )
        if pred.shape[-2:] != gt.shape[-2:]:
            raise ValueError(f"geometry {tuple(pred.shape[-2:])} and targets {tuple(gt.shape[-2:])} differ in size")
        positive = batch["score_map"].float() * batch["training_mask"].float()
        if GEO_CHANNELS[pred.shape[1]] == "rbox":
            geo = rbox_geometry_loss(pred, gt, positive, cfg.east_lambda_theta)
        else:
            geo = {"geo_quad": quad_geometry_loss(pred, gt, positive)}
        terms.update({name: cfg.east_lambda_geo * value for name, value in geo.items()})
        return terms
