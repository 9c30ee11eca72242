"""Benchmark annotation readers, the dataset registry, N-vertex DB targets and dataset mixing."""
from __future__ import annotations

import importlib.util
import json
import math
import warnings
from pathlib import Path
from typing import List

import cv2
import numpy as np
import pytest

from sdet.config import DataConfig, MixSource, load_config
from sdet.data.datasets import TrainDataset, load_split
from sdet.data.formats import DATASET_READERS, DEFAULT_PROTOCOL, load_samples, parse_data_spec
from sdet.data.mixing import MixedSamples, MixSchedule, block_quotas, load_mix
from sdet.data.readers import icdar2013, icdar2015, totaltext
from sdet.data.readers.common import BadAnnotationWarning, Problems
from sdet.data.readers.td500 import rotated_box
from sdet.errors import UserError
from sdet.metrics import submission
from sdet.metrics.protocols import PROTOCOLS
from sdet.detectors.db.targets import make_db_targets
from helpers import SHARED, write_bytes, write_image

TD500 = SHARED / "data" / "msra-td500"


def _polys(samples) -> List[List[List[float]]]:
    return [[inst.polygon.tolist() for inst in s.instances] for s in samples]


def _bad(call, path: Path, line: int) -> UserError:
    with pytest.raises(UserError) as info:
        call()
    assert info.value.path == str(path) and info.value.line == line, str(info.value)
    assert f"{path}:{line}" in str(info.value)
    return info.value


# --------------------------------------------------------------------------- registry


def test_registry_names_protocols_and_spec() -> None:
    names = {"icdar2013", "icdar2015", "msra-td500", "hust-tr400", "td-tr", "total-text", "casia-10k", "paddle-label", "folder"}
    assert set(DATASET_READERS) == names == set(DEFAULT_PROTOCOL)
    assert set(DEFAULT_PROTOCOL.values()) <= set(PROTOCOLS)
    # TD500 and relatives are scored as DBNet and most papers report them (docs/DATASETS.md)
    assert {DEFAULT_PROTOCOL[n] for n in ("msra-td500", "hust-tr400", "td-tr")} == {"td500-iou"}
    assert parse_data_spec("total-text:/d/a:b") == ("total-text", "/d/a:b")
    with pytest.raises(UserError, match="unknown dataset format 'nope'"):
        parse_data_spec("nope:/x")
    with pytest.raises(UserError, match="NAME:ROOT"):
        parse_data_spec("icdar2015")
    with pytest.raises(UserError, match="dataset root not found"):
        load_samples("msra-td500", "/no/such/root", "train")


def test_icdar2015_reader_uses_the_scorers_line_parser(tmp_path: Path) -> None:
    assert icdar2015.parse_icdar2015_line is submission.parse_icdar2015_line
    gt = write_bytes(tmp_path / "gt_img_1.txt", b'\xef\xbb\xbf1,2,3,4,5,6,7,8,"say \\"hi\\", ok"\r\n0,0,9,0,9,9,0,9,###\r\n')
    first, second = icdar2015.read_icdar2015_gt(gt)[0]
    assert first.text == 'say "hi", ok' and first.polygon.tolist() == [[1, 2], [3, 4], [5, 6], [7, 8]]
    assert second.ignore


# --------------------------------------------------------------------------- ICDAR 2013


def test_icdar2013_official_layout_both_separators_and_escapes(tmp_path: Path) -> None:
    write_image(tmp_path / "Challenge2_Training_Task12_Images" / "100.jpg")
    write_bytes(tmp_path / "Challenge2_Training_Task1_GT" / "gt_100.txt",
           b'158 128 411 181 "Footpath"\n  3 4 10 20   "say \\"hi\\" \\\\o/" \r\n1 2 3 4\n')
    write_image(tmp_path / "Challenge2_Test_Task12_Images" / "img_1.jpg")
    write_bytes(tmp_path / "Challenge2_Test_Task1_GT" / "gt_img_1.txt", b'\xef\xbb\xbf38, 43, 920, 215, "Tiredness"\r\n')
    (train,) = load_samples("icdar2013", tmp_path, "train")
    assert Path(train.image_path).name == "100.jpg"
    assert [i.text for i in train.instances] == ["Footpath", 'say "hi" \\o/', ""]
    assert _polys([train])[0][0] == [[158, 128], [411, 128], [411, 181], [158, 181]]
    assert train.instances[0].polygon.dtype == np.float32 and not any(i.ignore for i in train.instances)
    (test,) = load_samples("icdar2013", tmp_path, "test")
    assert test.instances[0].text == "Tiredness"
    assert _polys([test])[0][0] == [[38, 43], [920, 43], [920, 215], [38, 215]]


