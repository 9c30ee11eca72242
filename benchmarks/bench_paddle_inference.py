"""CPU latency of the imported PaddleOCR DB MobileNetV3-x0.5 on ICDAR2015 test images (1312x736).

Usage: python benchmarks/bench_paddle_inference.py [--images 30] [--warmup 5] [--threads 2]
Imports ../shared/weights/ppocr-ic15-db-mv3-x0.5 into a temporary sdet checkpoint first,
then times pre-processing, model forward and DB post-processing per image, once with
contiguous (NCHW) inputs and once with channels_last inputs (the Predictor's CPU default).
Needs the shared data beside the repository (../shared); says so and exits 0 when absent.
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Dict, List

if TYPE_CHECKING:
    import numpy as np

    from sdet.config import Config
    from sdet.deploy.predictor import Predictor

from common import ICDAR2015, PADDLE_WEIGHTS as WEIGHTS, cpu_name
# PaddleOCR's PP-OCRv4 mobile det (a larger model) through ONNX Runtime, measured on this machine.
REFERENCE_MS = 286.0


def time_images(predictor: "Predictor", images: "List[np.ndarray]", cfg: "Config", warmup: int, layout: str) -> Dict:
    """Per-image milliseconds of each stage, the way Predictor runs them (decoding excluded)."""
    import torch

    from sdet.data.datasets import prepare_test_image

    out: Dict = {"pre-process": [], "forward": [], "post-process": [], "total": [], "sizes": set()}
    with torch.inference_mode():
        for i, image in enumerate(images):
            t0 = time.perf_counter()
            tensor = predictor._to_input(prepare_test_image(image, cfg.data.input)[None])
            t1 = time.perf_counter()
            prob = torch.sigmoid(predictor.text_logit(tensor)[0]).numpy()
            t2 = time.perf_counter()
            predictor.postprocess(prob, image.shape[:2], cfg, None)
            t3 = time.perf_counter()
            if i >= warmup:
                for name, ms in (("pre-process", t1 - t0), ("forward", t2 - t1), ("post-process", t3 - t2), ("total", t3 - t0)):
                    out[name].append(ms * 1e3)
                out["sizes"].add(f"{tensor.shape[-1]}x{tensor.shape[-2]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=30, help="timed images")
    parser.add_argument("--warmup", type=int, default=5, help="untimed images first")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    args = parser.parse_args(argv)
    missing = [p for p in (WEIGHTS / "best_accuracy.pdparams", WEIGHTS / "config.yml", ICDAR2015) if not p.exists()]
    if missing:
        print(f"bench_paddle_inference: skipped, not found: {', '.join(map(str, missing))}")
        return 0

    import torch

    from sdet.checkpoint import load_detector
    from sdet.data.formats import load_samples
    from sdet.data.images import read_image
    from sdet.deploy.paddle_import import import_paddle
    from sdet.deploy.predictor import Predictor

    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        import_paddle(WEIGHTS / "best_accuracy.pdparams", WEIGHTS / "config.yml", Path(tmp) / "model.pt", echo=None)
        detector, cfg, _ = load_detector(Path(tmp) / "model.pt")
    samples = load_samples("icdar2015", str(ICDAR2015), "test")[: args.warmup + args.images]
    images = [read_image(s.image_path) for s in samples]  # decoding is not timed

    load = os.getloadavg()[0]
    print(f"bench_paddle_inference: machine {cpu_name()} (platform.processor() {platform.processor()!r}), "
          f"{os.cpu_count()} cores, torch {torch.__version__}, {args.threads} threads, load average {load:.1f}")
    if load > (os.cpu_count() or 1):
        print("  warning: the machine is busy; with more runnable threads than cores, torch's "
              "parallel regions wait on descheduled threads and the timings below are inflated")
    print(f"bench_paddle_inference: PaddleOCR ic15 DB MobileNetV3-large x0.5, {args.images} ICDAR2015 test images "
          f"after {args.warmup} warm-up")
    for layout in ("contiguous", "channels_last"):
        predictor = Predictor(detector, cfg, torch.device("cpu"), channels_last=layout == "channels_last")
        times = time_images(predictor, images, cfg, args.warmup, layout)
        print(f"  memory format {layout} (input {', '.join(sorted(times.pop('sizes')))}):")
        for name, values in times.items():
            print(f"    {name:<13} mean {statistics.mean(values):7.1f} ms/image  (median {statistics.median(values):7.1f})")
    print(f"  reference: PP-OCRv4 mobile det via ONNX Runtime (a larger model): ~{REFERENCE_MS:.0f} ms/image total")
    return 0


if __name__ == "__main__":
    sys.exit(main())
