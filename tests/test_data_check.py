"""`sdet data check` / `sdet data show`: statistics, every problem with file and line, exit codes."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from sdet.cli import main
from sdet.data.check import check_dataset
from helpers import SHARED, write_bytes, write_image

TD500 = SHARED / "data" / "msra-td500"


@pytest.fixture()
def clean(tmp_path: Path) -> Path:
    """A Total-Text-style split: a hexagon, a quad, a don't-care triangle on two images."""
    root = tmp_path / "tt"
    write_image(root / "train_images" / "img1.jpg", 40, 60)
    write_image(root / "train_images" / "img2.jpg", 50, 80)
    write_bytes(root / "train_gts" / "img1.jpg.txt", b"1,1,10,1,20,5,20,15,10,20,1,15,Hi\n30,5,50,5,50,20,30,20,Yo\n")
    write_bytes(root / "train_gts" / "img2.jpg.txt", b"0,0,9,0,9,9,###\n")
    return root


def test_check_counts_and_statistics(clean: Path) -> None:
    report = check_dataset("total-text", str(clean), "train")
    assert (report.images, report.instances, report.dont_care) == (2, 3, 1)
    assert dict(report.vertex_counts) == {6: 1, 4: 1, 3: 1}
    assert sorted(report.widths) == [60, 80] and sorted(report.heights) == [40, 50]
    assert report.problems == [] and report.notes == []


def test_cli_check_clean_exits_0(clean: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check", f"total-text:{clean}"]) == 0
    out = capsys.readouterr().out
    assert "images     2" in out and "care 2, don't care 1" in out and "3: 1, 4: 1, 6: 1" in out
    assert "problems   0" in out
    assert main(["data", "check", f"total-text:{clean}", "--json"]) == 0
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["images"] == 2 and record["vertex_counts"] == {"3": 1, "4": 1, "6": 1}
    assert record["width"]["max"] == 80


def test_cli_check_lists_every_problem_and_exits_2(clean: Path, capsys: pytest.CaptureFixture) -> None:
    gt1 = write_bytes(clean / "train_gts" / "img1.jpg.txt", b"1,1,10,1,word\n30,5,50,5,50,20,30,20,Yo\n1,1,2\n5,5,5,5,5,5,flat\n")
    broken = write_bytes(clean / "train_images" / "img3.jpg", b"not a jpeg")
    write_bytes(clean / "train_gts" / "img3.jpg.txt", b"1,1,10,1,10,10,x\n")
    orphan = write_bytes(clean / "train_gts" / "img4.jpg.txt", b"1,1,10,1,10,10,x\n")
    no_gt = write_image(clean / "train_images" / "img5.jpg")
    assert main(["data", "check", f"total-text:{clean}"]) == 2
    captured = capsys.readouterr()
    problems = [l for l in captured.out.splitlines() if l.startswith("  problem: ")]
    assert len(problems) == 5, captured.out
    for needle in (f"{gt1}:1", f"{gt1}:3", f"{broken}: cannot decode image", str(orphan), f"{no_gt}: no ground-truth file"):
        assert any(needle in p for p in problems), (needle, problems)
    assert any(f"{gt1}:4" in l and "area" in l for l in captured.out.splitlines() if l.startswith("  note: "))
    assert "5 problem(s)" in captured.err and "Traceback" not in captured.err


def test_cli_check_user_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check", "nope:/x"]) == 2
    assert "unknown dataset format" in capsys.readouterr().err
    assert main(["data", "check", f"icdar2015:{tmp_path}", "--split", "train"]) == 2
    assert "ch4_training_images" in capsys.readouterr().err
    (tmp_path / "train" / "images").mkdir(parents=True)
    (tmp_path / "train" / "gt").mkdir()
    assert main(["data", "check", f"folder:{tmp_path}"]) == 2
    assert "empty dataset" in capsys.readouterr().err


def test_cli_show_draws_care_green_and_dont_care_red(clean: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "shown"
    assert main(["data", "show", f"total-text:{clean}", "--out", str(out), "--limit", "1", "--ext", "png"]) == 0
    assert "wrote 1 images" in capsys.readouterr().out
    (drawn,) = sorted(out.iterdir())
    image = cv2.imread(str(drawn))
    assert image.shape == (40, 60, 3)
    assert tuple(image[5, 40]) == (0, 255, 0)  # top edge of the care quad 30,5 - 50,5
    assert main(["data", "show", f"total-text:{clean}", "--out", str(out), "--limit", "0"]) == 0
    second = cv2.imread(str(sorted(out.glob("*_img2.jpg"))[0]))
    b, g, r = (int(v) for v in second[0, 5])  # top edge of the don't-care triangle (JPEG: approximately red)
    assert r > 150 and g < 100 and b < 100


@pytest.mark.skipif(not TD500.is_dir(), reason=f"real MSRA-TD500 data not found at {TD500}")
def test_check_real_msra_td500_train() -> None:
    report = check_dataset("msra-td500", str(TD500), "train", decode_images=False)
    assert (report.images, report.instances, report.dont_care) == (300, 1068, 101)
    assert dict(report.vertex_counts) == {4: 1068} and report.problems == []
