"""`sdet compare`: seeded grids, resumable runs, correct confidence intervals."""
import json
import math
from pathlib import Path

import pytest

from sdet.errors import UserError
from sdet.cli import main
from sdet.experiments.compare import parse_seeds, parse_variant, run_comparison
from sdet.experiments.stats import summarize, t_quantile_975

from conftest import tiny_overrides

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "icdar2015" / "mv3_db.yaml"


def test_confidence_interval_matches_student_t():
    s = summarize([0.1, 0.2, 0.3])
    assert s.mean == pytest.approx(0.2)
    assert s.half_width == pytest.approx(4.303 * 0.1 / math.sqrt(3))
    assert t_quantile_975(1000) == 1.96 and t_quantile_975(22) == 2.086
    assert math.isnan(summarize([0.5]).half_width)


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
    assert json.loads((out / "summary.json").read_text())["seeds"] == [0, 1]