@pytest.mark.parametrize("line", ['1 2 3 "x"', "1 2 3 4 5 6", '1 2 3 4 "x" y', '9 2 3 4 "left>right"', '1, 2, 3, x, "a"'])
def test_icdar2013_malformed_lines(tmp_path: Path, line: str) -> None:
    gt = write_bytes(tmp_path / "gt_1.txt", f'1 2 3 4 "ok"\n{line}\n'.encode())
    _bad(lambda: icdar2013.read_gt_file(gt, Problems()), gt, 2)


def test_icdar2013_generic_layout_and_unknown_split(tmp_path: Path) -> None:
    write_image(tmp_path / "val" / "images" / "a.png")
    write_bytes(tmp_path / "val" / "gt" / "gt_a.txt", b'1, 1, 20, 10, "A"\n')
    assert load_samples("icdar2013", tmp_path, "val")[0].instances[0].text == "A"
    with pytest.raises(UserError, match="unknown split 'dev'"):
        load_samples("icdar2013", tmp_path, "dev")


# --------------------------------------------------------------------------- MSRA-TD500 / HUST-TR400


def test_td500_rotation_hand_computed() -> None:
    # w=10, h=4 box at the origin, cos a = 0.8, sin a = 0.6: centre (5, 2); the top-left
    # offset (-5, -2) goes to (-5*0.8 + 2*0.6, -5*0.6 - 2*0.8) = (-2.8, -4.6).
    box = rotated_box(0, 0, 10, 4, math.atan2(0.6, 0.8))
    expected = [[2.2, -2.6], [10.2, 3.4], [7.8, 6.6], [-0.2, 0.6]]
    np.testing.assert_allclose(box, expected, atol=1e-9)
    # a quarter turn takes the top-left corner to the top right: clockwise on screen (y down)
    np.testing.assert_allclose(rotated_box(0, 0, 4, 2, math.pi / 2), [[3, -1], [3, 3], [1, 3], [1, -1]], atol=1e-9)
    # the same corners as OpenCV's rotated rectangle with the angle in degrees
    cv = cv2.boxPoints(((5.0, 2.0), (10.0, 4.0), math.degrees(0.3)))
    ours = rotated_box(0, 0, 10, 4, 0.3)
    np.testing.assert_allclose(sorted(cv.tolist()), sorted(ours.tolist()), atol=1e-4)


def test_td500_difficult_and_malformed(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "IMG_0002.JPG")
    gt = write_bytes(tmp_path / "train" / "IMG_0002.gt", b"0 0 10 20 30 6 0\r\n1 1 0 0 4 2 1.5707963267948966\r\n")
    (sample,) = load_samples("msra-td500", tmp_path, "train")
    assert [i.ignore for i in sample.instances] == [False, True]
    assert sample.instances[0].polygon.tolist() == [[10, 20], [40, 20], [40, 26], [10, 26]]
    np.testing.assert_allclose(sample.instances[1].polygon, [[3, -1], [3, 3], [1, 3], [1, -1]], atol=1e-5)
    for bad in ("0 0 1 2 3 4", "0 2 1 2 3 4 0", "0 0 1 2 3 4 x", "0 0 1 2 -3 4 0"):
        write_bytes(gt, f"0 0 10 20 30 6 0\n{bad}\n".encode())
        _bad(lambda: load_samples("msra-td500", tmp_path, "train"), gt, 2)


