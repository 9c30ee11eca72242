"""ONNX export: the aux-free graph, numerically equal to PyTorch at any input size."""
import json

import numpy as np
import pytest
import torch

from sdet.checkpoint import load_detector
from sdet.cli import main
from sdet.config import load_config
from sdet.engine.trainer import Trainer

from conftest import tiny_overrides

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def test_sdet_model_exports_without_aux_head_and_matches_torch(synth_root, tmp_path, capsys):
    run = tmp_path / "run"
    Trainer(load_config(None, tiny_overrides(synth_root, run, steps=2) + ["method.name=sdet"]), progress=False).run()
    path = tmp_path / "model.onnx"
    assert main(["export", str(run / "best.pt"), "--onnx", str(path)]) == 0
    assert "max |diff|" in capsys.readouterr().out

    model = onnx.load(str(path))
    assert [o.name for o in model.graph.output] == ["prob"]
    assert not any("aux" in init.name for init in model.graph.initializer)
    meta = {p.key: p.value for p in model.metadata_props}
    assert json.loads(meta["sdet_config"])["method"]["name"] == "sdet" and meta["sdet_text_key"] == "prob"

    detector, _, _ = load_detector(run / "best.pt")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 96, 160)  # another batch size and aspect ratio than the export example
    got = session.run(None, {"image": x.numpy()})[0]
    with torch.no_grad():
        want = detector(x).logits["prob"].numpy()
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-4)
