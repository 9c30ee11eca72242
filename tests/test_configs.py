"""Every shipped config loads, builds its detector and method, and says what it claims."""
from pathlib import Path

import pytest

from sdet.config import load_config
from sdet.losses import build_loss
from sdet.methods import MethodContext, build_method
from sdet.models.detector import build_detector

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").rglob("*.yaml"))


def test_configs_exist():
    assert len(CONFIGS) >= 4


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: str(p.relative_to(p.parents[2])))
def test_config_builds(path: Path):
    cfg = load_config(str(path))
    detector = build_detector(cfg.model)
    method = build_method(cfg.method, MethodContext(detector, build_loss(cfg), cfg.train.max_steps))
    assert cfg.train.out_dir.startswith("runs/")
    if "sdet" in path.stem:
        assert cfg.method.name == "sdet"
        # the training-only head never enters the detector's weights
        assert not any(k.startswith("aux") for k in detector.state_dict())
        assert len(list(method.parameters())) > 0
    if path.parent.name == "ablation":
        stem = path.stem
        assert f"type{cfg.method.options['aux_type']}" in stem
        assert cfg.method.options["level"] == (stem.rsplit("_", 1)[1] if "_P" in stem else "P3")


def test_sdet_config_keeps_baseline_schedule():
    root = Path(__file__).resolve().parents[1] / "configs" / "icdar2015"
    base, sdet = load_config(str(root / "mv3_db.yaml")), load_config(str(root / "mv3_db_sdet.yaml"))
    assert base.train.max_steps == sdet.train.max_steps and base.train.lr == sdet.train.lr
    assert base.data == sdet.data and base.model == sdet.model
