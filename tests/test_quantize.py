"""int8 static quantisation of an sdet export: metadata kept, QDQ graph, outputs near the float graph."""
import json

import numpy as np
import pytest

from sdet.config import load_config
from sdet.engine.trainer import Trainer
from sdet.errors import UserError

from conftest import tiny_overrides

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def float_onnx(synth_root, tmp_path_factory):
    from sdet.deploy.onnx_export import export_onnx

    tmp = tmp_path_factory.mktemp("quant")
    Trainer(load_config(None, tiny_overrides(synth_root, tmp / "run", steps=2)), progress=False).run()
    export_onnx(str(tmp / "run" / "best.pt"), str(tmp / "model.onnx"))
    return tmp / "model.onnx"


def test_int8_graph_keeps_metadata_and_stays_near_the_float_graph(synth_root, float_onnx, tmp_path):
    from sdet.deploy.onnx_quantize import calibration_images, quantize_int8

    images = calibration_images(f"folder:{synth_root}", 4)
    assert len(images) == 4 and all("train" in str(p) for p in images)  # training images, never the test split
    report = quantize_int8(float_onnx, tmp_path / "m.int8.onnx", images)
    model = onnx.load(str(report.path))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["sdet_quantization"] == "int8-qdq" and json.loads(meta["sdet_config"])["model"]["type"] == "db"
    assert report.float_nodes and all(n in {x.name for x in model.graph.node} for n in report.float_nodes)

    x = np.random.default_rng(0).standard_normal((1, 3, 128, 128)).astype(np.float32)
    want = ort.InferenceSession(str(float_onnx), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    got = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    # uint8 activations: each quantised layer adds up to half a step (its range / 255) of error, so the
    # logits stay within a small fraction of their own spread over the image (measured: 0.5%)
    assert np.abs(got - want).mean() < 0.1 * want.std()
    assert np.corrcoef(got.ravel(), want.ravel())[0, 1] > 0.99


def test_int8_needs_an_sdet_export_and_calibration_images(synth_root, float_onnx, tmp_path):
    from sdet.deploy.onnx_quantize import calibration_images, quantize_int8

    with pytest.raises(UserError, match="calibration images"):
        quantize_int8(float_onnx, tmp_path / "a.onnx", [])
    with pytest.raises(UserError, match="calib-count"):
        calibration_images(f"folder:{synth_root}", 0)
    bare = onnx.load(str(float_onnx))
    del bare.metadata_props[:]
    onnx.save(bare, str(tmp_path / "bare.onnx"))
    with pytest.raises(UserError, match="not an sdet export"):
        quantize_int8(tmp_path / "bare.onnx", tmp_path / "b.onnx", calibration_images(f"folder:{synth_root}", 2))
