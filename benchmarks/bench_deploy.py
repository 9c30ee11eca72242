"""Deployment runtimes side by side on ICDAR2015 test images: latency, F and peak RSS in one run.

Usage: python benchmarks/bench_deploy.py [--images 500] [--warmup 3] [--threads 2] [--calib-count 32]

The imported PaddleOCR IC15 model (../shared/weights) runs as
  torch      sdet's Predictor (PyTorch, channels_last on CPU: the `sdet predict` default)
  ort        the `sdet export` graph under ONNX Runtime (all graph optimisations, BN folded at export)
  ort-int8   that graph statically quantised (QDQ, per-channel int8 weights, uint8 activations,
             calibrated on --calib-count ICDAR2015 *training* images)
  rapidocr   RapidOCR's PP-OCRv4 mobile detector (only when rapidocr_onnxruntime is importable:
             `pip install --no-deps rapidocr-onnxruntime==1.4.4 pillow`; never a runtime dependency)
Every image is decoded once up front (decoding is not timed); then the runtimes take turns on
each image (round-robin, so a busy machine slows all alike). A time covers resize + normalise +
forward + post-processing. F is the icdar2015 protocol over the same outputs. Peak RSS: each
runtime alone in a child process, loading it and running --rss-images images.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

from common import ICDAR2015, PADDLE_WEIGHTS as WEIGHTS, machine_line, peak_rss_mb

Runtime = Callable  # BGR uint8 image -> list of (N, 2) polygons in image pixels


def build_models(tmp: Path, calib_count: int) -> Dict[str, Path]:
    from sdet.deploy.onnx_export import export_onnx
    from sdet.deploy.onnx_quantize import calibration_images, quantize_int8
    from sdet.deploy.paddle_import import import_paddle

    pt, onnx_path, int8 = tmp / "model.pt", tmp / "model.onnx", tmp / "model.int8.onnx"
    import_paddle(WEIGHTS / "best_accuracy.pdparams", WEIGHTS / "config.yml", pt, echo=None)
    export_onnx(str(pt), str(onnx_path))
    quantize_int8(onnx_path, int8, calibration_images(f"icdar2015:{ICDAR2015}", calib_count))
    return {"torch": pt, "ort": onnx_path, "ort-int8": int8}


def load_runtime(name: str, models: Dict[str, Path], threads: int) -> Runtime:
    import torch

    if name == "torch":
        from sdet.checkpoint import load_detector
        from sdet.deploy.predictor import Predictor

        torch.set_num_threads(threads)
        detector, cfg, _ = load_detector(models["torch"])
        predictor = Predictor(detector, cfg)
        return lambda image: [d.polygon for d in predictor(image).detections]
    if name in ("ort", "ort-int8"):
        from sdet.deploy.onnx_predictor import OnnxPredictor

        predictor = OnnxPredictor(models[name], threads=threads)
        return lambda image: [d.polygon for d in predictor(image).detections]
    if name == "rapidocr":
        import rapidocr_onnxruntime
        import yaml
        from rapidocr_onnxruntime.ch_ppocr_det import TextDetector

        root = Path(rapidocr_onnxruntime.__file__).parent
        config = yaml.safe_load((root / "config.yaml").read_text())["Det"]
        config.update(model_path=str(root / config["model_path"]), intra_op_num_threads=threads, inter_op_num_threads=1)
        detector = TextDetector(config)

        def detect(image):
            boxes = detector(image)[0]
            return [] if boxes is None else list(boxes)

        return detect
    raise ValueError(name)


def available(names: List[str]) -> List[str]:
    try:
        import rapidocr_onnxruntime  # noqa: F401
    except ImportError:
        print("  rapidocr: skipped (rapidocr_onnxruntime not importable)")
        return [n for n in names if n != "rapidocr"]
    return names


def child_rss(name: str, models: Dict[str, Path], threads: int, n_images: int) -> float:
    """Peak RSS (MiB) of a fresh process that loads runtime `name` and runs `n_images` images."""
    args = [sys.executable, __file__, "--rss-child", name, "--models", json.dumps({k: str(v) for k, v in models.items()}),
            "--threads", str(threads), "--rss-images", str(n_images)]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    return float(out.strip().splitlines()[-1])


def rss_child(name: str, models: Dict[str, Path], threads: int, n_images: int) -> None:
    from sdet.data.formats import load_samples
    from sdet.data.images import read_image

    runtime = load_runtime(name, models, threads)
    for sample in load_samples("icdar2015", str(ICDAR2015), "test")[:n_images]:
        runtime(read_image(sample.image_path))
    print(peak_rss_mb())


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500, help="test images run and scored (all 500 by default)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed images first (scored all the same)")
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of every runtime")
    parser.add_argument("--calib-count", type=int, default=32, help="ICDAR2015 training images for int8 calibration")
    parser.add_argument("--rss-images", type=int, default=5)
    parser.add_argument("--rss-child", default="", help=argparse.SUPPRESS)
    parser.add_argument("--models", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        rss_child(args.rss_child, {k: Path(v) for k, v in json.loads(args.models).items()}, args.threads, args.rss_images)
        return 0
    missing = [p for p in (WEIGHTS / "best_accuracy.pdparams", ICDAR2015) if not p.exists()]
    if missing:
        print(f"bench_deploy: skipped, not found: {', '.join(map(str, missing))}")
        return 0

    from sdet.data.formats import load_samples
    from sdet.data.images import read_image
    from sdet.engine.evaluator import score_detections
    from sdet.detectors.detection import Detection

    print(machine_line("bench_deploy", args.threads))
    samples = load_samples("icdar2015", str(ICDAR2015), "test")[: args.images]
    images = [read_image(s.image_path) for s in samples]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        models = build_models(Path(tmp), args.calib_count)
        print(f"  models built (import, export, int8 calibration on {args.calib_count} training images) "
              f"in {time.perf_counter() - t0:.0f} s")
        names = available(["torch", "ort", "ort-int8", "rapidocr"])
        runtimes = {n: load_runtime(n, models, args.threads) for n in names}
        times: Dict[str, List[float]] = {n: [] for n in names}
        outputs: Dict[str, List[List[Detection]]] = {n: [] for n in names}
        for i, image in enumerate(images):
            for name, runtime in runtimes.items():
                start = time.perf_counter()
                polygons = runtime(image)
                elapsed = time.perf_counter() - start
                outputs[name].append([Detection(p, 1.0) for p in polygons])
                if i >= args.warmup:
                    times[name].append(elapsed * 1e3)
        rss = {n: child_rss(n, models, args.threads, args.rss_images) for n in names}
    base = statistics.mean(times["torch"])
    print(f"  {len(images)} images (first {args.warmup} untimed), input sizes as each runtime's own pre-processing")
    print(f"  {'runtime':<10} {'mean ms':>8} {'median':>8} {'/ torch':>8} {'P':>7} {'R':>7} {'F':>7} {'peak RSS MiB':>13}")
    for name in names:
        metric = score_detections(samples, outputs[name], "icdar2015")
        mean = statistics.mean(times[name])
        print(f"  {name:<10} {mean:8.1f} {statistics.median(times[name]):8.1f} {mean / base:8.3f} "
              f"{metric.precision:7.4f} {metric.recall:7.4f} {metric.hmean:7.4f} {rss[name]:13.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
