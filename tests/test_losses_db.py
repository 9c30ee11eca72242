import torch

from sdet.config import LossConfig
from sdet.detectors.db.loss import DBLoss, balanced_bce_with_logits, masked_l1
from sdet.ops.losses import dice_loss


def test_ohem_keeps_all_positives_and_three_times_hardest_negatives():
    gt = torch.zeros(1, 1, 10)
    gt[..., :2] = 1
    mask = torch.ones_like(gt)
    logit = torch.zeros_like(gt)
    logit[..., 2:] = torch.linspace(-5, 5, 8)  # negatives, hardest = largest logit
    loss = balanced_bce_with_logits(logit, gt, mask, ratio=3.0)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logit, gt, reduction="none")
    expected = (bce[..., :2].sum() + bce[..., 2:].flatten().topk(6).values.sum()) / 8
    assert torch.allclose(loss, expected, atol=1e-6)


def test_ohem_ignores_masked_pixels_and_handles_no_positives():
    gt = torch.zeros(1, 4, 4)
    mask = torch.ones_like(gt)
    logit = torch.full_like(gt, 3.0)
    loss = balanced_bce_with_logits(logit, gt, mask)
    assert loss.item() == 0.0  # no positives -> no negatives sampled
    gt[0, 0, 0] = 1
    mask[0, 0, 0] = 0
    assert balanced_bce_with_logits(logit, gt, mask).item() == 0.0


def test_dice_and_l1():
    gt = torch.tensor([[1.0, 0.0, 1.0, 0.0]])
    mask = torch.ones_like(gt)
    assert dice_loss(gt, gt, mask).item() < 1e-5
    assert abs(dice_loss(1 - gt, gt, mask).item() - 1.0) < 1e-5
    pred = torch.tensor([[0.5, 0.5, 0.5, 0.5]])
    m = torch.tensor([[1.0, 1.0, 0.0, 0.0]])
    assert abs(masked_l1(pred, gt, m).item() - 0.5) < 1e-6
    assert masked_l1(pred, gt, torch.zeros_like(m)).item() == 0.0


def test_db_loss_weights_and_terms():
    torch.manual_seed(0)
    logits = {k: torch.randn(2, 1, 8, 8) for k in ("prob", "thresh", "binary")}
    batch = {
        "shrink_map": (torch.rand(2, 8, 8) > 0.7).float(),
        "shrink_mask": torch.ones(2, 8, 8),
        "threshold_map": torch.rand(2, 8, 8) * 0.4 + 0.3,
        "threshold_mask": (torch.rand(2, 8, 8) > 0.5).float(),
    }
    terms = DBLoss(LossConfig())(logits, batch)
    unit = DBLoss(LossConfig(bce_weight=1, l1_weight=1, dice_weight=1))(logits, batch)
    assert set(terms) == {"prob_bce", "binary_dice", "thresh_l1"}
    assert torch.allclose(terms["prob_bce"], 5 * unit["prob_bce"])
    assert torch.allclose(terms["thresh_l1"], 10 * unit["thresh_l1"])
    assert torch.allclose(terms["binary_dice"], unit["binary_dice"])


def _paddle_balance_loss_with_dice(prob, gt, mask, ratio=3.0, eps=1e-6):
    """PaddleOCR's BalanceLoss(main_loss_type='DiceLoss'), step by step as its code does it."""
    positive, negative = gt * mask, (1 - gt) * mask
    pos_count = int(positive.sum())
    neg_count = int(min(negative.sum(), pos_count * ratio))
    inter = (prob * gt * mask).sum()
    dice = 1 - 2.0 * inter / ((prob * mask).sum() + (gt * mask).sum() + eps)
    neg_loss = (negative * dice).reshape(-1).sort(descending=True).values[:neg_count]
    return ((positive * dice).sum() + neg_loss.sum()) / (pos_count + neg_count + eps)


def test_dice_prob_loss_is_what_paddleocr_balance_loss_computes():
    from sdet.config import LossConfig
    from sdet.detectors.db.loss import DBLoss

    g = torch.Generator().manual_seed(3)
    logit = torch.randn(2, 1, 32, 32, generator=g) * 3
    gt = (torch.rand(2, 32, 32, generator=g) > 0.7).float()
    mask = (torch.rand(2, 32, 32, generator=g) > 0.1).float()
    batch = {"shrink_map": gt, "shrink_mask": mask}
    ours = DBLoss(LossConfig(prob_loss="dice")).text_loss(logit, batch)
    paddle = _paddle_balance_loss_with_dice(torch.sigmoid(logit[:, 0]), gt, mask)
    assert torch.allclose(ours, paddle, atol=1e-5)
    bce = DBLoss(LossConfig(prob_loss="bce")).text_loss(logit, batch)
    assert not torch.allclose(ours, bce, atol=1e-2)  # the switch really changes the loss
