"""`sdet export CKPT --onnx model.onnx`: the aux-free inference graph, checked against PyTorch.

The graph is the detector alone (an inference checkpoint holds no training-only modules),
with dynamic batch/height/width; outputs are the detector's eval-mode logits by name (DB:
`prob`; EAST: `score`, `geo`). The sdet config travels in the model's metadata
(`sdet_config`), so pre- and post-processing can be rebuilt from the .onnx file alone.
After writing, ONNX Runtime (when installed) runs the graph on a random input at the
configured test size and the largest absolute difference to PyTorch is reported; each
output must agree to `tolerance` times its own range (at least 1), so that EAST's geometry,
in input pixels, is held to the same relative precision as the logits.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from sdet.checkpoint import load_detector
from sdet.config import config_to_dict
from sdet.errors import UserError


class _LogitsAsTuple(nn.Module):
    """ONNX wants positional outputs: the detector's logits dict, in a fixed key order."""

    def __init__(self, detector: nn.Module, keys: List[str]):
        super().__init__()
        self.detector = detector
        self.keys = keys

    def forward(self, image: Tensor) -> Tuple[Tensor, ...]:
        logits = self.detector(image).logits
        return tuple(logits[k] for k in self.keys)


@dataclass
class ExportReport:
    path: Path
    outputs: List[str]
    input_hw: Tuple[int, int]
    max_abs_diff: Optional[float]  # None when onnxruntime is not installed

    def summary(self) -> str:
        check = "onnxruntime not installed: not checked" if self.max_abs_diff is None else (
            f"onnxruntime vs PyTorch at {self.input_hw[1]}x{self.input_hw[0]}: max |diff| {self.max_abs_diff:.2e}")
        return f"wrote {self.path} (outputs {', '.join(self.outputs)}; dynamic batch/height/width); {check}"


def _check_size(test_size: int) -> Tuple[int, int]:
    side = max(32, (int(test_size) + 31) // 32 * 32)
    return side, side


def export_onnx(checkpoint: str, out_path: str, opset: int = 17, tolerance: float = 1e-3) -> ExportReport:
    try:
        import onnx  # noqa: F401  (needed to attach the metadata)
    except ImportError:
        raise UserError("ONNX export needs the onnx package: pip install 'sdet[onnx]'", checkpoint) from None
    detector, cfg, _ = load_detector(checkpoint)
    height, width = _check_size(cfg.data.input.test_size)
    example = torch.randn(1, 3, height, width, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        reference = detector(example).logits
    keys = sorted(reference)
    wrapper = _LogitsAsTuple(detector, keys).eval()
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    dynamic = {"image": {0: "batch", 2: "height", 3: "width"}}
    dynamic.update({k: {0: "batch", 2: "out_height", 3: "out_width"} for k in keys})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(wrapper, (example,), str(out), input_names=["image"], output_names=keys,
                          dynamic_axes=dynamic, opset_version=opset, dynamo=False)
    _attach_metadata(out, {"sdet_config": json.dumps(config_to_dict(cfg)), "sdet_text_key": detector.text_key})
    diffs = _diffs_onnxruntime(out, example, [reference[k] for k in keys])
    if diffs is not None:
        for key, diff in zip(keys, diffs):
            # relative to the output's range: EAST geometry is in input pixels (up to the geo scale)
            limit = tolerance * max(1.0, float(reference[key].abs().max()))
            if diff > limit:
                raise UserError(f"exported graph disagrees with PyTorch on '{key}' (max |diff| {diff:.3g} > {limit:.3g})", out)
    return ExportReport(out, keys, (height, width), max(diffs) if diffs is not None else None)


def _attach_metadata(path: Path, items: dict) -> None:
    import onnx

    model = onnx.load(str(path))
    for key, value in items.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def _diffs_onnxruntime(path: Path, example: Tensor, expected: List[Tensor]) -> Optional[List[float]]:
    """Largest absolute difference per output; None when onnxruntime is not installed."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"image": example.numpy()})
    return [float((torch.from_numpy(g) - e).abs().max()) for g, e in zip(got, expected)]
