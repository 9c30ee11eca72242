"""Broken inputs are one-line UserErrors naming the file (and line); odd-but-valid ones decode right."""
from __future__ import annotations

import json
import struct
import warnings
import zlib
from pathlib import Path
from typing import List, Sequence, Tuple

import cv2
import numpy as np
import pytest

from sdet.cli import main
from sdet.config import DataConfig
from sdet.data.check import check_dataset
from sdet.data.datasets import TrainDataset
from sdet.data.formats import load_samples
from sdet.data.images import read_image
from sdet.data.readers.common import DegenerateGeometryWarning, Problems, is_usable
from sdet.data.readers.icdar2015 import read_gt_file
from sdet.deploy.predict_files import predict_with
from sdet.deploy.predictor import Prediction
from sdet.errors import UserError
from helpers import write_bytes, write_image


def _refused(path: Path, *needles: str) -> UserError:
    with pytest.raises(UserError) as info:
        read_image(path)
    assert info.value.path == str(path) and "\n" not in str(info.value)
    for needle in needles:
        assert needle in info.value.message, info.value.message
    return info.value


def _encoded(ext: str, image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def _noise(h: int = 64, w: int = 96) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (h, w, 3), dtype=np.uint8)


# --------------------------------------------------------------------------- images


def test_zero_byte_text_and_directory_are_refused(tmp_path: Path) -> None:
    _refused(write_bytes(tmp_path / "empty.jpg", b""), "the file is empty (0 bytes)")
    _refused(write_bytes(tmp_path / "notes.jpg", b"just some text\n"), "not an image format OpenCV reads", "just some")
    folder = tmp_path / "fake.jpg"
    folder.mkdir()
    _refused(folder, "is a directory, not an image")
    _refused(tmp_path / "missing.png", "image not found")


