"""benchmarks/sdet_ppocrv3_study.py: finished runs recorded in the repository are reused, never over a run here."""
import importlib.util
import json
import sys
from pathlib import Path

from helpers import write_bytes

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _study():
    sys.path.insert(0, str(BENCHMARKS))  # the script imports benchmarks/common.py
    try:
        spec = importlib.util.spec_from_file_location("sdet_ppocrv3_study", BENCHMARKS / "sdet_ppocrv3_study.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_reuse_copies_finished_results_only_where_nothing_ran(tmp_path, capsys):
    recorded = tmp_path / "results"
    for run in ("baseline/seed0", "baseline/seed1", "sdet-A@P3/seed0"):
        write_bytes(recorded / run / "result.json", json.dumps({"hmean": 0.5, "run": run}).encode())
    out = tmp_path / "out"
    write_bytes(out / "baseline" / "seed1" / "last.pt", b"a run in progress here")
    write_bytes(out / "sdet-A@P3" / "seed0" / "result.json", json.dumps({"hmean": 0.7}).encode())
    _study().reuse_results(recorded, out)
    assert json.loads((out / "baseline" / "seed0" / "result.json").read_text())["run"] == "baseline/seed0"
    assert not (out / "baseline" / "seed1" / "result.json").exists()  # its own run continues
    assert json.loads((out / "sdet-A@P3" / "seed0" / "result.json").read_text())["hmean"] == 0.7  # kept
    assert capsys.readouterr().out.strip() == "reused baseline/seed0"


def test_aux_polarity_diagnostic_runs_every_variant(synth_root, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    spec = importlib.util.spec_from_file_location("sdet_aux_polarity", BENCHMARKS / "sdet_aux_polarity.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--data", f"folder:{synth_root}", "--steps", "4", "--et-from", "2", "--batches", "2",
                        "--batch", "2", "data.image_size=64", "data.num_workers=0"]) == 0
    out = capsys.readouterr().out
    assert "main head: IoU" in out
    rows = [line for line in out.splitlines() if line.startswith("  C ")]
    assert [row.split("  ")[1].strip() for row in rows] == ["C GT only", "C GT + ET", "C GT + ET masked", "C GT, ET from 2"]
    assert all("4: IoU" in row for row in rows)


def test_study_machine_line_names_the_threads_the_runs_train_with(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import common

    assert ", 1 threads," in common.study_machine_line("study", None, ["train.threads=1"])
    assert ", 3 threads," in common.study_machine_line("study", None, ["train.threads=3"])
