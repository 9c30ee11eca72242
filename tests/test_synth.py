"""The synthetic generator is deterministic, readable by the loaders and labels real ink."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from shapely.geometry import Polygon

from sdet.data.formats import load_samples
from sdet.data.synth import generate_dataset, synth_image
from sdet.errors import UserError


def _files(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_same_files(tmp_path: Path) -> None:
    a = _files(generate_dataset(tmp_path / "a", num_train=4, num_test=2, image_size=(160, 224), seed=7))
    b = _files(generate_dataset(tmp_path / "b", num_train=4, num_test=2, image_size=(160, 224), seed=7))
    c = _files(generate_dataset(tmp_path / "c", num_train=4, num_test=2, image_size=(160, 224), seed=8))
    assert a == b and a != c
    assert "train/images/img_4.jpg" in a and "test/gt/gt_img_2.txt" in a
    # a split's images do not depend on how many images the other split has
    d = _files(generate_dataset(tmp_path / "d", num_train=1, num_test=2, image_size=(160, 224), seed=7))
    assert all(d[k] == a[k] for k in d if k.startswith("test/"))


def test_output_loads_with_readers(tmp_path: Path) -> None:
    root = generate_dataset(tmp_path, num_train=5, num_test=3, seed=1)
    train = load_samples("folder", root, "train")
    test = load_samples("icdar2015", root, "test")
    assert (len(train), len(test)) == (5, 3)
    image = cv2.imread(train[0].image_path)
    assert image.shape == (384, 384, 3)
    for sample in train + test:
        care = [i for i in sample.instances if not i.ignore]
        assert 1 <= len(care) <= 8 and len(sample.instances) - len(care) <= 2
        for inst in sample.instances:
            assert inst.polygon.shape == (4, 2)
            assert inst.polygon.min() >= 0 and inst.polygon.max() <= 383
            assert inst.ignore == (inst.text == "###")
            if not inst.ignore:
                assert 3 <= len(inst.text) <= 10 and inst.text.isalnum()


def test_rerun_replaces_old_output_but_keeps_foreign_files(tmp_path: Path) -> None:
    generate_dataset(tmp_path, num_train=3, num_test=0, image_size=(96, 96), seed=0)
    generate_dataset(tmp_path, num_train=2, num_test=0, image_size=(96, 96), seed=0)
    assert len(load_samples("folder", tmp_path, "train")) == 2
    foreign = tmp_path / "train" / "images" / "mine.png"
    foreign.write_bytes(b"x")
    with pytest.raises(UserError) as info:
        generate_dataset(tmp_path, num_train=2, num_test=0, image_size=(96, 96), seed=0)
    assert info.value.path == str(foreign) and foreign.exists()


@pytest.mark.parametrize("seed", range(8))
def test_quads_cover_text_pixels_and_do_not_overlap(seed: int) -> None:
    sample = synth_image(np.random.default_rng(seed), (256, 320))
    h, w = sample.image.shape[:2]
    changed = np.abs(sample.image.astype(np.int16) - sample.background.astype(np.int16)).max(axis=2) > 60
    covered = np.zeros((h, w), np.uint8)
    care = [i for i in sample.instances if not i.ignore]
    assert care
    for inst in sample.instances:
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.round(inst.polygon).astype(np.int32)], 1)
        cv2.polylines(covered, [np.round(inst.polygon).astype(np.int32)], True, 1, thickness=5)
        covered |= mask
        if not inst.ignore:  # the quad holds ink...
            assert changed[mask.astype(bool)].mean() > 0.1
    assert changed[~covered.astype(bool)].mean() < 0.005  # ...and ink stays in quads
    shapes = [Polygon(i.polygon) for i in sample.instances]
    for k, a in enumerate(shapes):
        assert a.is_valid and a.area > 20
        for b in shapes[k + 1:]:
            assert a.intersection(b).area == 0


def test_rejects_tiny_images(tmp_path: Path) -> None:
    with pytest.raises(UserError):
        generate_dataset(tmp_path, num_train=1, num_test=0, image_size=(32, 32))
