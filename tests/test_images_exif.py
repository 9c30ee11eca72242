"""EXIF orientation (issue #12): datasets read raw pixels, `sdet predict` reads upright and says so."""
from __future__ import annotations

import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from sdet.config import DataConfig
from sdet.data.check import check_dataset
from sdet.data.datasets import EvalDataset
from sdet.data.formats import load_samples
from sdet.data.images import exif_orientation, open_image, read_image
from sdet.deploy.predict_files import predict_with
from sdet.deploy.predictor import Prediction
from helpers import write_bytes


def exif_app1(orientation: int, order: str = ">") -> bytes:
    """An APP1 segment holding a one-entry IFD0: Orientation (tag 0x0112, SHORT)."""
    mark = b"MM" if order == ">" else b"II"
    tiff = mark + struct.pack(order + "HI", 42, 8) + struct.pack(order + "H", 1)
    tiff += struct.pack(order + "HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack(order + "I", 0)
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload


def write_exif_jpeg(path: Path, image: np.ndarray, orientation: int, order: str = ">") -> Path:
    """``image`` as a JPEG whose EXIF Orientation tag is ``orientation`` (APP1 right after SOI)."""
    ok, buf = cv2.imencode(".jpg", image)
    assert ok
    data = buf.tobytes()
    return write_bytes(path, data[:2] + exif_app1(orientation, order) + data[2:])


def raw_picture() -> np.ndarray:
    """200 wide, 100 high, with a distinct corner so that any rotation or mirroring shows."""
    image = np.full((100, 200, 3), 40, np.uint8)
    image[:30, :60] = (255, 255, 255)
    return image


def test_exif_orientation_value_both_byte_orders(tmp_path: Path) -> None:
    assert exif_orientation(write_exif_jpeg(tmp_path / "be.jpg", raw_picture(), 6)) == 6
    assert exif_orientation(write_exif_jpeg(tmp_path / "le.jpg", raw_picture(), 3, "<")) == 3
    plain = tmp_path / "plain.jpg"
    cv2.imwrite(str(plain), raw_picture())
    assert exif_orientation(plain) == 1


@pytest.mark.parametrize("value", range(1, 9))
def test_exif_policy_matches_opencv(tmp_path: Path, value: int) -> None:
    path = write_exif_jpeg(tmp_path / f"o{value}.jpg", raw_picture(), value)
    buf = np.fromfile(str(path), np.uint8)
    upright = open_image(path, orientation="exif")
    np.testing.assert_array_equal(upright.pixels, cv2.imdecode(buf, cv2.IMREAD_COLOR))
    np.testing.assert_array_equal(read_image(path, orientation="raw"), cv2.imdecode(buf, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION))
    assert upright.frame == ("raw" if value == 1 else "exif-rotated")


def test_unknown_orientation_policy_is_refused(tmp_path: Path) -> None:
    path = write_exif_jpeg(tmp_path / "a.jpg", raw_picture(), 6)
    with pytest.raises(ValueError, match="orientation"):
        open_image(path, orientation="auto")  # type: ignore[arg-type]


@pytest.fixture()
def rotated_dataset(tmp_path: Path) -> Path:
    """A ``folder`` dataset: one 200x100 raw JPEG tagged Orientation=6, a box that fits only the raw frame."""
    root = tmp_path / "ds"
    write_exif_jpeg(root / "test" / "images" / "img_1.jpg", raw_picture(), 6)
    write_bytes(root / "test" / "gt" / "gt_img_1.txt", b"120,20,190,20,190,80,120,80,wide\n")
    return root


def test_dataset_reads_raw_frame_and_check_notes_orientation(rotated_dataset: Path) -> None:
    samples = load_samples("folder", rotated_dataset, "test")
    item = EvalDataset(samples, DataConfig())[0]
    assert item["shape"].tolist() == [100, 200]  # H x W of the raw grid the box refers to
    report = check_dataset("folder", str(rotated_dataset), "test")
    assert report.problems == []
    (note,) = report.notes
    assert note.path == samples[0].image_path and "EXIF orientation 6" in note.message and "raw 200x100" in note.message


def test_check_says_when_a_box_fits_only_the_rotated_frame(rotated_dataset: Path) -> None:
    gt = write_bytes(rotated_dataset / "test" / "gt" / "gt_img_1.txt", b"10,120,90,120,90,180,10,180,tall\n")
    report = check_dataset("folder", str(rotated_dataset), "test")
    (problem,) = report.problems
    assert "instance 1 lies outside the 200x100 image" in problem.message
    assert "fits the 100x200 EXIF-rotated frame (orientation 6)" in problem.message, (problem, gt)


def test_predict_reads_upright_and_states_the_frame(rotated_dataset: Path, tmp_path: Path) -> None:
    seen = []

    def predictor(image: np.ndarray, with_entropy: bool = False) -> Prediction:
        seen.append(image.shape)
        return Prediction(detections=[], text_map=np.zeros((4, 4), np.float32))

    image = rotated_dataset / "test" / "images" / "img_1.jpg"
    assert predict_with(predictor, [str(image)], tmp_path / "out") == 1
    assert seen == [(200, 100, 3)]
    record = json.loads((tmp_path / "out" / "img_1.jpg.json").read_text())
    assert (record["frame"], record["exif_orientation"], record["width"], record["height"]) == ("exif-rotated", 6, 100, 200)
