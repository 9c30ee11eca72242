"""Run a detector over a split and score it with the dataset's protocol."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader

from sdet.config import Config
from sdet.data.datasets import EvalDataset
from sdet.data.formats import eval_protocol
from sdet.data.sample import Sample
from sdet.deploy.predictor import Predictor
from sdet.metrics.protocols import get_protocol
from sdet.metrics.result import GtRegion, MetricResult
from sdet.detectors.detection import Detection


def predict_samples(
    detector: torch.nn.Module, samples: List[Sample], cfg: Config, device: torch.device, progress: bool = False
) -> List[List[Detection]]:
    """Detections for every sample, in order; images are decoded and resized by loader workers."""
    return run_on_samples(Predictor(detector, cfg, device), samples, cfg, progress)


def run_on_samples(runtime, samples: List[Sample], cfg: Config, progress: bool = False) -> List[List[Detection]]:
    """Any runtime with ``from_tensor(tensor, dest_hw)`` (PyTorch Predictor or OnnxPredictor) over samples."""
    workers = min(cfg.data.num_workers, 4)
    loader = DataLoader(EvalDataset(samples, cfg.data), batch_size=None, num_workers=workers)
    if progress:
        from tqdm import tqdm

        loader = tqdm(loader, total=len(samples), desc="eval", dynamic_ncols=True)
    results: List[List[Detection]] = [[] for _ in samples]
    for item in loader:
        hw = tuple(int(v) for v in item["shape"])
        results[item["index"]] = runtime.from_tensor(item["image"][None], hw).detections
    return results


def score_detections(samples: List[Sample], detections: List[List[Detection]], protocol: str = "icdar2015") -> MetricResult:
    """Score with a protocol of :data:`sdet.metrics.protocols.PROTOCOLS`; every sample counts as an image."""
    protocol_fn = get_protocol(protocol)
    gt: Dict[str, List[GtRegion]] = {}
    det: Dict[str, List[np.ndarray]] = {}
    for i, (sample, dets) in enumerate(zip(samples, detections)):
        key = str(i)
        gt[key] = [GtRegion(inst.polygon, inst.ignore) for inst in sample.instances]
        det[key] = [d.polygon for d in dets]
    return protocol_fn(gt, det)


def evaluate(
    detector: torch.nn.Module, samples: List[Sample], cfg: Config, device: Optional[torch.device] = None,
    progress: bool = False, protocol: Optional[str] = None,
) -> MetricResult:
    """Detect and score; ``protocol`` None = ``data.protocol``, or the default of dataset ``data.name``."""
    if protocol is None:
        protocol = eval_protocol(cfg.data.name, cfg.data.protocol)
    device = device or next(detector.parameters()).device
    was_training = detector.training
    detector.eval()
    try:
        dets = predict_samples(detector, samples, cfg, device, progress)
    finally:
        detector.train(was_training)
    return score_detections(samples, dets, protocol)
