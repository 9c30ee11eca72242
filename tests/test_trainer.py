import json

import pytest
import torch

from sdet.checkpoint import load_checkpoint, load_detector
from sdet.config import load_config
from sdet.engine.trainer import Trainer, TrainingDiverged, seed_everything
from sdet.models.detector import build_detector
from sdet.detectors.db.loss import DBLoss

from conftest import tiny_overrides


def _weights(path):
    return load_checkpoint(path)["model"]


def _relative_update_difference(a: dict, b: dict, start: dict) -> float:
    """||(a - start) - (b - start)|| / ||b - start|| over the trained float tensors (BN running stats left out)."""
    keys = [k for k in a if a[k].is_floating_point() and "running_" not in k]
    diff = sum(float((a[k] - b[k]).double().pow(2).sum()) for k in keys) ** 0.5
    update = sum(float((b[k] - start[k]).double().pow(2).sum()) for k in keys) ** 0.5
    assert update > 0, "training did not move the weights: nothing to compare"
    return diff / update


def test_interrupted_and_resumed_run_equals_uninterrupted(synth_root, tmp_path):
    full = load_config(None, tiny_overrides(synth_root, tmp_path / "full", steps=5))
    Trainer(full, progress=False).run()

    part = load_config(None, tiny_overrides(synth_root, tmp_path / "part", steps=5))
    Trainer(part, progress=False, stop_after=2).run()
    assert load_checkpoint(tmp_path / "part" / "last.pt")["step"] == 2
    resumed = load_config(None, tiny_overrides(synth_root, tmp_path / "part", steps=5) + ["train.resume=true"])
    Trainer(resumed, progress=False).run()

    a, b = _weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "part" / "last.pt")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    # a different seed really gives different weights (the equality above is not vacuous)
    other = load_config(None, tiny_overrides(synth_root, tmp_path / "other", steps=5) + ["train.seed=1"])
    Trainer(other, progress=False).run()
    c = _weights(tmp_path / "other" / "last.pt")
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


