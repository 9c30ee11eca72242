"""The CLI's promises: every --help renders, and user errors are one line on stderr with exit code 2."""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sdet.cli import build_parser, main
from sdet.config import load_config
from sdet.engine.trainer import Trainer

from conftest import tiny_overrides

REPO = Path(__file__).resolve().parents[1]


def _subparsers(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from _subparsers(sub)


def test_help_of_every_command_renders():
    parser = build_parser()
    assert "compare" in parser.format_help()
    names = []
    for name, sub in _subparsers(parser):
        assert sub.format_help(), name  # argparse %-formats help strings: a stray % raised here
        names.append(name)
    assert {"train", "eval", "predict", "export", "compare", "check"} <= set(names)


@pytest.fixture(scope="module")
def best(synth_root, tmp_path_factory):
    run = tmp_path_factory.mktemp("cli_run")
    Trainer(load_config(None, tiny_overrides(synth_root, run, steps=1)), progress=False).run()
    return run / "best.pt"


def _one_line_error(capsys, needle: str) -> None:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("sdet: error:") and needle in err[0], err


def test_eval_limit_and_device_are_checked(best, synth_root, capsys):
    with pytest.raises(SystemExit) as info:
        main(["eval", str(best), "--limit", "-1"])
    assert info.value.code == 2 and "must be >= 1" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["eval", str(best), "--data", f"folder:{synth_root}", "--split", "test", "--device", "cuda"]) == 2
        _one_line_error(capsys, "CUDA is not available")


def test_int8_export_needs_calibration_then_evaluates_like_any_export(best, synth_root, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    onnx_path = tmp_path / "m.onnx"
    assert main(["export", str(best), "--onnx", str(onnx_path), "--int8"]) == 2
    _one_line_error(capsys, "--int8 needs calibration images")
    assert main(["export", str(best), "--onnx", str(onnx_path), "--int8", "--calib", f"folder:{synth_root}",
                 "--calib-count", "3"]) == 0
    assert "calibrated on 3 images" in capsys.readouterr().out
    int8 = tmp_path / "m.int8.onnx"
    scores = {}
    for model in (best, onnx_path, int8):
        assert main(["eval", str(model), "--data", f"folder:{synth_root}", "--split", "test", "--json"]) == 0
        scores[model.name] = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert scores["m.onnx"]["num_gt"] == scores["best.pt"]["num_gt"] > 0
    assert 0.0 <= scores["m.int8.onnx"]["hmean"] <= 1.0


def test_onnx_without_valid_sdet_metadata_is_one_line(best, synth_root, tmp_path, capsys):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    path = tmp_path / "m.onnx"
    assert main(["export", str(best), "--onnx", str(path)]) == 0
    capsys.readouterr()
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == "sdet_config":
            prop.value = "{not json"
    onnx.save(model, str(tmp_path / "bad.onnx"))
    image = next((synth_root / "test" / "images").iterdir())
    assert main(["predict", str(tmp_path / "bad.onnx"), str(image), "--out", str(tmp_path / "out")]) == 2
    _one_line_error(capsys, "sdet_config metadata is not valid JSON")
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "bare.onnx"))
    assert main(["predict", str(tmp_path / "bare.onnx"), str(image), "--out", str(tmp_path / "out")]) == 2
    _one_line_error(capsys, "not an sdet export")


@pytest.mark.parametrize("override,needle", [("train.batch_size=0", "train.batch_size must be >= 1"),
                                             ("train.bogus=1", "<command line>: unknown config key 'train.bogus'")])
def test_a_real_process_prints_one_line_and_exits_2(override, needle, tmp_path):
    config = REPO / "configs" / "icdar2015" / "mv3_db.yaml"
    done = subprocess.run([sys.executable, "-m", "sdet", "train", str(config), override, f"train.out_dir={tmp_path}"],
                          capture_output=True, text=True, cwd=REPO)
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(lines) == 1 and lines[0].startswith("sdet: error:") and needle in lines[0]
    assert not list(tmp_path.iterdir())  # nothing written
