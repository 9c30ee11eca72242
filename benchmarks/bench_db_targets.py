"""Time DB label generation: sdet's vectorised version vs the literal official algorithm.

Usage: python benchmarks/bench_db_targets.py [--images 50] [--repeat 5] [--scale 1.0]
Runs on the annotations of the first ICDAR2015 training images (1280x720), single-threaded.
Needs the shared data beside the repository (../shared); says so and exits 0 when it is absent.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Callable  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GT_DIR = SHARED / "data" / "icdar2015" / "ch4_training_localization_transcription_gt"
HEIGHT, WIDTH = 720, 1280
MAPS = ("shrink_map", "shrink_mask", "threshold_map", "threshold_mask")

Annotation = tuple[list[np.ndarray], list[bool]]


def read_icdar_gt(path: Path) -> Annotation:
    """``x1,y1,...,x4,y4,text`` lines; the text may hold commas; ``###`` = ignore."""
    polygons, ignore = [], []
    for line in path.read_text(encoding="utf-8-sig").splitlines():
        parts = line.strip().split(",")
        if len(parts) >= 9:
            polygons.append(np.array([float(v) for v in parts[:8]]).reshape(4, 2))
            ignore.append(",".join(parts[8:]) == "###")
    return polygons, ignore


def load_reference() -> Callable[..., dict]:
    spec = importlib.util.spec_from_file_location("reference_db_targets", REPO / "tests" / "reference_db_targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.reference_db_targets


def time_round(fn: Callable[..., dict], annotations: list[Annotation], height: int, width: int) -> float:
    """Seconds per image for one pass over all annotations."""
    start = time.perf_counter()
    for polygons, ignore in annotations:
        fn(height, width, polygons, ignore)
    return (time.perf_counter() - start) / len(annotations)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50, help="first N training annotation files")
    parser.add_argument("--repeat", type=int, default=5, help="timed rounds per implementation (interleaved)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="scale image and polygons, e.g. 2 to mimic DB's 0.5-3x training resize")
    args = parser.parse_args(argv)
    if not GT_DIR.is_dir():
        print(f"bench_db_targets: skipped, shared ICDAR2015 training GT not found at {GT_DIR}")
        return 0

    sys.path.insert(0, str(REPO))
    from sdet.detectors.db.targets import make_db_targets

    cv2.setNumThreads(1)
    files = [GT_DIR / f"gt_img_{k}.txt" for k in range(1, args.images + 1)]
    annotations = [read_icdar_gt(path) for path in files if path.is_file()]
    annotations = [([p * args.scale for p in polys], ign) for polys, ign in annotations]
    height, width = round(HEIGHT * args.scale), round(WIDTH * args.scale)
    reference = load_reference()

    worst = 0.0
    for polygons, ignore in annotations:  # also warms both up
        fast, ref = make_db_targets(height, width, polygons, ignore), reference(height, width, polygons, ignore)
        worst = max(worst, max(float(np.abs(fast[k] - ref[k]).max()) for k in MAPS))

    times: dict[str, list[float]] = {"fast": [], "reference": []}
    for _ in range(max(1, args.repeat)):
        times["fast"].append(time_round(make_db_targets, annotations, height, width))
        times["reference"].append(time_round(reference, annotations, height, width))

    n_polys = sum(len(p) for p, _ in annotations)
    n_cared = sum(len(p) - sum(i) for p, i in annotations)
    print(f"bench_db_targets: {len(annotations)} ICDAR2015 training images at {width}x{height}, "
          f"{n_polys / len(annotations):.1f} polygons/image ({n_cared / len(annotations):.1f} not ignored), "
          f"1 thread, {len(times['fast'])} rounds")
    for name, values in times.items():
        print(f"  {name:9s}  best {min(values) * 1e3:7.3f} ms/image   median {statistics.median(values) * 1e3:7.3f} ms/image")
    ratio_best = min(times["reference"]) / min(times["fast"])
    ratio_median = statistics.median(times["reference"]) / statistics.median(times["fast"])
    print(f"  speed-up  best {ratio_best:.2f}x   median {ratio_median:.2f}x")
    print(f"  max abs difference over all maps: {worst:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
