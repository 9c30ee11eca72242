"""DB label generation: fast vectorised version == slow literal official reference."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
from shapely.geometry import Polygon

from sdet.detectors.db.targets import dilate_polygon, make_db_targets, shrink_distance, shrink_polygon
from helpers import SHARED

HERE = Path(__file__).resolve().parent
GT_DIR = SHARED / "data" / "icdar2015" / "ch4_training_localization_transcription_gt"
MAPS = ("shrink_map", "shrink_mask", "threshold_map", "threshold_mask")
TOL = 1e-4


def _load_reference():
    spec = importlib.util.spec_from_file_location("reference_db_targets", HERE / "reference_db_targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_db_targets


reference_db_targets = _load_reference()


def read_icdar_gt(path: Path) -> tuple[list[np.ndarray], list[bool]]:
    """``x1,y1,...,x4,y4,text`` lines; the text may hold commas; ``###`` = ignore."""
    polygons, ignore = [], []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        parts = line.strip().split(",")
        if len(parts) < 9:
            continue
        polygons.append(np.array([float(v) for v in parts[:8]]).reshape(4, 2))
        ignore.append(",".join(parts[8:]) == "###")
    return polygons, ignore


def assert_same(height: int, width: int, polygons, ignore, **kwargs) -> dict[str, np.ndarray]:
    fast = make_db_targets(height, width, polygons, ignore, **kwargs)
    ref = reference_db_targets(height, width, polygons, ignore, **kwargs)
    for name in MAPS:
        assert fast[name].shape == (height, width) and fast[name].dtype == np.float32, name
        assert not np.isnan(fast[name]).any(), name
        diff = float(np.abs(fast[name] - ref[name]).max())
        assert diff <= TOL, f"{name}: max abs diff {diff}"
    return fast


# ---------------------------------------------------------------- random polygons


def _star(rng: np.random.Generator, center, radius: float, n: int) -> np.ndarray:
    """Simple (non-self-intersecting) polygon: sorted angles, jittered radii."""
    angles = np.sort(rng.uniform(0, 2 * np.pi, n))
    radii = radius * rng.uniform(0.5, 1.0, n)
    return np.stack([center[0] + radii * np.cos(angles), center[1] + radii * np.sin(angles)], axis=1)


