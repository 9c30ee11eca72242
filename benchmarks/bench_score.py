"""Time ``sdet score`` on the 500-image ICDAR2015 ``ppocrv4-det`` case (reading + evaluating).

Usage: python benchmarks/bench_score.py [--repeat N]
Needs the shared data beside the repository (../shared); says so and exits 0 when it is absent.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GT_DIR = SHARED / "data" / "icdar2015" / "Challenge4_Test_Task1_GT"
CASE_DIR = SHARED / "eval-cases" / "icdar2015"
CASE = "ppocrv4-det"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best and the first are shown")
    args = parser.parse_args(argv)
    if not GT_DIR.is_dir() or not (CASE_DIR / CASE).is_dir():
        print(f"bench_score: skipped, shared ICDAR2015 data not found under {SHARED}")
        return 0

    sys.path.insert(0, str(REPO))
    from sdet.metrics.submission import score_folders

    times = []
    for _ in range(max(1, args.repeat)):
        start = time.perf_counter()
        result = score_folders(GT_DIR, CASE_DIR / CASE)
        times.append(time.perf_counter() - start)
    expected = json.loads((CASE_DIR / "expected.json").read_text())["cases"][CASE]
    print(f"bench_score: icdar2015 {CASE}, {len(result.per_image)} images: "
          f"first {times[0]:.3f} s, best {min(times):.3f} s of {len(times)}")
    print(f"bench_score: hmean {result.hmean:.6f} (official {expected['hmean']:.6f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