def test_logs_checkpoints_and_weights_only_loading(synth_root, tmp_path):
    cfg = load_config(None, tiny_overrides(synth_root, tmp_path / "run", steps=3) + ["train.eval_every=3"])
    result = Trainer(cfg, progress=False).run()
    assert result.step == 3
    records = [json.loads(l) for l in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    train_recs = [r for r in records if r["event"] == "train"]
    assert [r["step"] for r in train_recs] == [1, 2, 3]
    assert {"prob_bce", "binary_dice", "thresh_l1", "loss", "lr"} <= set(train_recs[0])
    evals = [r for r in records if r["event"] == "eval"]
    assert len(evals) == 1 and 0.0 <= evals[0]["hmean"] <= 1.0
    assert evals[0]["protocol"] == "icdar2015"  # data.protocol "": the folder format's default
    torch.load(tmp_path / "run" / "best.pt", weights_only=True)
    torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    detector, loaded_cfg, ckpt = load_detector(tmp_path / "run" / "best.pt")
    assert ckpt["kind"] == "inference" and "optimizer" not in ckpt
    assert loaded_cfg.model == cfg.model
    assert not list((tmp_path / "run").glob("*.tmp"))


def test_nan_loss_stops_and_keeps_last_good_checkpoint(synth_root, tmp_path, monkeypatch):
    original = DBLoss.__call__

    def poisoned(self, logits, batch):
        terms = original(self, logits, batch)
        if poisoned.calls >= 2:
            terms["prob_bce"] = terms["prob_bce"] * float("nan")
        poisoned.calls += 1
        return terms

    poisoned.calls = 0
    monkeypatch.setattr(DBLoss, "__call__", poisoned)
    cfg = load_config(None, tiny_overrides(synth_root, tmp_path / "nan", steps=5))
    with pytest.raises(TrainingDiverged, match="not finite at step 2"):
        Trainer(cfg, progress=False).run()
    ckpt = load_checkpoint(tmp_path / "nan" / "last.pt")
    assert ckpt["step"] == 2
    assert all(torch.isfinite(v).all() for v in ckpt["model"].values() if v.is_floating_point())


def test_init_from_starts_fine_tuning_at_the_checkpoint_weights(synth_root, tmp_path):
    Trainer(load_config(None, tiny_overrides(synth_root, tmp_path / "src", steps=2)), progress=False).run()
    src = _weights(tmp_path / "src" / "best.pt")
    # lr 0: weights stay where they started, so the fine-tune run must end at the source weights
    cfg = load_config(None, tiny_overrides(synth_root, tmp_path / "ft", steps=1) + [
        f"train.init_from={tmp_path / 'src' / 'best.pt'}", "train.lr=0", "train.seed=7"])
    Trainer(cfg, progress=False).run()
    tuned = _weights(tmp_path / "ft" / "best.pt")
    convs = [k for k in src if k.endswith("weight") and src[k].dim() == 4]
    assert convs and all(torch.equal(src[k], tuned[k]) for k in convs)
    # without init_from the same seed-7 run starts elsewhere
    fresh = load_config(None, tiny_overrides(synth_root, tmp_path / "fresh", steps=1) + ["train.lr=0", "train.seed=7"])
    Trainer(fresh, progress=False).run()
    assert not all(torch.equal(src[k], _weights(tmp_path / "fresh" / "best.pt")[k]) for k in convs)


def test_init_from_warns_when_the_run_feeds_pixels_unlike_the_checkpoint(synth_root, tmp_path, capsys):
    bgr = ["data.input.to_rgb=false", "data.input.mean=[0.5,0.5,0.5]"]
    Trainer(load_config(None, tiny_overrides(synth_root, tmp_path / "src", steps=1) + bgr), progress=False).run()
    init = f"train.init_from={tmp_path / 'src' / 'best.pt'}"
    capsys.readouterr()
    Trainer(load_config(None, tiny_overrides(synth_root, tmp_path / "same", steps=1) + bgr + [init]), progress=False).run()
    assert "warning" not in capsys.readouterr().err
    Trainer(load_config(None, tiny_overrides(synth_root, tmp_path / "rgb", steps=1) + [init]), progress=False).run()
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    assert len(warnings) == 2
    assert "data.input.to_rgb=false" in warnings[0] and "data.input.mean=[0.5, 0.5, 0.5]" in warnings[1]


def test_init_from_other_architecture_is_a_user_error(synth_root, tmp_path):
    from sdet.errors import UserError

    Trainer(load_config(None, tiny_overrides(synth_root, tmp_path / "src", steps=1)), progress=False).run()
    cfg = load_config(None, tiny_overrides(synth_root, tmp_path / "ft", steps=1) + [
        f"train.init_from={tmp_path / 'src' / 'best.pt'}", "model.neck.inner_channels=48"])
    with pytest.raises(UserError, match="does not fit the model"):
        Trainer(cfg, progress=False).run()


def test_channels_last_training_matches_contiguous_and_loads_anywhere(synth_root, tmp_path):
    """NHWC is a speed choice only: same losses and weights up to float rounding; checkpoints
    load into a plain (contiguous) detector; the sdet aux head is converted with the detector."""
    runs = {}
    for layout in ("true", "false"):
        out = tmp_path / layout
        cfg = load_config(None, tiny_overrides(synth_root, out, steps=2)
                          + [f"train.channels_last={layout}", "method.name=sdet", "method.options.aux_type=C",
                             "train.optimizer=sgd", "train.lr=0.01"])  # Adam's first steps amplify rounding (sign)
        trainer = Trainer(cfg, progress=False)
        trainer.run()
        conv = next(p for p in trainer.detector.parameters() if p.dim() == 4 and p.shape[-1] > 1)
        aux = next(p for p in trainer.method.parameters() if p.dim() == 4 and p.shape[-1] > 1)
        nhwc = layout == "true"
        assert conv.is_contiguous(memory_format=torch.channels_last) == nhwc
        assert conv.is_contiguous() != nhwc
        assert aux.is_contiguous(memory_format=torch.channels_last) == nhwc
        runs[layout] = (out, [json.loads(l) for l in (out / "log.jsonl").read_text().splitlines()])
    (nhwc_dir, nhwc_log), (nchw_dir, nchw_log) = runs["true"], runs["false"]
    for a, b in zip(nhwc_log, nchw_log):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)
    # The weights are compared through their updates (final - initial), as one relative error over all
    # trained tensors. NHWC and NCHW run different oneDNN kernels, whose float32 sums round differently;
    # DB's step function (k=50) and batch-norm statistics over a batch of 2 amplify that rounding to
    # ~0.4% of the update (measured on a Xeon; which kernels run depends on the CPU). A layout bug (a
    # permuted tensor, an aux head left NCHW) changes the update by O(1).
    a, b = _weights(nhwc_dir / "last.pt"), _weights(nchw_dir / "last.pt")
    seed_everything(0)
    start = build_detector(load_config(None, tiny_overrides(synth_root, tmp_path)).model).state_dict()
    assert _relative_update_difference(a, b, start) < 0.05
    detector, _, _ = load_detector(nhwc_dir / "best.pt")
    x = torch.rand(1, 3, 64, 64)
    plain, _, _ = load_detector(nchw_dir / "best.pt")
    with torch.no_grad():
        assert torch.allclose(detector.eval()(x).logits["prob"], plain.eval()(x).logits["prob"], atol=1e-3)


def test_resume_continues_the_global_random_stream(synth_root, tmp_path, monkeypatch):
    """A method that draws from torch's global generator each step (dropout, random mixing) must
    see the same numbers after a resume as in an uninterrupted run."""
    from sdet.methods.baseline import Baseline

    plain = Baseline.losses

    def noisy(self, output, batch, step):
        return {k: v * (1 + torch.rand(())) for k, v in plain(self, output, batch, step).items()}

    monkeypatch.setattr(Baseline, "losses", noisy)
    Trainer(load_config(None, tiny_overrides(synth_root, tmp_path / "full", steps=4)), progress=False).run()
    Trainer(load_config(None, tiny_overrides(synth_root, tmp_path / "part", steps=4)), progress=False, stop_after=2).run()
    resumed = load_config(None, tiny_overrides(synth_root, tmp_path / "part", steps=4) + ["train.resume=true"])
    Trainer(resumed, progress=False).run()
    a, b = _weights(tmp_path / "full" / "last.pt"), _weights(tmp_path / "part" / "last.pt")
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_a_fresh_run_in_an_old_run_dir_does_not_keep_its_best_pt(synth_root, tmp_path):
    """Without evaluation, best.pt is the final weights: an older run's best.pt must not survive."""
    run = tmp_path / "run"
    Trainer(load_config(None, tiny_overrides(synth_root, run, steps=2)), progress=False).run()
    old = _weights(run / "best.pt")
    Trainer(load_config(None, tiny_overrides(synth_root, run, steps=2) + ["train.seed=1"]), progress=False).run()
    new, last = _weights(run / "best.pt"), _weights(run / "last.pt")
    assert all(torch.equal(new[k], last[k]) for k in new)
    assert any(not torch.equal(new[k], old[k]) for k in new if new[k].is_floating_point())
