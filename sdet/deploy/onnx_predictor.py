"""Run an exported .onnx model with ONNX Runtime through sdet's own pre- and post-processing.

`sdet export` stores the config (`sdet_config`) and the text output's name (`sdet_text_key`)
in the model's metadata, so the file alone rebuilds the test resize, normalisation and the
model type's post-processing (DB boxes, or EAST's score + geometry decoding and LA-NMS).
Outputs go through :func:`sdet.deploy.predictor.logits_to_prediction`, the very code the
PyTorch path uses, so the two deployments differ only by the graph's numerics.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List, Sequence, Tuple, Union

import numpy as np
import torch

from sdet.config import Config, _merge, build_dataclass, parse_overrides
from sdet.data.datasets import prepare_test_image
from sdet.deploy.predictor import Prediction, batch_to_predictions
from sdet.errors import UserError


class OnnxPredictor:
    """Same call interface as :class:`~sdet.deploy.predictor.Predictor`; `overrides` adjust post/input keys."""

    def __init__(self, path: Union[str, Path], overrides: Sequence[str] = (), threads: int = 0):
        try:
            import onnxruntime as ort
        except ImportError:
            raise UserError("running an .onnx model needs onnxruntime: pip install onnxruntime", path) from None
        if not Path(path).is_file():
            raise UserError("model not found", path)
        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # not an ONNX file, or an unsupported one
            raise UserError(f"cannot load ONNX model ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})", path) from None
        meta = self.session.get_modelmeta().custom_metadata_map
        if "sdet_config" not in meta or "sdet_text_key" not in meta:
            raise UserError("not an sdet export (no sdet_config/sdet_text_key metadata)", path)
        try:
            values = json.loads(meta["sdet_config"])
        except json.JSONDecodeError as exc:
            raise UserError(f"the sdet_config metadata is not valid JSON ({exc.msg} at character {exc.pos})", path) from None
        if not isinstance(values, dict):
            raise UserError("the sdet_config metadata is not a JSON object", path)
        if overrides:
            values = _merge(values, parse_overrides(overrides))
        self.cfg: Config = build_dataclass(Config, values, source=str(path))
        self.text_key = meta["sdet_text_key"]
        self.output_names = [o.name for o in self.session.get_outputs()]

    def logits(self, tensor: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The graph's outputs by name for a (N, 3, H, W) float32 input."""
        got = self.session.run(None, {"image": np.ascontiguousarray(tensor.numpy(), dtype=np.float32)})
        return {name: torch.from_numpy(value) for name, value in zip(self.output_names, got)}

    def from_tensor(self, tensor: torch.Tensor, dest_hw: Tuple[int, int], with_entropy: bool = False) -> Prediction:
        return self.batch(tensor, [dest_hw], with_entropy)[0]

    def batch(self, tensor: torch.Tensor, dest_hws: Sequence[Tuple[int, int]], with_entropy: bool = False) -> List[Prediction]:
        """(N, 3, H, W) test-resized images -> N predictions, each in its own original size."""
        input_hw = (int(tensor.shape[-2]), int(tensor.shape[-1]))
        return batch_to_predictions(self.logits(tensor), self.text_key, self.cfg, input_hw, dest_hws, with_entropy)

    def __call__(self, image_bgr: np.ndarray, with_entropy: bool = False) -> Prediction:
        tensor = prepare_test_image(image_bgr, self.cfg.data.input)[None]
        return self.from_tensor(tensor, image_bgr.shape[:2], with_entropy)
