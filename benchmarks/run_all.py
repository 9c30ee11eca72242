"""`make bench`: every speed benchmark in turn, each in its own process (the long studies are separate).

Usage: python benchmarks/run_all.py [--only NAME ...]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    "bench_db_targets.py",
    "bench_score.py",
    "bench_datasets.py",
    "bench_lanms.py",
    "bench_inference.py",
    "bench_paddle_inference.py",
    "bench_train_throughput.py",
    "bench_method_step.py",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", help="benchmark file names to run")
    args = parser.parse_args(argv)
    failed = []
    for name in args.only or BENCHMARKS:
        print(f"\n=== {name}", flush=True)
        if subprocess.run([sys.executable, str(HERE / name)], cwd=HERE).returncode != 0:
            failed.append(name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