def test_hust_tr400_flat_folder_and_td_tr(tmp_path: Path) -> None:
    for split, stem in (("train", "IMG_1"), ("test", "IMG_2")):
        write_image(tmp_path / "MSRA-TD500" / split / f"{stem}.JPG")
        write_bytes(tmp_path / "MSRA-TD500" / split / f"{stem}.gt", b"0 0 1 1 20 8 0\n")
    write_image(tmp_path / "HUST-TR400" / "IMG_9.JPG")
    write_bytes(tmp_path / "HUST-TR400" / "IMG_9.gt", b"0 1 1 1 20 8 0\n")
    assert [Path(s.image_path).name for s in load_samples("hust-tr400", tmp_path / "HUST-TR400", "train")] == ["IMG_9.JPG"]
    with pytest.raises(UserError, match="unknown split"):
        load_samples("hust-tr400", tmp_path / "HUST-TR400", "test")
    train = load_samples("td-tr", tmp_path, "train")
    assert [Path(s.image_path).name for s in train] == ["IMG_1.JPG", "IMG_9.JPG"]
    assert [Path(s.image_path).name for s in load_samples("td-tr", tmp_path, "test")] == ["IMG_2.JPG"]
    with pytest.raises(UserError, match="needs a folder named MSRA-TD500 or TD500"):
        load_samples("td-tr", tmp_path / "HUST-TR400", "train")


@pytest.mark.skipif(not TD500.is_dir(), reason=f"real MSRA-TD500 data not found at {TD500}")
def test_real_msra_td500_train() -> None:
    samples = load_samples("msra-td500", TD500, "train")
    assert len(samples) == 300 and Path(samples[0].image_path).name == "IMG_0030.JPG"
    instances = [i for s in samples for i in s.instances]
    assert (len(instances), sum(i.ignore for i in instances)) == (1068, 101)
    # IMG_0030.gt line 1: "0 0 749 860 47 105 -0.048040" (a vertical line, turned slightly anticlockwise)
    expected = rotated_box(749, 860, 47, 105, -0.048040)
    np.testing.assert_allclose(samples[0].instances[0].polygon, expected, atol=1e-3)
    # IMG_0063 "deli" falls to the right (angle +0.098): its top-right corner lies lower than its top-left
    deli = next(s for s in samples if Path(s.image_path).stem == "IMG_0063").instances[0].polygon
    assert deli[1, 1] > deli[0, 1] + 10


def test_holdout_folds_are_disjoint_cover_the_split_and_ignore_listing_order(tmp_path: Path) -> None:
    for n in (1, 2, 10, 3, 11, 4, 5):
        write_image(tmp_path / "train" / f"IMG_{n}.JPG")
        write_bytes(tmp_path / "train" / f"IMG_{n}.gt", b"0 0 1 1 20 8 0\n")
    names = lambda split: [Path(s.image_path).name for s in load_samples("msra-td500", tmp_path, split)]
    # natural order 1 2 3 4 5 10 11: positions 0, 3, 6 are held out with K=3
    assert names("train/holdout-3") == ["IMG_1.JPG", "IMG_4.JPG", "IMG_11.JPG"]
    assert names("train/without-holdout-3") == ["IMG_2.JPG", "IMG_3.JPG", "IMG_5.JPG", "IMG_10.JPG"]
    assert sorted(names("train/holdout-3") + names("train/without-holdout-3")) == sorted(names("train"))
    cfg = DataConfig(name="msra-td500", root=str(tmp_path), train_split="train/without-holdout-3", val_split="train/holdout-3")
    assert len(load_split(cfg, cfg.train_split)) == 4 and len(load_split(cfg, cfg.val_split)) == 3
    for bad in ("train/holdout-1", "train/holdout-x", "train/holdout5"):
        with pytest.raises(UserError, match="holdout"):
            load_samples("msra-td500", tmp_path, bad)
    with pytest.raises(UserError, match="test: dataset folder not found"):  # the base split is checked as usual
        load_samples("msra-td500", tmp_path, "test/holdout-3")


@pytest.mark.skipif(not TD500.is_dir(), reason=f"real MSRA-TD500 data not found at {TD500}")
def test_real_msra_td500_holdout_5_is_60_images() -> None:
    held = load_samples("msra-td500", TD500, "train/holdout-5")
    kept = load_samples("msra-td500", TD500, "train/without-holdout-5")
    assert (len(held), len(kept)) == (60, 240)
    assert not {s.image_path for s in held} & {s.image_path for s in kept}


# --------------------------------------------------------------------------- Total-Text


LEGACY = (
    "x: [[115 503 494 115]], y: [[322 346 426 404]], ornt: [u'm'], transcriptions: [u'nauGHTY']\r\n"
    "x: [[ 62  96 135 172 218\n"
    "  256 297]], y: [[ 10  12  14  16  18\n"
    "  40 44]], ornt: [u'c'], transcriptions: [u\"Joe's\"]\n"
    "x: [[1 9 9]], y: [[1 1 5]], ornt: [u'#'], transcriptions: [u'#']\n"
)


