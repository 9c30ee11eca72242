"""SDET's training overhead and inference cost, measured side by side with the baseline.

Usage: python benchmarks/bench_sdet_step.py [--config configs/icdar2015/mv3_db.yaml]
       [--size 512] [--batch 8] [--rounds 6] [--threads 2]

Training step time: the baseline and SDET types A, B and C at P3 each get their own
detector, method and optimiser (same initial weights); steps are run round-robin, one per
variant per round, so load changes on the machine hit every variant alike. The first
round is warm-up. Peak memory: each variant runs a few steps in a fresh subprocess and
reports its peak resident memory above the resident memory before the first step.
Inference: the detector an SDET run trains and the baseline detector are timed round-robin
on a 1312x736 input; their graphs are identical, so the ratio must be 1.00 within noise.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import Dict, List

from common import REPO, current_rss_mb, machine_line, peak_rss_mb, reset_peak_rss

VARIANTS: Dict[str, List[str]] = {
    "baseline": ["method.name=baseline"],
    "sdet-A@P3": ["method.name=sdet", "method.options.aux_type=A", "method.options.level=P3"],
    "sdet-B@P3": ["method.name=sdet", "method.options.aux_type=B", "method.options.level=P3"],
    "sdet-C@P3": ["method.name=sdet", "method.options.aux_type=C", "method.options.level=P3"],
}


def build_variant(config: str, overrides: List[str], seed: int = 0):
    import torch

    from sdet.config import load_config
    from sdet.engine.optim import build_optimizer
    from sdet.losses import build_loss
    from sdet.methods import MethodContext, build_method
    from sdet.models.detector import build_detector

    cfg = load_config(config, overrides)
    torch.manual_seed(seed)
    detector = build_detector(cfg.model).train()
    method = build_method(cfg.method, MethodContext(detector, build_loss(cfg), 1000)).train()
    optimizer = build_optimizer(list(detector.parameters()) + list(method.parameters()), cfg.train)
    return detector, method, optimizer


def make_batch(batch: int, size: int, seed: int = 0):
    """A DB batch with text-like statistics (20% positive pixels); values do not affect timing."""
    import torch

    g = torch.Generator().manual_seed(seed)
    shrink = (torch.rand(batch, size, size, generator=g) > 0.8).float()
    return {
        "image": torch.randn(batch, 3, size, size, generator=g),
        "shrink_map": shrink, "shrink_mask": torch.ones_like(shrink), "text_mask": shrink,
        "threshold_map": 0.3 + 0.4 * torch.rand(batch, size, size, generator=g),
        "threshold_mask": torch.ones_like(shrink),
    }


def train_step(method, optimizer, batch) -> float:
    optimizer.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    loss = sum(method(batch, 10).values())
    loss.backward()
    optimizer.step()
    return time.perf_counter() - t0


def memory_of(variant: str, args: argparse.Namespace) -> float:
    """Peak RSS (MiB) of three training steps above the RSS of the built variant, in a fresh process."""
    cmd = [sys.executable, __file__, "--memory-of", variant, "--config", args.config, "--size", str(args.size),
           "--batch", str(args.batch), "--threads", str(args.threads)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO / "benchmarks").stdout
    return json.loads(out.strip().splitlines()[-1])["step_peak_mb"]


def measure_memory(variant: str, args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    _, method, optimizer = build_variant(args.config, VARIANTS[variant] + [f"data.image_size={args.size}"])
    batch = make_batch(args.batch, args.size)
    # Measured from before the first step: with sdet's malloc settings freed memory stays in the
    # heap, so after one step the RSS already holds the step's peak and later steps add ~nothing.
    # The difference thus covers activations, gradients and the optimiser state of each variant.
    before = current_rss_mb()
    if not reset_peak_rss():
        before = 0.0
    for _ in range(3):
        train_step(method, optimizer, batch)
    print(json.dumps({"variant": variant, "rss_before_mb": before, "step_peak_mb": peak_rss_mb() - before}))


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "configs/icdar2015/mv3_db.yaml"))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds after one warm-up round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    from sdet.engine.runtime import tune_glibc_malloc
    from sdet.models.detector import InferenceModel

    tune_glibc_malloc()
    if args.memory_of:
        measure_memory(args.memory_of, args)
        return 0
    torch.set_num_threads(args.threads)
    print(machine_line("bench_sdet_step", args.threads))
    print(f"bench_sdet_step: {args.config}, input {args.size}x{args.size}, batch {args.batch}, "
          f"{args.rounds} timed rounds (+1 warm-up), round-robin")
    variants = {name: build_variant(args.config, o + [f"data.image_size={args.size}"]) for name, o in VARIANTS.items()}
    batch = make_batch(args.batch, args.size)
    times: Dict[str, List[float]] = {name: [] for name in variants}
    for round_index in range(args.rounds + 1):
        for name, (_, method, optimizer) in variants.items():
            seconds = train_step(method, optimizer, batch)
            if round_index > 0:
                times[name].append(seconds)
    base_time = statistics.median(times["baseline"])
    memory = {name: memory_of(name, args) for name in variants}
    print(f"  {'variant':<10} {'step s (median)':>15} {'/ baseline':>10} {'step peak MiB':>14} {'/ baseline':>10}")
    for name in variants:
        t = statistics.median(times[name])
        print(f"  {name:<10} {t:15.3f} {t / base_time:10.3f} {memory[name]:14.0f} {memory[name] / memory['baseline']:10.3f}")

    baseline_net = InferenceModel(variants["baseline"][0]).eval()
    sdet_net = InferenceModel(variants["sdet-A@P3"][0]).eval()
    x = torch.randn(1, 3, 736, 1312)
    infer: Dict[str, List[float]] = {"baseline": [], "sdet": []}
    with torch.inference_mode():
        for i in range(args.rounds + 1):
            for name, net in (("baseline", baseline_net), ("sdet", sdet_net)):
                t0 = time.perf_counter()
                net(x)
                if i > 0:
                    infer[name].append(time.perf_counter() - t0)
    b, s = statistics.median(infer["baseline"]), statistics.median(infer["sdet"])
    same = list(baseline_net.state_dict()) == list(sdet_net.state_dict())
    print(f"  inference 1312x736: baseline {b * 1e3:.1f} ms, SDET-trained {s * 1e3:.1f} ms, ratio {s / b:.3f} "
          f"(state_dict keys identical: {same})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
