"""`sdet compare`: seeded grids, resumable runs, correct confidence intervals."""
import json
import math
from pathlib import Path

import pytest

from sdet.errors import UserError
from sdet.cli import main
from sdet.experiments.compare import format_differences, paired_differences, parse_seeds, parse_variant, run_comparison
from sdet.experiments.stats import summarize, t_quantile_975

from conftest import tiny_overrides

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "icdar2015" / "mv3_db.yaml"


def test_confidence_interval_matches_student_t():
    s = summarize([0.1, 0.2, 0.3])
    assert s.mean == pytest.approx(0.2)
    assert s.half_width == pytest.approx(4.303 * 0.1 / math.sqrt(3))
    assert t_quantile_975(1000) == 1.96 and t_quantile_975(22) == 2.086
    assert math.isnan(summarize([0.5]).half_width)


def _run(p, r, f, seed):
    return {"precision": p, "recall": r, "hmean": f, "seed": seed}


def test_paired_differences_hand_computed():
    run = _run
    runs = {"base": [run(0.5, 0.4, 0.60, 0), run(0.6, 0.5, 0.70, 1), run(0.7, 0.6, 0.80, 2)],
            "sdet": [run(0.5, 0.5, 0.61, 0), run(0.6, 0.5, 0.72, 1), run(0.7, 0.6, 0.79, 2)]}
    diff = paired_differences(runs, "base")
    assert set(diff) == {"sdet"}
    f = diff["sdet"]["hmean"]
    assert f["per_seed"] == pytest.approx([0.01, 0.02, -0.01])
    # mean 0.00667, sd of (0.01, 0.02, -0.01) = 0.015275; half-width 4.303 * sd / sqrt(3)
    assert f["mean"] == pytest.approx(0.02 / 3)
    assert f["half_width"] == pytest.approx(4.303 * 0.0152753 / math.sqrt(3), rel=1e-4)
    # the unpaired spread (0.1 between seeds) would swamp a 0.007 effect; pairing removes it
    assert f["half_width"] < summarize([0.61, 0.72, 0.79]).half_width / 5
    table = format_differences(diff, "base")
    assert "| sdet | +0.00 ± 0.00 | +3.33 ± 14.34 | +0.67 ± 3.79 | 2 of 3 seeds |" in table


def test_paired_differences_pair_by_seed_not_by_position():
    base = [_run(0.5, 0.5, 0.60, 0), _run(0.5, 0.5, 0.70, 1), _run(0.5, 0.5, 0.80, 2)]
    # listed in another order, seed 1 missing, and one older result that names its seed only in its overrides
    other = [_run(0.5, 0.5, 0.83, 2), {"precision": 0.5, "recall": 0.5, "hmean": 0.61, "overrides": ["train.seed=0"]}]
    f = paired_differences({"base": base, "other": other}, "base")["other"]["hmean"]
    assert f["seeds"] == [2, 0]
    assert f["per_seed"] == pytest.approx([0.03, 0.01])
    assert f["n"] == 2


def test_variant_spec_parsing():
    v = parse_variant("sdet-A:method.name=sdet,method.options.aux_type=A")
    assert v.name == "sdet-A" and v.overrides == ["method.name=sdet", "method.options.aux_type=A"]
    with pytest.raises(UserError):
        parse_variant("broken:method.name")