def test_total_text_legacy_multiline_official_layout(tmp_path: Path) -> None:
    write_image(tmp_path / "Images" / "Train" / "img11.jpg")
    write_bytes(tmp_path / "Groundtruth" / "Text" / "Train" / "poly_gt_img11.txt", LEGACY.encode())
    (sample,) = load_samples("total-text", tmp_path, "train")
    first, curved, dont_care = sample.instances
    assert first.text == "nauGHTY" and first.polygon.tolist() == [[115, 322], [503, 346], [494, 426], [115, 404]]
    assert curved.text == "Joe's" and len(curved.polygon) == 7
    assert curved.polygon[5].tolist() == [256, 40] and curved.polygon[6].tolist() == [297, 44]
    assert dont_care.ignore and not first.ignore and not curved.ignore


def test_total_text_legacy_errors_name_the_record_start(tmp_path: Path) -> None:
    gt = write_bytes(tmp_path / "poly_gt_img1.txt", (LEGACY + "x: [[1 2 3]], y: [[1 2]],\n ornt: [u'h'], transcriptions: [u'a']\n").encode())
    _bad(lambda: totaltext.read_gt_file(gt, Problems()), gt, 6)
    write_bytes(gt, b"x: [[1 2 3]], y: [[1 2 3]], ornt: [u'h'], transcriptions: [nope]\n")
    _bad(lambda: totaltext.read_gt_file(gt, Problems()), gt, 1)


def test_total_text_csv_polygons_db_layout(tmp_path: Path) -> None:
    write_image(tmp_path / "test_images" / "img1.jpg")
    lines = "1,1,10,1,20,5,20,15,10,20,1,15,Hello, world\n2,2,8,2,8,8,2,8,2019\n0,0,5,0,5,5,###\n"
    write_bytes(tmp_path / "test_gts" / "img1.jpg.txt", lines.encode())
    (sample,) = load_samples("total-text", tmp_path, "test")
    six, numeric, dont_care = sample.instances
    assert six.text == "Hello, world" and six.polygon.shape == (6, 2) and six.polygon[4].tolist() == [10, 20]
    assert numeric.text == "2019" and numeric.polygon.shape == (4, 2)
    assert dont_care.ignore and dont_care.polygon.shape == (3, 2)
    gt = tmp_path / "test_gts" / "img1.jpg.txt"
    write_bytes(gt, b"1,1,10,1,word\n")
    _bad(lambda: load_samples("total-text", tmp_path, "test"), gt, 1)


# --------------------------------------------------------------------------- CASIA-10K


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_casia10k_encodings(tmp_path: Path, encoding: str) -> None:
    write_image(tmp_path / "train" / "PAL00003.jpg")
    text = "10,10,50,10,50,30,10,30,中国银行\r\n60,10,90,10,90,30,60,30,###\r\n"
    write_bytes(tmp_path / "train" / "PAL00003.txt", text.encode(encoding))
    (sample,) = load_samples("casia-10k", tmp_path, "train")
    assert [i.text for i in sample.instances] == ["中国银行", "###"]
    assert [i.ignore for i in sample.instances] == [False, True]
    assert sample.instances[0].polygon.tolist() == [[10, 10], [50, 10], [50, 30], [10, 30]]


def test_casia10k_undecodable_line_and_orphan_gt(tmp_path: Path) -> None:
    write_image(tmp_path / "test" / "PAL00001.jpg")
    gt = write_bytes(tmp_path / "test" / "PAL00001.txt", b"1,1,9,1,9,9,1,9,ok\n1,1,9,1,9,9,1,9,\x80\xff\n")
    _bad(lambda: load_samples("casia-10k", tmp_path, "test"), gt, 2)
    write_bytes(gt, b"1,1,9,1,9,9,1,9,ok\n")
    orphan = write_bytes(tmp_path / "test" / "PAL00002.txt", b"1,1,9,1,9,9,1,9,ok\n")
    with pytest.raises(UserError, match="image not found") as info:
        load_samples("casia-10k", tmp_path, "test")
    assert info.value.path == str(orphan)


# --------------------------------------------------------------------------- PaddleOCR labels


def _label_line(image: str, anns) -> str:
    return f"{image}\t{json.dumps(anns, ensure_ascii=False)}\n"


