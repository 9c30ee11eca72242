"""Training cost of every training method, and SDET's inference cost, side by side with the baseline.

Usage: python benchmarks/bench_method_step.py [--variants sdet|methods|all|NAME,NAME]
       [--config configs/icdar2015/mv3_db.yaml] [--size 512] [--batch 8] [--rounds 6] [--threads 2]
       [--layout channels_last|contiguous]

Variant sets: `sdet` (default) is the baseline and SDET types A, B and C at P3; `methods` is the
baseline, SDET A@P3 and every other method (byot, sad, dsn, soft_target, fitnets, ka, skd); `all`
is both. Ratios are only comparable within one run, so the baseline is always included.

A step is the trainer's own: each variant is built by `Trainer._build` (same initial student
weights, the method's modules, one optimiser over detector + `method.optimized_parameters()`,
the trainer's memory layout: channels_last on CPU unless `--layout contiguous`) and stepped by
`Trainer._train_step` (forward, method losses, backward, optimiser step, then
`method.after_step`, where SKD trains its discriminator). Steps run round-robin, one per
variant per round, so load changes on the machine hit every variant alike; the first round is
warm-up. Every variant is timed in its steady state, at the middle of the schedule: SAD's term
(on only from 2/3 of the schedule) is switched on with start_step=0, KA runs its stage 2 (frozen
encoder, adapters trained: 97% of the schedule; in stage 1 the autoencoder trains and the
student gets L_det only), FitNets its default single stage.

Teacher-based methods (soft_target, fitnets, ka, skd) share one frozen R50-DB teacher
(configs/icdar2015/r50_db.yaml), eval mode, no gradients, same layout, with random weights: a
forward pass costs the same whatever the weights are, so no trained teacher is needed. Its
forward is part of the student's step time, as in training.

Peak memory: each variant runs three steps in a fresh subprocess and reports its peak resident
memory above the resident memory of the built variant (activations, gradients, optimiser state,
the teacher's forward; the teacher's weights are part of the build and listed apart).
Inference (when SDET A@P3 is among the variants): the detector an SDET run trains and the
baseline detector are timed round-robin on a 1312x736 input; their graphs are identical, so the
ratio must be 1.00 within noise.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Tuple

from common import REPO, current_rss_mb, machine_line, peak_rss_mb, reset_peak_rss

if TYPE_CHECKING:
    import torch

    from sdet.engine.trainer import Trainer
    from sdet.models.detector import Detector

TEACHER_CONFIG = REPO / "configs/icdar2015/r50_db.yaml"
SDET = "sdet-A@P3"
# variant -> (method.name, method.options overrides); options not named keep the method's defaults
VARIANTS: Dict[str, Tuple[str, Dict[str, object]]] = {
    "baseline": ("baseline", {}),
    **{f"sdet-{t}@P3": ("sdet", {"aux_type": t, "level": "P3"}) for t in "ABC"},
    "byot": ("byot", {}),
    "sad": ("sad", {"start_step": 0}),  # time the term switched on (by default from 2/3 of the schedule)
    "dsn": ("dsn", {}),
    "soft_target": ("soft_target", {}),
    "fitnets": ("fitnets", {}),  # default: one stage (hint term)
    "ka": ("ka", {"ae_steps": 0}),  # stage 2, the steady state
    "skd": ("skd", {}),
}
SETS: Dict[str, List[str]] = {
    "sdet": ["baseline", "sdet-A@P3", "sdet-B@P3", "sdet-C@P3"],
    "methods": ["baseline", SDET, "byot", "sad", "dsn", "soft_target", "fitnets", "ka", "skd"],
    "all": list(VARIANTS),
}


def parse_variants(spec: str) -> List[str]:
    """A set name or comma-separated variant names; the baseline always comes first."""
    names = SETS.get(spec) or [n.strip() for n in spec.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        raise SystemExit(f"bench_method_step: unknown variant(s) {unknown}; sets {list(SETS)}, names {list(VARIANTS)}")
    return ["baseline"] + [n for n in dict.fromkeys(names) if n != "baseline"]


def needs_teacher(variant: str) -> bool:
    from sdet.methods import method_class

    return method_class(VARIANTS[variant][0]).needs_teacher


def overrides(variant: str, args: argparse.Namespace) -> List[str]:
    name, options = VARIANTS[variant]
    return [f"method.name={name}", *(f"method.options.{k}={v}" for k, v in options.items()),
            f"data.image_size={args.size}", "train.device=cpu", f"train.threads={args.threads}",
            f"train.channels_last={args.layout == 'channels_last'}"]


def build_teacher(layout: str) -> Detector:
    """The shared frozen R50-DB teacher, prepared as the trainer prepares a loaded one."""
    import torch

    from sdet.config import load_config
    from sdet.engine.trainer import frozen_teacher
    from sdet.models.detector import build_detector

    torch.manual_seed(0)
    teacher = build_detector(load_config(str(TEACHER_CONFIG)).model)
    return frozen_teacher(teacher, torch.device("cpu"), layout == "channels_last")


def build_variant(variant: str, args: argparse.Namespace, teacher: Optional[Detector]) -> Trainer:
    """The trainer of one variant, built as `sdet train` builds it; teacher-based methods get `teacher`."""
    from sdet.config import load_config
    from sdet.engine.trainer import Trainer

    class BenchTrainer(Trainer):
        def _load_teacher(self):  # the shared in-memory teacher instead of a checkpoint file
            return teacher if needs_teacher(variant) else None

    trainer = BenchTrainer(load_config(args.config, overrides(variant, args)), progress=False)
    trainer._build()
    trainer.detector.train()
    trainer.method.train()
    trainer.step = trainer.cfg.train.max_steps // 2  # past warm-up, every method in its steady state
    return trainer


def make_batch(batch: int, size: int, seed: int = 0) -> Dict[str, torch.Tensor]:
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


def train_step(trainer: Trainer, batch: Dict[str, torch.Tensor]) -> float:
    t0 = time.perf_counter()
    trainer._train_step(batch)
    return time.perf_counter() - t0


def param_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def memory_of(variant: str, args: argparse.Namespace) -> float:
    """Peak RSS (MiB) of three training steps above the RSS of the built variant, in a fresh process."""
    cmd = [sys.executable, __file__, "--memory-of", variant, "--config", args.config, "--size", str(args.size),
           "--batch", str(args.batch), "--threads", str(args.threads), "--layout", args.layout]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=REPO / "benchmarks").stdout
    return json.loads(out.strip().splitlines()[-1])["step_peak_mb"]


def measure_memory(variant: str, args: argparse.Namespace) -> None:
    teacher = build_teacher(args.layout) if needs_teacher(variant) else None
    trainer = build_variant(variant, args, teacher)
    batch = make_batch(args.batch, args.size)
    # Measured from before the first step: with sdet's malloc settings freed memory stays in the
    # heap, so after one step the RSS already holds the step's peak and later steps add ~nothing.
    # The difference thus covers activations, gradients and the optimiser state of each variant.
    before = current_rss_mb()
    if not reset_peak_rss():
        before = 0.0
    for _ in range(3):
        train_step(trainer, batch)
    print(json.dumps({"variant": variant, "rss_before_mb": before, "step_peak_mb": peak_rss_mb() - before}))


def time_steps(trainers: Dict[str, Trainer], batch: Dict[str, torch.Tensor], rounds: int) -> Dict[str, float]:
    """Median step seconds per variant, round-robin, after one warm-up round."""
    times: Dict[str, List[float]] = {name: [] for name in trainers}
    for round_index in range(rounds + 1):
        for name, trainer in trainers.items():
            seconds = train_step(trainer, batch)
            if round_index > 0:
                times[name].append(seconds)
    return {name: statistics.median(t) for name, t in times.items()}


def time_inference(baseline: Detector, sdet: Detector, args: argparse.Namespace) -> None:
    import torch

    from sdet.models.detector import InferenceModel

    nets = {"baseline": InferenceModel(baseline).eval(), "sdet": InferenceModel(sdet).eval()}
    x = torch.randn(1, 3, 736, 1312)
    if args.layout == "channels_last":  # as `sdet eval/predict` feed it on CPU
        x = x.contiguous(memory_format=torch.channels_last)
    infer: Dict[str, List[float]] = {name: [] for name in nets}
    with torch.inference_mode():
        for i in range(args.rounds + 1):
            for name, net in nets.items():
                t0 = time.perf_counter()
                net(x)
                if i > 0:
                    infer[name].append(time.perf_counter() - t0)
    b, s = statistics.median(infer["baseline"]), statistics.median(infer["sdet"])
    same = list(nets["baseline"].state_dict()) == list(nets["sdet"].state_dict())
    print(f"  inference 1312x736: baseline {b * 1e3:.1f} ms, SDET-trained {s * 1e3:.1f} ms, ratio {s / b:.3f} "
          f"(state_dict keys identical: {same})")


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default="sdet", help=f"a set ({', '.join(SETS)}) or names, comma-separated")
    parser.add_argument("--config", default=str(REPO / "configs/icdar2015/mv3_db.yaml"))
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds after one warm-up round")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layout", choices=["channels_last", "contiguous"], default="channels_last",
                        help="CPU memory layout of weights and inputs (the trainer's default: channels_last)")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    from sdet.engine.runtime import tune_glibc_malloc

    tune_glibc_malloc()
    torch.set_num_threads(args.threads)
    if args.memory_of:
        measure_memory(args.memory_of, args)
        return 0
    variants = parse_variants(args.variants)
    print(machine_line("bench_method_step", args.threads))
    print(f"bench_method_step: {args.config}, input {args.size}x{args.size}, batch {args.batch}, {args.layout}, "
          f"{args.rounds} timed rounds (+1 warm-up), round-robin over {len(variants)} variants", flush=True)
    teacher: Optional[Detector] = None
    if any(needs_teacher(v) for v in variants):
        teacher = build_teacher(args.layout)
        n = param_count(teacher)
        print(f"  shared frozen teacher: R50-DB (random weights), {n / 1e6:.1f}M parameters, "
              f"{n * 4 / 2**20:.0f} MiB (built once, not in the step peak)")
    trainers = {name: build_variant(name, args, teacher) for name in variants}
    step_s = time_steps(trainers, make_batch(args.batch, args.size), args.rounds)

    memory: Dict[str, float] = {}
    params = {name: param_count(trainer.method) for name, trainer in trainers.items()}
    for name in variants:  # the baseline first: every ratio needs it
        memory[name] = memory_of(name, args)
        print(f"  {name}: {step_s[name]:.3f} s/step, x{step_s[name] / step_s['baseline']:.3f} baseline; "
              f"step peak {memory[name]:.0f} MiB, x{memory[name] / memory['baseline']:.3f} baseline; "
              f"{params[name]:,} training-only parameters", flush=True)

    print(f"\n  {'variant':<12} {'step s (median)':>15} {'/ baseline':>10} {'step peak MiB':>14} {'/ baseline':>10} "
          f"{'train-only params':>17}")
    for name in variants:
        print(f"  {name:<12} {step_s[name]:15.3f} {step_s[name] / step_s['baseline']:10.3f} {memory[name]:14.0f} "
              f"{memory[name] / memory['baseline']:10.3f} {params[name]:17,}")
    if SDET in trainers:
        time_inference(trainers["baseline"].detector, trainers[SDET].detector, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