def test_bad_seeds_are_a_one_line_error_before_anything_runs(tmp_path, capsys):
    assert parse_seeds("0, 1,2") == [0, 1, 2]
    for bad in ("x,1", "", ","):
        with pytest.raises(UserError, match="--seeds"):
            parse_seeds(bad)
    out = tmp_path / "out"
    assert main(["compare", str(CONFIG), "--variant", "b:method.name=baseline", "--seeds", "x,1",
                 "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--seeds" in err[0] and not out.exists()


def test_grid_runs_every_seed_and_resumes(synth_root, tmp_path):
    common = tiny_overrides(synth_root, tmp_path / "unused", steps=1) + ["data.val_split=test"]
    variants = [parse_variant("base:method.name=baseline"), parse_variant("sdet:method.name=sdet")]
    out = tmp_path / "cmp"
    summary = run_comparison(None, common, variants, [0, 1], out, echo=None)
    assert set(summary) == {"base", "sdet"}
    assert all(summary[v]["hmean"]["n"] == 2 for v in summary)
    assert (out / "sdet" / "seed1" / "best.pt").exists()
    table = (out / "table.md").read_text()
    assert "| base |" in table and "| sdet |" in table
    # a second call trains nothing: results are read back, checkpoints untouched
    stamp = (out / "base" / "seed0" / "best.pt").stat().st_mtime_ns
    again = run_comparison(None, common, variants, [0, 1], out, echo=None)
    assert (out / "base" / "seed0" / "best.pt").stat().st_mtime_ns == stamp
    assert again["base"]["runs"] == summary["base"]["runs"]
    saved = json.loads((out / "summary.json").read_text())
    assert saved["seeds"] == [0, 1] and saved["reference"] == "base"
    assert saved["paired_differences"]["sdet"]["hmean"]["per_seed"] == pytest.approx(
        [s["hmean"] - b["hmean"] for s, b in zip(summary["sdet"]["runs"], summary["base"]["runs"])])
    assert "| variant - base |" in table
    # each result keeps what the losses converged to; SDET's adds how well its aux map matched the text
    end = summary["sdet"]["runs"][0]["train_end"]
    assert {"loss", "aux_text", "entropy_transfer", "aux_text_iou"} <= set(end) and 0.0 <= end["aux_text_iou"] <= 1.0
    assert "aux_text_iou" not in summary["base"]["runs"][0]["train_end"] and "loss" in summary["base"]["runs"][0]["train_end"]
    # the training time comes from the log's step times, so a resumed run counts all its segments
    from sdet.experiments.compare import logged_train_seconds
    logged = logged_train_seconds(out / "base" / "seed0" / "log.jsonl")
    assert logged is not None and summary["base"]["runs"][0]["train_seconds"] == round(logged, 1)


def test_a_finished_run_is_reused_only_under_the_overrides_it_was_trained_with(synth_root, tmp_path):
    common = tiny_overrides(synth_root, tmp_path / "unused", steps=1) + ["data.val_split=test"]
    out = tmp_path / "cmp"
    first = run_comparison(None, common, [parse_variant("base:method.name=baseline")], [0], out, echo=None)
    # where and how fast it runs (paths, threads, workers, memory layout) does not make it another run
    moved = [o for o in common if not o.startswith(("data.root", "train.threads", "train.channels_last"))]
    moved += [f"data.root={synth_root}/.", "train.threads=2", "train.channels_last=false"]
    again = run_comparison(None, moved, [parse_variant("base:method.name=baseline")], [0], out, echo=None)
    assert again["base"]["runs"] == first["base"]["runs"]
    # what it trains does: a longer schedule under the same name is refused, naming the result.json
    longer = [*common, "train.max_steps=2"]
    with pytest.raises(UserError, match="train.max_steps=1.*train.max_steps=2") as err:
        run_comparison(None, longer, [parse_variant("base:method.name=baseline")], [0], out, echo=None)
    assert err.value.path == str(out / "base" / "seed0" / "result.json")


def test_runs_are_scored_with_their_final_weights_not_the_best_on_the_scored_split(synth_root, tmp_path, monkeypatch):
    import sdet.checkpoint

    scored = []
    real = sdet.checkpoint.load_detector
    monkeypatch.setattr(sdet.checkpoint, "load_detector", lambda path: scored.append(Path(path).name) or real(path))
    common = tiny_overrides(synth_root, tmp_path / "unused", steps=2) + ["data.val_split=test", "train.eval_every=1"]
    summary = run_comparison(None, common, [parse_variant("base:method.name=baseline")], [0], tmp_path / "cmp", echo=None)
    assert "last.pt" in scored and "best.pt" not in scored
    assert summary["base"]["runs"][0]["seed"] == 0
    # a single seed has no interval: summary.json holds null there, not NaN (strict JSON)
    text = (tmp_path / "cmp" / "summary.json").read_text()
    assert "NaN" not in text and json.loads(text)["variants"]["base"]["hmean"]["half_width"] is None
    # a single variant has nothing to pair with: no empty paired-differences section in the table
    assert "variant - " not in (tmp_path / "cmp" / "table.md").read_text()


def test_training_end_averages_the_last_tenth_of_the_logged_steps(tmp_path):
    from sdet.experiments.compare import training_end

    log = tmp_path / "log.jsonl"
    lines = [{"event": "eval", "step": 0, "hmean": 0.5}]
    lines += [{"event": "train", "step": s, "lr": 0.1, "loss": float(s), "sec_per_step": 2.0} for s in range(10, 101, 10)]
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert training_end(log) == {"loss": 100.0}  # steps > 90: only the last record
    assert training_end(log, fraction=0.25) == {"loss": pytest.approx((80 + 90 + 100) / 3)}
    assert training_end(tmp_path / "missing.jsonl") == {}


def test_logged_train_seconds_sums_every_window_of_a_resumed_log(tmp_path):
    from sdet.experiments.compare import logged_train_seconds

    log = tmp_path / "log.jsonl"
    # steps 1-20 at 2 s, an evaluation, then a resumed segment whose first window is 5 steps at 3 s
    lines = [{"event": "train", "step": s, "sec_per_step": 2.0} for s in (10, 20)]
    lines += [{"event": "eval", "step": 20, "hmean": 0.5}, {"event": "train", "step": 25, "sec_per_step": 3.0}]
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    assert logged_train_seconds(log) == pytest.approx(20 * 2.0 + 5 * 3.0)
    assert logged_train_seconds(tmp_path / "missing.jsonl") is None
