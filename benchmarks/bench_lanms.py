"""Time EAST's locality-aware NMS on 10,000 candidate quads shaped like a real EAST output.

Usage: python benchmarks/bench_lanms.py [--candidates 10000] [--repeat 15] [--reference-repeat 1] [--overlap]

The candidates come from a synthetic 1280x736 image with text lines of mixed
sizes and angles, several sharing rows: every score-map pixel (stride 4) inside a
shrunk line predicts that line's rectangle with a few pixels of noise, exactly as
an EAST head would, and the rows come in raster order. The fast LA-NMS runs on one
thread; a naive O(N^2) Python version with one shapely IoU per pair (the reference
``locality_aware_nms.py`` algorithm) runs side by side on the same input, and the
two outputs are compared.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

from common import REPO, machine_line  # noqa: E402  (puts the repository on sys.path)

from sdet.detectors.east.postprocess import (  # noqa: E402
    EASTPostProcessConfig,
    decode_candidates,
    east_postprocess,
    locality_aware_nms,
)

STRIDE = 4
INPUT_HW = (736, 1280)


def _line_geometry(origins: np.ndarray, center, size, angle) -> np.ndarray:
    """Distances top, right, bottom, left and angle from each origin to one rotated rectangle."""
    (cx, cy), (w, h) = center, size
    dx, dy = origins[:, 0] - cx, origins[:, 1] - cy
    cos, sin = np.cos(angle), np.sin(angle)
    lx, ly = cos * dx - sin * dy, sin * dx + cos * dy  # image -> rectangle frame
    return np.stack([ly + h / 2, w / 2 - lx, h / 2 - ly, lx + w / 2, np.full_like(lx, angle)])


def synthetic_maps(count: int, seed: int = 0, overlap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """EAST score (H, W) and RBOX geometry (5, H, W) maps with at least ``count`` text pixels.

    Lines may share rows but not overlap, as in scene text; ``overlap`` lets them
    cross each other, a harder case that sends many more pairs to the exact IoU.
    """
    import cv2

    rng = np.random.default_rng(seed)
    h, w = INPUT_HW[0] // STRIDE, INPUT_HW[1] // STRIDE
    score = np.zeros((h, w), np.float32)
    geo = np.zeros((5, h, w), np.float32)
    ys, xs = np.mgrid[0:h, 0:w]
    origins = np.stack([xs.ravel(), ys.ravel()], 1).astype(np.float64) * STRIDE
    taken = np.zeros((h, w), np.uint8)
    covered = 0
    for _ in range(100 * count):  # placements that collide are retried; the page may fill up
        if covered >= count:
            break
        height = rng.uniform(12, 48)
        width = height * rng.uniform(3, 12)
        angle = float(rng.choice([0.0, rng.uniform(-0.5, 0.5)]))
        center = (rng.uniform(width / 3, INPUT_HW[1] - width / 3), rng.uniform(height, INPUT_HW[0] - height))
        shrink = 0.3 * height  # EAST shrinks each edge by 0.3 of the short side
        middle = (center[0] / STRIDE, center[1] / STRIDE)
        rect = (middle, ((width - 2 * shrink) / STRIDE, (height - 2 * shrink) / STRIDE), -np.degrees(angle))
        full = (middle, (width / STRIDE + 2, height / STRIDE + 2), rect[2])
        outline = np.zeros((h, w), np.uint8)
        cv2.fillPoly(outline, [np.round(cv2.boxPoints(full)).astype(np.int32)], 1)
        if not overlap and (outline & taken).any():
            continue
        taken |= outline
        mask = np.zeros((h, w), np.uint8)
        cv2.fillPoly(mask, [np.round(cv2.boxPoints(rect)).astype(np.int32)], 1)
        inside = (mask.ravel() > 0) & (score.ravel() == 0)
        if not inside.any():
            continue
        line = _line_geometry(origins[inside], center, (width, height), angle)
        line[:4] += rng.normal(0, 0.04 * height + 0.5, line[:4].shape)  # a few pixels of noise
        line[4] += rng.normal(0, 0.02, line.shape[1])
        idx = np.flatnonzero(inside)
        geo.reshape(5, -1)[:, idx] = line
        score.ravel()[idx] = rng.uniform(0.81, 1.0, len(idx))
        covered += len(idx)
    if covered < count:
        raise SystemExit(f"bench_lanms: only {covered} candidates fit on a {INPUT_HW} image; ask for fewer")
    return score, geo


def synthetic_candidates(count: int, seed: int = 0, overlap: bool = False) -> np.ndarray:
    """(count, 9) candidates in raster order: jittered quads clustered on text lines."""
    score, geo = synthetic_maps(count, seed, overlap)
    return decode_candidates(score, geo, 0.8, STRIDE)[:count]


def load_reference():
    """The plain LA-NMS the tests check sdet's against (tests/reference_lanms.py)."""
    spec = importlib.util.spec_from_file_location("reference_lanms", REPO / "tests" / "reference_lanms.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ref_lanms


def _time(fn, repeat: int) -> list[float]:
    times = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=10000)
    parser.add_argument("--thresh", type=float, default=0.2)
    parser.add_argument("--repeat", type=int, default=15, help="timed runs of the fast LA-NMS; the median is shown")
    parser.add_argument("--reference-repeat", type=int, default=1, help="timed runs of the naive version")
    parser.add_argument("--overlap", action="store_true", help="let text lines cross (stress case)")
    args = parser.parse_args(argv)

    score, geo = synthetic_maps(args.candidates, overlap=args.overlap)
    quads = decode_candidates(score, geo, 0.8, STRIDE)[: args.candidates]
    print(machine_line("bench_lanms", 1))
    locality_aware_nms(quads, args.thresh)  # warm-up
    fast = _time(lambda: locality_aware_nms(quads, args.thresh), args.repeat)
    naive_lanms = load_reference()
    naive = _time(lambda: naive_lanms(quads, args.thresh), args.reference_repeat)
    out_fast, out_naive = locality_aware_nms(quads, args.thresh), naive_lanms(quads, args.thresh)
    same = out_fast.shape == out_naive.shape and np.allclose(out_fast, out_naive, rtol=1e-6, atol=1e-6)
    median = statistics.median(fast) * 1e3
    layout = "crossing" if args.overlap else "separate"
    print(f"bench_lanms: {len(quads)} candidates on {layout} text lines -> {len(out_fast)} quads, "
          f"threshold {args.thresh}")
    print(f"bench_lanms: fast LA-NMS median {median:.2f} ms (min {min(fast) * 1e3:.2f}, "
          f"max {max(fast) * 1e3:.2f}, {len(fast)} runs); goal < 20 ms: {'met' if median < 20 else 'NOT met'}")
    print(f"bench_lanms: naive Python/shapely median {statistics.median(naive) * 1e3:.1f} ms "
          f"({len(naive)} runs); speed-up x{statistics.median(naive) * 1e3 / median:.0f}")
    print(f"bench_lanms: outputs identical (to 1e-6): {same}")
    cfg = EASTPostProcessConfig()
    full = _time(lambda: east_postprocess(score, geo, INPUT_HW, INPUT_HW, cfg), max(3, args.repeat // 3))
    print(f"bench_lanms: whole east_postprocess on those maps ({int((score > 0.8).sum())} candidates): "
          f"median {statistics.median(full) * 1e3:.2f} ms")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
