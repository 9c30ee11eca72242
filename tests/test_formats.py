"""ICDAR 2015 gt parsing, dataset layouts and image decoding."""
from __future__ import annotations

import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest

from sdet.data.formats import (
    DATASET_READERS,
    load_samples,
    natural_key,
    parse_icdar2015_gt,
    read_icdar2015_gt,
)
from sdet.data.images import read_image
from sdet.errors import UserError
from helpers import SHARED, write_bytes, write_image

ICDAR2015 = SHARED / "data" / "icdar2015"


def test_bom_crlf_commas_dont_care_and_floats(tmp_path: Path) -> None:
    text = (
        "377,117,463,117,465,130,378,130,Genaxis Theatre\r\n"
        "\r\n"
        "1.5,2,3,4,5,6,7,8.25,a,b,,c\r\n"
        "10,10,20,10,20,20,10,20,###\r\n"
    )
    gt = write_bytes(tmp_path / "gt_img_1.txt", b"\xef\xbb\xbf" + text.encode("utf-8"))
    first, second, third = parse_icdar2015_gt(gt)
    assert first.text == "Genaxis Theatre" and not first.ignore
    assert first.polygon.shape == (4, 2) and first.polygon.dtype == np.float32
    assert first.polygon[0].tolist() == [377, 117]
    assert second.text == "a,b,,c"
    assert second.polygon[0, 0] == 1.5 and second.polygon[3, 1] == 8.25
    assert third.ignore and third.text == "###"


def test_plain_lf_and_unicode_text(tmp_path: Path) -> None:
    gt = write_bytes(tmp_path / "gt.txt", "0,0,9,0,9,9,0,9,Straße\n0,0,1,0,1,1,0,1,x".encode("utf-8"))
    assert [i.text for i in parse_icdar2015_gt(gt)] == ["Straße", "x"]


@pytest.mark.parametrize(
    ("bad_line", "needle"),
    # the wording is the scorer's parser's (sdet.metrics.submission), which the reader calls
    [("1,2,3,4,5,6,7", "8 comma-separated coordinates"), ("1,2,3,4,five,6,7,8,w", "not a number"),
     ("1,2,3,4,nan,6,7,8,w", "not a number")],
)
def test_malformed_line_names_file_and_line(tmp_path: Path, bad_line: str, needle: str) -> None:
    gt = write_bytes(tmp_path / "gt_img_7.txt", f"1,2,3,4,5,6,7,8,ok\n\n{bad_line}\n".encode())
    with pytest.raises(UserError) as info:
        parse_icdar2015_gt(gt)
    assert info.value.path == str(gt) and info.value.line == 3
    assert needle in info.value.message
    assert f"{gt}:3" in str(info.value)


def test_invalid_utf8_is_a_user_error(tmp_path: Path) -> None:
    gt = write_bytes(tmp_path / "gt.txt", b"1,2,3,4,5,6,7,8,\xff\xfe\n")
    with pytest.raises(UserError) as info:
        parse_icdar2015_gt(gt)
    assert info.value.line == 1


