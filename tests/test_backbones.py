"""Backbones: torchvision key/shape parity, golden numerics, pretrained loading, variants."""
from __future__ import annotations

import importlib
import json
import math
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from sdet.errors import UserError
from sdet.models.backbones import BACKBONES, build_backbone
from sdet.models.backbones.mobilenetv3 import SqueezeExcitation
from sdet.models.backbones.paddle_mobilenetv3 import SEModule, paddle_hardsigmoid, paddle_to_torch_key
from helpers import SHARED

TV_KEYS = SHARED / "docs" / "torchvision-keys"
PPOCR_PARAMS = SHARED / "weights" / "ppocr-ic15-db-mv3-x0.5" / "best_accuracy.pdparams"
TV_MODELS = ["mobilenet_v3_large", "mobilenet_v3_small", "resnet18", "resnet50"]
CLASSIFIER = ("classifier.", "fc.")


def _reference(name: str) -> list[list]:
    path = TV_KEYS / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"reference file absent: {path}")
    return json.loads(path.read_text())["keys"]


def _golden_state_dict(keys: list[list]) -> dict[str, torch.Tensor]:
    """The golden file's weight formula; i indexes every state_dict entry (ints included)."""
    state = {}
    for i, (key, shape, dtype) in enumerate(keys):
        if dtype != "float32" or key.startswith(CLASSIFIER):
            continue
        n = int(np.prod(shape)) if shape else 1
        base = np.sin(0.37 * np.arange(n, dtype=np.float64) + i)
        if key.endswith("running_var"):
            value = 1 + 0.5 * np.abs(base)
        elif key.endswith("running_mean"):
            value = 0.1 * base
        elif key.endswith(".weight") and len(shape) == 1:
            value = 1 + 0.1 * base
        elif key.endswith(".bias"):
            value = 0.05 * base
        else:
            value = base * math.sqrt(3 / (n / shape[0]))
        state[key] = torch.from_numpy(value.reshape(shape).astype(np.float32))
    return state


@pytest.mark.parametrize("name", TV_MODELS)
def test_state_dict_matches_torchvision(name: str) -> None:
    ref = {k: tuple(s) for k, s, _ in _reference(name) if not k.startswith(CLASSIFIER)}
    ours = {k: tuple(v.shape) for k, v in build_backbone(name).state_dict().items()}
    assert ours == ref


@pytest.mark.parametrize("name", TV_MODELS)
def test_golden_outputs(name: str) -> None:
    keys = _reference(name)
    golden_path = TV_KEYS / "golden_outputs.json"
    if not golden_path.is_file():
        pytest.skip(f"reference file absent: {golden_path}")
    golden = json.loads(golden_path.read_text())["models"][name]
    model = build_backbone(name).eval()
    model.load_state_dict(_golden_state_dict(keys), strict=False)  # num_batches_tracked left as is
    t = np.arange(3 * 224 * 224, dtype=np.float64)
    x = torch.from_numpy(np.sin(0.001 * t).reshape(1, 3, 224, 224).astype(np.float32))
    with torch.no_grad():
        outputs = model(x)
    assert len(outputs) == len(golden) == 4
    for out, (tap, ref) in zip(outputs, golden.items()):
        out = out.double()
        assert list(out.shape) == ref["shape"], tap
        assert float(out.sum()) == pytest.approx(ref["sum"], rel=1e-4), tap
        assert float(out.abs().mean()) == pytest.approx(ref["mean_abs"], rel=1e-4), tap
        assert out.flatten()[:5].tolist() == pytest.approx(ref["first5"], abs=1e-4), tap


