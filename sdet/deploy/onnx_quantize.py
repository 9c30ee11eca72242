"""`sdet export --int8 --calib DATA`: static int8 quantisation of an exported graph with ONNX Runtime.

QDQ format (QuantizeLinear/DequantizeLinear pairs around each quantised op, the form ORT's CPU
kernels fuse into integer convolutions), int8 weights per output channel, uint8 activations
calibrated on real images. Calibration images go through the model's own test-time pre-processing,
read in the raw pixel frame as the benchmarks' images are, so the activation ranges are those
inference will see. The text-map output is left in float: the head's last layer decides which
pixels pass the binarisation threshold, and the per-tensor scale of a sigmoid input is coarse
exactly where the threshold lies. The sdet metadata is copied, so `sdet predict model.int8.onnx`
and the API treat the result like any export.
"""
from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence

import numpy as np

from sdet.errors import UserError


@dataclass
class QuantizeReport:
    path: Path
    calibration_images: int
    float_nodes: List[str]  # nodes left in float

    def summary(self) -> str:
        kept = ", ".join(self.float_nodes) or "none"
        return (f"wrote {self.path} (int8 QDQ, per-channel weights, calibrated on {self.calibration_images} images; "
                f"kept in float: {kept})")


def sdet_metadata(model) -> dict:
    """The `sdet_*` metadata of an onnx ModelProto; refuses a graph that is not an sdet export."""
    meta = {p.key: p.value for p in model.metadata_props}
    if "sdet_config" not in meta or "sdet_text_key" not in meta:
        raise UserError("not an sdet export (no sdet_config/sdet_text_key metadata)")
    return {k: v for k, v in meta.items() if k.startswith("sdet_")}


class _ImageReader:
    """onnxruntime's CalibrationDataReader protocol: one pre-processed image per get_next()."""

    def __init__(self, paths: Sequence[Path], cfg):
        self.paths = list(paths)
        self.cfg = cfg
        self._iter: Optional[Iterator[dict]] = None

    def _inputs(self) -> Iterator[dict]:
        from sdet.data.datasets import prepare_test_image
        from sdet.data.images import read_image

        for path in self.paths:
            tensor = prepare_test_image(read_image(path), self.cfg.data.input)
            yield {"image": np.ascontiguousarray(tensor.numpy()[None], dtype=np.float32)}

    def get_next(self) -> Optional[dict]:
        if self._iter is None:
            self._iter = self._inputs()
        return next(self._iter, None)

    def rewind(self) -> None:
        self._iter = None


def calibration_images(spec: str, count: int, split: str = "train", seed: int = 0) -> List[Path]:
    """`count` images of a dataset split (``NAME:ROOT``) drawn without replacement by `seed`, or the
    images of a folder: training images, never the test split the int8 model is scored on."""
    from sdet.data.formats import load_samples, parse_data_spec
    from sdet.deploy.predict_files import collect_images

    if count < 1:
        raise UserError(f"--calib-count must be >= 1, got {count}", "<command line>")
    if Path(spec).is_dir():
        paths = collect_images([spec])
    else:
        name, root = parse_data_spec(spec)
        paths = [s.image_path for s in load_samples(name, root, split)]
    if not paths:
        raise UserError("no calibration images found", spec)
    order = np.random.default_rng(seed).permutation(len(paths))[: min(count, len(paths))]
    return [Path(paths[i]) for i in sorted(order)]


def _last_nodes(model, output_names: Sequence[str]) -> List[str]:
    """The nodes that produce the graph's outputs, and the producers of their inputs (the head's final layer)."""
    producers = {out: node for node in model.graph.node for out in node.output}
    kept: List[str] = []
    for name in output_names:
        node = producers.get(name)
        while node is not None and node.op_type in ("Sigmoid", "Identity", "Mul", "Add", "Concat"):
            kept.append(node.name)
            node = producers.get(node.input[0])
        if node is not None:
            kept.append(node.name)
    return kept


def quantize_int8(float_model: Path, out_path: Path, calib_images: Sequence[Path]) -> QuantizeReport:
    """Quantise `float_model` (an `sdet export`) statically with `calib_images`; returns what was written."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from sdet.config import Config, build_dataclass

    if not calib_images:
        raise UserError("int8 export needs calibration images (--calib DATA): none found")
    model = onnx.load(str(float_model))
    try:
        meta = sdet_metadata(model)
    except UserError as exc:
        raise UserError(exc.message, float_model) from None
    cfg = build_dataclass(Config, json.loads(meta["sdet_config"]), source=str(float_model))
    keep_float = _last_nodes(model, [o.name for o in model.graph.output])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = Path(tmp) / "prepared.onnx"
        quant_pre_process(str(float_model), str(prepared), skip_symbolic_shape=True)
        quantize_static(
            str(prepared), str(out_path), _ImageReader(calib_images, cfg),
            quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            per_channel=True, calibrate_method=CalibrationMethod.MinMax, nodes_to_exclude=keep_float,
        )
    quantized = onnx.load(str(out_path))
    del quantized.metadata_props[:]
    for key, value in {**meta, "sdet_quantization": "int8-qdq"}.items():
        entry = quantized.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(quantized, str(out_path))
    return QuantizeReport(out_path, len(calib_images), keep_float)
