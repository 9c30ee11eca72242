"""Mixed precision: the detector may run in bf16/fp16, the loss terms never do; train.amp's values."""
import pytest
import torch

from sdet.config import load_config
from sdet.errors import UserError
from sdet.detectors import build_loss
from sdet.methods import MethodContext, build_method
from sdet.models.detector import build_detector

from conftest import tiny_overrides


@pytest.mark.parametrize("method", ["baseline", "sdet"])
def test_losses_run_in_float32_under_autocast(synth_root, tmp_path, method, monkeypatch):
    cfg = load_config(None, tiny_overrides(synth_root, tmp_path) + [f"method.name={method}"])
    detector = build_detector(cfg.model)
    loss = build_loss(cfg)
    seen = []
    original = type(loss).__call__
    monkeypatch.setattr(type(loss), "__call__", lambda self, logits, batch: seen.append(
        {k: v.dtype for k, v in logits.items()}) or original(self, logits, batch))
    m = build_method(cfg.method, MethodContext(detector, loss, 10))
    from sdet.data.datasets import TrainDataset, load_split

    dataset = TrainDataset(load_split(cfg.data, "train"), cfg.data, "db", 0)
    batch = torch.utils.data.default_collate([dataset[(0, 0)], dataset[(1, 1)]])
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert detector(batch["image"]).logits["prob"].dtype == torch.bfloat16  # the forward is mixed
        terms = m(batch, 0)
    assert seen and all(dt == torch.float32 for d in seen for dt in d.values())
    assert all(t.dtype == torch.float32 and torch.isfinite(t) for t in terms.values())


def test_amp_values_and_the_old_switch():
    assert load_config(None, ["train.amp=bf16"]).train.amp == "bf16"
    assert load_config(None, ["train.amp=true"]).train.amp == "fp16"  # configs and checkpoints of before
    assert load_config(None, ["train.amp=false"]).train.amp == "off"
    with pytest.raises(UserError, match="train.amp must be one of off, bf16, fp16"):
        load_config(None, ["train.amp=fp8"])
