"""End-to-end through the command line, as a user runs it: exit codes and one-line errors."""
import json
import subprocess
import sys

import pytest

from conftest import tiny_overrides


def sdet(*args, cwd=None):
    proc = subprocess.run([sys.executable, "-m", "sdet", *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600)
    return proc


def _one_line_error(proc, *needles):
    assert proc.returncode == 2, proc.stderr
    lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    for needle in needles:
        assert str(needle) in lines[0]


def test_train_eval_predict_round_trip(synth_root, tmp_path):
    run = tmp_path / "run"
    cfg = tmp_path / "tiny.yaml"
    cfg.write_text("method: {name: baseline}\n")
    proc = sdet("train", cfg, *tiny_overrides(synth_root, run, steps=2), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["step"] == 2

    proc = sdet("eval", run / "best.pt", "--data", f"folder:{synth_root}", "--split", "test", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert {"precision", "recall", "hmean", "num_gt", "num_det"} <= set(result)
    assert result["num_gt"] > 0

    out = tmp_path / "pred"
    proc = sdet("predict", run / "best.pt", synth_root / "test" / "images", "--out", out, "--entropy", "post.box_thresh=0.0")
    assert proc.returncode == 0, proc.stderr
    jsons = sorted(out.glob("*.json"))
    assert len(jsons) == 4
    assert len(list(out.glob("*_overlay.png"))) == 4 and len(list(out.glob("*_entropy.png"))) == 4
    record = json.loads(jsons[0].read_text())
    assert {"image", "width", "height", "detections"} <= set(record)


def test_user_errors_are_one_line(tmp_path, synth_root):
    _one_line_error(sdet("eval", tmp_path / "nope.pt", "--data", "folder:x"), "nope.pt", "not found")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  max_stpes: 3\n")
    _one_line_error(sdet("train", bad), "bad.yaml", "max_steps")
    _one_line_error(sdet("train", bad.with_name("missing.yaml")), "missing.yaml")
    # a malformed annotation line names the file and line
    root = tmp_path / "broken"
    (root / "train" / "images").mkdir(parents=True)
    (root / "train" / "gt").mkdir(parents=True)
    import shutil

    src = sorted((synth_root / "train" / "images").iterdir())[0]
    shutil.copy(src, root / "train" / "images" / src.name)
    (root / "train" / "gt" / f"gt_{src.stem}.txt").write_text("1,2,3,4,5,6,7,8,ok\n1,2,3,oops\n")
    _one_line_error(sdet("train", _write_ok(tmp_path), *tiny_overrides(root, tmp_path / "r")),
                    f"gt_{src.stem}.txt:2")
    # an unreadable image
    (root / "train" / "gt" / f"gt_{src.stem}.txt").write_text("1,2,30,2,30,20,1,20,ok\n")
    (root / "train" / "images" / src.name).write_bytes(b"not an image")
    _one_line_error(sdet("train", _write_ok(tmp_path), *tiny_overrides(root, tmp_path / "r")), src.name)
    # an empty dataset
    empty = tmp_path / "empty"
    (empty / "train" / "images").mkdir(parents=True)
    (empty / "train" / "gt").mkdir(parents=True)
    _one_line_error(sdet("train", _write_ok(tmp_path), *tiny_overrides(empty, tmp_path / "r")), "empty")


def _write_ok(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("method: {name: baseline}\n")
    return path


def test_score_prints_json_last_line(tmp_path):
    gt, pred = tmp_path / "gt", tmp_path / "pred"
    gt.mkdir()
    pred.mkdir()
    (gt / "gt_img_1.txt").write_text("0,0,10,0,10,10,0,10,word\n20,20,30,20,30,30,20,30,###\n")
    (pred / "res_img_1.txt").write_text("0,0,10,0,10,10,0,10\n50,50,60,50,60,60,50,60\n")
    proc = sdet("score", "--gt", gt, "--pred", pred, "--protocol", "icdar2015")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["precision"] == pytest.approx(0.5) and result["recall"] == pytest.approx(1.0)
    assert result["num_gt"] == 1 and result["num_det"] == 2


@pytest.fixture(scope="module")
def tiny_checkpoint(synth_root, tmp_path_factory):
    """A 1-step model of the synthetic ``folder`` dataset (default protocol icdar2015)."""
    from sdet.config import load_config
    from sdet.engine.trainer import Trainer

    run = tmp_path_factory.mktemp("eval_protocol_run")
    Trainer(load_config(None, tiny_overrides(synth_root, run, steps=1)), progress=False).run()
    return run / "best.pt"


def _td500_root(synth_root, root):
    """Two synthetic images in MSRA-TD500's layout (images and .gt side by side)."""
    import shutil

    (root / "test").mkdir(parents=True)
    for i, src in enumerate(sorted((synth_root / "test" / "images").iterdir())[:2]):
        shutil.copy(src, root / "test" / f"IMG_{i}{src.suffix}")
        (root / "test" / f"IMG_{i}.gt").write_text("0 0 10 20 60 16 0.1\n1 1 40 80 30 12 0\n")
    return root


def test_eval_protocol_dataset_default_and_override(tiny_checkpoint, synth_root, tmp_path, capsys, monkeypatch):
    from sdet.cli import main
    from sdet.metrics import protocols

    used = []
    for name, fn in list(protocols.PROTOCOLS.items()):
        monkeypatch.setitem(protocols.PROTOCOLS, name, lambda gt, det, _n=name, _f=fn: used.append(_n) or _f(gt, det))

    def run(*args):
        assert main(["eval", str(tiny_checkpoint), "--json", "--device", "cpu", *map(str, args)]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert used[-1] == out["protocol"]  # the protocol named is the one that scored
        return out["protocol"]

    td500 = _td500_root(synth_root, tmp_path / "td500")
    assert run() == "icdar2015"  # the checkpoint's own dataset (folder) and its default
    assert run("data.protocol=deteval") == "deteval"  # a config override
    assert run("--data", f"msra-td500:{td500}", "--split", "test") == "td500-iou"  # the named dataset's default
    assert run("--data", f"msra-td500:{td500}", "--split", "test", "--protocol", "td500") == "td500"
    assert run("--protocol", "total-text-iou") == "total-text-iou"


def test_eval_unknown_protocol_is_one_line(tiny_checkpoint, tmp_path):
    _one_line_error(sdet("eval", tiny_checkpoint, "--protocol", "td5000"), "unknown protocol 'td5000'", "td500-iou")
    _one_line_error(sdet("eval", tiny_checkpoint, "--data", "nope:/x"), "nope")
    bad = _write_ok(tmp_path)
    _one_line_error(sdet("train", bad, "data.protocol=icdar", f"train.out_dir={tmp_path / 'r'}"), "data.protocol", "icdar")
    assert not (tmp_path / "r").exists()  # rejected before anything is built or written