def _random_polygon(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    kind = rng.choice(["quad", "rect", "poly", "outside", "tiny", "degenerate", "tangled"])
    center = rng.uniform([0, 0], [width, height])
    if kind == "outside":  # centre near a border or corner, partly off the image
        center = np.array([rng.choice([rng.uniform(-15, 15), rng.uniform(width - 15, width + 15)]),
                           rng.choice([rng.uniform(-15, 15), rng.uniform(height - 15, height + 15)])])
        return _star(rng, center, rng.uniform(10, 50), int(rng.integers(3, 9)))
    if kind == "quad":
        return _star(rng, center, rng.uniform(8, 60), 4)
    if kind == "rect":
        size = (float(rng.uniform(8, 120)), float(rng.uniform(4, 40)))
        return cv2.boxPoints(((float(center[0]), float(center[1])), size, float(rng.uniform(-90, 90)))).astype(np.float64)
    if kind == "poly":
        return _star(rng, center, rng.uniform(8, 70), int(rng.integers(5, 15)))
    if kind == "tangled":  # unsorted vertices: usually self-intersecting
        return center + rng.uniform(-40, 40, (int(rng.integers(4, 9)), 2))
    if kind == "tiny":
        return _star(rng, center, rng.uniform(1, 6), int(rng.integers(3, 7)))
    # degenerate: collinear, a repeated point, or a duplicated vertex
    choice = int(rng.integers(3))
    if choice == 0:
        t = np.sort(rng.uniform(0, 1, 4))[:, None]
        return center + t * rng.uniform(-50, 50, 2)
    if choice == 1:
        return np.repeat(center[None], 4, axis=0)
    quad = _star(rng, center, rng.uniform(10, 50), 4)
    return np.insert(quad, 2, quad[1], axis=0)


def _random_case(seed: int) -> tuple[int, int, list[np.ndarray], list[bool]]:
    rng = np.random.default_rng(seed)
    height, width = int(rng.integers(64, 200)), int(rng.integers(64, 240))
    polygons = [_random_polygon(rng, height, width) for _ in range(int(rng.integers(1, 9)))]
    if rng.random() < 0.4:  # integer annotations, as in ICDAR files
        polygons = [np.round(p) for p in polygons]
    ignore = [bool(rng.random() < 0.15) for _ in polygons]
    return height, width, polygons, ignore


@pytest.mark.parametrize("block", range(6))
def test_random_polygons_match_reference(block: int) -> None:
    for seed in range(block * 60, block * 60 + 60):
        height, width, polygons, ignore = _random_case(seed)
        assert_same(height, width, polygons, ignore)


def test_other_parameters_match_reference() -> None:
    for seed in range(20):
        height, width, polygons, ignore = _random_case(1000 + seed)
        assert_same(height, width, polygons, ignore, shrink_ratio=0.6, min_text_size=4, thresh_min=0.2, thresh_max=0.9)


# ---------------------------------------------------------------- ICDAR2015 annotations


def _gt_files(count: int) -> list[Path]:
    if not GT_DIR.is_dir():
        pytest.skip(f"shared ICDAR2015 training GT not found at {GT_DIR}")
    return [GT_DIR / f"gt_img_{k}.txt" for k in range(1, count + 1)]


def test_icdar2015_annotations_match_reference() -> None:
    for path in _gt_files(12):
        polygons, ignore = read_icdar_gt(path)
        assert_same(720, 1280, polygons, ignore)


def test_icdar2015_augmented_crops_match_reference() -> None:
    """Float coordinates after a random scale/rotate and a 640x640 crop, as in training:
    many polygons are cut by the border, where the official NaN quirk shows up."""
    rng = np.random.default_rng(7)
    for path in _gt_files(8):
        polygons, ignore = read_icdar_gt(path)
        angle = np.deg2rad(rng.uniform(-10, 10))
        rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]) * rng.uniform(0.6, 1.5)
        shift = rng.uniform([-500, -200], [0, 0])
        moved = [p @ rot.T + shift for p in polygons]
        assert_same(640, 640, moved, ignore)


def test_read_icdar_gt_keeps_commas_and_ignore(tmp_path: Path) -> None:
    gt = tmp_path / "gt.txt"
    gt.write_text("\ufeff1,2,30,2,30,20,1,20,a,b\n5,5,9,5,9,9,5,9,###\n", encoding="utf-8")
    polygons, ignore = read_icdar_gt(gt)
    assert ignore == [False, True]
    assert polygons[0].tolist() == [[1, 2], [30, 2], [30, 20], [1, 20]]


# ---------------------------------------------------------------- official quirks, explicitly


def test_distance_uses_nearest_endpoint_outside_thales_circle() -> None:
    """Pixel (21, 15) is 5 px above the top edge of a 20x40 box, but outside the circle on
    that edge, so the official formula takes the corner distance sqrt(1 + 25)."""
    rect = np.array([[20, 20], [40, 20], [40, 60], [20, 60]], dtype=np.float64)
    maps = assert_same(80, 80, [rect], [False])
    d = shrink_distance(rect, 0.4)
    assert d == pytest.approx(800 * 0.84 / 120)
    expected = 0.3 + 0.4 * (1 - np.sqrt(26.0) / d)
    assert maps["threshold_map"][15, 21] == pytest.approx(expected, abs=1e-6)
    assert maps["threshold_map"][15, 30] == pytest.approx(0.3 + 0.4 * (1 - 5 / d), abs=1e-6)  # inside: true distance


def test_zero_length_edge_leaves_its_vertex_pixel_unraised() -> None:
    """Two vertices clipped onto corner (0, 0) make a zero-length edge; the official formula
    is NaN there, so the polygon does not raise the threshold map at that pixel."""
    poly = np.array([[-10, -4], [-4, -10], [60, 3], [55, 55], [3, 60]], dtype=np.float64)
    maps = assert_same(100, 100, [poly], [False])
    assert maps["threshold_map"][0, 0] == pytest.approx(0.3)
    assert maps["threshold_map"][0, 1] > 0.65


# ---------------------------------------------------------------- properties


