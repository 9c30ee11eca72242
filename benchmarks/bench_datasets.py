"""Dataset tooling and protocol speed: reading/checking 1,000 images' annotations, scoring 500 images under every protocol.

Usage: python benchmarks/bench_datasets.py [--repeat 3]

Reading: the ICDAR2015 training split (1,000 images) through the dataset registry
(`load_samples`) and through `sdet data check` without decoding images
(`check_dataset(..., decode_images=False)`; with decoding the time is JPEG decoding).
Scoring: the 500-image ICDAR2015 test ground truth and the `ppocrv4-det` submission of
../shared/eval-cases, read once, then scored by each protocol of
`sdet.metrics.protocols.PROTOCOLS` on the same polygons (goal: each under 5 s).
Needs the shared data beside the repository (../shared); says so and exits 0 when absent.
"""
from __future__ import annotations

import argparse
import sys
import time
from typing import Callable

from common import ICDAR2015, SHARED, machine_line

CASE_DIR = SHARED / "eval-cases" / "icdar2015" / "ppocrv4-det"
GT_DIR = ICDAR2015 / "Challenge4_Test_Task1_GT"


def best_of(repeat: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(max(1, repeat)):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs each; the best is shown")
    args = parser.parse_args(argv)
    if not ICDAR2015.is_dir() or not CASE_DIR.is_dir():
        print(f"bench_datasets: skipped, needs {ICDAR2015} and {CASE_DIR}")
        return 0

    from sdet.data.check import check_dataset
    from sdet.data.formats import load_samples
    from sdet.metrics.protocols import PROTOCOLS
    from sdet.metrics.submission import read_gt_folder, read_result_folder

    print(machine_line("bench_datasets", 1))
    root = str(ICDAR2015)
    samples = load_samples("icdar2015", root, "train")
    t_read = best_of(args.repeat, lambda: load_samples("icdar2015", root, "train"))
    t_check = best_of(args.repeat, lambda: check_dataset("icdar2015", root, "train", decode_images=False))
    print(f"  read icdar2015 train ({len(samples)} images, annotations): {t_read:.3f} s; "
          f"data check without image decoding: {t_check:.3f} s (goal < 2 s)")

    gt = read_gt_folder(GT_DIR)
    det = read_result_folder(CASE_DIR, set(gt))
    print(f"  scoring {len(gt)} images, {sum(map(len, det.values()))} detections (best of {args.repeat}):")
    for name, evaluate in PROTOCOLS.items():
        result = evaluate(gt, det)
        seconds = best_of(args.repeat, lambda: evaluate(gt, det))
        print(f"    {name:<15} {seconds:7.3f} s   hmean {result.hmean:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
