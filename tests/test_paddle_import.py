"""PaddleOCR checkpoint import: safe unpickling, config translation, one-to-one weight mapping.

The synthetic tests need no shared data: they export a randomly initialised sdet model under
Paddle's names (the inverse mapping below is written independently of the importer's) and
import it back. The real-checkpoint tests skip when /work/shared is absent.
"""
from __future__ import annotations

import os
import pickle
import re
from pathlib import Path
from typing import Dict

import numpy as np
import pytest
import torch
import yaml

from sdet.checkpoint import load_detector
from sdet.config import Config
from sdet.deploy.paddle_import import (
    PaddleMismatchError,
    config_from_paddle_yaml,
    import_paddle,
    load_pdparams,
)
from sdet.errors import UserError
from sdet.models.detector import build_detector
from helpers import SHARED

WEIGHTS = SHARED / "weights" / "ppocr-ic15-db-mv3-x0.5"
ICDAR2015 = SHARED / "data" / "icdar2015"
needs_weights = pytest.mark.skipif(
    not (WEIGHTS / "best_accuracy.pdparams").is_file(), reason=f"PaddleOCR checkpoint not found under {WEIGHTS}"
)
needs_icdar = pytest.mark.skipif(not ICDAR2015.is_dir(), reason=f"ICDAR2015 not found at {ICDAR2015}")

# Measured with the imported checkpoint on the first 20 ICDAR2015 test images: 0.7205.
HMEAN_20_MIN = 0.67


# ------------------------------------------------------------------ helpers


def paddle_yaml(model_name: str = "large", scale: float = 0.5, disable_se: bool = True, neck: int = 96, **extra) -> dict:
    """A minimal PaddleOCR det config, in PaddleOCR's own layout."""
    doc = {
        "Architecture": {
            "model_type": "det",
            "algorithm": "DB",
            "Transform": None,
            "Backbone": {"name": "MobileNetV3", "scale": scale, "model_name": model_name, "disable_se": disable_se},
            "Neck": {"name": "DBFPN", "out_channels": neck},
            "Head": {"name": "DBHead", "k": 50},
        },
        "PostProcess": {"name": "DBPostProcess", "thresh": 0.3, "box_thresh": 0.6, "max_candidates": 1000, "unclip_ratio": 1.5},
        "Eval": {
            "dataset": {
                "transforms": [
                    {"DecodeImage": {"img_mode": "BGR", "channel_first": False}},
                    {"DetLabelEncode": None},
                    {"DetResizeForTest": None},
                    {"NormalizeImage": {"scale": "1./255.", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225], "order": "hwc"}},
                    {"ToCHWImage": None},
                    {"KeepKeys": {"keep_keys": ["image", "shape", "polys", "ignore_tags"]}},
                ]
            }
        },
    }
    doc.update(extra)
    return doc


def write_yaml(path: Path, doc: dict) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


_HEAD_NAMES = {"0": "conv1", "1": "conv_bn1", "3": "conv2", "4": "conv_bn2", "6": "conv3"}


def to_paddle_name(key: str) -> str:
    """sdet key -> Paddle key (the inverse of the importer's mapping, written separately)."""
    key = re.sub(r"\.running_mean$", "._mean", key)
    key = re.sub(r"\.running_var$", "._variance", key)
    m = re.match(r"neck\.(lateral|smooth)\.(\d)\.weight$", key)
    if m:
        return f"neck.{'in' if m.group(1) == 'lateral' else 'p'}{int(m.group(2)) + 2}_conv.weight"
    m = re.match(r"head\.(prob|thresh)\.(\d)\.(.+)$", key)
    if m:
        return f"head.{'binarize' if m.group(1) == 'prob' else 'thresh'}.{_HEAD_NAMES[m.group(2)]}.{m.group(3)}"
    return key


def random_paddle_export(cfg: Config, seed: int = 0) -> tuple[torch.nn.Module, Dict[str, np.ndarray]]:
    """A randomly initialised detector (BN statistics too) and its weights under Paddle's names."""
    torch.manual_seed(seed)
    model = build_detector(cfg.model).eval()
    with torch.no_grad():  # non-trivial BN statistics, so a swapped mean/var would show
        for name, tensor in model.state_dict().items():
            if name.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif name.endswith("running_mean"):
                tensor.uniform_(-0.2, 0.2)
    arrays = {
        to_paddle_name(k): v.numpy().copy() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")
    }
    # Paddle adds this name table to every .pdparams; the importer must skip it.
    arrays_with_meta: Dict[str, object] = dict(arrays)
    arrays_with_meta["StructuredToParameterName@@"] = {k: f"param_{i}" for i, k in enumerate(arrays)}
    return model, arrays_with_meta  # type: ignore[return-value]


