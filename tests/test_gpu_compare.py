"""benchmarks/gpu_sdet_compare.py: the carried data reads back as the original, the step plan fits the
budget, and the device step rehearsed on CPU (`run --device cpu`) ends in a table appended to a doc."""
import importlib.util
import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from sdet.data.formats import load_samples
from sdet.data.images import read_image
from sdet.data.synth import format_icdar2015_line, synth_image

from helpers import write_folder, write_image

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_sdet_compare.py"


@pytest.fixture(scope="module")
def gpu():
    spec = importlib.util.spec_from_file_location("gpu_sdet_compare", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses resolve their annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def _icdar2015(root: Path, train: int = 6, test: int = 3) -> Path:
    """The official ICDAR2015 folder layout with synthetic photos and their word quads."""
    for images, gts, count in (("ch4_training_images", "ch4_training_localization_transcription_gt", train),
                               ("ch4_test_images", "Challenge4_Test_Task1_GT", test)):
        lines = {}
        for index in range(1, count + 1):
            sample = synth_image(np.random.default_rng([len(images), index]), (160, 224))
            (root / images).mkdir(parents=True, exist_ok=True)
            assert cv2.imwrite(str(root / images / f"img_{index}.jpg"), sample.image)
            lines[f"gt_img_{index}.txt"] = [format_icdar2015_line(i) for i in sample.instances]
        write_folder(root / gts, lines)
    return root


def test_carried_dataset_reads_as_the_original(gpu, tmp_path):
    root = _icdar2015(tmp_path / "ic15")
    manifest = gpu.encode_dataset("icdar2015", root, tmp_path / "carry" / "icdar2015", budget_mib=8)
    assert manifest["images"] == 9 and manifest["webp_quality"] == gpu.QUALITIES[0]
    for split in ("train", "test"):
        original = load_samples("icdar2015", root, split)
        carried = load_samples("icdar2015", tmp_path / "carry" / "icdar2015", split)
        assert [Path(s.image_path).suffix for s in carried] == [".webp"] * len(original)
        for a, b in zip(original, carried):
            assert Path(a.image_path).stem == Path(b.image_path).stem
            assert [(i.polygon.tolist(), i.text, i.ignore) for i in a.instances] == \
                [(i.polygon.tolist(), i.text, i.ignore) for i in b.instances]
            assert read_image(a.image_path).shape == read_image(b.image_path).shape


def test_a_tight_budget_lowers_the_quality_and_an_impossible_one_refuses(gpu, tmp_path):
    root = _icdar2015(tmp_path / "ic15")
    sizes = {q: sum(len(gpu._encode(p, q)) for p in sorted(root.glob("*/*.jpg"))) for q in (gpu.QUALITIES[0], 70)}
    budget = (sizes[70] * 1.02 + sum(p.stat().st_size for p in root.glob("*/*.txt"))) / 2**20
    manifest = gpu.encode_dataset("icdar2015", root, tmp_path / "out", budget_mib=budget)
    assert 60 <= manifest["webp_quality"] <= 70  # 95 does not fit, 70 does (with the estimate's 5% margin: 60)
    with pytest.raises(SystemExit, match="do not fit"):
        gpu.encode_dataset("icdar2015", root, tmp_path / "out", budget_mib=0.01)
    with pytest.raises(SystemExit, match="folder not found"):
        gpu.encode_dataset("icdar2015", tmp_path / "nothing", tmp_path / "out", budget_mib=8)


def test_step_plan_fits_the_budget_and_drops_seeds_before_steps(gpu):
    cal = gpu.Calibration(init_hmean=0.45, eval_seconds=20.0, sec_per_step=0.1, run_overhead_seconds=10.0)
    # 480 s over 4 runs: 120 - 20 - 10 = 90 s of steps each = 900 steps
    assert gpu.plan_steps(480, 4, cal, max_steps=2000) == 900
    assert gpu.plan_steps(480, 4, cal, max_steps=500) == 500
    assert gpu.plan_steps(4 * (30 + 12.34), 4, cal, max_steps=2000) == 100  # 123 -> a multiple of 50
    assert gpu.plan_steps(4 * (30 + 4.2), 4, cal, max_steps=2000) == 42  # below 50: kept as it is
    # 4 variants x 3 seeds in 720 s: 60 s per run = 300 steps; with min 500, 2 seeds give 600 steps
    assert gpu.plan_runs(720, 4, 3, cal, min_steps=200, max_steps=2000) == (3, 300)
    assert gpu.plan_runs(720, 4, 3, cal, min_steps=500, max_steps=2000) == (2, 600)
    with pytest.raises(SystemExit, match="even with one seed"):
        gpu.plan_runs(120, 4, 3, cal, min_steps=100, max_steps=2000)  # 30 s per run leaves no step


def test_device_step_rehearsed_on_cpu_then_appended(gpu, tmp_path, capsys):
    carry = tmp_path / "carry"
    gpu.encode_dataset("icdar2015", _icdar2015(tmp_path / "ic15", train=4, test=2), carry / "icdar2015", budget_mib=8)
    out = tmp_path / "out"
    gpu.main(["run", "--dataset", "icdar2015", "--device", "cpu", "--carry", str(carry), "--init", "",
              "--out", str(out), "--work", str(tmp_path / "work"), "--seeds", "0", "--minutes", "2",
              "--calib-steps", "2", "--min-steps", "1", "--max-steps", "3", "--batch", "2", "--workers", "0",
              "--threads", "1", "--variant", "baseline:method.name=baseline",
              "--variant", "sdet-A@P3:method.name=sdet,method.options.aux_type=A",
              "data.image_size=96", "data.input.test_size=128", "model.neck.inner_channels=32"])
    info = json.loads((out / "gpu_run.json").read_text())
    assert info["steps"] == 3 and info["seeds"] == [0] and info["card"].startswith("CPU")
    assert info["calibration"]["sec_per_step"] > 0 and info["calibration"]["init_hmean"] is None
    # every variant's step was timed, and the plan used their mean
    by_variant = info["calibration"]["sec_per_step_by_variant"]
    assert set(by_variant) == {"baseline", "sdet-A@P3"}
    assert info["calibration"]["sec_per_step"] == pytest.approx(sum(by_variant.values()) / 2)
    assert "data.image_size=96" in info["common"] and "train.max_steps=3" in info["common"]
    for variant in ("baseline", "sdet-A@P3"):  # each run trained its planned steps into the work folder
        log = (tmp_path / "work" / "compare" / variant / "seed0" / "log.jsonl").read_text().splitlines()
        assert max(json.loads(line).get("step", 0) for line in log) == 3
    runs = json.loads((out / "runs.json").read_text())
    assert [(r["variant"], r["seed"]) for r in runs] == [("baseline", 0), ("sdet-A@P3", 0)]
    doc = write_folder(tmp_path / "docs", {"SDET.md": ["# SDET"]}) / "SDET.md"
    gpu.main(["append", "--result", str(out), "--doc", str(doc)])
    text = doc.read_text()
    assert text.startswith("# SDET\n") and "### GPU comparison: icdar2015 on CPU (1 threads)" in text
    # the appended table is the one compare wrote for the same runs
    table = (tmp_path / "work" / "compare" / "table.md").read_text().strip()
    assert "3 steps per run" in text and table in text and "| sdet-A@P3 |" in table


def test_a_seed_cut_off_mid_way_still_reaches_the_table(gpu, tmp_path):
    def run(variant, seed, f):
        return {"variant": variant, "seed": seed, "precision": f, "recall": f, "hmean": f, "overrides": []}

    info = {"variants": ["baseline", "sdet"]}
    runs = [run("baseline", 0, 0.60), run("sdet", 0, 0.62), run("baseline", 1, 0.70)]  # cut off before sdet seed 1
    (tmp_path / "runs.json").write_text(json.dumps(runs))
    table = gpu.result_table(tmp_path, info)
    assert "| baseline | 65.0 ± " in table and "| 2 |" in table  # both baseline seeds, with an interval
    assert "| sdet | 62.0 | 62.0 | 62.0 | 1 |" in table
    assert "| sdet | +2.00 | +2.00 | +2.00 | 1 of 1 seeds |" in table  # paired on seed 0 only
    (tmp_path / "runs.json").write_text("[]")
    with pytest.raises(SystemExit, match="no run finished"):
        gpu.result_table(tmp_path, info)


def test_run_refuses_missing_carry(gpu, tmp_path):
    with pytest.raises(SystemExit, match="run `prepare` here"):
        gpu.main(["run", "--dataset", "icdar2015", "--device", "cpu", "--carry", str(tmp_path), "--out", str(tmp_path)])
    write_image(tmp_path / "icdar2015" / "x.jpg")
    with pytest.raises(SystemExit, match="imports the PP-OCRv3"):
        gpu.main(["run", "--dataset", "icdar2015", "--device", "cpu", "--carry", str(tmp_path),
                  "--init", str(tmp_path / "none.pt"), "--out", str(tmp_path)])
    # append on a folder that is not a fetched $OUT names the missing file
    with pytest.raises(SystemExit, match="gpu_run.json: not found"):
        gpu.main(["append", "--result", str(tmp_path / "nothing")])
