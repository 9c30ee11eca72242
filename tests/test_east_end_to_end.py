"""EAST through every command a DB model goes through: train, eval, predict, export, ONNX predict.

The exported graph must carry both outputs EAST's post-processing needs (score and
geometry), agree with PyTorch numerically, and give the same detections when its outputs
go through the same post-processing (`sdet predict model.onnx`).
"""
import json

import numpy as np
import pytest
import torch

from sdet.checkpoint import load_detector
from sdet.cli import main
from sdet.data.datasets import prepare_test_image
from sdet.data.formats import load_samples
from sdet.data.images import read_image

from conftest import tiny_overrides

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _safe_score_thresh(detector, cfg, onnx_path, images) -> float:
    """A score threshold that PyTorch's and ONNX Runtime's score maps put every pixel on the
    same side of, as far from any pixel's value as possible: the model is barely trained,
    so its scores crowd together and float noise could otherwise move a pixel across."""
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    a, b = [], []
    for image in images:
        x = prepare_test_image(image, cfg.data.input)[None]
        with torch.no_grad():
            a.append(torch.sigmoid(detector(x).logits["score"]).numpy().ravel())
        logit = session.run(None, {"image": x.numpy()})[names.index("score")]
        b.append(torch.sigmoid(torch.from_numpy(logit)).numpy().ravel())
    a, b = np.concatenate(a).astype(np.float64), np.concatenate(b).astype(np.float64)
    values = np.unique(np.concatenate([a, b]))
    lo, hi = np.searchsorted(values, np.quantile(a, [0.6, 0.99]))
    mids = (values[lo:hi] + values[lo + 1:hi + 1]) / 2
    same_side = ((a[:, None] > mids) == (b[:, None] > mids)).all(axis=0)
    margin = np.diff(values[lo:hi + 1]) / 2
    assert same_side.any()
    best = int(np.argmax(np.where(same_side, margin, -1.0)))
    return float(mids[best])


@pytest.mark.parametrize("geometry,method", [("rbox", "sdet"), ("quad", "baseline")])
def test_east_train_eval_predict_export_onnx_predict(synth_root, tmp_path, capsys, geometry, method):
    run = tmp_path / "run"
    overrides = tiny_overrides(synth_root, run, steps=3) + [
        "model.type=east", f"model.head.east_geometry={geometry}", f"data.east_geometry={geometry}",
        "data.min_text_size=4", f"method.name={method}",
    ]
    if method == "sdet":  # the paper's EAST setting: type B at P3
        overrides += ["method.options.aux_type=B", "method.options.level=P3"]
    cfg_file = tmp_path / "east.yaml"
    cfg_file.write_text("model: {type: east}\n")
    assert main(["train", str(cfg_file), *overrides, "--no-progress"]) == 0
    assert _last_json(capsys)["step"] == 3
    best = run / "best.pt"

    assert main(["eval", str(best), "--data", f"folder:{synth_root}", "--split", "test", "--json"]) == 0
    result = _last_json(capsys)
    assert result["num_gt"] > 0 and {"precision", "recall", "hmean", "num_det"} <= set(result)

    path = tmp_path / "model.onnx"
    assert main(["export", str(best), "--onnx", str(path)]) == 0
    assert "max |diff|" in capsys.readouterr().out
    model = onnx.load(str(path))
    assert sorted(o.name for o in model.graph.output) == ["geo", "score"]
    assert not any("aux" in init.name for init in model.graph.initializer)
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["sdet_text_key"] == "score" and json.loads(meta["sdet_config"])["model"]["type"] == "east"

    # Raw outputs: another batch size and aspect ratio than the export example.
    detector, cfg, _ = load_detector(best)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(2, 3, 96, 160)
    got = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"image": x.numpy()})))
    with torch.no_grad():
        want = detector(x).logits
    assert got["geo"].shape == (2, 5 if geometry == "rbox" else 8, 24, 40)
    np.testing.assert_allclose(got["score"], want["score"].numpy(), atol=1e-4)
    np.testing.assert_allclose(got["geo"], want["geo"].numpy(), atol=1e-4 * cfg.model.head.east_geo_scale)

    # Detections: `sdet predict` on the checkpoint and on the .onnx, same post-processing settings.
    images = sorted((synth_root / "test" / "images").iterdir())
    thresh = _safe_score_thresh(detector, cfg, path, [read_image(p) for p in images])
    post = [f"post.east_score_thresh={thresh}", "post.east_box_thresh=0.0"]
    outs = {}
    for name, model_path in (("torch", best), ("onnx", path)):
        outs[name] = tmp_path / f"pred_{name}"
        assert main(["predict", str(model_path), str(synth_root / "test" / "images"), "--out", str(outs[name]),
                     "--entropy", *post]) == 0
        assert len(list(outs[name].glob("*_overlay.png"))) == len(images)
        assert len(list(outs[name].glob("*_entropy.png"))) == len(images)
    total = 0
    for image in images:
        a = json.loads((outs["torch"] / f"{image.name}.json").read_text())["detections"]
        b = json.loads((outs["onnx"] / f"{image.name}.json").read_text())["detections"]
        assert len(a) == len(b)
        total += len(a)
        for da, db in zip(a, b):
            np.testing.assert_allclose(da["polygon"], db["polygon"], atol=0.05)
            assert da["score"] == pytest.approx(db["score"], abs=1e-4)
            assert da["entropy"] == pytest.approx(db["entropy"], abs=1e-4)
    assert total > 0  # the comparison compared something


def test_onnx_predictor_matches_predictor_in_memory(synth_root, tmp_path):
    """The library path: OnnxPredictor and Predictor give the same detections for one image."""
    from sdet.config import load_config
    from sdet.deploy.onnx_export import export_onnx
    from sdet.deploy.onnx_predictor import OnnxPredictor
    from sdet.deploy.predictor import Predictor
    from sdet.engine.trainer import Trainer

    run = tmp_path / "run"
    Trainer(load_config(None, tiny_overrides(synth_root, run, steps=1) + ["model.type=east", "data.min_text_size=4"]),
            progress=False).run()
    report = export_onnx(str(run / "best.pt"), str(tmp_path / "m.onnx"))
    assert report.outputs == ["geo", "score"]
    detector, cfg, _ = load_detector(run / "best.pt")
    image = read_image(load_samples("folder", synth_root, "test")[0].image_path)
    thresh = _safe_score_thresh(detector, cfg, tmp_path / "m.onnx", [image])
    cfg.post.east_score_thresh, cfg.post.east_box_thresh = thresh, 0.0
    want = Predictor(detector, cfg)(image)
    got = OnnxPredictor(tmp_path / "m.onnx", [f"post.east_score_thresh={thresh}", "post.east_box_thresh=0.0"])(image)
    assert len(want.detections) == len(got.detections) > 0
    for a, b in zip(want.detections, got.detections):
        np.testing.assert_allclose(a.polygon, b.polygon, atol=0.05)
    np.testing.assert_allclose(want.text_map, got.text_map, atol=1e-5)
