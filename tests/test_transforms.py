"""Augmentation keeps pixels and polygons aligned; test-time resize matches PaddleOCR."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from sdet.config import AugmentConfig as TrainAugmentConfig
from sdet.data.sample import TextInstance
from sdet.data.transforms import (
    PipelineConfig,
    Compose,
    RandomFlip,
    RandomRotate,
    RandomScale,
    TextRandomCrop,
    augment_for_training,
    build_augmentation,
    choose_crop,
    clip_instances,
    normalize,
    resize_for_test,
)
from sdet.errors import UserError

MARK = (0, 0, 255)  # pure red in BGR: the only red thing in the test images


def _marked_image(poly: np.ndarray, h: int = 240, w: int = 320) -> np.ndarray:
    image = np.zeros((h, w, 3), np.uint8)
    image[:, :, 1] = 60  # non-zero background so padding/rotation borders differ from it
    cv2.fillPoly(image, [np.round(poly).astype(np.int32)], MARK)
    return image


def _iou_with_mark(image: np.ndarray, poly: np.ndarray) -> float:
    painted = (image[:, :, 2] > 127) & (image[:, :, 1] < 40)
    drawn = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(drawn, [np.round(poly).astype(np.int32)], 1)
    drawn = drawn.astype(bool)
    union = np.logical_or(painted, drawn).sum()
    return float(np.logical_and(painted, drawn).sum() / max(union, 1))


POLY = np.array([[70, 60], [210, 75], [205, 135], [65, 120]], np.float32)

STEPS = {
    "flip": RandomFlip(prob=1.0),
    "rotate": RandomRotate(degrees=(8.0, 8.0)),
    "rotate_neg": RandomRotate(degrees=(-10.0, -10.0)),
    "scale_up": RandomScale(scale_range=(2.3, 2.3)),
    "scale_down": RandomScale(scale_range=(0.6, 0.6)),
    "crop": TextRandomCrop(size=(256, 256)),
    "crop_stretch": TextRandomCrop(size=(200, 300), keep_ratio=False),
}


@pytest.mark.parametrize("name", sorted(STEPS))
def test_single_step_keeps_polygon_on_its_pixels(name: str) -> None:
    image = _marked_image(POLY)
    out, instances = Compose([STEPS[name]])(image, [TextInstance(POLY, "word")], np.random.default_rng(1))
    assert len(instances) == 1 and not instances[0].ignore
    assert _iou_with_mark(out, instances[0].polygon) > 0.9


@pytest.mark.parametrize("seed", range(6))
def test_full_pipeline_keeps_alignment(seed: int) -> None:
    cfg = PipelineConfig(color_enabled=False, crop_size=(256, 256))
    image = _marked_image(POLY)
    out, instances = build_augmentation(cfg)(image, [TextInstance(POLY, "word")], np.random.default_rng(seed))
    assert out.shape == (256, 256, 3)
    assert len(instances) == 1
    assert _iou_with_mark(out, instances[0].polygon) > 0.9


def test_flip_keeps_clockwise_order_from_top_left() -> None:
    quad = np.array([[10, 20], [50, 20], [50, 40], [10, 40]], np.float32)
    _, (inst,) = Compose([RandomFlip(1.0)])(np.zeros((60, 100, 3), np.uint8), [TextInstance(quad)], np.random.default_rng(0))
    np.testing.assert_allclose(inst.polygon, [[49, 20], [89, 20], [89, 40], [49, 40]])


def test_crop_keeps_text_and_uses_fixed_size() -> None:
    rng = np.random.default_rng(0)
    polys = [np.array([[x, y], [x + 40, y], [x + 40, y + 15], [x, y + 15]], np.float32)
             for x, y in [(20, 30), (200, 50), (120, 160), (400, 300), (600, 600)]]
    instances = [TextInstance(p, "t") for p in polys] + [TextInstance(polys[0] + 5, "###", True)]
    image = np.full((720, 1280, 3), 90, np.uint8)
    crop = Compose([TextRandomCrop(size=(320, 320), max_tries=50)])
    for _ in range(30):
        out, kept = crop(image, instances, rng)
        assert out.shape == (320, 320, 3)
        assert any(not i.ignore for i in kept)
        for inst in kept:  # everything returned lies on the output image
            assert inst.polygon.min() >= 0 and inst.polygon.max() <= 319


def test_choose_crop_never_cuts_care_text() -> None:
    rng = np.random.default_rng(3)
    polys = [np.array([[x, 40], [x + 30, 40], [x + 30, 60], [x, 60]], np.float32) for x in (10, 80, 150, 220)]
    for _ in range(50):
        x, y, w, h = choose_crop(polys, 300, 300, 0.1, 50, rng)
        for p in polys:
            inside = p[:, 0].min() >= x and p[:, 0].max() <= x + w and p[:, 1].min() >= y and p[:, 1].max() <= y + h
            outside = p[:, 0].max() < x or p[:, 0].min() > x + w or p[:, 1].max() < y or p[:, 1].min() > y + h
            assert inside or outside


def test_crop_without_care_text_uses_whole_image() -> None:
    ignore_only = [np.array([[5, 5], [20, 5], [20, 9], [5, 9]], np.float32)]
    assert choose_crop([], 100, 200, 0.1, 50, np.random.default_rng(0)) == (0, 0, 200, 100)
    out, kept = Compose([TextRandomCrop(size=(100, 100))])(
        np.full((100, 200, 3), 77, np.uint8), [TextInstance(ignore_only[0], "###", True)], np.random.default_rng(0)
    )
    assert out.shape == (100, 100, 3) and (out[:50] == 77).all() and (out[50:] == 0).all()
    assert len(kept) == 1 and kept[0].ignore


def test_clip_instances_drops_outside_and_ignores_mostly_cut() -> None:
    inside = TextInstance(np.array([[10, 10], [40, 10], [40, 20], [10, 20]]))
    mostly_out = TextInstance(np.array([[90, 10], [130, 10], [130, 20], [90, 20]]))
    gone = TextInstance(np.array([[150, 10], [180, 10], [180, 20], [150, 20]]))
    kept = clip_instances([inside, mostly_out, gone], 100, 100, 0.5)
    assert [k.ignore for k in kept] == [False, True]
    assert kept[1].polygon[:, 0].max() == 99


def test_same_seed_same_output_and_input_untouched() -> None:
    rng_img = np.random.default_rng(5)
    image = rng_img.integers(0, 255, (300, 400, 3), dtype=np.uint8)
    instances = [TextInstance(POLY, "a"), TextInstance(POLY + 100, "###", True)]
    before = [i.polygon.copy() for i in instances]
    aug = build_augmentation(PipelineConfig(crop_size=(192, 192)))
    a_img, a_inst = aug(image, instances, np.random.default_rng(42))
    b_img, b_inst = aug(image, instances, np.random.default_rng(42))
    c_img, _ = aug(image, instances, np.random.default_rng(43))
    assert np.array_equal(a_img, b_img) and not np.array_equal(a_img, c_img)
    assert len(a_inst) == len(b_inst)
    for x, y in zip(a_inst, b_inst):
        assert np.array_equal(x.polygon, y.polygon) and x.ignore == y.ignore and x.text == y.text
    for inst, poly in zip(instances, before):
        assert np.array_equal(inst.polygon, poly)


def test_color_jitter_changes_pixels_not_geometry() -> None:
    cfg = PipelineConfig(flip_enabled=False, rotate_enabled=False, scale_enabled=False, crop_enabled=False)
    image = np.full((50, 60, 3), (40, 120, 200), np.uint8)
    out, (inst,) = build_augmentation(cfg)(image, [TextInstance(POLY / 4)], np.random.default_rng(0))
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_allclose(inst.polygon, POLY / 4)


def test_resize_for_test_modes() -> None:
    image = np.zeros((720, 1280, 3), np.uint8)
    out, (rh, rw) = resize_for_test(image, "short_side")
    assert out.shape[:2] == (736, 1312)
    assert rh == pytest.approx(736 / 720) and rw == pytest.approx(1312 / 1280)
    out, _ = resize_for_test(image, "long_side", 960)
    assert out.shape[:2] == (544, 960)
    out, ratios = resize_for_test(image, "fixed", 640)
    assert out.shape[:2] == (640, 640) and ratios == pytest.approx((640 / 720, 0.5))
    small, _ = resize_for_test(np.zeros((20, 30, 3), np.uint8), "long_side")
    assert small.shape[:2] == (32, 32)
    big, _ = resize_for_test(np.zeros((1000, 1500, 3), np.uint8), "short_side")
    assert big.shape[:2] == (992, 1504)  # no downscale, only rounding to /32
    assert resize_for_test(image, "fixed", (320, 480))[0].shape[:2] == (320, 480)
    # DBNet's keep-ratio resize: height exactly, width rounded up to /32, down or up
    td500, (rh, rw) = resize_for_test(np.zeros((864, 1296, 3), np.uint8), "height", 736)
    assert td500.shape[:2] == (736, 1120) and rh == pytest.approx(736 / 864) and rw == pytest.approx(1120 / 1296)
    assert resize_for_test(np.zeros((400, 300, 3), np.uint8), "height", 800)[0].shape[:2] == (800, 608)
    with pytest.raises(UserError, match="unknown test resize mode"):
        resize_for_test(image, "bogus")
    with pytest.raises(UserError):
        resize_for_test(image, "fixed")
    with pytest.raises(UserError):
        resize_for_test(image, "height")


def test_normalize_channel_conventions() -> None:
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0] = 255  # pure blue in BGR
    rgb = normalize(image)
    assert rgb.shape == (3, 2, 3) and rgb.dtype == np.float32
    assert rgb[2, 0, 0] == pytest.approx((1 - 0.406) / 0.225, rel=1e-5)
    assert rgb[0, 0, 0] == pytest.approx(-0.485 / 0.229, rel=1e-5)
    bgr = normalize(image, to_rgb=False)
    assert bgr[0, 0, 0] == pytest.approx((1 - 0.485) / 0.229, rel=1e-5)


@pytest.mark.parametrize("crop", [True, False])
def test_augment_for_training_gives_fixed_size(crop: bool) -> None:
    cfg = TrainAugmentConfig(crop=crop, color_jitter=0.0)
    image = _marked_image(POLY, 300, 500)
    for seed in range(4):
        out, polys, ignore = augment_for_training(image, [POLY], [False], cfg, 128, np.random.default_rng(seed))
        assert out.shape == (128, 128, 3)
        assert len(polys) == len(ignore) == 1 and ignore == [False]
        assert _iou_with_mark(out, polys[0]) > 0.85