def test_skip_bad_warns_per_line_and_counts(tmp_path: Path) -> None:
    gt = write_bytes(tmp_path / "gt.txt", b"1,2,3\n1,2,3,4,5,6,7,8,ok\nx,2,3,4,5,6,7,8,w\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        instances, skipped = read_icdar2015_gt(gt, skip_bad=True)
    assert skipped == 2 and [i.text for i in instances] == ["ok"]
    assert len(caught) == 2 and f"{gt}:1" in str(caught[0].message) and f"{gt}:3" in str(caught[1].message)


def test_missing_gt_file(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="not found"):
        parse_icdar2015_gt(tmp_path / "nope.txt")


def _generic(root: Path, split: str, stems: list) -> None:
    for stem in stems:
        write_image(root / split / "images" / f"{stem}.jpg", 16, 24)
        write_bytes(root / split / "gt" / f"gt_{stem}.txt", b"1,1,8,1,8,8,1,8,w\n")


def test_generic_layout_natural_sort(tmp_path: Path) -> None:
    _generic(tmp_path, "train", ["img_10", "img_2", "img_1"])
    (tmp_path / "train" / "images" / "notes.txt").write_text("not an image")
    samples = load_samples("folder", tmp_path, "train")
    assert [Path(s.image_path).name for s in samples] == ["img_1.jpg", "img_2.jpg", "img_10.jpg"]
    assert all(len(s.instances) == 1 for s in samples)
    # the icdar2015 reader falls back to the generic layout
    assert len(load_samples("icdar2015", tmp_path, "train")) == 3
    assert sorted(["a10", "a9", "A1"], key=natural_key) == ["A1", "a9", "a10"]


def test_official_layout(tmp_path: Path) -> None:
    for n in (1, 2, 11):
        write_image(tmp_path / "ch4_test_images" / f"img_{n}.jpg", 16, 24)
        write_bytes(tmp_path / "Challenge4_Test_Task1_GT" / f"gt_img_{n}.txt", b"\xef\xbb\xbf1,1,8,1,8,8,1,8,###\r\n")
    samples = load_samples("icdar2015", tmp_path, "test")
    assert [Path(s.image_path).stem for s in samples] == ["img_1", "img_2", "img_11"]
    assert all(s.instances[0].ignore for s in samples)


def test_empty_dataset(tmp_path: Path) -> None:
    (tmp_path / "train" / "images").mkdir(parents=True)
    (tmp_path / "train" / "gt").mkdir()
    with pytest.raises(UserError, match="empty dataset"):
        load_samples("folder", tmp_path, "train")


def test_missing_folders(tmp_path: Path) -> None:
    with pytest.raises(UserError) as info:
        load_samples("icdar2015", tmp_path, "train")
    assert "ch4_training_images" in str(info.value)
    (tmp_path / "val" / "images").mkdir(parents=True)
    with pytest.raises(UserError) as info:
        load_samples("folder", tmp_path, "val")
    assert info.value.path == str(tmp_path / "val" / "gt")
    with pytest.raises(UserError, match="unknown split"):
        load_samples("icdar2015", tmp_path, "dev")
    with pytest.raises(UserError, match="unknown dataset format"):
        load_samples("nope", tmp_path, "train")
    assert {"icdar2015", "folder"} <= set(DATASET_READERS)


def test_image_without_gt(tmp_path: Path) -> None:
    _generic(tmp_path, "train", ["img_1"])
    orphan = write_image(tmp_path / "train" / "images" / "img_2.jpg", 16, 24)
    with pytest.raises(UserError) as info:
        load_samples("folder", tmp_path, "train")
    assert info.value.path == str(orphan) and "gt_img_2.txt" in info.value.message


def test_read_image_errors_and_channels(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="image not found"):
        read_image(tmp_path / "missing.jpg")
    bad = write_bytes(tmp_path / "bad.jpg", b"definitely not a jpeg")
    with pytest.raises(UserError, match="cannot decode image") as info:
        read_image(bad)
    assert info.value.path == str(bad)
    with pytest.raises(UserError, match="cannot decode image"):
        read_image(write_bytes(tmp_path / "empty.png", b""))
    gray = tmp_path / "gray.png"
    cv2.imwrite(str(gray), np.full((5, 7), 200, np.uint8))
    rgba = tmp_path / "rgba.png"
    cv2.imwrite(str(rgba), np.full((5, 7, 4), 100, np.uint8))
    for path in (gray, rgba):
        image = read_image(path)
        assert image.shape == (5, 7, 3) and image.dtype == np.uint8


def test_read_image_unicode_path(tmp_path: Path) -> None:
    path = tmp_path / "图像 ü" / "img_1.png"
    path.parent.mkdir()
    ok, buf = cv2.imencode(".png", np.full((4, 4, 3), 9, np.uint8))
    buf.tofile(str(path))
    assert read_image(path).shape == (4, 4, 3)


@pytest.mark.skipif(not ICDAR2015.is_dir(), reason=f"real ICDAR 2015 data not found at {ICDAR2015}")
def test_real_icdar2015_counts() -> None:
    train = load_samples("icdar2015", ICDAR2015, "train")
    test = load_samples("icdar2015", ICDAR2015, "test")
    assert (len(train), len(test)) == (1000, 500)
    assert Path(train[1].image_path).name == "img_2.jpg"
    assert sum(not i.ignore for s in train for i in s.instances) == 4468
    assert sum(not i.ignore for s in test for i in s.instances) == 2077
