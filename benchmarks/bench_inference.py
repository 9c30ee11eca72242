"""Inference latency per 1280x720 image at the 1312x736 test size, DB and EAST side by side.

Usage: python benchmarks/bench_inference.py [--rounds 10] [--threads 2] [--models mv3_db,mv3_east,...]
                                            [--checkpoint NAME=best.pt ...]

Each model runs round-robin on the same synthetic 1280x720 scene, one image per model per
round, so load changes hit every model alike; the first round is warm-up. Timed per image:
forward = test resize + normalisation + network forward; post = the model type's
post-processing (DB: boxes from the probability map; EAST: score + geometry decoding and
LA-NMS), through the same code as `sdet predict`. With random weights the forward cost is
real (it does not depend on the weights) but the post-processing is not (a random EAST
scores no pixel above 0.8, so LA-NMS gets nothing): `--checkpoint NAME=PATH` adds rows for
trained models (their own architecture and post settings, the same 1312x736 input), e.g. the
demo's `demo_out/run_baseline/best.pt`; bench_paddle_inference.py times a trained DB on
ICDAR 2015 images.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from typing import Dict, List

from common import machine_line

MODELS: Dict[str, List[str]] = {
    "mv3_db (MV3-large x0.5, FPN 96)": ["model.type=db", "model.backbone.name=mobilenet_v3_large",
                                         "model.backbone.width_mult=0.5", "model.neck.inner_channels=96"],
    "mv3_db (MV3-large x1.0, FPN 96)": ["model.type=db", "model.backbone.name=mobilenet_v3_large",
                                         "model.backbone.width_mult=1.0", "model.neck.inner_channels=96"],
    "mv3_east (MV3-large x1.0, FPN 96)": ["model.type=east", "model.backbone.name=mobilenet_v3_large",
                                           "model.backbone.width_mult=1.0", "model.neck.inner_channels=96"],
    "r50_db (ResNet50, FPN 256)": ["model.type=db", "model.backbone.name=resnet50", "model.neck.inner_channels=256"],
}
TEST_INPUT = ["data.input.test_resize=short_side", "data.input.test_size=736"]  # 1280x720 -> 1312x736


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", default="", help="comma-separated name prefixes, e.g. mv3_db,mv3_east (default: all)")
    parser.add_argument("--checkpoint", action="append", default=[], help="NAME=PATH: also time this trained checkpoint")
    parser.add_argument("--channels-last", action="store_true", help="run the networks in channels_last layout")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from sdet.checkpoint import load_detector
    from sdet.config import Config, _merge, build_dataclass, config_to_dict, load_config, parse_overrides
    from sdet.data.synth import synth_image
    from sdet.data.datasets import prepare_test_image
    from sdet.deploy.predictor import Predictor, logits_to_prediction
    from sdet.engine.runtime import tune_glibc_malloc
    from sdet.models.detector import build_detector

    tune_glibc_malloc()
    torch.set_num_threads(args.threads)
    print(machine_line("bench_inference", args.threads))
    image = synth_image(np.random.default_rng(0), (720, 1280)).image
    prefixes = [p.strip() for p in args.models.split(",") if p.strip()]
    predictors = {}
    for name, overrides in MODELS.items():
        if prefixes and not any(name.startswith(p) for p in prefixes):
            continue
        cfg = load_config(None, overrides + TEST_INPUT)
        torch.manual_seed(0)
        predictors[f"{name} random"] = (build_detector(cfg.model).eval(), cfg)
    for item in args.checkpoint:
        name, _, path = item.partition("=")
        detector, cfg, _ = load_detector(path)
        cfg = build_dataclass(Config, _merge(config_to_dict(cfg), parse_overrides(TEST_INPUT)))
        predictors[f"{name} trained"] = (detector, cfg)
    for name, (detector, cfg) in list(predictors.items()):
        # the layout named explicitly: Predictor's CPU default is channels_last, which the
        # "contiguous" rows of this table used to get unawares
        predictors[name] = Predictor(detector, cfg, torch.device("cpu"), channels_last=args.channels_last)

    forward: Dict[str, List[float]] = {n: [] for n in predictors}
    post: Dict[str, List[float]] = {n: [] for n in predictors}
    found: Dict[str, int] = {}
    with torch.no_grad():
        for r in range(args.rounds + 1):
            for name, predictor in predictors.items():
                t0 = time.perf_counter()
                tensor = prepare_test_image(image, predictor.cfg.data.input)[None]
                logits = predictor.detector(predictor._to_input(tensor)).logits
                t1 = time.perf_counter()
                pred = logits_to_prediction(logits, predictor.detector.text_key, predictor.cfg,
                                            tuple(tensor.shape[-2:]), image.shape[:2])
                t2 = time.perf_counter()
                found[name] = len(pred.detections)
                if r:
                    forward[name].append(t1 - t0)
                    post[name].append(t2 - t1)
    print(f"  1280x720 image -> 1312x736 input, {args.rounds} rounds after 1 warm-up, "
          f"{'channels_last' if args.channels_last else 'contiguous'}; ms per image (median)")
    print(f"  {'model':<44} {'forward':>8} {'post':>8} {'total':>8}  detections")
    first = None
    for name in predictors:
        f, p = statistics.median(forward[name]) * 1e3, statistics.median(post[name]) * 1e3
        first = first or f + p
        print(f"  {name:<44} {f:8.1f} {p:8.1f} {f + p:8.1f}  {found[name]:>4}   x{(f + p) / first:.2f} of the first row")
    return 0


if __name__ == "__main__":
    sys.exit(main())
