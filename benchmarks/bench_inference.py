"""Inference latency per 1280x720 image at the 1312x736 test size, detectors side by side.

Usage: python benchmarks/bench_inference.py [--rounds 10] [--threads 2] [--models mv3_db,r50_db,...]

Each model runs round-robin on the same synthetic 1280x720 scene, one image per model per
round, so load changes hit every model alike; the first round is warm-up. Timed: test
resize + normalisation + network forward. The weights are random (the forward cost does not
depend on them); post-processing cost depends on what a trained model sees and is timed on
the trained, imported PaddleOCR model in bench_paddle_inference.py.
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
    "r50_db (ResNet50, FPN 256)": ["model.type=db", "model.backbone.name=resnet50", "model.neck.inner_channels=256"],
}


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--channels-last", action="store_true", help="run the networks in channels_last layout")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from sdet.config import load_config
    from sdet.data.synth import synth_image
    from sdet.data.datasets import prepare_test_image
    from sdet.deploy.predictor import Predictor
    from sdet.engine.runtime import tune_glibc_malloc
    from sdet.models.detector import build_detector

    tune_glibc_malloc()
    torch.set_num_threads(args.threads)
    print(machine_line("bench_inference", args.threads))
    image = synth_image(np.random.default_rng(0), (720, 1280)).image
    predictors = {}
    for name, overrides in MODELS.items():
        cfg = load_config(None, overrides + ["data.input.test_resize=short_side", "data.input.test_size=736"])
        torch.manual_seed(0)
        detector = build_detector(cfg.model).eval()
        if args.channels_last:
            detector = detector.to(memory_format=torch.channels_last)
        predictors[name] = Predictor(detector, cfg, torch.device("cpu"))
    forward: Dict[str, List[float]] = {n: [] for n in predictors}
    for r in range(args.rounds + 1):
        for name, predictor in predictors.items():
            t0 = time.perf_counter()
            tensor = prepare_test_image(image, predictor.cfg.data.input)[None]
            predictor.text_logit(tensor)
            if r:
                forward[name].append(time.perf_counter() - t0)
    print(f"  1280x720 image -> 1312x736 input, {args.rounds} rounds after 1 warm-up, "
          f"{'channels_last' if args.channels_last else 'contiguous'}; random weights (timing only)")
    first = statistics.median(next(iter(forward.values())))
    for name, times in forward.items():
        t = statistics.median(times)
        print(f"  {name:<34} {t * 1e3:8.1f} ms/image (median)  x{t / first:.2f} of the first row")
    return 0


if __name__ == "__main__":
    sys.exit(main())
