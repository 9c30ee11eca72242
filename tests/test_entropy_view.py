"""Entropy as a product feature: `sdet viz entropy` panels and per-detection entropy in predict."""
import json

import cv2
import numpy as np

from sdet.cli import main
from sdet.config import load_config
from sdet.engine.trainer import Trainer

from conftest import tiny_overrides


def _train_sdet(synth_root, out):
    cfg = load_config(None, tiny_overrides(synth_root, out, steps=2) + ["method.name=sdet"])
    Trainer(cfg, progress=False).run()
    return out


def test_viz_entropy_shows_aux_head_only_for_training_checkpoints(synth_root, tmp_path, capsys):
    run = _train_sdet(synth_root, tmp_path / "run")
    image = sorted((synth_root / "test" / "images").iterdir())[0]
    height, width = cv2.imread(str(image)).shape[:2]

    assert main(["viz", "entropy", str(run / "last.pt"), str(image), "--out", str(tmp_path / "train.png")]) == 0
    assert "aux head mean" in capsys.readouterr().out
    assert cv2.imread(str(tmp_path / "train.png")).shape[:2] == (height, 3 * width)

    assert main(["viz", "entropy", str(run / "best.pt"), str(image), "--out", str(tmp_path / "infer.png")]) == 0
    assert "no auxiliary head" in capsys.readouterr().out
    assert cv2.imread(str(tmp_path / "infer.png")).shape[:2] == (height, 2 * width)


def test_viz_entropy_on_a_teacher_method_checkpoint_shows_the_main_head(synth_root, tmp_path, capsys):
    """A FitNets training checkpoint has method state (its regressor) but no aux head, and no teacher at viz time."""
    teacher = tmp_path / "teacher"
    Trainer(load_config(None, tiny_overrides(synth_root, teacher, steps=1)), progress=False).run()
    run = tmp_path / "st"
    overrides = tiny_overrides(synth_root, run, steps=1) + ["method.name=fitnets", f"method.teacher={teacher / 'best.pt'}"]
    Trainer(load_config(None, overrides), progress=False).run()
    image = sorted((synth_root / "test" / "images").iterdir())[0]
    assert main(["viz", "entropy", str(run / "last.pt"), str(image), "--out", str(tmp_path / "st.png")]) == 0
    assert "no auxiliary head" in capsys.readouterr().out


def test_entropy_maps_are_bits_and_the_aux_map_is_its_own(synth_root, tmp_path):
    from sdet.deploy.entropy_view import entropy_maps

    run = _train_sdet(synth_root, tmp_path / "run")
    image = cv2.imread(str(sorted((synth_root / "test" / "images").iterdir())[0]))
    maps = entropy_maps(str(run / "last.pt"), image)
    assert maps.aux is not None and maps.aux.shape == maps.main.shape
    for m in (maps.main, maps.aux):
        assert np.isfinite(m).all() and m.min() >= 0.0 and m.max() <= 1.0 + 1e-6
    assert not np.allclose(maps.main, maps.aux)


def test_predict_entropy_json_has_per_detection_uncertainty(synth_root, tmp_path):
    run = _train_sdet(synth_root, tmp_path / "run")
    out = tmp_path / "pred"
    args = ["predict", str(run / "best.pt"), str(synth_root / "test" / "images"), "--out", str(out), "--entropy",
            "post.box_thresh=0.0", "post.thresh=0.0", "post.min_size=0"]
    assert main(args) == 0
    detections = [d for p in sorted(out.glob("*.json")) for d in json.loads(p.read_text())["detections"]]
    assert detections, "a 0 threshold must give at least one region"
    assert all(0.0 <= d["entropy"] <= 1.0 for d in detections)
    assert len(list(out.glob("*_entropy.png"))) == len(list(out.glob("*.json")))