@pytest.mark.parametrize("name, head", [("mobilenet_v3_small", "classifier.3.weight"), ("resnet18", "fc.weight")])
def test_pretrained_round_trip(tmp_path: Path, name: str, head: str) -> None:
    source = build_backbone(name)
    for p in source.parameters():
        torch.nn.init.normal_(p)
    state = dict(source.state_dict())
    state[head] = torch.zeros(10, 4)  # classifier keys are skipped, not an error
    path = tmp_path / "weights.pth"
    torch.save({"state_dict": state}, path)
    loaded = build_backbone(name, pretrained=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key


def test_pretrained_missing_file_is_user_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pth"
    with pytest.raises(UserError, match="pretrained weights not found") as info:
        build_backbone("resnet18", pretrained=str(missing))
    assert info.value.path == str(missing)


def test_pretrained_wrong_shape_and_keys_are_named(tmp_path: Path) -> None:
    state = dict(build_backbone("mobilenet_v3_small").state_dict())
    state["features.0.0.weight"] = torch.zeros(8, 3, 3, 3)
    state["features.99.weight"] = torch.zeros(1)
    del state["features.12.1.bias"]
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(UserError) as info:
        build_backbone("mobilenet_v3_small", pretrained=str(path))
    message = str(info.value)
    assert "features.0.0.weight" in message and "shape" in message
    assert "features.99.weight" in message and "features.12.1.bias" in message


def test_pretrained_tolerates_missing_num_batches_tracked(tmp_path: Path) -> None:
    # torchvision's older ResNet files have no num_batches_tracked buffers.
    state = {k: v for k, v in build_backbone("resnet18").state_dict().items() if "num_batches" not in k}
    path = tmp_path / "old.pth"
    torch.save(state, path)
    build_backbone("resnet18", pretrained=str(path))


def _check_pyramid(model: torch.nn.Module, size: int = 64) -> list[torch.Tensor]:
    with torch.no_grad():
        outputs = model.eval()(torch.zeros(1, 3, size, size))
    assert len(outputs) == len(model.out_channels) == 4
    assert [o.shape[1] for o in outputs] == model.out_channels
    assert [size // o.shape[-1] for o in outputs] == [4, 8, 16, 32]
    return outputs


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small"])
@pytest.mark.parametrize("width", [0.35, 0.5, 0.75])
@pytest.mark.parametrize("use_se", [True, False])
def test_mobilenet_variants(name: str, width: float, use_se: bool) -> None:
    model = build_backbone(name, width_mult=width, use_se=use_se)
    _check_pyramid(model)
    has_se = any(isinstance(m, SqueezeExcitation) for m in model.modules())
    assert has_se == use_se


def test_mobilenet_large_half_width_channels() -> None:
    assert build_backbone("mobilenet_v3_large", width_mult=0.5).out_channels == [16, 24, 56, 480]
    assert build_backbone("mobilenet_v3_large").out_channels == [24, 40, 112, 960]
    assert build_backbone("mobilenet_v3_small").out_channels == [16, 24, 48, 576]


@pytest.mark.parametrize("name, channels", [("resnet18", [64, 128, 256, 512]), ("resnet50", [256, 512, 1024, 2048])])
def test_resnet_pyramid(name: str, channels: list[int]) -> None:
    model = build_backbone(name)
    assert model.out_channels == channels
    _check_pyramid(model)


def test_paddle_large_half_no_se() -> None:
    model = build_backbone("paddle_mobilenet_v3", model_name="large", scale=0.5, disable_se=True)
    assert model.out_channels == [16, 24, 56, 480]
    _check_pyramid(model)
    assert not any(isinstance(m, SEModule) for m in model.modules())
    assert "stage0.0.expand_conv.conv.weight" in model.state_dict()


@pytest.mark.parametrize("model_name", ["large", "small"])
@pytest.mark.parametrize("scale", [0.35, 1.25])
def test_paddle_variants(model_name: str, scale: float) -> None:
    model = build_backbone("paddle_mobilenet_v3", model_name=model_name, scale=scale)
    _check_pyramid(model)
    assert any(isinstance(m, SEModule) for m in model.modules())


def test_paddle_hardsigmoid_is_paddles() -> None:
    x = torch.linspace(-6, 6, 241)
    assert torch.allclose(paddle_hardsigmoid(x), torch.clamp(0.2 * x + 0.5, 0, 1))
    assert not torch.allclose(paddle_hardsigmoid(x), torch.nn.functional.hardsigmoid(x))
    se = SEModule(8)
    feats = torch.randn(2, 8, 4, 4)
    gate = se.conv2(torch.relu(se.conv1(feats.mean((2, 3), keepdim=True))))
    assert torch.allclose(se(feats), feats * torch.clamp(0.2 * gate + 0.5, 0, 1))


class _NumpyOnly(pickle.Unpickler):
    """Reads a .pdparams pickle allowing only numpy array reconstruction."""

    def find_class(self, module: str, name: str):
        if module.split(".")[0] == "numpy" and name in ("_reconstruct", "ndarray", "dtype"):
            return getattr(importlib.import_module(module.replace("numpy.core", "numpy._core")), name)
        raise pickle.UnpicklingError(f"refused {module}.{name}")


def test_paddle_names_map_onto_ppocr_checkpoint() -> None:
    if not PPOCR_PARAMS.is_file():
        pytest.skip(f"PaddleOCR weights absent: {PPOCR_PARAMS}")
    with PPOCR_PARAMS.open("rb") as f:
        params = _NumpyOnly(f).load()
    paddle = {
        paddle_to_torch_key(k[len("backbone."):]): tuple(v.shape) for k, v in params.items() if k.startswith("backbone.")
    }
    model = build_backbone("paddle_mobilenet_v3", model_name="large", scale=0.5, disable_se=True)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    assert ours == paddle


def test_build_backbone_unknown_name() -> None:
    with pytest.raises(ValueError) as info:
        build_backbone("vgg16")
    for name in BACKBONES:
        assert name in str(info.value)


def test_pretrained_unreadable_file_is_user_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.pth"
    path.write_text("not a checkpoint")
    with pytest.raises(UserError, match="cannot read pretrained weights"):
        build_backbone("resnet18", pretrained=str(path))