def test_properties_on_random_cases() -> None:
    for seed in range(40):
        height, width, polygons, ignore = _random_case(5000 + seed)
        # the first pieces of a split shrink and dilation need not nest: simple polygons only
        keep = [Polygon(p).is_valid for p in polygons]
        polygons = [p for p, k in zip(polygons, keep) if k]
        ignore = [i for i, k in zip(ignore, keep) if k]
        before = [p.copy() for p in polygons]
        maps = make_db_targets(height, width, polygons, ignore)
        assert all(np.array_equal(a, b) for a, b in zip(before, polygons)), "inputs modified"
        thr = maps["threshold_map"]
        assert thr.min() >= 0.3 - 1e-6 and thr.max() <= 0.7 + 1e-6
        assert np.all(maps["threshold_mask"][maps["shrink_map"] > 0] == 1), "shrink_map outside threshold_mask"
        for name in ("shrink_map", "shrink_mask", "threshold_mask"):
            assert set(np.unique(maps[name]).tolist()) <= {0.0, 1.0}, name


def test_ignored_and_tiny_polygons_are_masked_out() -> None:
    text = np.array([[10, 10], [90, 10], [90, 40], [10, 40]], dtype=np.float64)
    ignored = np.array([[10, 60], [90, 60], [90, 90], [10, 90]], dtype=np.float64)
    tiny = np.array([[120, 20], [180, 20], [180, 26], [120, 26]], dtype=np.float64)  # 6 px high
    maps = make_db_targets(100, 200, [text, ignored, tiny], [False, True, False])
    for poly in (ignored, tiny):
        inside = np.zeros((100, 200), np.uint8)
        cv2.fillPoly(inside, [poly.astype(np.int32)], 1)
        inside = inside.astype(bool)
        assert np.all(maps["shrink_mask"][inside] == 0)
        assert np.all(maps["shrink_map"][inside] == 0)
        assert np.all(maps["threshold_mask"][inside] == 0)  # no border map for ignored ones
        assert np.allclose(maps["threshold_map"][inside], 0.3)
    assert maps["shrink_map"][25, 50] == 1 and maps["shrink_mask"][25, 50] == 1
    relaxed = make_db_targets(100, 200, [tiny], [False], min_text_size=4)
    assert relaxed["shrink_map"].sum() > 0 and relaxed["shrink_mask"].min() == 1


def test_polygon_whose_shrink_vanishes_is_ignored() -> None:
    strip = np.array([[5, 5], [45, 5], [45, 7], [5, 7]], dtype=np.float64)
    maps = assert_same(20, 50, [strip], [False], min_text_size=1)
    assert maps["shrink_map"].sum() == 0 and maps["shrink_mask"][6, 20] == 0
    assert maps["threshold_mask"].sum() == 0


def test_empty_image() -> None:
    maps = make_db_targets(30, 40, [], [])
    assert maps["shrink_map"].sum() == 0 and maps["shrink_mask"].min() == 1
    assert np.allclose(maps["threshold_map"], 0.3) and maps["threshold_mask"].sum() == 0


def test_bad_input_is_rejected() -> None:
    with pytest.raises(ValueError):
        make_db_targets(10, 10, [np.zeros((2, 2))], [False])
    with pytest.raises(ValueError):
        make_db_targets(10, 10, [np.zeros((4, 2))], [])


def test_shrink_and_dilate_helpers() -> None:
    rect = np.array([[0, 0], [100, 0], [100, 40], [0, 40]], dtype=np.float64)
    assert shrink_distance(rect, 0.4) == pytest.approx(12.0)  # 4000 * 0.84 / 280
    shrunk = shrink_polygon(rect, 0.4)
    assert shrunk is not None
    assert shrunk.min(axis=0).tolist() == [12, 12] and shrunk.max(axis=0).tolist() == [88, 28]
    grown = dilate_polygon(rect, 1.5)  # D = 4000 * 1.5 / 280 ~ 21.4
    assert grown is not None
    assert grown.min(axis=0).tolist() == [-21, -21] and grown.max(axis=0).tolist() == [121, 61]
    assert shrink_polygon(np.array([[0, 0], [40, 0], [40, 2], [0, 2]]), 0.4) is None  # 2 px: vanishes
    assert shrink_polygon(np.array([[0, 0], [5, 0], [5, 0]]), 0.4) is None  # zero area