def test_paddle_label_file_and_folder_roots(tmp_path: Path) -> None:
    write_image(tmp_path / "imgs" / "a.jpg")
    write_image(tmp_path / "imgs" / "b.jpg")
    label = write_bytes(tmp_path / "train_icdar2015_label.txt", (
        _label_line("imgs/a.jpg", [
            {"transcription": "曲线", "points": [[1, 1], [5, 0], [9, 1], [9, 5], [5, 4], [1, 5]]},
            {"transcription": "###", "points": [[0, 0], [4, 0], [4, 4], [0, 4]]},
            {"transcription": "*", "points": [[0, 0], [4, 0], [4, 4]]},
        ])
        + _label_line(str(tmp_path / "imgs" / "b.jpg"), [])
    ).encode())
    for root in (tmp_path, label):
        a, b = load_samples("paddle-label", root, "train")
        assert Path(a.image_path) == tmp_path / "imgs" / "a.jpg" and b.instances == []
        assert a.instances[0].text == "曲线" and a.instances[0].polygon.shape == (6, 2)
        assert [i.ignore for i in a.instances] == [False, True, True]
    with pytest.raises(UserError, match="no PaddleOCR label file for split 'test'"):
        load_samples("paddle-label", tmp_path, "test")


@pytest.mark.parametrize("line", [
    "imgs/a.jpg [] no tab",
    "imgs/a.jpg\t[{\"points\": [[1, 1], [2, 2]]",
    "imgs/a.jpg\t{\"points\": []}",
    "imgs/a.jpg\t[{\"transcription\": \"x\", \"points\": [[1, 1], [2, \"y\"], [3, 3]]}]",
    "imgs/a.jpg\t[{\"transcription\": \"x\", \"points\": [[1, 1], [2, 2]]}]",
    "imgs/missing.jpg\t[]",
])
def test_paddle_label_malformed_lines(tmp_path: Path, line: str) -> None:
    write_image(tmp_path / "imgs" / "a.jpg")
    label = write_bytes(tmp_path / "train_label.txt", ("imgs/a.jpg\t[]\n" + line + "\n").encode())
    _bad(lambda: load_samples("paddle-label", tmp_path, "train"), label, 2)


# --------------------------------------------------------------------------- skip_bad, empty, missing