@pytest.mark.parametrize("ext, needle", [(".jpg", "truncated JPEG"), (".png", "truncated PNG")])
def test_truncated_file_is_refused_not_half_decoded(tmp_path: Path, ext: str, needle: str) -> None:
    data = _encoded(ext, _noise())
    _refused(write_bytes(tmp_path / f"half{ext}", data[: len(data) // 2]), needle)
    # a complete file with bytes after the end (camera trailers, motion photos) still decodes
    assert read_image(write_bytes(tmp_path / f"trailer{ext}", data + b"\x00trailer")).shape == (64, 96, 3)


def test_sixteen_bit_png_is_scaled_by_257_and_rounded(tmp_path: Path) -> None:
    values = np.array([[0, 448, 1000, 32767, 40000, 65279, 65535]], np.uint16)
    expected = np.round(values / 257.0).astype(np.uint8)  # OpenCV's own 8-bit read gives v >> 8: 448 -> 1, not 2
    for name, image in (("gray16.png", values), ("bgra16.png", np.dstack([values] * 4))):
        path = write_bytes(tmp_path / name, _encoded(".png", image))
        decoded = read_image(path)
        assert decoded.shape == (1, 7, 3) and decoded.dtype == np.uint8
        np.testing.assert_array_equal(decoded[..., 0], expected)


def _huffman_codes(bits: Sequence[int], values: Sequence[int]) -> dict:
    """Canonical JPEG Huffman codes: symbol -> (code, length)."""
    codes, code, k = {}, 0, 0
    for length, count in enumerate(bits, start=1):
        for _ in range(count):
            codes[values[k]] = (code, length)
            code, k = code + 1, k + 1
        code <<= 1
    return codes


def cmyk_jpeg(blocks: Sequence[Tuple[int, int, int, int]]) -> bytes:
    """A baseline Adobe CMYK JPEG of flat 8x8 blocks side by side, stored inverted as Photoshop does.

    Quantisation 1 and DC coefficients only, so the decoder sees exactly the given values.
    """
    def segment(marker: int, body: bytes) -> bytes:
        return bytes([0xFF, marker]) + struct.pack(">H", len(body) + 2) + body

    dc_bits, dc_values = [0, 1, 5, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0], list(range(12))
    header = b"\xff\xd8" + segment(0xEE, b"Adobe" + struct.pack(">HHHB", 100, 0, 0, 0))  # transform 0: CMYK
    header += segment(0xDB, b"\x00" + bytes([1] * 64))
    header += segment(0xC0, struct.pack(">BHHB", 8, 8, 8 * len(blocks), 4) + b"".join(bytes([c, 0x11, 0]) for c in range(1, 5)))
    header += segment(0xC4, b"\x00" + bytes(dc_bits) + bytes(dc_values))
    header += segment(0xC4, b"\x10" + bytes([1] + [0] * 15) + b"\x00")  # AC: end-of-block only, code "0"
    header += segment(0xDA, b"\x04" + b"".join(bytes([c, 0x00]) for c in range(1, 5)) + b"\x00\x3f\x00")
    dc = _huffman_codes(dc_bits, dc_values)
    bits, previous = "", [0, 0, 0, 0]
    for block in blocks:
        for c, value in enumerate(block):
            coefficient = 8 * (value - 128)
            diff, previous[c] = coefficient - previous[c], coefficient
            size = abs(diff).bit_length()
            code, length = dc[size]
            bits += format(code, f"0{length}b")
            if size:
                bits += format(diff if diff > 0 else diff + (1 << size) - 1, f"0{size}b")
            bits += "0"
    bits += "1" * (-len(bits) % 8)
    scan = bytes(int(bits[i: i + 8], 2) for i in range(0, len(bits), 8)).replace(b"\xff", b"\xff\x00")
    return header + scan + b"\xff\xd9"


def test_cmyk_jpeg_decodes_to_the_right_colors(tmp_path: Path) -> None:
    # inverted CMYK (255 = no ink): red, green, blue, white, black (K only)
    blocks = [(255, 0, 0, 255), (0, 255, 0, 255), (0, 0, 255, 255), (255, 255, 255, 255), (255, 255, 255, 0)]
    image = read_image(write_bytes(tmp_path / "cmyk.jpg", cmyk_jpeg(blocks)))
    assert image.shape == (8, 40, 3)
    expected_bgr = [(0, 0, 255), (0, 255, 0), (255, 0, 0), (255, 255, 255), (0, 0, 0)]
    for k, bgr in enumerate(expected_bgr):
        np.testing.assert_allclose(image[4, 8 * k + 4].astype(int), bgr, atol=8)


def _png_claiming(width: int, height: int) -> bytes:
    """A tiny well-formed PNG whose IHDR claims ``width`` x ``height`` (its pixel data is one row)."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1))) + chunk(b"IEND", b"")


def test_oversized_image_is_refused_from_its_header(tmp_path: Path) -> None:
    _refused(write_bytes(tmp_path / "huge.png", _png_claiming(20000, 20000)),
             "20000x20000 = 400.0 megapixels", "limit of 100 megapixels", "PNG header, not decoded")
    jpeg = bytearray(_encoded(".jpg", _noise(8, 8)))
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5: sof + 9] = struct.pack(">HH", 20000, 20000)
    _refused(write_bytes(tmp_path / "huge.jpg", bytes(jpeg)), "20000x20000", "JPEG header")


# --------------------------------------------------------------------------- annotations


def test_gt_with_bom_and_crlf_parses(tmp_path: Path) -> None:
    gt = write_bytes(tmp_path / "gt_img_1.txt", "\ufeff1,1,10,1,10,10,1,10,Straße\r\n2,2,8,2,8,8,2,8,###\r\n".encode("utf-8"))
    first, dont_care = read_gt_file(gt, Problems())
    assert first.text == "Straße" and first.polygon.tolist()[0] == [1, 1] and not first.ignore
    assert dont_care.ignore and dont_care.text == "###"


@pytest.mark.parametrize("line, needle", [
    (b"1,2,3,4,5,6,7\n", "expected 8 comma-separated coordinates"),
    (b"1,2,x,4,5,6,7,8,word\n", "coordinate 'x' is not a number"),
])
def test_malformed_gt_line_names_file_and_line(tmp_path: Path, line: bytes, needle: str) -> None:
    gt = write_bytes(tmp_path / "gt_img_1.txt", b"1,1,10,1,10,10,1,10,ok\n" + line)
    with pytest.raises(UserError) as info:
        read_gt_file(gt, Problems())
    assert (info.value.path, info.value.line) == (str(gt), 2) and needle in info.value.message


def test_bow_tie_and_flat_quads_are_noted_and_trained_as_dont_care(tmp_path: Path) -> None:
    gt = write_bytes(tmp_path / "gt_img_1.txt", b"0,0,10,10,10,0,0,10,bow\n5,5,5,5,5,5,5,5,flat\n1,1,10,1,10,10,1,10,ok\n")
    problems = Problems()
    bow, flat, ok = read_gt_file(gt, problems)
    bow_note, flat_note = problems.notes
    assert bow_note.line == 1 and "self-intersects" in bow_note.message and "area" not in bow_note.message
    assert flat_note.line == 2 and "area 0.00" in flat_note.message
    assert not bow.ignore and not flat.ignore  # kept as annotated, so evaluation scores them as the official scripts do
    assert [is_usable(i) for i in (bow, flat, ok)] == [False, False, True]


def _folder_dataset(root: Path, gts: List[bytes], size: Tuple[int, int] = (40, 60)) -> Path:
    for k, gt in enumerate(gts, start=1):
        write_image(root / "train" / "images" / f"img_{k}.jpg", *size)
        write_bytes(root / "train" / "gt" / f"gt_img_{k}.txt", gt)
    return root


def test_degenerate_polygons_warn_once_per_split(tmp_path: Path) -> None:
    root = _folder_dataset(tmp_path / "ds", [b"0,0,10,10,10,0,0,10,bow\n1,1,9,1,9,9,1,9,ok\n"])
    with pytest.warns(DegenerateGeometryWarning, match="1 degenerate polygon.*self-intersects"):
        load_samples("folder", root, "train")


@pytest.mark.parametrize("gts", [[b"", b""], [b"1,1,9,1,9,9,1,9,###\n", b"0,0,10,10,10,0,0,10,bow\n"]])
def test_training_refuses_a_split_without_usable_instance(tmp_path: Path, gts: List[bytes]) -> None:
    root = _folder_dataset(tmp_path / "ds", gts)
    cfg = DataConfig(name="folder", root=str(root))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DegenerateGeometryWarning)
        samples = load_samples("folder", root, "train")
    with pytest.raises(UserError, match=f"no usable text instance in the 2 training images of {root}: "):
        TrainDataset(samples, cfg, "db", seed=0)
    report = check_dataset("folder", str(root), "train")
    assert any("no usable text instance in the 2 images" in p.message for p in report.problems)


def test_check_makes_far_outside_quad_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _folder_dataset(tmp_path / "ds", [b"1,1,20,1,20,10,1,10,in\n-3,5,30,5,30,15,-3,15,edge\n500,500,560,500,560,530,500,530,far\n"])
    report = check_dataset("folder", str(root), "train")
    (problem,) = report.problems
    assert problem.path.endswith("img_1.jpg") and "instance 3 lies outside the 60x40 image (0% of its area inside)" in problem.message
    (note,) = report.notes
    assert "instance 2 has vertices outside" in note.message  # a box cut by the border is only a note
    assert main(["data", "check", f"folder:{root}"]) == 2
    assert "1 problem(s)" in capsys.readouterr().err


# --------------------------------------------------------------------------- predict outputs


def _blank_predictor(image: np.ndarray, with_entropy: bool = False) -> Prediction:
    return Prediction(detections=[], text_map=np.zeros((4, 4), np.float32))


def test_predict_keeps_same_stem_inputs_apart(tmp_path: Path) -> None:
    inputs = [write_image(tmp_path / "in" / "a" / "x.jpg", 8, 8), write_image(tmp_path / "in" / "b" / "x.jpg", 8, 12),
              write_image(tmp_path / "in" / "b" / "x.png", 8, 16)]
    out = tmp_path / "out"
    assert predict_with(_blank_predictor, [str(p) for p in inputs], out) == 3
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.json"))
    assert written == ["a/x.jpg.json", "b/x.jpg.json", "b/x.png.json"]
    assert [json.loads((out / w).read_text())["width"] for w in written] == [8, 12, 16]
    assert (out / "b" / "x.png_overlay.png").is_file()
    # a folder input keeps bare names; the same file named twice is predicted once
    assert predict_with(_blank_predictor, [str(tmp_path / "in" / "b"), str(inputs[1])], tmp_path / "out2") == 2
    assert sorted(p.name for p in (tmp_path / "out2").glob("*.json")) == ["x.jpg.json", "x.png.json"]


def test_predict_refuses_names_differing_only_in_case_and_out_file(tmp_path: Path) -> None:
    upper, lower = write_image(tmp_path / "in" / "X.jpg", 8, 8), write_image(tmp_path / "in" / "x.jpg", 8, 8)
    if upper.samefile(lower):
        pytest.skip("case-insensitive file system")
    with pytest.raises(UserError, match="differ only in case"):
        predict_with(_blank_predictor, [str(upper), str(lower)], tmp_path / "out")
    out_file = write_bytes(tmp_path / "out.txt", b"keep me")
    with pytest.raises(UserError, match="--out names an existing file, not a folder") as info:
        predict_with(_blank_predictor, [str(upper)], out_file)
    assert info.value.path == str(out_file) and out_file.read_bytes() == b"keep me"
