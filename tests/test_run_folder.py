"""A run's folder: validated before it is touched, one writer, older runs set aside, clean resumes."""
import errno
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sdet.checkpoint import atomic_save, load_checkpoint
from sdet.config import load_config
from sdet.engine.run_dir import RunLock, truncate_log
from sdet.engine.trainer import Trainer, TrainingDiverged
from sdet.errors import UserError

from conftest import tiny_overrides

REPO = Path(__file__).resolve().parents[1]


def _train(root, out, steps=2, extra=(), **kw):
    return Trainer(load_config(None, tiny_overrides(root, out, steps=steps) + list(extra)), progress=False, **kw).run()


def _snapshot(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _train_records(folder: Path) -> list:
    lines = (folder / "log.jsonl").read_text().splitlines()
    return [(r["step"], r["loss"]) for r in map(json.loads, lines) if r["event"] == "train"]


def test_a_run_that_cannot_start_leaves_the_older_run_untouched(synth_root, tmp_path):
    out = tmp_path / "run"
    _train(synth_root, out)
    before = _snapshot(out)
    with pytest.raises(UserError, match="not found|does not exist|no such"):
        _train(tmp_path / "missing", out)  # a data root that does not exist
    with pytest.raises(UserError):
        _train(synth_root, out, extra=["model.neck.inner_channels=30"])  # not divisible by 4: model fails
    assert _snapshot(out) == before


def test_a_fresh_run_moves_the_older_run_aside(synth_root, tmp_path, capsys):
    out = tmp_path / "run"
    _train(synth_root, out)
    old = _snapshot(out)
    _train(synth_root, out, extra=["train.seed=1"])
    aside = [p for p in out.iterdir() if p.name.startswith("previous-")]
    assert len(aside) == 1 and _snapshot(aside[0]) == {k: v for k, v in old.items() if k != ".lock"}
    assert "moved to" in capsys.readouterr().err
    assert {"last.pt", "best.pt", "log.jsonl", "config.yaml"} <= {p.name for p in out.iterdir()}


def test_out_dir_naming_a_file_is_refused(synth_root, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep me")
    with pytest.raises(UserError, match="existing file"):
        _train(synth_root, target)
    assert target.read_text() == "keep me"


def test_a_second_training_into_a_locked_folder_refuses(synth_root, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(f"{os.getpid()} {os.uname().nodename}\n")  # a live owner: this process
    with pytest.raises(UserError, match=rf"another training \(pid {os.getpid()}"):
        _train(synth_root, out)
    assert not (out / "last.pt").exists()


def test_a_stale_lock_is_taken_over_and_released(synth_root, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (out / ".lock").write_text(f"{dead.pid} {os.uname().nodename}\n")
    _train(synth_root, out)
    assert "stale lock" in capsys.readouterr().err and not (out / ".lock").exists()
    assert load_checkpoint(out / "last.pt")["step"] == 2


def test_the_lock_is_exclusive_while_held(tmp_path):
    first = RunLock(tmp_path).acquire()
    with pytest.raises(UserError, match="another training"):
        RunLock(tmp_path).acquire()
    first.release()
    RunLock(tmp_path).acquire().release()


def test_resume_refuses_a_last_pt_of_another_config(synth_root, tmp_path):
    out = tmp_path / "run"
    _train(synth_root, out, steps=4, stop_after=2)
    for override, name in (("model.backbone.width_mult=0.5", "model.backbone.width_mult"),
                           ("model.type=east", "model.type"), ("method.name=sdet", "method.name"),
                           ("train.optimizer=sgd", "train.optimizer")):
        with pytest.raises(UserError, match=rf"cannot resume: last.pt was trained with {name}="):
            _train(synth_root, out, steps=4, extra=["train.resume=true", override])
    assert load_checkpoint(out / "last.pt")["step"] == 2


def test_resume_without_last_pt_says_it_starts_fresh(synth_root, tmp_path, capsys):
    _train(synth_root, tmp_path / "run", extra=["train.resume=true"])
    err = capsys.readouterr().err
    assert "no last.pt" in err and "starting a fresh run" in err
    assert load_checkpoint(tmp_path / "run" / "last.pt")["step"] == 2


def test_resume_drops_log_records_after_the_checkpoint_and_stale_temp_files(synth_root, tmp_path):
    _train(synth_root, tmp_path / "full", steps=5)
    out = tmp_path / "part"
    _train(synth_root, out, steps=5, extra=["train.save_every=2"], stop_after=3)  # logged 3, saved 2
    assert [s for s, _ in _train_records(out)] == [1, 2, 3]
    (out / ".last.pt.abc123.tmp").write_bytes(b"half a checkpoint")  # a kill during a write
    _train(synth_root, out, steps=5, extra=["train.save_every=2", "train.resume=true"])
    assert _train_records(out) == _train_records(tmp_path / "full")
    assert not list(out.glob("*.tmp"))


def test_truncate_log_keeps_records_up_to_the_step_and_drops_a_cut_line(tmp_path):
    log = tmp_path / "log.jsonl"
    log.write_text('{"event": "train", "step": 1}\n{"event": "train", "step": 2}\n{"event": "tr')
    assert truncate_log(log, 1) == 2
    assert log.read_text() == '{"event": "train", "step": 1}\n'


def test_nan_before_any_checkpoint_does_not_name_a_stale_last_pt(synth_root, tmp_path, monkeypatch):
    from sdet.detectors.db.loss import DBLoss

    out = tmp_path / "run"
    _train(synth_root, out)  # an older run's last.pt: it must not be presented as this run's
    original = DBLoss.__call__
    monkeypatch.setattr(DBLoss, "__call__", lambda self, l, b: {**original(self, l, b), "prob_bce": torch.tensor(float("nan"))})
    with pytest.raises(TrainingDiverged, match="no checkpoint of this run had been written yet"):
        _train(synth_root, out)


def test_checkpoint_files_that_are_empty_truncated_crafted_or_foreign(synth_root, tmp_path):
    out = tmp_path / "run"
    _train(synth_root, out)
    data = (out / "best.pt").read_bytes()
    marker = tmp_path / "executed"

    class Crafted:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    files = {"empty.pt": b"", "half.pt": data[: len(data) // 2], "crafted.pt": pickle.dumps(Crafted(), protocol=2)}
    for name, content in files.items():
        (tmp_path / name).write_bytes(content)
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "foreign.pt")
    expected = {"empty.pt": "the file is empty", "half.pt": "truncated", "crafted.pt": "never unpickles",
                "foreign.pt": "without sdet's format marker"}
    for name, needle in expected.items():
        with pytest.raises(UserError, match=needle) as info:
            load_checkpoint(tmp_path / name)
        assert "weights_only" not in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()
    # the same one-line errors reach init_from (and eval/predict/export, which call load_checkpoint)
    with pytest.raises(UserError, match="empty.pt: not a readable sdet checkpoint"):
        _train(synth_root, tmp_path / "ft", extra=[f"train.init_from={tmp_path / 'empty.pt'}"])


def test_disk_full_while_saving_is_one_line_and_leaves_no_temp_file(tmp_path, monkeypatch):
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", full)
    (tmp_path / "last.pt").write_bytes(b"previous")
    with pytest.raises(UserError, match="No space left on device.*previous last.pt is unchanged"):
        atomic_save({"a": 1}, tmp_path / "last.pt")
    assert (tmp_path / "last.pt").read_bytes() == b"previous" and not list(tmp_path.glob(".*.tmp"))


def _cli_train(root: Path, out: Path, steps: int, extra=()):
    args = [f"{a}" for a in tiny_overrides(root, out, steps=steps)] + list(extra)
    return [sys.executable, "-m", "sdet", "train", str(REPO / "configs" / "icdar2015" / "mv3_db.yaml"), *args, "--no-progress"]


def test_kill_9_during_training_then_resume_equals_an_uninterrupted_run(synth_root, tmp_path):
    """A real SIGKILL of `sdet train`; bit-exact comparison: both runs on this machine, one layout."""
    steps = 8
    common = ["data.name=folder"]
    subprocess.run(_cli_train(synth_root, tmp_path / "full", steps, common), check=True, capture_output=True, cwd=REPO)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_cli_train(synth_root, out, steps, common), cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        log = out / "log.jsonl"
        if (out / "last.pt").exists() and log.exists() and len(log.read_text().splitlines()) >= 3:
            break
        time.sleep(0.05)
    if proc.poll() is not None:
        pytest.fail("training ended before it could be killed")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert (out / ".lock").exists()  # the dead process's lock: stale, to be taken over
    killed_at = load_checkpoint(out / "last.pt")["step"]
    assert 0 < killed_at < steps
    done = subprocess.run(_cli_train(synth_root, out, steps, common + ["train.resume=true"]), cwd=REPO,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    a, b = load_checkpoint(tmp_path / "full" / "last.pt"), load_checkpoint(out / "last.pt")
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in a["model"])
    assert _train_records(out) == _train_records(tmp_path / "full")