def test_skip_bad_warns_per_line_and_totals(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "IMG_1.JPG")
    write_bytes(tmp_path / "train" / "IMG_1.gt", b"0 0 1 1 9 9 0\nbad\n0 0 1 1 9 9\n0 1 2 2 9 9 0\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        (sample,) = load_samples("msra-td500", tmp_path, "train", skip_bad=True)
    assert len(sample.instances) == 2
    messages = [str(w.message) for w in caught if issubclass(w.category, BadAnnotationWarning)]
    assert len(messages) == 3
    assert "IMG_1.gt:2" in messages[0] and "IMG_1.gt:3" in messages[1]
    assert "skipped 2 bad annotation(s)" in messages[2]


def test_skip_bad_leaves_out_images_without_ground_truth(tmp_path: Path) -> None:
    write_image(tmp_path / "train" / "PAL1.jpg")
    write_image(tmp_path / "train" / "PAL2.jpg")
    write_bytes(tmp_path / "train" / "PAL1.txt", b"1,1,9,1,9,9,1,9,a\n")
    with pytest.raises(UserError, match="no ground-truth file PAL2.txt"):
        load_samples("casia-10k", tmp_path, "train")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert len(load_samples("casia-10k", tmp_path, "train", skip_bad=True)) == 1


@pytest.mark.parametrize("name", ["icdar2013", "msra-td500", "total-text", "casia-10k"])
def test_empty_dataset_is_a_clear_error(tmp_path: Path, name: str) -> None:
    for folder in ("train/images", "train/gt"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    with pytest.raises(UserError, match="empty dataset"):
        load_samples(name, tmp_path, "train")


# --------------------------------------------------------------------------- DB targets with N vertices


def _reference_db_targets():
    spec = importlib.util.spec_from_file_location("reference_db_targets", Path(__file__).parent / "reference_db_targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_db_targets


def test_db_targets_take_polygons_of_any_vertex_count() -> None:
    t = np.linspace(0.0, np.pi, 7)
    outer = np.stack([50 - 40 * np.cos(t), 60 - 40 * np.sin(t)], axis=1)
    inner = np.stack([50 - 25 * np.cos(t[::-1]), 60 - 25 * np.sin(t[::-1])], axis=1)
    arc = np.concatenate([outer, inner])  # a 14-vertex curved band, concave
    hexagon = np.array([[110, 20], [130, 10], [150, 20], [150, 40], [130, 50], [110, 40]], np.float64)
    polygons, ignore = [arc, hexagon, np.array([[5, 90], [40, 85], [30, 95]], np.float64)], [False, False, True]
    maps = make_db_targets(100, 160, polygons, ignore)
    assert maps["shrink_map"][40, 50] == 0  # the hole of the arc
    assert maps["shrink_map"][int(60 - 32 * math.sin(1.0)), int(50 - 32 * math.cos(1.0))] == 1  # on the band
    assert maps["shrink_map"][30, 130] == 1 and maps["threshold_mask"].sum() > 0
    assert maps["shrink_mask"][90, 25] == 0  # don't care
    reference = _reference_db_targets()(100, 160, polygons, ignore)
    for key, value in maps.items():
        np.testing.assert_allclose(value, reference[key], atol=1e-4, err_msg=key)


# --------------------------------------------------------------------------- mixing


def test_block_quotas_sum_and_round() -> None:
    assert block_quotas([1, 2]).tolist() == [333, 667]
    assert block_quotas([0.3, 0.7], 10).tolist() == [3, 7]
    assert block_quotas([1, 1, 1]).sum() == 1000


def test_mix_schedule_deterministic_ratios_and_epochs() -> None:
    sizes, ratios = [7, 50, 3], [2.0, 1.0, 1.0]
    schedule = MixSchedule(sizes, ratios, seed=5)
    positions = range(0, 4000)
    indices = [schedule.index(p) for p in positions]
    again = MixSchedule(sizes, ratios, seed=5)
    assert [again.index(p) for p in reversed(positions)][::-1] == indices  # any order, fresh object
    assert [MixSchedule(sizes, ratios, seed=6).index(p) for p in positions] != indices
    which = np.searchsorted(np.cumsum(sizes), indices, side="right")
    share = np.bincount(which, minlength=3) / len(indices)
    np.testing.assert_allclose(share, [0.5, 0.25, 0.25], atol=0.002)
    # within a dataset, consecutive draws walk through whole epochs (every sample once per epoch)
    small = [i for i in indices if i < 7]
    for start in range(0, len(small) - 7, 7):
        assert sorted(small[start: start + 7]) == list(range(7))
    # roughly mixed inside each batch too, not dataset after dataset
    assert len(set(which[:16])) > 1


def _generic_set(root: Path, stems: List[str]) -> Path:
    for stem in stems:
        write_image(root / "train" / "images" / f"{stem}.jpg", 64, 64)
        write_bytes(root / "train" / "gt" / f"gt_{stem}.txt", b"8,8,40,8,40,30,8,30,w\n")
    return root


def test_mix_config_load_split_and_train_dataset(tmp_path: Path) -> None:
    a = _generic_set(tmp_path / "a", ["a1", "a2"])
    b = _generic_set(tmp_path / "b", ["b1", "b2", "b3"])
    cfg = load_config(None, [f"data.mix=[{{name: folder, root: {a}, ratio: 3}}, {{name: folder, root: {b}}}]"]).data
    assert cfg.mix == [MixSource("folder", str(a), "train", 3.0), MixSource("folder", str(b), "train", 1.0)]
    samples = load_split(cfg, "train")
    assert isinstance(samples, MixedSamples) and samples.sizes == [2, 3] and len(samples) == 5
    dataset = TrainDataset(samples, cfg, "db", seed=0)
    assert dataset.mix is not None
    picks = [Path(samples[dataset.mix.index(p)].image_path).parent.parent.parent.name for p in range(400)]
    assert 0.7 < picks.count("a") / 400 < 0.8
    item = dataset[(3, 0)]
    assert item["image"].shape[0] == 3 and "shrink_map" in item
    with pytest.raises(UserError, match=r"data\.mix\[1\]"):
        load_mix([MixSource("folder", str(a)), MixSource("folder", str(b), ratio=0)])
    with pytest.raises(UserError, match=r"data\.mix\[0\]"):
        load_mix([MixSource("folder", "")])
    plain = DataConfig(name="folder", root=str(a))
    assert not isinstance(load_split(plain, "train"), MixedSamples)
