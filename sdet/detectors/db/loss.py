"""DB loss in the official-code form: Dice(B) + 10 * L1(T) + 5 * BCE-OHEM(P), from logits.

`text_loss` (the shrink-map loss on a text logit) is what distillation methods use to
supervise auxiliary text maps, so every method shares exactly the detector's own text loss.

`loss.prob_loss=dice` reproduces PaddleOCR's DB configs: their BalanceLoss with
main_loss_type DiceLoss multiplies the scalar Dice by the positive/negative masks and
re-normalises by the same counts, which returns the Dice itself. Models trained that way
(e.g. PaddleOCR's ic15 MV3-DB) have extreme logits on missed text, so fine-tuning them
with BCE starts from a very high loss; fine-tune them with the loss they were trained with.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from sdet.config import LossConfig
from sdet.errors import UserError
from sdet.ops.losses import EPS, dice_loss
from sdet.ops.maps import match_size


def balanced_bce_with_logits(logit: Tensor, gt: Tensor, mask: Tensor, ratio: float = 3.0) -> Tensor:
    """All positives + the hardest min(#neg, ratio * #pos) negatives, normalised by their count."""
    positive = gt * mask
    negative = (1.0 - gt) * mask
    pos_count = int(positive.sum().item())
    neg_count = min(int(negative.sum().item()), int(pos_count * ratio))
    loss = F.binary_cross_entropy_with_logits(logit, gt, reduction="none")
    pos_loss = (loss * positive).sum()
    neg_loss = loss * negative
    if neg_count > 0:
        # unsorted: only the sum is needed, and sorting ~10^5-10^6 values was most of the loss's time
        neg_loss = torch.topk(neg_loss.reshape(-1), neg_count, sorted=False).values.sum()
    else:
        neg_loss = neg_loss.sum() * 0.0
    return (pos_loss + neg_loss) / (pos_count + neg_count + EPS)


def masked_l1(pred: Tensor, gt: Tensor, mask: Tensor) -> Tensor:
    denom = mask.sum()
    if denom.item() == 0:
        return (pred * 0).sum()
    return ((pred - gt).abs() * mask).sum() / denom


class DBLoss:
    def __init__(self, cfg: LossConfig):
        if cfg.prob_loss not in ("bce", "dice"):
            raise UserError(f"loss.prob_loss must be 'bce' or 'dice', got '{cfg.prob_loss}'", "<config>")
        self.cfg = cfg

    @staticmethod
    def text_target(batch: Dict[str, Tensor]) -> Tuple[Tensor, Tensor]:
        """The GT text map a text logit is trained on, and where it counts: (N, H, W) each."""
        return batch["shrink_map"], batch["shrink_mask"]

    def text_loss(self, logit: Tensor, batch: Dict[str, Tensor]) -> Tensor:
        """Shrink-map loss of a text logit (any resolution): OHEM BCE, or Dice (PaddleOCR form)."""
        gt, mask = self.text_target(batch)
        logit = match_size(logit, gt)
        if self.cfg.prob_loss == "dice":
            return dice_loss(torch.sigmoid(logit), gt, mask)
        return balanced_bce_with_logits(logit, gt, mask, self.cfg.ohem_ratio)

    def __call__(self, logits: Dict[str, Tensor], batch: Dict[str, Tensor]) -> Dict[str, Tensor]:
        gt, mask = batch["shrink_map"], batch["shrink_mask"]
        terms = {f"prob_{self.cfg.prob_loss}": self.cfg.bce_weight * self.text_loss(logits["prob"], batch)}
        binary = torch.sigmoid(match_size(logits["binary"], gt))
        terms["binary_dice"] = self.cfg.dice_weight * dice_loss(binary, gt, mask)
        thresh = torch.sigmoid(match_size(logits["thresh"], gt))
        terms["thresh_l1"] = self.cfg.l1_weight * masked_l1(thresh, batch["threshold_map"], batch["threshold_mask"])
        return terms
