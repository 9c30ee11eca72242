"""`sdet import-onnx` on PaddleOCR's PP-OCRv3 mobile det: same probabilities and same ICDAR2015 F as the graph.

Usage: python benchmarks/check_onnx_import.py [--onnx FILE] [--images 500] [--diff-images 5] [--threads 2]

FILE defaults to `ch_PP-OCRv3_det_infer.onnx` from an installed rapidocr-onnxruntime 1.2.x
(`pip install --no-deps rapidocr-onnxruntime==1.2.3`; a benchmark extra, never a dependency).
Prints the import report, the max |probability difference| between the imported sdet model and
onnxruntime on --diff-images ICDAR2015 test photos at the import's test resize (short side 736),
then P/R/F under the icdar2015 protocol of (a) the imported model through sdet's Predictor and
(b) the original ONNX graph under onnxruntime through the very same post-processing.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from common import ICDAR2015, machine_line


def wheel_model() -> Optional[Path]:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "models" / "ch_PP-OCRv3_det_infer.onnx"
    return path if path.is_file() else None


class ForeignOnnxRuntime:
    """A PP-OCR graph (probabilities out, no sdet metadata) behind the Predictor's `from_tensor`."""

    def __init__(self, path: Path, cfg, threads: int):
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.cfg = cfg

    def probabilities(self, tensor):
        return self.session.run(None, {self.input_name: tensor.numpy()})[0]

    def from_tensor(self, tensor, dest_hw: Tuple[int, int]):
        import torch

        from sdet.deploy.predictor import logits_to_prediction

        prob = torch.from_numpy(self.probabilities(tensor)).clamp(1e-7, 1 - 1e-7)
        # logits_to_prediction takes logits; sigmoid(logit(p)) = p up to float32 rounding
        logit = torch.log(prob) - torch.log1p(-prob)
        return logits_to_prediction({"prob": logit}, "prob", self.cfg, tuple(tensor.shape[-2:]), dest_hw)


def max_prob_diff(samples: Sequence, predictor, foreign: ForeignOnnxRuntime, cfg) -> float:
    import numpy as np
    import torch

    from sdet.data.datasets import prepare_test_image
    from sdet.data.images import read_image

    worst = 0.0
    for sample in samples:
        tensor = prepare_test_image(read_image(sample.image_path), cfg.data.input)[None]
        ours = torch.sigmoid(predictor.text_logit(tensor)).numpy()
        worst = max(worst, float(np.abs(ours - foreign.probabilities(tensor)[:, 0]).max()))
    return worst


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--onnx", type=Path, default=None)
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--diff-images", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    onnx_path = args.onnx or wheel_model()
    if onnx_path is None or not ICDAR2015.exists():
        print("check_onnx_import: skipped (needs --onnx or rapidocr-onnxruntime 1.2.x, and ICDAR2015 test data)")
        return 0

    import torch

    from sdet.checkpoint import load_detector
    from sdet.data.formats import load_samples
    from sdet.deploy.onnx_import import import_onnx
    from sdet.deploy.predictor import Predictor
    from sdet.engine.evaluator import run_on_samples, score_detections

    torch.set_num_threads(args.threads)
    print(machine_line("check_onnx_import", args.threads))
    samples = load_samples("icdar2015", str(ICDAR2015), "test")[: args.images]
    with tempfile.TemporaryDirectory() as tmp:
        report = import_onnx(onnx_path, Path(tmp) / "imported.pt", echo=None)
        print(f"  {report.summary()}")
        detector, cfg, _ = load_detector(report.path)
    cfg.data.num_workers = 0
    predictor = Predictor(detector, cfg, fold_bn=False)  # the imported weights as they are
    foreign = ForeignOnnxRuntime(onnx_path, cfg, args.threads)
    diff = max_prob_diff(samples[: args.diff_images], predictor, foreign, cfg)
    print(f"  max |probability difference| on {args.diff_images} test photos "
          f"({cfg.data.input.test_resize} {cfg.data.input.test_size}): {diff:.2e}")
    print(f"  {'runtime':<34} {'P':>7} {'R':>7} {'F':>7}   ({len(samples)} ICDAR2015 test images, icdar2015 protocol)")
    for name, runtime in (("sdet import (PyTorch)", predictor), ("PP-OCRv3 ONNX (onnxruntime)", foreign)):
        metric = score_detections(samples, run_on_samples(runtime, samples, cfg), "icdar2015")
        print(f"  {name:<34} {metric.precision:7.4f} {metric.recall:7.4f} {metric.hmean:7.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
