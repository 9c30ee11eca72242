"""Seeded baseline-vs-SDET study on the demo's synthetic data and recipe (docs/SDET.md, part a).

Usage: python benchmarks/sdet_synthetic_study.py [--seeds 0,1,2] [--steps 600] [--out runs/sdet_synth_study]

Generates the demo's synthetic set once (seed 0: 400 train / 60 test images), then trains
MV3-DB from scratch with the demo recipe for each variant and seed through `sdet compare`
(resumable: re-running skips finished runs) and prints mean and 95% CI of P/R/F.
The training seed changes initial weights, batch order and augmentation; the data stay fixed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import REPO, SDET_VARIANTS, study_machine_line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", default=str(REPO / "runs" / "sdet_synth_study"))
    parser.add_argument("--variant", action="append", help="override the default variants (NAME:k=v,...)")
    parser.add_argument("overrides", nargs="*", help="key=value overrides for every run (e.g. train.channels_last=false)")
    args = parser.parse_args(argv)

    from sdet.data.synth import generate_dataset
    from sdet.demo import demo_overrides
    from sdet.experiments.compare import parse_seeds, parse_variant, run_comparison

    out = Path(args.out)
    data = out / "data"
    if not (data / "test").exists():
        generate_dataset(data, num_train=400, num_test=60, seed=0)
    common = [o for o in demo_overrides(data, out / "unused", 0, args.steps) if not o.startswith(("train.out_dir", "train.seed"))]
    common += args.overrides
    print(study_machine_line("sdet_synthetic_study", None, common), flush=True)
    run_comparison(None, common, [parse_variant(v) for v in (args.variant or SDET_VARIANTS[:3])],
                   parse_seeds(args.seeds), out, echo=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
