"""MV3-DB or MV3-EAST training throughput at 512x512 (--size), batch 8, and the share of step time spent waiting for data.

Usage: python benchmarks/bench_train_throughput.py [--model db,east] [--steps 30] [--workers 2] [--data NAME:ROOT]
                                                   [--config FILE] [--size 512] [--threads 2]
                                                   [--layouts channels_last,contiguous]

Runs sdet's own Trainer (data-loader workers doing decode, augmentation and labels) on
ICDAR2015 training images when ../shared/data/icdar2015 exists, else on a synthetic set
generated at 1280x720. The trainer logs, per logging window, the share of wall time the
loop waited on the loader; the first window (start-up, first batches) is reported apart.
`--model east` trains configs/icdar2015/mv3_east.yaml (RBOX labels in the workers, the
EAST loss on the stride-4 maps); `--model db,east` measures both, one after the other;
`--config` picks any other config. Each config trains once per memory layout of --layouts
(train.channels_last on/off, side by side in one run) and the step-time ratio is printed.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import List

from common import ICDAR2015, REPO, machine_line

CONFIGS = {"db": REPO / "configs/icdar2015/mv3_db.yaml", "east": REPO / "configs/icdar2015/mv3_east.yaml"}


LAYOUTS = {"channels_last": "true", "contiguous": "false"}


def measure(config: str, name: str, root: str, layout: str, args: argparse.Namespace, tmp: Path) -> float:
    """Train `args.steps` steps of `config`, print throughput and data-wait share; return s/step."""
    from sdet.config import load_config
    from sdet.engine.trainer import Trainer
    from sdet.experiments.compare import train_records

    run = tmp / f"run_{Path(config).stem}_{layout}"
    cfg = load_config(config, [
        f"data.name={name}", f"data.root={root}", f"data.image_size={args.size}", f"data.num_workers={args.workers}",
        "train.batch_size=8", f"train.max_steps={args.steps}", f"train.log_every={args.window}",
        "train.eval_every=0", f"train.save_every={args.steps}", f"train.threads={args.threads}",
        f"train.out_dir={run}", f"train.channels_last={LAYOUTS[layout]}",
    ])
    t0 = time.time()
    Trainer(cfg, progress=False).run()
    wall = time.time() - t0
    windows = train_records(run / "log.jsonl")
    steady = windows[1:] or windows
    share = statistics.mean(r["data_wait_share"] for r in steady)
    step_s = statistics.mean(r["sec_per_step"] for r in steady)
    print(f"  {config} ({layout}): {name} data, {args.size}x{args.size}, batch 8, {args.workers} loader workers, {args.steps} steps")
    print(f"  steady state {step_s:.2f} s/step -> {8 / step_s:.2f} img/s (wall {wall:.1f} s incl. start-up)")
    print(f"  data-wait share: first window {windows[0]['data_wait_share']:.1%}, steady state {share:.1%} "
          f"(mean of {len(steady)} windows of {args.window} steps)", flush=True)
    return step_s


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--window", type=int, default=5, help="steps per logging window")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--size", type=int, default=512, help="training crop side")
    parser.add_argument("--model", default="db", help=f"comma-separated detector families of {sorted(CONFIGS)} (default db)")
    parser.add_argument("--config", help="config file (default: configs/icdar2015/mv3_<model>.yaml for each model)")
    parser.add_argument("--data", help="NAME:ROOT (default: shared ICDAR2015, else synthetic)")
    parser.add_argument("--layouts", default="channels_last,contiguous", help=f"comma-separated of {sorted(LAYOUTS)}")
    args = parser.parse_args(argv)
    models = [m.strip() for m in args.model.split(",") if m.strip()]
    unknown = [m for m in models if m not in CONFIGS]
    if unknown:
        parser.error(f"unknown --model {unknown}; choose from {sorted(CONFIGS)}")
    configs = [args.config] if args.config else [str(CONFIGS[m]) for m in models]
    layouts = [l.strip() for l in args.layouts.split(",") if l.strip()]
    if not layouts or any(l not in LAYOUTS for l in layouts):
        parser.error(f"--layouts takes a comma-separated list of {sorted(LAYOUTS)}")

    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            name, root = args.data.split(":", 1)
        elif ICDAR2015.is_dir():
            name, root = "icdar2015", str(ICDAR2015)
        else:
            from sdet.data.synth import generate_dataset

            name, root = "folder", str(Path(tmp) / "synth")
            generate_dataset(Path(root), num_train=64, num_test=1, image_size=(720, 1280), seed=0)
        print(machine_line("bench_train_throughput", args.threads))
        for config in configs:
            step_s = {layout: measure(config, name, root, layout, args, Path(tmp)) for layout in layouts}
            if len(step_s) == 2:
                print(f"  step time contiguous / channels_last: {step_s['contiguous'] / step_s['channels_last']:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