def dump(path: Path, obj: object) -> Path:
    with path.open("wb") as fh:
        pickle.dump(obj, fh, protocol=2)  # older paddle.save writes protocol 2
    return path


def forward(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(x).logits["prob"]


# ------------------------------------------------------------------ synthetic (no shared data)


@pytest.mark.parametrize(
    "model_name,scale,disable_se,neck", [("large", 0.5, True, 96), ("small", 0.35, False, 32), ("large", 1.0, False, 64)]
)
def test_synthetic_round_trip(tmp_path: Path, model_name: str, scale: float, disable_se: bool, neck: int) -> None:
    config = write_yaml(tmp_path / "config.yml", paddle_yaml(model_name, scale, disable_se, neck))
    cfg = config_from_paddle_yaml(config)
    model, arrays = random_paddle_export(cfg)
    pdparams = dump(tmp_path / "m.pdparams", arrays)

    report = import_paddle(pdparams, config, tmp_path / "model.pt", echo=None)
    assert report.num_arrays == len(arrays) - 1 == report.num_tensors

    imported, loaded_cfg, _ = load_detector(tmp_path / "model.pt")
    assert loaded_cfg == cfg
    x = torch.randn(1, 3, 96, 128)
    assert torch.equal(forward(imported, x), forward(model, x))


def test_config_translation(tmp_path: Path) -> None:
    cfg = config_from_paddle_yaml(write_yaml(tmp_path / "c.yml", paddle_yaml()))
    assert cfg.model.backbone.name == "paddle_mobilenet_v3_large"
    assert (cfg.model.backbone.width_mult, cfg.model.backbone.use_se, cfg.model.neck.inner_channels) == (0.5, False, 96)
    assert cfg.data.input.to_rgb is False
    assert (cfg.data.input.test_resize, cfg.data.input.test_size) == ("short_side", 736)
    assert (cfg.post.box_thresh, cfg.post.unclip_ratio) == (0.6, 1.5)

    doc = paddle_yaml()
    doc["Eval"]["dataset"]["transforms"][2] = {"DetResizeForTest": {"limit_side_len": 960, "limit_type": "max"}}
    doc["PostProcess"] = {"name": "DBPostProcess"}  # absent keys take PaddleOCR's defaults
    cfg = config_from_paddle_yaml(write_yaml(tmp_path / "c2.yml", doc))
    assert (cfg.data.input.test_resize, cfg.data.input.test_size) == ("long_side", 960)
    assert (cfg.post.box_thresh, cfg.post.unclip_ratio) == (0.7, 2.0)

    doc["Eval"]["dataset"]["transforms"][2] = {"DetResizeForTest": {"image_shape": [640, 640]}}
    cfg = config_from_paddle_yaml(write_yaml(tmp_path / "c3.yml", doc))
    assert (cfg.data.input.test_resize, cfg.data.input.test_size) == ("fixed", 640)


def test_loss_and_dilation_translation(tmp_path: Path) -> None:
    """PaddleOCR's BalanceLoss with DiceLoss trains the shrink map with Dice: the import says so."""
    assert config_from_paddle_yaml(write_yaml(tmp_path / "none.yml", paddle_yaml())).loss.prob_loss == "bce"
    doc = paddle_yaml(Loss={"name": "DBLoss", "balance_loss": True, "main_loss_type": "DiceLoss", "alpha": 4, "beta": 9})
    doc["PostProcess"]["use_dilation"] = True
    cfg = config_from_paddle_yaml(write_yaml(tmp_path / "dice.yml", doc))
    assert (cfg.loss.prob_loss, cfg.loss.bce_weight, cfg.loss.l1_weight, cfg.post.use_dilation) == ("dice", 4.0, 9.0, True)
    doc["Loss"]["main_loss_type"] = "BCELoss"
    assert config_from_paddle_yaml(write_yaml(tmp_path / "bce.yml", doc)).loss.prob_loss == "bce"
    doc["Loss"]["main_loss_type"] = "Euclidean"
    with pytest.raises(UserError, match="main_loss_type"):
        config_from_paddle_yaml(write_yaml(tmp_path / "bad.yml", doc))


@pytest.mark.parametrize(
    "section,key,value,named",
    [
        ("Backbone", "name", "ResNet_vd", "Architecture.Backbone.name"),
        ("Neck", "name", "RSEFPN", "Architecture.Neck.name"),
        ("Neck", "name", "LKPAN", "Architecture.Neck.name"),
        ("Neck", "use_asf", True, "Architecture.Neck.use_asf"),
        ("Head", "name", "PFHeadLocal", "Architecture.Head.name"),
        ("Backbone", "scale", 0.6, "Architecture.Backbone.scale"),
    ],
)
def test_unsupported_architecture_is_refused(tmp_path: Path, section: str, key: str, value: object, named: str) -> None:
    doc = paddle_yaml()
    doc["Architecture"][section][key] = value
    path = write_yaml(tmp_path / "c.yml", doc)
    with pytest.raises(UserError, match=re.escape(named)) as info:
        config_from_paddle_yaml(path)
    assert "supported" in str(info.value) and info.value.line is not None


def test_unsupported_algorithm_and_resize_are_refused(tmp_path: Path) -> None:
    doc = paddle_yaml()
    doc["Architecture"]["algorithm"] = "EAST"
    with pytest.raises(UserError, match="Architecture.algorithm"):
        config_from_paddle_yaml(write_yaml(tmp_path / "a.yml", doc))
    doc = paddle_yaml()
    doc["Eval"]["dataset"]["transforms"][2] = {"DetResizeForTest": {"resize_long": 960}}
    with pytest.raises(UserError, match="resize_long"):
        config_from_paddle_yaml(write_yaml(tmp_path / "b.yml", doc))


def test_unpickler_refuses_os_system(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = dump(tmp_path / "evil.pdparams", {"backbone.conv.conv.weight": Exploit()})
    with pytest.raises(UserError, match=r"refusing to unpickle \w+\.system") as info:
        load_pdparams(path)
    assert str(path) in str(info.value)
    assert not marker.exists()


def test_truncated_and_non_dict_files(tmp_path: Path) -> None:
    good = dump(tmp_path / "good.pdparams", {"a": np.ones((3, 3), np.float32)})
    truncated = tmp_path / "truncated.pdparams"
    truncated.write_bytes(good.read_bytes()[:40])
    with pytest.raises(UserError, match="cannot read pdparams"):
        load_pdparams(truncated)
    with pytest.raises(UserError, match="dict of arrays"):
        load_pdparams(dump(tmp_path / "list.pdparams", [np.ones(2)]))
    with pytest.raises(UserError, match="not found"):
        load_pdparams(tmp_path / "absent.pdparams")


@pytest.mark.parametrize("change", ["missing", "extra", "shape"])
def test_mismatch_names_the_array(tmp_path: Path, change: str) -> None:
    config = write_yaml(tmp_path / "config.yml", paddle_yaml("small", 0.35, True, 32))
    _, arrays = random_paddle_export(config_from_paddle_yaml(config))
    if change == "missing":
        del arrays["neck.p3_conv.weight"]
        expected = "neck.smooth.1.weight"
    elif change == "extra":
        arrays["neck.in6_conv.weight"] = np.zeros((32, 8, 1, 1), np.float32)
        expected = "neck.in6_conv.weight"
    else:
        arrays["head.binarize.conv3.bias"] = np.zeros(2, np.float32)
        expected = "head.binarize.conv3.bias"
    pdparams = dump(tmp_path / "m.pdparams", arrays)
    lines: list[str] = []
    with pytest.raises(PaddleMismatchError, match=re.escape(expected)) as info:
        import_paddle(pdparams, config, tmp_path / "model.pt", echo=lines.append)
    assert any(expected in line for line in lines) and any(expected in d for d in info.value.details)
    assert not (tmp_path / "model.pt").exists()


# ------------------------------------------------------------------ the real checkpoint


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("paddle") / "model.pt"
    report = import_paddle(WEIGHTS / "best_accuracy.pdparams", WEIGHTS / "config.yml", out, echo=None)
    return out, report


@needs_weights
def test_real_checkpoint_round_trip(imported) -> None:
    out, report = imported
    arrays = load_pdparams(WEIGHTS / "best_accuracy.pdparams")
    assert report.num_arrays == len(arrays) == 269 == report.num_tensors

    cfg = config_from_paddle_yaml(WEIGHTS / "config.yml")
    model = build_detector(cfg.model).eval()
    from sdet.deploy.paddle_import import paddle_to_sdet_name

    state = model.state_dict()
    for name, array in arrays.items():
        state[paddle_to_sdet_name(name)] = torch.from_numpy(array)
    model.load_state_dict(state)

    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert ckpt["config"]["data"]["input"]["to_rgb"] is False
    detector, loaded_cfg, _ = load_detector(out)
    assert loaded_cfg == cfg
    x = torch.randn(1, 3, 128, 160)
    assert torch.equal(forward(detector, x), forward(model, x))


@needs_weights
@needs_icdar
def test_real_checkpoint_hmean_on_20_images(imported) -> None:
    from sdet.data.formats import load_samples
    from sdet.engine.evaluator import evaluate

    detector, cfg, _ = load_detector(imported[0])
    cfg.data.num_workers = 0
    samples = load_samples("icdar2015", str(ICDAR2015), "test")[:20]
    result = evaluate(detector, samples, cfg)
    assert result.hmean > HMEAN_20_MIN, f"hmean {result.hmean:.4f} on 20 images (measured 0.7205)"
